//! Which `max_attempts` counts under hedging: the hedge config's. The retry config's is not
//! used, and a layer whose retry count was changed from the default to another count than
//! the hedge config's warns once, when `.hedge(..)` builds it. Paused time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::warnings::Warnings;
use tower::{Layer, service_fn};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::{RetryConfig, RetryLayer};
use tracing_subscriber::layer::SubscriberExt;

fn retry_config(max_attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(max_attempts)
        .build()
        .unwrap()
}

fn hedging(max_attempts: u32) -> HedgeConfig {
    HedgeConfig::builder()
        .delay(Duration::from_millis(20))
        .max_attempts(max_attempts)
        .build()
        .unwrap()
}

/// How many attempts one hedged call makes when every attempt fails (a retryable error
/// after 100 ms).
async fn attempts(retry: u32, hedge: u32) -> u32 {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = RetryLayer::new(retry_config(retry))
        .hedge(hedging(hedge))
        .layer(service_fn(move |_: ()| {
            seen.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<(), _>(std::io::Error::other("unavailable"))
            }
        }));
    assert!(svc.oneshot(()).await.is_err());
    calls.load(Ordering::Relaxed)
}

// One test: warnings are collected by a subscriber of this thread, and a warning given on
// another thread while it is being set could leave the call site switched off.
#[test]
fn the_hedge_count_is_the_number_of_attempts_and_two_counts_that_disagree_warn_once() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let count = || warnings.0.lock().unwrap().len();

    // The default retry count, or one equal to the hedge count: nothing to say.
    let _ = RetryLayer::new(RetryConfig::default()).hedge(hedging(2));
    let _ = RetryLayer::new(retry_config(4)).hedge(hedging(4));
    assert_eq!(count(), 0);

    // 5 retry attempts asked for, 2 hedged: one warning, however often the layer is used.
    let layer = RetryLayer::new(retry_config(5)).hedge(hedging(2));
    for _ in 0..3 {
        let _ = layer
            .clone()
            .layer(service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    }
    assert_eq!(count(), 1);
    assert!(warnings.0.lock().unwrap()[0].contains("HedgeConfig::max_attempts"));

    // The order of `.timed_attempts()` and `.hedge(..)` does not matter.
    let _ = RetryLayer::new(retry_config(1))
        .timed_attempts()
        .hedge(hedging(3));
    assert_eq!(count(), 2);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(attempts(5, 2).await, 2);
        assert_eq!(attempts(1, 3).await, 3);
        assert_eq!(attempts(3, 4).await, 4);
    });
}
