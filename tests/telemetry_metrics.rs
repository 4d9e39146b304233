//! The `metrics` back-end: exact counts for scripted call sequences, units and descriptions,
//! bounded label sets, and a broken recorder that must not fail requests.
#![cfg(feature = "metrics")]

#[path = "support/telemetry.rs"]
mod telemetry_support;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::sync::Arc;
use telemetry_support::{
    DenyAll, Scripted, Step, billing_layer, classifier, fail, paused_runtime, three_calls,
    three_calls_expected, three_calls_script,
};
use tower::{Layer, ServiceExt};
use tower_retrier::budget::Unlimited;
use tower_retrier::replay::CloneRequest;
use tower_retrier::telemetry::{NoHook, Telemetry, names};
use tower_retrier::{RetryConfig, RetryLayer};

/// One metric of a snapshot.
#[derive(Debug)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    unit: Option<Unit>,
    description: Option<String>,
    value: DebugValue,
}

struct Captured(Vec<Series>);

impl Captured {
    fn take(snapshotter: &Snapshotter) -> Self {
        Captured(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(key, unit, description, value)| {
                    let key = key.key();
                    let mut labels: Vec<_> = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    labels.sort();
                    Series {
                        name: key.name().to_owned(),
                        labels,
                        unit,
                        description: description.map(|d| d.to_string()),
                        value,
                    }
                })
                .collect(),
        )
    }

    fn find(&self, name: &str, extra: &[(&str, &str)]) -> &Series {
        let mut want: Vec<(String, String)> = [("service", "billing"), ("operation", "charge")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .unwrap_or_else(|| panic!("no series {name} {want:?} in {:#?}", self.0))
    }

    fn counter(&self, name: &str, extra: &[(&str, &str)]) -> u64 {
        match self.find(name, extra).value {
            DebugValue::Counter(v) => v,
            ref other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, extra: &[(&str, &str)]) -> Vec<f64> {
        match &self.find(name, extra).value {
            DebugValue::Histogram(v) => v.iter().map(|x| x.into_inner()).collect(),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn calls(&self, outcome: &str) -> u64 {
        self.counter(names::CALLS_TOTAL, &[("outcome", outcome)])
    }
}

/// Runs `calls` calls through `layer` over `script`, with a fresh debugging recorder.
fn run<K, C, B, A>(
    layer: RetryLayer<K, C, B, CloneRequest, NoHook, A>,
    script: Vec<Step>,
    calls: u32,
) -> Captured
where
    RetryLayer<K, C, B, CloneRequest, NoHook, A>: Layer<Scripted>,
    <RetryLayer<K, C, B, CloneRequest, NoHook, A> as Layer<Scripted>>::Service:
        tower::Service<u32, Response = String, Error = std::io::Error> + Clone,
{
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let inner = Scripted::new(script);
    metrics::with_local_recorder(&recorder, || {
        paused_runtime().block_on(async {
            let svc = layer.layer(inner.clone());
            for i in 0..calls {
                let _ = svc.clone().oneshot(i).await;
            }
        })
    });
    Captured::take(&snapshotter)
}

#[test]
fn fail_fail_succeed_counts_one_success_after_retry() {
    let m = run(billing_layer().seed(7), vec![fail(1), fail(2), Step::Ok], 1);
    assert_eq!(m.calls("success_after_retry"), 1);
    assert_eq!(m.calls("success_without_retry"), 0);
    assert_eq!(m.calls("failed_after_retry"), 0);
    assert_eq!(m.calls("failed_without_retry"), 0);
    assert_eq!(m.counter(names::ATTEMPTS_TOTAL, &[]), 3);
    assert_eq!(m.counter(names::RETRIES_TOTAL, &[("reason", "error")]), 2);
    assert_eq!(m.counter(names::RETRIES_TOTAL, &[("reason", "timeout")]), 0);
    assert_eq!(m.counter(names::BUDGET_DENIED_TOTAL, &[]), 0);
    assert_eq!(m.histogram(names::ATTEMPTS_PER_CALL, &[]), vec![3.0]);
    let delays = m.histogram(names::BACKOFF_DELAY_SECONDS, &[("source", "backoff")]);
    assert_eq!(delays.len(), 2);
    // Default config: 100 ms then 200 ms, each within ±10 % jitter.
    assert!((0.09..=0.11).contains(&delays[0]), "{delays:?}");
    assert!((0.18..=0.22).contains(&delays[1]), "{delays:?}");
    assert!(
        m.histogram(names::BACKOFF_DELAY_SECONDS, &[("source", "pushback")])
            .is_empty()
    );
}

#[test]
fn exhausted_counts_one_failure_after_retry() {
    let m = run(billing_layer().seed(7), vec![fail(1), fail(2), fail(3)], 1);
    assert_eq!(m.calls("failed_after_retry"), 1);
    assert_eq!(m.calls("success_after_retry"), 0);
    assert_eq!(m.counter(names::ATTEMPTS_TOTAL, &[]), 3);
    assert_eq!(m.counter(names::RETRIES_TOTAL, &[("reason", "error")]), 2);
    assert_eq!(m.histogram(names::ATTEMPTS_PER_CALL, &[]), vec![3.0]);
}

#[test]
fn budget_denied_counts_a_denial_and_no_retry() {
    let m = run(
        billing_layer().seed(7).with_budget(DenyAll),
        vec![fail(1)],
        1,
    );
    assert_eq!(m.calls("failed_without_retry"), 1);
    assert_eq!(m.counter(names::BUDGET_DENIED_TOTAL, &[]), 1);
    assert_eq!(m.counter(names::ATTEMPTS_TOTAL, &[]), 1);
    assert_eq!(m.counter(names::RETRIES_TOTAL, &[("reason", "error")]), 0);
    assert_eq!(m.histogram(names::ATTEMPTS_PER_CALL, &[]), vec![1.0]);
    assert!(
        m.histogram(names::BACKOFF_DELAY_SECONDS, &[("source", "backoff")])
            .is_empty()
    );
}

#[test]
fn non_retryable_counts_one_failure_without_retry() {
    let m = run(billing_layer().seed(7), vec![Step::Fatal], 1);
    assert_eq!(m.calls("failed_without_retry"), 1);
    assert_eq!(m.counter(names::ATTEMPTS_TOTAL, &[]), 1);
    assert_eq!(m.counter(names::BUDGET_DENIED_TOTAL, &[]), 0);
    assert_eq!(m.counter(names::RETRIES_TOTAL, &[("reason", "error")]), 0);
}

#[test]
fn mixed_sequence_counts_every_outcome_exactly() {
    // Calls: ok | fail,ok | fail,fail,fail | fatal | throttled(2 s),ok
    let script = vec![
        Step::Ok,
        fail(1),
        Step::Ok,
        fail(2),
        fail(3),
        fail(4),
        Step::Fatal,
        Step::Throttled(2000),
        Step::Ok,
    ];
    let m = run(billing_layer().seed(7), script, 5);
    assert_eq!(m.calls("success_without_retry"), 1);
    assert_eq!(m.calls("success_after_retry"), 2);
    assert_eq!(m.calls("failed_after_retry"), 1);
    assert_eq!(m.calls("failed_without_retry"), 1);
    assert_eq!(m.counter(names::ATTEMPTS_TOTAL, &[]), 9);
    assert_eq!(m.counter(names::RETRIES_TOTAL, &[("reason", "error")]), 3);
    assert_eq!(
        m.counter(names::RETRIES_TOTAL, &[("reason", "throttled")]),
        1
    );
    let mut per_call = m.histogram(names::ATTEMPTS_PER_CALL, &[]);
    per_call.sort_by(f64::total_cmp);
    assert_eq!(per_call, vec![1.0, 1.0, 2.0, 2.0, 3.0]);
    assert_eq!(
        m.histogram(names::BACKOFF_DELAY_SECONDS, &[("source", "pushback")]),
        vec![2.0]
    );
    assert_eq!(
        m.histogram(names::BACKOFF_DELAY_SECONDS, &[("source", "backoff")])
            .len(),
        3
    );
}

#[test]
fn every_metric_is_described_with_its_unit() {
    let m = run(billing_layer().seed(7), vec![fail(1), Step::Ok], 1);
    for (name, unit) in [
        (names::CALLS_TOTAL, Unit::Count),
        (names::ATTEMPTS_TOTAL, Unit::Count),
        (names::RETRIES_TOTAL, Unit::Count),
        (names::BUDGET_DENIED_TOTAL, Unit::Count),
        (names::BACKOFF_DELAY_SECONDS, Unit::Seconds),
        (names::ATTEMPTS_PER_CALL, Unit::Count),
    ] {
        let series: Vec<_> = m.0.iter().filter(|s| s.name == name).collect();
        assert!(!series.is_empty(), "{name} not registered");
        for s in series {
            assert_eq!(s.unit, Some(unit), "{name}");
            assert!(
                s.description.as_deref().is_some_and(|d| !d.is_empty()),
                "{name}"
            );
        }
    }
}

#[test]
fn ten_thousand_distinct_errors_do_not_add_series() {
    let config = RetryConfig::builder().max_attempts(2).build().unwrap();
    let layer = || {
        RetryLayer::new(config.clone())
            .with_classifier(classifier())
            .with_budget(Unlimited::new())
            // Every call fails: admission control would refuse most of them.
            .without_admission()
            .service_name("billing")
            .operation_name("charge")
    };
    let series = |calls: u32| {
        let script = (0..calls * 2).map(fail).collect();
        let m = run(layer(), script, calls);
        assert_eq!(m.calls("failed_after_retry"), u64::from(calls));
        let mut keys: Vec<_> =
            m.0.iter()
                .map(|s| (s.name.clone(), s.labels.clone()))
                .collect();
        keys.sort();
        for (_, labels) in &keys {
            for (_, value) in labels {
                assert!(
                    !value.contains("connection reset"),
                    "error text leaked into a label"
                );
            }
        }
        keys
    };
    let few = series(10);
    let many = series(10_000);
    assert_eq!(
        few, many,
        "the set of series grew with distinct error messages"
    );
    // 4 outcomes + attempts + 8 reasons + 10 stop reasons of failed calls + budget denials
    // + 3 hedge counters + 2 delay sources + attempts/call + calls waiting to retry
    // + 3 admission rejection reasons + the admission state and limit gauges.
    assert_eq!(many.len(), 36);
}

#[test]
fn renaming_after_with_telemetry_relabels_the_metrics() {
    let layer = RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier())
        .with_telemetry(Telemetry::new("old", "name"))
        .service_name("billing")
        .operation_name("charge");
    let m = run(layer, vec![], 1);
    assert_eq!(m.calls("success_without_retry"), 1);
    assert!(
        m.0.iter()
            .all(|s| !s.labels.iter().any(|(_, v)| v == "old" || v == "name"))
    );
}

#[test]
fn a_recorder_installed_after_the_layer_is_built_still_receives_metrics() {
    // `run` builds the service from this layer inside the recorder scope; the layer itself
    // (and its telemetry) is built here, before any recorder exists.
    let layer = billing_layer().seed(7);
    let m = run(layer, vec![fail(1), Step::Ok], 1);
    assert_eq!(m.calls("success_after_retry"), 1);
}

#[test]
fn disabled_telemetry_records_nothing() {
    let m = run(
        billing_layer()
            .seed(7)
            .with_telemetry(Telemetry::disabled()),
        vec![fail(1), Step::Ok],
        1,
    );
    assert!(m.0.is_empty(), "{:?}", m.0);
}

#[test]
fn metrics_can_be_switched_off_alone() {
    let layer = billing_layer()
        .seed(7)
        .with_telemetry(Telemetry::new("billing", "charge").with_metrics(false));
    let m = run(layer, vec![fail(1), Step::Ok], 1);
    assert!(m.0.is_empty(), "{:?}", m.0);
}

/// A recorder whose every handle panics when used.
struct PanickingRecorder;

struct Boom;

impl CounterFn for Boom {
    fn increment(&self, _value: u64) {
        panic!("recorder is broken");
    }
    fn absolute(&self, _value: u64) {
        panic!("recorder is broken");
    }
}

impl HistogramFn for Boom {
    fn record(&self, _value: f64) {
        panic!("recorder is broken");
    }
}

impl Recorder for PanickingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Boom))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Boom))
    }
}

/// A recorder that panics while registering.
struct PanicsOnRegister;

impl Recorder for PanicsOnRegister {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {
        panic!("recorder is broken");
    }
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        panic!("recorder is broken");
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        panic!("recorder is broken");
    }
}

fn calls_succeed_with(recorder: &dyn Recorder) {
    let inner = Scripted::new(three_calls_script());
    let results = metrics::with_local_recorder(recorder, || {
        paused_runtime().block_on(three_calls(billing_layer().seed(7).layer(inner.clone())))
    });
    assert_eq!(results, three_calls_expected());
    assert_eq!(inner.calls(), 6);
}

#[test]
fn a_panicking_recorder_never_fails_a_request() {
    calls_succeed_with(&PanickingRecorder);
}

#[test]
fn a_recorder_that_panics_on_registration_never_fails_a_request() {
    calls_succeed_with(&PanicsOnRegister);
}

#[test]
fn a_call_dropped_mid_backoff_is_counted_as_failed() {
    // Timeout(Retry(S)): the overall deadline (150 ms) fires while the layer backs off
    // before its second retry; the dropped call must still be counted once.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let inner = Scripted::new(vec![fail(1), fail(2), Step::Ok]);
    metrics::with_local_recorder(&recorder, || {
        paused_runtime().block_on(async {
            let svc = tower::ServiceBuilder::new()
                .timeout(std::time::Duration::from_millis(150))
                .layer(billing_layer().seed(7))
                .service(inner.clone());
            let err = svc.oneshot(1).await.unwrap_err();
            assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
        })
    });
    let m = Captured::take(&snapshotter);
    assert_eq!(inner.calls(), 2);
    assert_eq!(m.calls("failed_after_retry"), 1);
    assert_eq!(m.calls("success_after_retry"), 0);
    assert_eq!(
        m.counter(names::FAILED_CALLS_TOTAL, &[("stop_reason", "cancelled")]),
        1
    );
    assert_eq!(m.histogram(names::ATTEMPTS_PER_CALL, &[]), vec![2.0]);
}

#[test]
fn a_readiness_error_before_a_retry_is_counted_as_failed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let inner = telemetry_support::NotReadyAfter {
        inner: Scripted::new(vec![fail(1)]),
        calls: 1,
    };
    let result = metrics::with_local_recorder(&recorder, || {
        paused_runtime().block_on(async {
            use tower::Service;
            billing_layer().seed(7).layer(inner.clone()).call(1).await
        })
    });
    assert_eq!(result.unwrap_err().to_string(), "connection pool closed");
    let m = Captured::take(&snapshotter);
    assert_eq!(inner.inner.calls(), 1);
    // A retry was granted, but the call ended before it was sent: one attempt, failed.
    assert_eq!(m.calls("failed_without_retry"), 1);
    assert_eq!(
        m.counter(names::FAILED_CALLS_TOTAL, &[("stop_reason", "not_ready")]),
        1
    );
    assert_eq!(m.counter(names::ATTEMPTS_TOTAL, &[]), 1);
    assert_eq!(m.histogram(names::ATTEMPTS_PER_CALL, &[]), vec![1.0]);
}
