//! Never sooner than the server asked: a pushback the config can honour is waited in full;
//! one longer than `max_delay` or past the deadline ends the retries (stop reason
//! `pushback_too_long`), unless `Pushback::Cap` was chosen. Paused time throughout.

#[path = "support/telemetry.rs"]
mod telemetry_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use telemetry_support::{Scripted, Step, classifier, paused_runtime};
use tower::Layer;
use tower_retrier::budget::Unlimited;
use tower_retrier::telemetry::{DelaySource, RetryEvent, StopReason};
use tower_retrier::{Pushback, RetryConfig, RetryLayer};

type Delays = Arc<Mutex<Vec<(Duration, DelaySource)>>>;

/// Runs one call through a layer with `config` over `script`; returns the result, the attempts
/// the inner service saw, the retry delays, the paused time the call took, and the stop reason
/// recorded by the metrics back-end (when compiled).
fn call(config: RetryConfig, script: Vec<Step>) -> Outcome {
    let delays: Delays = Arc::default();
    let log = delays.clone();
    let layer = RetryLayer::new(config)
        .with_classifier(classifier())
        .with_budget(Unlimited::new())
        .on_retry(move |e: &RetryEvent<'_, _, _>| {
            log.lock().unwrap().push((e.delay(), e.delay_source()))
        });
    let inner = Scripted::new(script);
    let run = || {
        paused_runtime().block_on(async {
            let start = tokio::time::Instant::now();
            let result = layer.layer(inner.clone()).oneshot(1).await;
            let result = result.unwrap_or_else(|e| format!("error: {e}"));
            (result, start.elapsed())
        })
    };
    #[cfg(feature = "metrics")]
    let ((result, took), stop) = {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let out = metrics::with_local_recorder(&recorder, run);
        (out, stop_reason(&snapshotter))
    };
    #[cfg(not(feature = "metrics"))]
    let ((result, took), stop) = (run(), None);
    let delays = delays.lock().unwrap().clone();
    Outcome {
        result,
        attempts: inner.calls(),
        delays,
        took,
        stop,
    }
}

struct Outcome {
    result: String,
    attempts: u32,
    delays: Vec<(Duration, DelaySource)>,
    took: Duration,
    /// The `stop_reason` label of `retrier_failed_calls_total`, if a failed call was counted.
    stop: Option<String>,
}

#[cfg(feature = "metrics")]
fn stop_reason(snapshotter: &metrics_util::debugging::Snapshotter) -> Option<String> {
    use metrics_util::debugging::DebugValue;
    let snapshot = snapshotter.snapshot().into_vec();
    let mut counted = snapshot.into_iter().filter_map(|(key, _, _, value)| {
        let key = key.key();
        (key.name() == tower_retrier::telemetry::names::FAILED_CALLS_TOTAL
            && value == DebugValue::Counter(1))
        .then(|| {
            key.labels()
                .find(|l| l.key() == "stop_reason")
                .map(|l| l.value().to_owned())
        })
        .flatten()
    });
    let stop = counted.next();
    assert!(counted.next().is_none(), "one failed call, one stop reason");
    stop
}

fn config() -> RetryConfig {
    RetryConfig::builder()
        .max_delay(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn assert_stop(o: &Outcome, stop: StopReason) {
    if cfg!(feature = "metrics") {
        assert_eq!(o.stop.as_deref(), Some(stop.as_str()));
    }
}

#[test]
fn a_pushback_within_max_delay_is_waited_in_full() {
    let o = call(config(), vec![Step::Throttled(2_000)]);
    assert_eq!(o.result, "ok");
    assert_eq!(o.attempts, 2);
    assert_eq!(o.delays, [(Duration::from_secs(2), DelaySource::Pushback)]);
    assert!(o.took >= Duration::from_secs(2), "{:?}", o.took);
    assert_eq!(o.stop, None, "a success is not a failed call");
}

#[test]
fn a_pushback_longer_than_max_delay_ends_the_retries() {
    // 20 s asked, max_delay 10 s: the server's answer comes back at once, not retried early.
    let o = call(config(), vec![Step::Throttled(20_000)]);
    assert_eq!(o.result, "throttled:20000");
    assert_eq!(o.attempts, 1);
    assert!(o.delays.is_empty());
    assert_eq!(o.took, Duration::ZERO);
    assert_stop(&o, StopReason::PushbackTooLong);

    // An hour asked: the same (no fall-back to the exponential backoff for long values).
    let o = call(config(), vec![Step::Throttled(3_600_000)]);
    assert_eq!(o.attempts, 1);
    assert_stop(&o, StopReason::PushbackTooLong);
}

#[test]
fn a_pushback_past_the_deadline_ends_the_retries() {
    let cfg = RetryConfig::builder()
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let o = call(cfg.clone(), vec![Step::Throttled(6_000)]);
    assert_eq!((o.attempts, o.took), (1, Duration::ZERO));
    assert_stop(&o, StopReason::PushbackTooLong);

    // 3 s waited, then 3 s more would end at 6 s, past the 5 s deadline: stop after two.
    let o = call(cfg, vec![Step::Throttled(3_000), Step::Throttled(3_000)]);
    assert_eq!(o.result, "throttled:3000");
    assert_eq!(o.attempts, 2);
    assert_eq!(o.delays, [(Duration::from_secs(3), DelaySource::Pushback)]);
    assert_eq!(o.took, Duration::from_secs(3));
    assert_stop(&o, StopReason::PushbackTooLong);
}

#[test]
fn a_backoff_past_the_deadline_is_still_deadline_exceeded() {
    let cfg = RetryConfig::builder()
        .initial_delay(Duration::from_secs(3))
        .jitter(false)
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let o = call(
        cfg,
        vec![
            Step::Fail("a".into()),
            Step::Fail("b".into()),
            Step::Fail("c".into()),
        ],
    );
    assert_eq!(o.result, "error: b");
    assert_eq!(o.attempts, 2, "3 s, then 6 s more would cross 5 s");
    assert_stop(&o, StopReason::DeadlineExceeded);
}

#[test]
fn pushback_cap_retries_after_max_delay_when_chosen() {
    let cfg = RetryConfig::builder()
        .max_delay(Duration::from_secs(10))
        .pushback(Pushback::Cap)
        .build()
        .unwrap();
    let o = call(cfg, vec![Step::Throttled(3_600_000)]);
    assert_eq!(o.result, "ok");
    assert_eq!(o.attempts, 2);
    assert_eq!(o.delays, [(Duration::from_secs(10), DelaySource::Pushback)]);
}
