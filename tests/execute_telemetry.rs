//! The names `execute_with_retry` reports in telemetry: its own test binary, because
//! `tracing` caches each call site's interest process-wide, and a test running beside it on
//! another thread with no subscriber can make this test's spans invisible.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tower_retrier::classify::MatchErrors;
use tower_retrier::{RetryConfig, execute_with_retry};

#[path = "support/spans.rs"]
mod spans;
use spans::Spans;

fn config(attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .initial_delay(Duration::from_millis(100))
        .jitter(false)
        .build()
        .unwrap()
}

#[test]
fn the_names_label_the_telemetry() {
    let spans = Spans::default();
    spans.capture_paused(async {
        let calls = AtomicU32::new(0);
        let _ = execute_with_retry(
            &config(3),
            MatchErrors::typed().retry::<std::io::Error>(),
            "inventory",
            "count",
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(std::io::Error::other("reset")),
                    _ => Ok(()),
                }
            },
        )
        .await;
    });
    let calls = spans.named(tower_retrier::telemetry::names::SPAN_CALL);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let field = |name: &str| calls[0].fields.get(name).cloned();
    assert_eq!(field("retry.service").as_deref(), Some("inventory"));
    assert_eq!(field("retry.operation").as_deref(), Some("count"));
    assert_eq!(field("retry.attempts").as_deref(), Some("2"));
    assert_eq!(
        field("retry.outcome").as_deref(),
        Some("success_after_retry")
    );
}
