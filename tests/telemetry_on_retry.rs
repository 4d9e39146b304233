//! The user's retry hook (`RetryLayer::on_retry`): called once per granted retry with the
//! attempt, delay, reason, delay source and the failed result; never otherwise.

#[path = "support/telemetry.rs"]
mod telemetry_support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use telemetry_support::{DenyAll, Scripted, Step, classifier, paused_runtime};
use tower::Layer;
use tower_retrier::budget::Unlimited;
use tower_retrier::classify::RetryReason;
use tower_retrier::telemetry::{DelaySource, RetryEvent};
use tower_retrier::{RetryConfig, RetryLayer};

/// What the hook saw, copied out of the borrowed event.
#[derive(Debug, PartialEq)]
struct Seen {
    attempt: u32,
    delay: Duration,
    reason: RetryReason,
    source: DelaySource,
    result: Result<String, String>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn hook(log: &Log) -> impl Fn(&RetryEvent<'_, String, io::Error>) + Clone + use<> {
    let log = log.clone();
    move |e: &RetryEvent<'_, String, io::Error>| {
        log.lock().unwrap().push(Seen {
            attempt: e.attempt(),
            delay: e.delay(),
            reason: e.reason(),
            source: e.delay_source(),
            result: match e.result() {
                Ok(response) => Ok(response.clone()),
                Err(error) => Err(error.to_string()),
            },
        })
    }
}

fn config() -> RetryConfig {
    // No jitter, so delays are exact: 100 ms, 200 ms, 400 ms, ...
    RetryConfig::builder()
        .max_attempts(4)
        .jitter(false)
        .build()
        .unwrap()
}

#[test]
fn the_hook_sees_every_retry_with_its_delay_reason_and_result() {
    let log = Log::default();
    let inner = Scripted::new(vec![
        Step::Fail("reset".into()),
        Step::Throttled(1500),
        Step::Fail("refused".into()),
        Step::Ok,
    ]);
    let result = paused_runtime().block_on(
        RetryLayer::new(config())
            .with_classifier(classifier())
            .with_budget(Unlimited::new())
            .on_retry(hook(&log))
            .layer(inner.clone())
            .oneshot(1),
    );
    assert_eq!(result.unwrap(), "ok");
    assert_eq!(inner.calls(), 4);
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            Seen {
                attempt: 1,
                delay: Duration::from_millis(100),
                reason: RetryReason::Error,
                source: DelaySource::Backoff,
                result: Err("reset".into()),
            },
            Seen {
                attempt: 2,
                delay: Duration::from_millis(1500),
                reason: RetryReason::Throttled,
                source: DelaySource::Pushback,
                result: Ok("throttled:1500".into()),
            },
            // After a pushback the schedule starts over (gRFC A6).
            Seen {
                attempt: 3,
                delay: Duration::from_millis(100),
                reason: RetryReason::Error,
                source: DelaySource::Backoff,
                result: Err("refused".into()),
            },
        ]
    );
}

#[test]
fn the_hook_is_not_called_for_the_last_attempt_nor_on_success() {
    let log = Log::default();
    let layer = RetryLayer::new(config())
        .with_classifier(classifier())
        .with_budget(Unlimited::new())
        .on_retry(hook(&log));
    let inner = Scripted::new((0..4).map(|i| Step::Fail(format!("e{i}"))));
    let rt = paused_runtime();
    let result = rt.block_on(layer.layer(inner.clone()).oneshot(1));
    assert_eq!(result.unwrap_err().to_string(), "e3");
    let attempts: Vec<u32> = log.lock().unwrap().iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3], "4 attempts = 3 retries");

    log.lock().unwrap().clear();
    assert_eq!(
        rt.block_on(layer.layer(Scripted::default()).oneshot(2))
            .unwrap(),
        "ok"
    );
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn the_hook_is_not_called_when_the_budget_denies_or_the_error_is_fatal() {
    let log = Log::default();
    let rt = paused_runtime();
    let denied = rt.block_on(
        RetryLayer::new(config())
            .with_classifier(classifier())
            .with_budget(DenyAll)
            .on_retry(hook(&log))
            .layer(Scripted::new(vec![Step::Fail("x".into())]))
            .oneshot(1),
    );
    assert!(denied.is_err());
    let fatal = rt.block_on(
        RetryLayer::new(config())
            .with_classifier(classifier())
            .on_retry(hook(&log))
            .layer(Scripted::new(vec![Step::Fatal]))
            .oneshot(1),
    );
    assert_eq!(fatal.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
    assert!(log.lock().unwrap().is_empty());
}
