//! Where a layer's parts live: kept for the process by default (built once per layer, shared
//! by its clones and every service they build), or freed with the last service and call when
//! the layer says `release_on_drop`.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;
use support::flaky::Flaky;
use support::tracked_budget::TrackedBudget;
use tower::{Layer, Service};
use tower_retrier::{RetryConfig, RetryLayer};

fn config() -> RetryConfig {
    RetryConfig::builder()
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_layer_stores_its_parts_once_for_all_its_clones_and_services_and_keeps_them() {
    let budget = TrackedBudget::new();
    let alive = budget.counter();
    let layer = RetryLayer::new(config()).with_budget(budget);
    assert_eq!(alive.load(Ordering::SeqCst), 1);

    let inner = Flaky::failing(1);
    let a = layer.layer(inner.clone());
    let b = layer.clone().layer(inner.clone());
    // The layer's own copy and one stored copy, shared by the clone and both services (the
    // clone, a temporary, is gone).
    assert_eq!(
        alive.load(Ordering::SeqCst),
        2,
        "the layer's copy and one stored copy"
    );
    assert_eq!(a.oneshot(1).await.unwrap(), 10);
    assert_eq!(b.oneshot(2).await.unwrap(), 20);
    assert_eq!(inner.count(), 4, "each call retried once");

    drop(layer);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        1,
        "the stored parts stay for the life of the process"
    );
}

#[tokio::test(start_paused = true)]
async fn a_changed_layer_stores_its_own_parts() {
    let budget = TrackedBudget::new();
    let alive = budget.counter();
    let layer = RetryLayer::new(config()).with_budget(budget);
    let _first = layer.layer(Flaky::failing(0));
    assert_eq!(alive.load(Ordering::SeqCst), 2);
    // Renaming after a service was built must not reuse the parts stored under the old name.
    let renamed = layer.clone().service_name("other");
    let svc = renamed.layer(Flaky::failing(0));
    assert_eq!(
        alive.load(Ordering::SeqCst),
        4,
        "two layers, two stored copies"
    );
    assert_eq!(svc.budget().alive(), 4);
}

#[tokio::test(start_paused = true)]
async fn release_on_drop_frees_the_parts_with_the_last_service_and_call() {
    let budget = TrackedBudget::new();
    let alive = budget.counter();
    let layer = RetryLayer::new(config())
        .with_budget(budget)
        .release_on_drop();
    let inner = Flaky::failing(1);
    let mut svc = layer.layer(inner.clone());
    drop(layer);
    assert_eq!(alive.load(Ordering::SeqCst), 1, "only the service's parts");

    // A call outlives its service: it keeps the parts until it ends.
    let call = svc.ready().await.unwrap().call(3);
    drop(svc);
    assert_eq!(alive.load(Ordering::SeqCst), 1);
    assert_eq!(call.await.unwrap(), 30, "the retry still had its budget");
    assert_eq!(inner.count(), 2);
    assert_eq!(alive.load(Ordering::SeqCst), 0, "freed with the last call");
}

#[tokio::test(start_paused = true)]
async fn a_call_outliving_its_service_keeps_retrying_with_process_parts() {
    let inner = Flaky::failing(2);
    let call = RetryLayer::new(config())
        .with_budget(TrackedBudget::new())
        .layer(inner.clone())
        .oneshot(4);
    assert_eq!(call.await.unwrap(), 40);
    assert_eq!(inner.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_layer_keeps_or_releases_its_parts_like_the_retry_layer() {
    let hedging = tower_retrier::hedge::HedgeConfig::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap();

    let budget = TrackedBudget::new();
    let alive = budget.counter();
    let kept = RetryLayer::new(config())
        .with_budget(budget)
        .hedge(hedging.clone());
    let a = kept.layer(Flaky::failing(0));
    let b = kept.layer(Flaky::failing(0));
    assert_eq!(
        alive.load(Ordering::SeqCst),
        2,
        "the layer's copy and one stored copy"
    );
    assert_eq!(a.oneshot(1).await.unwrap(), 10);
    drop((b, kept));
    assert_eq!(alive.load(Ordering::SeqCst), 1, "kept for the process");

    let budget = TrackedBudget::new();
    let alive = budget.counter();
    let released = RetryLayer::new(config())
        .with_budget(budget)
        .release_on_drop()
        .hedge(hedging);
    let svc = released.layer(Flaky::failing(0));
    drop(released);
    assert_eq!(alive.load(Ordering::SeqCst), 1);
    assert_eq!(svc.oneshot(2).await.unwrap(), 20);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "freed with the last service and call"
    );
}
