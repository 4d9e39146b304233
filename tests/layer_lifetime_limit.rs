//! A process that builds layers as it runs never grows without bound: past
//! `PROCESS_LIFETIME_LAYERS` layers kept for the process, later ones are reference-counted
//! (freed with their services) and a warning says so, once. Its own test binary: the count
//! is per process.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::flaky::Flaky;
use support::tracked_budget::TrackedBudget;
use support::warnings::Warnings;
use tower::Layer;
use tower_retrier::{PROCESS_LIFETIME_LAYERS, RetryConfig, RetryLayer};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn past_the_limit_layers_are_reference_counted_and_a_warning_says_so_once() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let build = || {
        let budget = TrackedBudget::new();
        let alive: Arc<AtomicUsize> = budget.counter();
        let svc = RetryLayer::new(RetryConfig::default())
            .with_budget(budget)
            .layer(Flaky::failing(0));
        drop(svc);
        alive.load(Ordering::SeqCst)
    };
    for i in 0..PROCESS_LIFETIME_LAYERS {
        assert_eq!(build(), 1, "layer {i} is kept for the process");
    }
    assert!(warnings.0.lock().unwrap().is_empty());
    for _ in 0..3 {
        assert_eq!(
            build(),
            0,
            "past the limit, parts are freed with their service"
        );
    }
    let warnings = warnings.0.lock().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("release_on_drop"), "{}", warnings[0]);
}
