//! OpenTelemetry: the instruments (through the SDK's in-memory exporter) and the spans
//! (`tracing` spans exported by `tracing-opentelemetry` to the in-memory span exporter).
#![cfg(feature = "opentelemetry")]

#[path = "../../tests/support/telemetry.rs"]
mod telemetry_support;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use telemetry_support::{
    DenyAll, Scripted, Step, classifier, fail, paused_runtime, three_calls, three_calls_expected,
    three_calls_script,
};
use tower::{Layer, Service, ServiceExt};
use tower_retrier::budget::Unlimited;
use tower_retrier::telemetry::{RetryEvent, Telemetry, instrumentation_scope, names};
use tower_retrier::{RetryConfig, RetryLayer};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

// ---------------------------------------------------------------- metrics

fn meter_provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

/// Every data point of metric `name` as (attributes, value or (count, sum)).
#[derive(Debug, PartialEq)]
enum Point {
    Sum(u64),
    Hist { count: u64, sum: f64 },
}

fn points(metrics: &[ResourceMetrics], name: &str) -> Vec<(Vec<(String, String)>, Point)> {
    fn attrs<'a>(it: impl Iterator<Item = &'a KeyValue>) -> Vec<(String, String)> {
        let mut v: Vec<_> = it
            .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
            .collect();
        v.sort();
        v
    }
    let mut out = Vec::new();
    // Cumulative temporality: the last export holds the totals.
    let Some(last) = metrics.last() else {
        return out;
    };
    for scope in last.scope_metrics() {
        for metric in scope.metrics().filter(|m| m.name() == name) {
            match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    for p in s.data_points() {
                        out.push((attrs(p.attributes()), Point::Sum(p.value())));
                    }
                }
                AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        out.push((attrs(p.attributes()), Point::Sum(p.value())));
                    }
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.push((
                            attrs(p.attributes()),
                            Point::Hist {
                                count: p.count(),
                                sum: p.sum() as f64,
                            },
                        ));
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        out.push((
                            attrs(p.attributes()),
                            Point::Hist {
                                count: p.count(),
                                sum: p.sum(),
                            },
                        ));
                    }
                }
                other => panic!("unexpected data for {name}: {other:?}"),
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn labels(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = [
        (names::OTEL_ATTR_SERVICE, "billing"),
        (names::OTEL_ATTR_OPERATION, "charge"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.sort();
    v
}

#[test]
fn instruments_count_a_scripted_sequence_exactly() {
    let (provider, exporter) = meter_provider();
    let meter = provider.meter_with_scope(instrumentation_scope());
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = delays.clone();
    let layer = RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier())
        .with_budget(Unlimited::new())
        .with_telemetry(Telemetry::new("billing", "charge").with_meter(meter))
        .on_retry(move |e: &RetryEvent<'_, String, std::io::Error>| {
            seen.lock().unwrap().push(e.delay())
        })
        .seed(3);
    // Calls: ok | fail,fail,ok | fatal | throttled(1.5 s),ok
    let inner = Scripted::new(vec![
        Step::Ok,
        fail(1),
        fail(2),
        Step::Ok,
        Step::Fatal,
        Step::Throttled(1500),
        Step::Ok,
    ]);
    paused_runtime().block_on(async {
        let svc = layer.layer(inner);
        for i in 0..4 {
            let _ = svc.clone().oneshot(i).await;
        }
    });
    provider.force_flush().unwrap();
    let m = exporter.get_finished_metrics().unwrap();

    assert_eq!(
        points(&m, names::OTEL_CALLS),
        vec![
            (
                labels(&[(names::OTEL_ATTR_OUTCOME, "failed_without_retry")]),
                Point::Sum(1)
            ),
            (
                labels(&[(names::OTEL_ATTR_OUTCOME, "success_after_retry")]),
                Point::Sum(2)
            ),
            (
                labels(&[(names::OTEL_ATTR_OUTCOME, "success_without_retry")]),
                Point::Sum(1)
            ),
        ]
    );
    assert_eq!(
        points(&m, names::OTEL_ATTEMPTS),
        vec![(labels(&[]), Point::Sum(7))]
    );
    assert_eq!(
        points(&m, names::OTEL_RETRIES),
        vec![
            (labels(&[(names::OTEL_ATTR_REASON, "error")]), Point::Sum(2)),
            (
                labels(&[(names::OTEL_ATTR_REASON, "throttled")]),
                Point::Sum(1)
            ),
        ]
    );
    assert_eq!(points(&m, names::OTEL_BUDGET_DENIED), vec![]);
    // Two calls were retried: 2 + 1 retries.
    assert_eq!(
        points(&m, names::OTEL_CALL_RETRIES),
        vec![(labels(&[]), Point::Hist { count: 2, sum: 3.0 })]
    );
    let total: f64 = delays
        .lock()
        .unwrap()
        .iter()
        .map(Duration::as_secs_f64)
        .sum();
    let [(attrs, Point::Hist { count, sum })] = &points(&m, names::OTEL_CALL_RETRY_DELAY)[..]
    else {
        panic!("no retry delay histogram");
    };
    assert_eq!(attrs, &labels(&[]));
    assert_eq!(*count, 2);
    assert!((sum - total).abs() < 1e-9, "{sum} vs hook's {total}");
    assert!(*sum >= 1.5, "the 1.5 s pushback is part of the delay");

    // Units and the instrumentation scope.
    let scope = m.last().unwrap().scope_metrics().next().unwrap();
    assert_eq!(scope.scope().name(), "tower-retrier");
    assert_eq!(
        scope.scope().version(),
        tower_retrier::telemetry::instrumentation_scope().version()
    );
    assert!(scope.scope().version().is_some_and(|v| !v.is_empty()));
    let unit = |n: &str| {
        scope
            .metrics()
            .find(|x| x.name() == n)
            .unwrap()
            .unit()
            .to_owned()
    };
    assert_eq!(unit(names::OTEL_CALL_RETRY_DELAY), "s");
    assert_eq!(unit(names::OTEL_CALL_RETRIES), "{retry}");
    assert_eq!(unit(names::OTEL_CALLS), "{call}");
}

#[test]
fn budget_denials_are_counted() {
    let (provider, exporter) = meter_provider();
    let layer = RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier())
        .with_budget(DenyAll)
        .with_telemetry(
            Telemetry::new("billing", "charge")
                .with_meter(provider.meter_with_scope(instrumentation_scope())),
        );
    paused_runtime().block_on(async {
        let _ = layer.layer(Scripted::new(vec![fail(1)])).oneshot(1).await;
    });
    provider.force_flush().unwrap();
    let m = exporter.get_finished_metrics().unwrap();
    assert_eq!(
        points(&m, names::OTEL_BUDGET_DENIED),
        vec![(labels(&[]), Point::Sum(1))]
    );
    assert_eq!(
        points(&m, names::OTEL_CALLS),
        vec![(
            labels(&[(names::OTEL_ATTR_OUTCOME, "failed_without_retry")]),
            Point::Sum(1)
        )]
    );
    assert_eq!(points(&m, names::OTEL_CALL_RETRIES), vec![]);
}

#[test]
fn admission_refusals_and_state_are_recorded() {
    let (provider, exporter) = meter_provider();
    let layer = RetryLayer::new(RetryConfig::builder().max_attempts(1).build().unwrap())
        .with_classifier(classifier())
        .with_telemetry(
            Telemetry::new("billing", "charge")
                .with_meter(provider.meter_with_scope(instrumentation_scope())),
        );
    paused_runtime().block_on(async {
        // 20 failures open the breaker; the next 5 calls are refused without being sent.
        let inner = Scripted::new((0..20).map(fail));
        for i in 0..25 {
            let _ = layer.layer(inner.clone()).oneshot(i).await;
        }
        assert_eq!(inner.calls(), 20);
    });
    provider.force_flush().unwrap();
    let m = exporter.get_finished_metrics().unwrap();
    assert_eq!(
        points(&m, names::OTEL_ADMISSION_REJECTED),
        vec![(
            labels(&[(names::OTEL_ATTR_REJECT_REASON, "open")]),
            Point::Sum(5)
        )]
    );
    assert_eq!(
        points(&m, names::OTEL_ADMISSION_STATE),
        vec![(labels(&[]), Point::Sum(2))]
    );
}

#[test]
fn hedges_sent_and_won_are_counted() {
    let (provider, exporter) = meter_provider();
    let hedging = tower_retrier::hedge::HedgeConfig::builder()
        .delay(Duration::from_millis(20))
        .build()
        .unwrap();
    let layer = RetryLayer::new(RetryConfig::default())
        .with_telemetry(
            Telemetry::new("billing", "charge")
                .with_meter(provider.meter_with_scope(instrumentation_scope())),
        )
        .hedge(hedging);
    paused_runtime().block_on(async {
        // The first attempt hangs; the hedge sent at 20 ms answers.
        let n = Arc::new(Mutex::new(0));
        let inner = tower::service_fn(move |x: u32| {
            let first = std::mem::replace(&mut *n.lock().unwrap(), 1) == 0;
            async move {
                tokio::time::sleep(Duration::from_millis(if first { 1000 } else { 10 })).await;
                Ok::<_, std::io::Error>(x)
            }
        });
        assert_eq!(layer.layer(inner).oneshot(1).await.unwrap(), 1);
    });
    provider.force_flush().unwrap();
    let m = exporter.get_finished_metrics().unwrap();
    assert_eq!(
        points(&m, names::OTEL_HEDGES),
        vec![(labels(&[]), Point::Sum(1))]
    );
    assert_eq!(
        points(&m, names::OTEL_HEDGES_WON),
        vec![(labels(&[]), Point::Sum(1))]
    );
    assert_eq!(points(&m, names::OTEL_HEDGES_BUDGET_DENIED), vec![]);
    assert_eq!(
        points(&m, names::OTEL_ATTEMPTS),
        vec![(labels(&[]), Point::Sum(2))]
    );
}

#[test]
fn ten_thousand_distinct_errors_do_not_add_data_points() {
    let (provider, exporter) = meter_provider();
    let config = RetryConfig::builder().max_attempts(2).build().unwrap();
    let layer = RetryLayer::new(config)
        .with_classifier(classifier())
        .with_budget(Unlimited::new())
        // Every call fails: admission control would refuse most of them.
        .without_admission()
        .with_telemetry(
            Telemetry::new("billing", "charge")
                .with_meter(provider.meter_with_scope(instrumentation_scope())),
        );
    let inner = Scripted::default();
    let count_points = || {
        provider.force_flush().unwrap();
        let m = exporter.get_finished_metrics().unwrap();
        [
            names::OTEL_CALLS,
            names::OTEL_ATTEMPTS,
            names::OTEL_RETRIES,
            names::OTEL_CALL_RETRIES,
            names::OTEL_CALL_RETRY_DELAY,
        ]
        .map(|n| points(&m, n).len())
    };
    let rt = paused_runtime();
    let run = |from: u32, to: u32| {
        inner.push((from * 2..to * 2).map(fail));
        rt.block_on(async {
            let mut svc = layer.layer(inner.clone());
            for i in from..to {
                let _ = svc.ready().await.unwrap().call(i).await;
            }
        });
    };
    run(0, 10);
    let few = count_points();
    run(10, 10_000);
    let many = count_points();
    assert_eq!(few, many);
    assert_eq!(many, [1, 1, 1, 1, 1]);
}

#[test]
fn the_global_provider_installed_after_the_layer_is_built_is_used() {
    // The only test of this binary touching the global provider.
    let layer = RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier())
        .with_telemetry(Telemetry::new("billing", "charge"));
    let (provider, exporter) = meter_provider();
    opentelemetry::global::set_meter_provider(provider.clone());
    paused_runtime().block_on(async {
        let _ = layer.layer(Scripted::new(vec![fail(1)])).oneshot(1).await;
    });
    provider.force_flush().unwrap();
    let m = exporter.get_finished_metrics().unwrap();
    assert_eq!(
        points(&m, names::OTEL_CALLS),
        vec![(
            labels(&[(names::OTEL_ATTR_OUTCOME, "success_after_retry")]),
            Point::Sum(1)
        )]
    );
    let scope = m
        .last()
        .unwrap()
        .scope_metrics()
        .next()
        .unwrap()
        .scope()
        .clone();
    assert_eq!(scope.name(), names::SCOPE_NAME);
}

// ---------------------------------------------------------------- failing exporters

#[derive(Debug)]
struct FailingSpans;

impl SpanExporter for FailingSpans {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure(
            "collector unreachable".into(),
        ))
    }
}

#[derive(Debug)]
struct FailingMetrics;

impl PushMetricExporter for FailingMetrics {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure(
            "collector unreachable".into(),
        ))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure(
            "collector unreachable".into(),
        ))
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[test]
fn failing_exporters_never_fail_a_request() {
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(FailingSpans)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(FailingMetrics).build())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("test")));
    let layer = RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier())
        .with_telemetry(
            Telemetry::new("billing", "charge")
                .with_meter(meter_provider.meter_with_scope(instrumentation_scope())),
        );
    let inner = Scripted::new(three_calls_script());
    let results = tracing::subscriber::with_default(subscriber, || {
        paused_runtime().block_on(three_calls(layer.layer(inner.clone())))
    });
    assert_eq!(results, three_calls_expected());
    // The exporters really were in the path, and failed.
    assert!(meter_provider.force_flush().is_err());
}

// ---------------------------------------------------------------- traces

fn traced<T>(f: impl FnOnce(&opentelemetry_sdk::trace::Tracer) -> T) -> (T, Vec<SpanData>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("test");
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    let out = tracing::subscriber::with_default(subscriber, || f(&tracer));
    provider.force_flush().unwrap();
    (out, exporter.get_finished_spans().unwrap())
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn by_name<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    let mut v: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    v.sort_by_key(|s| attr(s, "retry.attempt"));
    v
}

fn layer() -> RetryLayer<
    tower_retrier::backoff::Exponential,
    impl tower_retrier::classify::Classify<u32, String, std::io::Error> + Clone,
    Unlimited,
> {
    RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier())
        .with_budget(Unlimited::new())
        .with_telemetry(Telemetry::new("billing", "charge").with_opentelemetry(false))
}

#[test]
fn a_call_is_one_span_with_one_child_per_attempt_under_the_callers_span() {
    let (result, spans) = traced(|_| {
        paused_runtime().block_on(async {
            let svc = layer().layer(Scripted::new(vec![fail(1), Step::Throttled(250), Step::Ok]));
            svc.oneshot(7)
                .instrument(tracing::info_span!("checkout"))
                .await
        })
    });
    assert_eq!(result.unwrap(), "ok");

    let caller = by_name(&spans, "checkout");
    let call = by_name(&spans, names::SPAN_CALL);
    let attempts = by_name(&spans, names::SPAN_ATTEMPT);
    assert_eq!(
        (caller.len(), call.len(), attempts.len()),
        (1, 1, 3),
        "{spans:#?}"
    );
    let (caller, call) = (caller[0], call[0]);
    let trace_id = caller.span_context.trace_id();
    assert_eq!(call.parent_span_id, caller.span_context.span_id());
    assert_eq!(call.span_context.trace_id(), trace_id);
    for a in &attempts {
        assert_eq!(a.parent_span_id, call.span_context.span_id());
        assert_eq!(a.span_context.trace_id(), trace_id);
    }

    assert_eq!(attr(call, "retry.service").as_deref(), Some("billing"));
    assert_eq!(attr(call, "retry.operation").as_deref(), Some("charge"));
    assert_eq!(attr(call, "retry.attempts").as_deref(), Some("3"));
    assert_eq!(
        attr(call, "retry.outcome").as_deref(),
        Some("success_after_retry")
    );
    assert_eq!(attr(call, "retry.stop_reason").as_deref(), Some("success"));
    assert_eq!(call.status, Status::Unset);

    let [first, second, third] = attempts[..] else {
        unreachable!()
    };
    // `http.request.resend_count` only on resends.
    assert_eq!(attr(first, "http.request.resend_count"), None);
    assert_eq!(
        attr(second, "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr(third, "http.request.resend_count").as_deref(),
        Some("2")
    );
    // A retried error, chosen by the backoff formula.
    assert_eq!(attr(first, "error.type").as_deref(), Some("error"));
    assert_eq!(
        attr(first, "retry.attempt_outcome").as_deref(),
        Some("retryable_failure")
    );
    assert_eq!(attr(first, "retry.reason").as_deref(), Some("error"));
    assert_eq!(
        attr(first, "retry.delay_source").as_deref(),
        Some("backoff")
    );
    assert!(matches!(first.status, Status::Error { .. }));
    // A throttled response: the server's pushback decided the delay.
    assert_eq!(attr(second, "error.type").as_deref(), Some("throttled"));
    assert_eq!(
        attr(second, "retry.delay_source").as_deref(),
        Some("pushback")
    );
    assert_eq!(attr(second, "retry.delay_ms").as_deref(), Some("250"));
    // The success.
    assert_eq!(attr(third, "error.type"), None);
    assert_eq!(
        attr(third, "retry.attempt_outcome").as_deref(),
        Some("success")
    );
    assert_eq!(attr(third, "retry.delay_ms"), None);
    assert_eq!(third.status, Status::Unset);
    // Attempts do not overlap: the backoff is between them, not inside them.
    assert!(first.end_time <= second.start_time && second.end_time <= third.start_time);
}

#[test]
fn the_call_span_is_a_child_of_an_opentelemetry_context_too() {
    let (result, spans) = traced(|tracer| {
        let parent = tracer.start("otel-caller");
        let parent_id = parent.span_context().span_id();
        let cx = Context::current_with_span(parent);
        let result = {
            let _guard = cx.clone().attach();
            paused_runtime().block_on(async {
                layer()
                    .layer(Scripted::new(vec![fail(1), Step::Ok]))
                    .oneshot(1)
                    .await
            })
        };
        cx.span().end();
        (result, parent_id)
    });
    let (result, parent_id) = result;
    assert_eq!(result.unwrap(), "ok");
    let call = by_name(&spans, names::SPAN_CALL);
    assert_eq!(call.len(), 1);
    assert_eq!(call[0].parent_span_id, parent_id);
    assert_eq!(by_name(&spans, names::SPAN_ATTEMPT).len(), 2);
}

#[test]
fn a_failed_call_marks_its_span_as_an_error() {
    let (result, spans) = traced(|_| {
        paused_runtime().block_on(async {
            layer()
                .layer(Scripted::new(vec![fail(1), fail(2), fail(3)]))
                .oneshot(1)
                .await
        })
    });
    assert!(result.is_err());
    let call = by_name(&spans, names::SPAN_CALL)[0];
    assert_eq!(
        attr(call, "retry.outcome").as_deref(),
        Some("failed_after_retry")
    );
    assert_eq!(
        attr(call, "retry.stop_reason").as_deref(),
        Some("attempts_exhausted")
    );
    assert!(matches!(call.status, Status::Error { .. }));
    let attempts = by_name(&spans, names::SPAN_ATTEMPT);
    assert_eq!(attempts.len(), 3);
    // The last attempt was retryable but no attempt was left: no delay recorded.
    assert_eq!(attr(attempts[2], "retry.delay_ms"), None);
    // No span carries the error's message.
    for s in &spans {
        for kv in &s.attributes {
            assert!(!kv.value.as_str().contains("connection reset"), "{kv:?}");
        }
    }
}

#[test]
fn disabled_telemetry_creates_no_spans() {
    let (result, spans) = traced(|_| {
        paused_runtime().block_on(async {
            RetryLayer::new(RetryConfig::default())
                .with_telemetry(Telemetry::disabled())
                .layer(Scripted::new(vec![fail(1), Step::Ok]))
                .oneshot(1)
                .await
        })
    });
    assert_eq!(result.unwrap(), "ok");
    assert!(spans.is_empty(), "{spans:#?}");
}

/// A call dropped by an outer timeout while it backs off: its span closes with stop reason
/// `cancelled` and an error status.
#[test]
fn a_cancelled_call_ends_its_span_with_stop_reason_cancelled() {
    let (result, spans) = traced(|_| {
        paused_runtime().block_on(async {
            let svc = tower::ServiceBuilder::new()
                .timeout(Duration::from_millis(150))
                .layer(layer())
                .service(Scripted::new(vec![fail(1), fail(2), Step::Ok]));
            svc.oneshot(1).await
        })
    });
    assert!(result.unwrap_err().is::<tower::timeout::error::Elapsed>());
    let call = by_name(&spans, names::SPAN_CALL);
    assert_eq!(call.len(), 1, "{spans:#?}");
    assert_eq!(
        attr(call[0], "retry.stop_reason").as_deref(),
        Some("cancelled")
    );
    assert_eq!(attr(call[0], "retry.attempts").as_deref(), Some("2"));
    assert!(matches!(call[0].status, Status::Error { .. }));
    assert_eq!(by_name(&spans, names::SPAN_ATTEMPT).len(), 2);
}

/// The inner service fails to become ready before a retry: the call ends with the readiness
/// error and its span says `not_ready`.
#[test]
fn a_readiness_error_ends_the_span_with_stop_reason_not_ready() {
    let (result, spans) = traced(|_| {
        paused_runtime().block_on(async {
            let inner = telemetry_support::NotReadyAfter {
                inner: Scripted::new(vec![fail(1)]),
                calls: 1,
            };
            layer().layer(inner).call(1).await
        })
    });
    assert_eq!(result.unwrap_err().to_string(), "connection pool closed");
    let call = by_name(&spans, names::SPAN_CALL);
    assert_eq!(call.len(), 1, "{spans:#?}");
    assert_eq!(
        attr(call[0], "retry.stop_reason").as_deref(),
        Some("not_ready")
    );
    assert_eq!(attr(call[0], "retry.attempts").as_deref(), Some("1"));
    assert!(matches!(call[0].status, Status::Error { .. }));
}
