//! The builder methods in any order: a setter after `.hedge(..)` or `.timed_attempts()` builds
//! the same layer as before it, and `.timed_attempts().hedge(..)` the same as
//! `.hedge(..).timed_attempts()`. Paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_retrier::budget::Unlimited;
use tower_retrier::classify::{Decision, RetryReason, classify_fn};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{AttemptError, RetryConfig, RetryLayer};

/// A service whose n-th attempt (from 0) sleeps `delays[n]` (the last repeats) and answers
/// `Err` on attempt 0, `Ok(n)` after; and its attempt counter.
fn scripted(
    delays: &'static [u64],
) -> (
    impl Service<(), Response = u32, Error = std::io::Error, Future: Send> + Clone + Send,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = service_fn(move |_: ()| {
        let n = seen.fetch_add(1, Ordering::Relaxed);
        async move {
            let delay = delays[(n as usize).min(delays.len() - 1)];
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if n == 0 {
                Err(std::io::Error::other("first attempt fails"))
            } else {
                Ok(n)
            }
        }
    });
    (svc, calls)
}

fn hedging(delay_ms: u64) -> HedgeConfig {
    HedgeConfig::builder()
        .delay(Duration::from_millis(delay_ms))
        .max_attempts(2)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn setters_after_hedge_build_the_layer_they_build_before_it() {
    let hooked = Arc::new(AtomicU32::new(0));
    let count = hooked.clone();
    let hook = move |_: &RetryEvent<'_, u32, std::io::Error>| {
        count.fetch_add(1, Ordering::Relaxed);
    };
    let before = RetryLayer::new(RetryConfig::default())
        .with_budget(Unlimited::new())
        .on_retry(hook.clone())
        .service_name("inventory")
        .hedge(hedging(50));
    let after = RetryLayer::new(RetryConfig::default())
        .hedge(hedging(50))
        .with_budget(Unlimited::new())
        .on_retry(hook)
        .service_name("inventory");
    // Same type, same behaviour: the first attempt fails at once, so the hedge goes at once,
    // after the hook saw the failure.
    for layer in [before, after] {
        let (svc, calls) = scripted(&[0, 10]);
        let start = Instant::now();
        assert_eq!(layer.layer(svc).oneshot(()).await.unwrap(), 1);
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
    assert_eq!(hooked.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn timed_attempts_then_hedge_is_hedge_then_timed_attempts() {
    let cfg = RetryConfig::builder()
        .attempt_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let timed_first = RetryLayer::new(cfg.clone())
        .timed_attempts()
        .hedge(hedging(20));
    let hedged_first = RetryLayer::new(cfg).hedge(hedging(20)).timed_attempts();
    for layer in [timed_first, hedged_first] {
        // Every attempt hangs: the first is cut at 100 ms, the hedge (sent at 20 ms) at 120 ms.
        let (svc, calls) = scripted(&[60_000]);
        let start = Instant::now();
        let err: AttemptError<std::io::Error> = layer.layer(svc).oneshot(()).await.unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(start.elapsed(), Duration::from_millis(120));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn setters_after_timed_attempts_reach_the_retry_layer_inside() {
    let cfg = RetryConfig::builder()
        .attempt_timeout(Duration::from_millis(100))
        .initial_delay(Duration::from_millis(10))
        .jitter(false)
        .build()
        .unwrap();
    let hooked = Arc::new(AtomicU32::new(0));
    let count = hooked.clone();
    let classified = Arc::new(AtomicU32::new(0));
    let seen = classified.clone();
    let layer = RetryLayer::new(cfg)
        .timed_attempts()
        .with_classifier(classify_fn(
            move |_: &(), r: &Result<u32, std::io::Error>| {
                seen.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok(_) => Decision::Success,
                    Err(_) => Decision::retry(RetryReason::Error),
                }
            },
        ))
        .with_budget(Unlimited::new())
        .on_retry(
            move |_: &RetryEvent<'_, Result<u32, std::io::Error>, AttemptError<std::io::Error>>| {
                count.fetch_add(1, Ordering::Relaxed);
            },
        );
    let (svc, calls) = scripted(&[0]);
    let start = Instant::now();
    assert_eq!(layer.layer(svc).oneshot(()).await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(10)); // one backoff, no timeout
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    // The classifier saw both inner results (not wrapped twice), the hook the one retry.
    assert_eq!(classified.load(Ordering::Relaxed), 2);
    assert_eq!(hooked.load(Ordering::Relaxed), 1);
}
