//! Hedging in `tracing`: each attempt is a child span of the call, and a hedge's span says
//! so (`retry.hedge = true`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer, ServiceExt, service_fn};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::{RetryConfig, RetryLayer};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span: its name, its parent's name, and every field recorded on it.
#[derive(Clone, Debug, Default)]
struct SpanSeen {
    name: &'static str,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<BTreeMap<u64, SpanSeen>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut seen = SpanSeen {
            name: span.name(),
            parent: span.parent().map(|p| p.name()),
            ..SpanSeen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.0.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
}

#[test]
fn a_hedge_is_a_child_span_of_the_call_marked_as_a_hedge() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let calls = Arc::new(Mutex::new(0));
            let inner = service_fn(move |_: u32| {
                let first = {
                    let mut n = calls.lock().unwrap();
                    *n += 1;
                    *n == 1
                };
                async move {
                    tokio::time::sleep(Duration::from_millis(if first { 1000 } else { 10 })).await;
                    Ok::<_, std::io::Error>(())
                }
            });
            let hedging = HedgeConfig::builder()
                .delay(Duration::from_millis(20))
                .build()
                .unwrap();
            let svc = RetryLayer::new(RetryConfig::default())
                .hedge(hedging)
                .layer(inner);
            svc.oneshot(1).await.unwrap();
        });
    });
    let spans = spans.0.lock().unwrap();
    let attempts: Vec<&SpanSeen> = spans
        .values()
        .filter(|s| s.name == tower_retrier::telemetry::names::SPAN_ATTEMPT)
        .collect();
    assert_eq!(attempts.len(), 2, "{spans:?}");
    for a in &attempts {
        assert_eq!(a.parent, Some(tower_retrier::telemetry::names::SPAN_CALL));
    }
    assert_eq!(attempts[0].fields.get("retry.hedge"), None);
    assert_eq!(attempts[1].fields["retry.attempt"], "2");
    assert_eq!(attempts[1].fields["retry.hedge"], "true");
}

#[test]
fn each_attempt_records_its_own_outcome() {
    // The first attempt fails non-fatally after the hedge was sent: its outcome lands on its
    // own span, and the hedge's success on the hedge's.
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let calls = Arc::new(Mutex::new(0));
            let inner = service_fn(move |_: u32| {
                let first = {
                    let mut n = calls.lock().unwrap();
                    *n += 1;
                    *n == 1
                };
                async move {
                    if first {
                        tokio::time::sleep(Duration::from_millis(25)).await;
                        Err(std::io::Error::other("reset"))
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok(())
                    }
                }
            });
            let hedging = HedgeConfig::builder()
                .delay(Duration::from_millis(20))
                .build()
                .unwrap();
            let svc = RetryLayer::new(RetryConfig::default())
                .hedge(hedging)
                .layer(inner);
            svc.oneshot(1).await.unwrap();
        });
    });
    let spans = spans.0.lock().unwrap();
    let attempts: Vec<&SpanSeen> = spans
        .values()
        .filter(|s| s.name == tower_retrier::telemetry::names::SPAN_ATTEMPT)
        .collect();
    assert_eq!(attempts.len(), 2, "{spans:?}");
    assert_eq!(
        attempts[0].fields["retry.attempt_outcome"], "\"retryable_failure\"",
        "{attempts:?}"
    );
    assert_eq!(
        attempts[1].fields["retry.attempt_outcome"], "\"success\"",
        "{attempts:?}"
    );
}
