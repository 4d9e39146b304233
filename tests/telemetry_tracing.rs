//! The `tracing` back-end: the events an operator sees (levels and fields), and spans that
//! are entered only while an attempt is polled, never across an `.await`.

#[path = "support/telemetry.rs"]
mod telemetry_support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use telemetry_support::{DenyAll, Scripted, Step, billing_layer, fail, paused_runtime};
use tower::{Layer, Service};
use tower_retrier::replay::replay_fn;
use tower_retrier::telemetry::{Telemetry, names};
use tower_retrier::{RetryConfig, RetryLayer};
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One captured event: level, message, fields, and the name of its parent span.
#[derive(Clone, Debug)]
struct Event {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
    parent: Option<&'static str>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Event>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        let parent = ctx.event_span(event).map(|s| s.name());
        self.0.lock().unwrap().push(Event {
            level: *event.metadata().level(),
            message,
            fields: fields.0,
            parent,
        });
    }
}

fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<Event>) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    let events = capture.0.lock().unwrap().clone();
    (out, events)
}

fn ours(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| {
            e.fields.contains_key("retry.attempt") || e.fields.contains_key("retry.service")
        })
        .collect()
}

#[test]
fn retries_are_debug_events_and_exhaustion_is_a_warning() {
    let (result, events) = capture(|| {
        paused_runtime().block_on(async {
            billing_layer()
                .layer(Scripted::new(vec![fail(1), Step::Throttled(300), fail(3)]))
                .oneshot(1)
                .await
        })
    });
    assert!(result.is_err());
    let events = ours(&events);
    assert_eq!(events.len(), 3, "{events:#?}");
    let (r1, r2, last) = (events[0], events[1], events[2]);
    for (e, attempt, reason, source) in [
        (r1, "1", "error", "backoff"),
        (r2, "2", "throttled", "pushback"),
    ] {
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(
            e.parent,
            Some(names::SPAN_ATTEMPT),
            "a retry belongs to its attempt"
        );
        assert_eq!(e.fields["retry.attempt"], attempt);
        assert_eq!(e.fields["retry.reason"], reason);
        assert_eq!(e.fields["retry.delay_source"], source);
    }
    assert_eq!(r2.fields["retry.delay_ms"], "300.0");
    assert_eq!(last.level, Level::WARN);
    assert_eq!(last.parent, Some(names::SPAN_CALL));
    assert_eq!(last.message, "request failed after retries");
    assert_eq!(last.fields["retry.attempts"], "3");
    assert_eq!(last.fields["retry.stop_reason"], "attempts_exhausted");
    assert_eq!(last.fields["retry.service"], "billing");
    // Nothing carries the error's text.
    for e in &events {
        assert!(
            e.fields.values().all(|v| !v.contains("connection reset")),
            "{e:?}"
        );
    }
}

#[test]
fn a_budget_denial_is_a_debug_event_and_not_a_warning() {
    let (result, events) = capture(|| {
        paused_runtime().block_on(async {
            billing_layer()
                .with_budget(DenyAll)
                .layer(Scripted::new(vec![fail(1)]))
                .oneshot(1)
                .await
        })
    });
    assert!(result.is_err());
    let events = ours(&events);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, Level::DEBUG);
    assert!(events[0].message.contains("retry budget exhausted"));
    assert_eq!(events[0].fields["retry.operation"], "charge");
}

#[test]
fn a_request_that_cannot_be_replayed_is_a_debug_event() {
    let (result, events) = capture(|| {
        paused_runtime().block_on(async {
            billing_layer()
                .with_replay(replay_fn(|_: &u32| None))
                .layer(Scripted::new(vec![fail(1)]))
                .oneshot(1)
                .await
        })
    });
    assert!(result.is_err());
    let events = ours(&events);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, Level::DEBUG);
    assert!(events[0].message.contains("cannot be replayed"));
}

#[test]
fn a_first_attempt_success_emits_no_event() {
    let (result, events) = capture(|| {
        paused_runtime()
            .block_on(async { billing_layer().layer(Scripted::default()).oneshot(1).await })
    });
    assert_eq!(result.unwrap(), "ok");
    assert!(ours(&events).is_empty(), "{events:#?}");
}

#[test]
fn disabled_or_tracing_off_emits_nothing() {
    for telemetry in [
        Telemetry::disabled(),
        Telemetry::new("a", "b").with_tracing(false),
    ] {
        let (result, events) = capture(|| {
            paused_runtime().block_on(async {
                billing_layer()
                    .with_telemetry(telemetry)
                    .layer(Scripted::new(vec![fail(1), fail(2), fail(3)]))
                    .oneshot(1)
                    .await
            })
        });
        assert!(result.is_err());
        assert!(ours(&events).is_empty(), "{events:#?}");
    }
}

/// (what happened: "call" or "poll", the name of the span current then).
type Seen = Arc<Mutex<Vec<(&'static str, Option<&'static str>)>>>;

/// An inner service whose future is pending once, and records the span current while it is
/// created and polled.
#[derive(Clone, Default)]
struct Observing {
    seen: Seen,
}

struct ObservingFuture {
    seen: Seen,
    polled: bool,
}

fn current_span_name() -> Option<&'static str> {
    tracing::Span::current().metadata().map(|m| m.name())
}

impl Future for ObservingFuture {
    type Output = Result<(), std::io::Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.seen
            .lock()
            .unwrap()
            .push(("poll", current_span_name()));
        if self.polled {
            Poll::Ready(Err(std::io::Error::other("down")))
        } else {
            self.polled = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Service<u32> for Observing {
    type Response = ();
    type Error = std::io::Error;
    type Future = ObservingFuture;
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _req: u32) -> ObservingFuture {
        self.seen
            .lock()
            .unwrap()
            .push(("call", current_span_name()));
        ObservingFuture {
            seen: self.seen.clone(),
            polled: false,
        }
    }
}

#[test]
fn the_attempt_span_is_entered_only_while_the_attempt_is_sent_or_polled() {
    let inner = Observing::default();
    let ((), _) = capture(|| {
        paused_runtime().block_on(async {
            let svc = RetryLayer::new(RetryConfig::default()).layer(inner.clone());
            let mut fut = tokio_test::task::spawn(svc.oneshot(1));
            loop {
                let poll = fut.poll();
                // Between polls (i.e. across every `.await` of the caller), no span of ours
                // is entered.
                assert_eq!(current_span_name(), None);
                if poll.is_ready() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        })
    });
    let seen = inner.seen.lock().unwrap().clone();
    // 3 attempts: each sent once and polled twice, always inside the attempt span.
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(_, span)| *span == Some(names::SPAN_ATTEMPT)),
        "{seen:?}"
    );
}

#[test]
fn calls_with_telemetry_run_on_a_multi_threaded_runtime() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let telemetry = Telemetry::new("billing", "charge");
    send_sync(&telemetry);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (results, events) = capture(|| {
        rt.block_on(async {
            let svc = billing_layer()
                .with_telemetry(telemetry)
                .layer(Scripted::default());
            let tasks: Vec<_> = (0..8)
                .map(|i| tokio::spawn(svc.clone().oneshot(i)))
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap().unwrap());
            }
            results
        })
    });
    assert_eq!(results, vec!["ok"; 8]);
    assert!(ours(&events).is_empty());
}
