//! A `metrics` recorder that panics: the back-end is switched off for the layer after the
//! first panic and one error is logged.
//!
//! A test binary of its own: `tracing` caches per call site whether anyone listens, process
//! wide, so a concurrent test running without a subscriber could hide the logged error.
#![cfg(feature = "metrics")]

#[path = "support/telemetry.rs"]
mod telemetry_support;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use std::sync::Arc;
use telemetry_support::{
    Scripted, billing_layer, paused_runtime, three_calls, three_calls_expected, three_calls_script,
};
use tower::Layer;

/// A recorder that counts how often its handles are used or registered, and panics each time.
#[derive(Default)]
struct CountingBoom {
    uses: Arc<std::sync::atomic::AtomicUsize>,
    registrations: Arc<std::sync::atomic::AtomicUsize>,
    panic_on_register: bool,
}

struct CountedBoom(Arc<std::sync::atomic::AtomicUsize>);

impl CountedBoom {
    fn boom(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        panic!("recorder is broken");
    }
}

impl CounterFn for CountedBoom {
    fn increment(&self, _value: u64) {
        self.boom();
    }
    fn absolute(&self, _value: u64) {
        self.boom();
    }
}

impl HistogramFn for CountedBoom {
    fn record(&self, _value: f64) {
        self.boom();
    }
}

impl CountingBoom {
    fn register(&self) {
        self.registrations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.panic_on_register {
            panic!("recorder is broken");
        }
    }
}

impl Recorder for CountingBoom {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        self.register();
        Counter::from_arc(Arc::new(CountedBoom(self.uses.clone())))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        self.register();
        Histogram::from_arc(Arc::new(CountedBoom(self.uses.clone())))
    }
}

/// ERROR events logged while `f` runs, as messages.
fn errors_logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    use tracing_subscriber::layer::SubscriberExt;
    #[derive(Clone, Default)]
    struct Errors(Arc<std::sync::Mutex<Vec<String>>>);
    struct Message(String);
    impl tracing::field::Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Errors {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::ERROR {
                let mut m = Message(String::new());
                event.record(&mut m);
                self.0.lock().unwrap().push(m.0);
            }
        }
    }
    let errors = Errors::default();
    let subscriber = tracing_subscriber::registry().with(errors.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    let logged = errors.0.lock().unwrap().clone();
    (out, logged)
}

/// The first panic switches the metrics back-end off for the layer: no handle is used (or
/// registered) again, whatever the traffic, and exactly one error is logged.
#[test]
fn a_panicking_recorder_is_switched_off_after_one_panic_and_logged_once() {
    for panic_on_register in [false, true] {
        let recorder = CountingBoom {
            panic_on_register,
            ..CountingBoom::default()
        };
        let inner = Scripted::new(three_calls_script());
        let (results, errors) = errors_logged(|| {
            metrics::with_local_recorder(&recorder, || {
                paused_runtime().block_on(async {
                    let svc = billing_layer().seed(7).layer(inner.clone());
                    let mut results = three_calls(svc.clone()).await;
                    // More traffic after the switch-off: still nothing reaches the recorder.
                    results.extend(three_calls(svc).await);
                    results
                })
            })
        });
        assert_eq!(&results[..3], &three_calls_expected()[..]);
        let uses = recorder.uses.load(std::sync::atomic::Ordering::SeqCst);
        let registrations = recorder
            .registrations
            .load(std::sync::atomic::Ordering::SeqCst);
        if panic_on_register {
            assert_eq!((registrations, uses), (1, 0), "one registration, then off");
        } else {
            assert_eq!(uses, 1, "one panicking use, then off");
        }
        let ours: Vec<_> = errors
            .iter()
            .filter(|m| m.contains("telemetry back-end panicked"))
            .collect();
        assert_eq!(ours.len(), 1, "one error logged: {errors:?}");
        assert!(ours[0].contains("switched off"), "{}", ours[0]);
    }
}
