//! A process that builds layers as it runs never grows without bound: past
//! `PROCESS_LIFETIME_LAYERS` layers kept for the process, later ones are reference-counted
//! (freed with their services) and a warning says so, once. Its own test binary: the count
//! is per process.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::flaky::Flaky;
use support::tracked_budget::TrackedBudget;
use tower::Layer;
use tower_retrier::{PROCESS_LIFETIME_LAYERS, RetryConfig, RetryLayer};
use tracing_subscriber::layer::SubscriberExt;

/// Collects the messages of `warn` events.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::WARN {
            return;
        }
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        self.0.lock().unwrap().push(message);
    }
}

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
