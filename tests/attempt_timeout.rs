//! The built-in per-attempt timeout (`RetryConfig::attempt_timeout` + `timed_attempts()`),
//! in paused time: slow attempts are cut and retried, the inner error type reaches typed
//! classifiers untouched, and a timed-out request that is not idempotent is not resent.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};
use tower_retrier::classify::{Decision, RetryReason, classify_fn};
use tower_retrier::replay::Idempotent;
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{AttemptError, RetryConfig, RetryLayer};

/// An error type a classifier matches on directly (no boxing anywhere).
#[derive(Debug, PartialEq)]
enum DbError {
    Busy,
    Corrupt,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for DbError {}

fn config(timeout_ms: u64) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(10))
        .jitter(false)
        .attempt_timeout(Duration::from_millis(timeout_ms))
        .build()
        .unwrap()
}

/// Answers after `delays[n]` for the n-th call (the last one repeats), counting calls.
fn scripted(
    delays: &'static [u64],
    result: fn(u32) -> Result<u32, DbError>,
) -> (
    Arc<AtomicU32>,
    impl tower::Service<u32, Response = u32, Error = DbError, Future: Send> + Clone,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = service_fn(move |req: u32| {
        let n = seen.fetch_add(1, Ordering::SeqCst) as usize;
        let delay = delays[n.min(delays.len() - 1)];
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            result(req)
        }
    });
    (calls, svc)
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_cut_and_retried() {
    let (calls, inner) = scripted(&[10_000, 5], Ok);
    let svc = RetryLayer::new(config(100)).timed_attempts().layer(inner);
    let start = Instant::now();
    assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // 100 ms timeout + 10 ms backoff + 5 ms answer.
    assert_eq!(start.elapsed(), Duration::from_millis(115));
}

#[tokio::test(start_paused = true)]
async fn the_last_timeout_is_returned_as_timed_out() {
    let (calls, inner) = scripted(&[10_000], Ok);
    let svc = RetryLayer::new(config(100)).timed_attempts().layer(inner);
    let err = svc.oneshot(7).await.unwrap_err();
    assert!(matches!(err, AttemptError::TimedOut(d) if d == Duration::from_millis(100)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn typed_classifiers_see_the_inner_error_type() {
    // Busy is retried, Corrupt is final: the classifier matches the concrete type.
    let classifier = classify_fn(|_: &u32, r: &Result<u32, DbError>| match r {
        Ok(_) => Decision::Success,
        Err(DbError::Busy) => Decision::retry(RetryReason::Error),
        Err(DbError::Corrupt) => Decision::Fail,
    });
    let (calls, inner) = scripted(&[1], |_| Err(DbError::Corrupt));
    let svc = RetryLayer::new(config(100))
        .with_classifier(classifier.clone())
        .timed_attempts()
        .layer(inner);
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.into_service_error(), Some(DbError::Corrupt));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let (calls, inner) = scripted(&[1], |_| Err(DbError::Busy));
    let svc = RetryLayer::new(config(100))
        .with_classifier(classifier)
        .timed_attempts()
        .layer(inner);
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.into_service_error(), Some(DbError::Busy));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_hook_hears_timeouts_with_reason_timeout() {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = reasons.clone();
    let (_, inner) = scripted(&[10_000, 10_000, 1], Ok);
    let svc = RetryLayer::new(config(50))
        .on_retry(move |e: &RetryEvent<'_, _, _>| seen.lock().unwrap().push(e.reason()))
        .timed_attempts()
        .layer(inner);
    assert_eq!(svc.oneshot(3).await.unwrap(), 3);
    assert_eq!(*reasons.lock().unwrap(), [RetryReason::Timeout; 2]);
}

/// A request that says it must not be sent twice (like a POST).
#[derive(Clone, Debug)]
struct Charge;
impl Idempotent for Charge {
    fn is_idempotent(&self) -> bool {
        false
    }
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_request_that_is_not_idempotent_is_not_resent() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let inner = service_fn(move |_: Charge| {
        seen.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, DbError>(())
        }
    });
    let svc = RetryLayer::new(config(100))
        .timed_attempts()
        .layer(inner.clone());
    assert!(svc.oneshot(Charge).await.unwrap_err().is_timeout());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "never resent without opt-in"
    );

    // With the opt-in it is retried like any timeout.
    let svc = RetryLayer::new(config(100))
        .retry_non_idempotent(true)
        .timed_attempts()
        .layer(inner);
    assert!(svc.oneshot(Charge).await.unwrap_err().is_timeout());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn without_a_configured_timeout_attempts_are_not_cut() {
    let (calls, inner) = scripted(&[10_000], Ok);
    let svc = RetryLayer::new(RetryConfig::default())
        .timed_attempts()
        .layer(inner);
    let start = Instant::now();
    assert_eq!(svc.oneshot(1).await.unwrap(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// The HTTP preset judges idempotency itself: a timed-out GET is retried, a timed-out POST
/// is not (unless it carries an `Idempotency-Key`).
#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn the_http_preset_retries_timed_out_gets_but_not_posts() {
    use tower_retrier::replay::ReplayBody;
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let inner = service_fn(move |_: http::Request<ReplayBody<String>>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, std::io::Error>(http::Response::new(()))
        }
    });
    let layer = RetryLayer::new_for_http(config(100)).timed_attempts();
    let get = http::Request::get("/a").body(String::new()).unwrap();
    let err = layer.layer(inner.clone()).oneshot(get).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(calls.swap(0, Ordering::SeqCst), 3);

    let post = http::Request::post("/a").body("x".to_string()).unwrap();
    let err = layer.layer(inner.clone()).oneshot(post).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(
        calls.swap(0, Ordering::SeqCst),
        1,
        "a timed-out POST is sent once"
    );

    let keyed = http::Request::post("/a")
        .header("idempotency-key", "k1")
        .body("x".to_string())
        .unwrap();
    let err = layer.layer(inner).oneshot(keyed).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
