//! Hedging in `tracing`: each attempt is a child span of the call, and a hedge's span says
//! so (`retry.hedge = true`).

#[path = "support/spans.rs"]
mod spans;

use spans::{SpanSeen, Spans};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer, service_fn};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::{RetryConfig, RetryLayer};

#[test]
fn a_hedge_is_a_child_span_of_the_call_marked_as_a_hedge() {
    let spans = Spans::default();
    spans.capture_paused(async {
        let calls = Arc::new(Mutex::new(0));
        let inner = service_fn(move |_: u32| {
            let first = {
                let mut n = calls.lock().unwrap();
                *n += 1;
                *n == 1
            };
            async move {
                tokio::time::sleep(Duration::from_millis(if first { 1000 } else { 10 })).await;
                Ok::<_, std::io::Error>(())
            }
        });
        let hedging = HedgeConfig::builder()
            .delay(Duration::from_millis(20))
            .build()
            .unwrap();
        let svc = RetryLayer::new(RetryConfig::default())
            .hedge(hedging)
            .layer(inner);
        svc.oneshot(1).await.unwrap();
    });
    let attempts: Vec<SpanSeen> = spans.named(tower_retrier::telemetry::names::SPAN_ATTEMPT);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for a in &attempts {
        assert_eq!(a.parent, Some(tower_retrier::telemetry::names::SPAN_CALL));
    }
    assert_eq!(attempts[0].fields.get("retry.hedge"), None);
    assert_eq!(attempts[1].fields["retry.attempt"], "2");
    assert_eq!(attempts[1].fields["retry.hedge"], "true");
}

#[test]
fn each_attempt_records_its_own_outcome() {
    // The first attempt fails non-fatally after the hedge was sent: its outcome lands on its
    // own span, and the hedge's success on the hedge's.
    let spans = Spans::default();
    spans.capture_paused(async {
        let calls = Arc::new(Mutex::new(0));
        let inner = service_fn(move |_: u32| {
            let first = {
                let mut n = calls.lock().unwrap();
                *n += 1;
                *n == 1
            };
            async move {
                if first {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    Err(std::io::Error::other("reset"))
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(())
                }
            }
        });
        let hedging = HedgeConfig::builder()
            .delay(Duration::from_millis(20))
            .build()
            .unwrap();
        let svc = RetryLayer::new(RetryConfig::default())
            .hedge(hedging)
            .layer(inner);
        svc.oneshot(1).await.unwrap();
    });
    let attempts: Vec<SpanSeen> = spans.named(tower_retrier::telemetry::names::SPAN_ATTEMPT);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts[0].fields["retry.attempt_outcome"], "retryable_failure",
        "{attempts:?}"
    );
    assert_eq!(
        attempts[1].fields["retry.attempt_outcome"], "success",
        "{attempts:?}"
    );
}
