//! The names `execute_with_retry` reports in telemetry: its own test binary, because
//! `tracing` caches each call site's interest process-wide, and a test running beside it on
//! another thread with no subscriber can make this test's spans invisible.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_retrier::classify::MatchErrors;
use tower_retrier::{RetryConfig, execute_with_retry};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

fn config(attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .initial_delay(Duration::from_millis(100))
        .jitter(false)
        .build()
        .unwrap()
}

/// A span's fields as (name, value), in the order recorded.
type SpanFields = Vec<(String, String)>;

/// The fields of every `retry` call span, as recorded by the time it closed.
#[derive(Clone, Default)]
struct CallSpans(Arc<Mutex<Vec<SpanFields>>>);

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for CallSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        ctx.span(id).unwrap().extensions_mut().insert(fields);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(f) = ctx.span(id).unwrap().extensions_mut().get_mut::<Fields>() {
            values.record(f);
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        if span.name() == "retry" {
            let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

#[test]
fn the_names_label_the_telemetry() {
    let spans = CallSpans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let calls = AtomicU32::new(0);
            let _ = execute_with_retry(
                &config(3),
                MatchErrors::typed().retry::<std::io::Error>(),
                "inventory",
                "count",
                || async {
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0 => Err(std::io::Error::other("reset")),
                        _ => Ok(()),
                    }
                },
            )
            .await;
        });
    });
    let spans = spans.0.lock().unwrap();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let field = |name: &str| {
        spans[0]
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("retry.service").as_deref(), Some("inventory"));
    assert_eq!(field("retry.operation").as_deref(), Some("count"));
    assert_eq!(field("retry.attempts").as_deref(), Some("2"));
    assert_eq!(
        field("retry.outcome").as_deref(),
        Some("success_after_retry")
    );
}
