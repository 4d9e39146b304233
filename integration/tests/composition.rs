//! How the retry layer composes with tower's timeout, concurrency limit, buffer and load
//! shedding, and with a circuit breaker from crates.io.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_resilience_circuitbreaker::{CircuitBreakerError, CircuitBreakerLayer};
use tower_retrier::classify::{Decision, RetryReason, classify_fn};
use tower_retrier::{RetryConfig, RetryLayer};

fn config(attempts: u32, delay_ms: u64) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .initial_delay(Duration::from_millis(delay_ms))
        .max_delay(Duration::from_millis(delay_ms))
        .jitter(false)
        .build()
        .unwrap()
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Retry(Timeout(S)): the timeout applies to each attempt; a hung attempt is cut and retried.
#[tokio::test(start_paused = true)]
async fn retry_outside_timeout_gives_per_attempt_timeouts() {
    let calls = counter();
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(3, 10)))
        .timeout(Duration::from_millis(100))
        .service(service_fn(move |_: ()| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(3600)).await; // hangs
                }
                Ok::<_, BoxError>(n)
            }
        }));
    let start = Instant::now();
    assert_eq!(svc.oneshot(()).await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // 100 ms attempt timeout + 10 ms backoff (virtual time).
    assert_eq!(start.elapsed(), Duration::from_millis(110));
}

/// Timeout(Retry(S)): the timeout bounds the whole call, retries and backoff included.
#[tokio::test(start_paused = true)]
async fn timeout_outside_retry_gives_an_overall_deadline() {
    let calls = counter();
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_millis(300))
        .layer(RetryLayer::new(config(10, 100)))
        .service(service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<(), BoxError>("unavailable".into())
            }
        }));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    // Attempts at 0, 150, 300 ms: the third is cut as it starts.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// The deadline of `RetryConfig` stops retrying (and returns the last result) when the next
/// backoff would cross it, unlike an outer timeout which returns `Elapsed`.
#[tokio::test(start_paused = true)]
async fn config_deadline_returns_the_last_result() {
    let cfg = RetryConfig::builder()
        .max_attempts(10)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(100))
        .jitter(false)
        .deadline(Duration::from_millis(250))
        .build()
        .unwrap();
    let calls = counter();
    let c = calls.clone();
    let svc = RetryLayer::new(cfg).layer(service_fn(move |_: ()| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move { Err::<(), String>(format!("failure {n}")) }
    }));
    assert_eq!(svc.oneshot(()).await.unwrap_err(), "failure 2");
}

/// Tracks how many calls are in flight at once.
#[derive(Clone, Default)]
struct InFlight {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    failed_once: Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
}

impl InFlight {
    /// A service that fails the first attempt of every request after 10 ms.
    fn service(
        &self,
    ) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + 'static
    {
        let s = self.clone();
        service_fn(move |req: u32| {
            let s = s.clone();
            async move {
                let now = s.now.fetch_add(1, Ordering::SeqCst) + 1;
                s.max.fetch_max(now, Ordering::SeqCst);
                s.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                s.now.fetch_sub(1, Ordering::SeqCst);
                if s.failed_once.lock().unwrap().insert(req) {
                    Err("transient".into())
                } else {
                    Ok(req)
                }
            }
        })
    }
}

/// Retry(ConcurrencyLimit(S)): every attempt re-acquires a permit, so the limit holds across
/// retries and concurrent callers do not deadlock.
#[tokio::test(start_paused = true)]
async fn concurrency_limit_inside_retry_holds_across_retries() {
    let probe = InFlight::default();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(3, 5)))
        .concurrency_limit(1)
        .service(probe.service());
    let calls: Vec<_> = (0..4).map(|i| svc.clone().oneshot(i)).collect();
    let results = futures_util::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as u32);
    }
    assert_eq!(
        probe.max.load(Ordering::SeqCst),
        1,
        "never more than one in flight"
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 8);
}

/// Retry(Buffer(S)): retries go through the buffer's channel like first attempts.
#[tokio::test(start_paused = true)]
async fn buffer_inside_retry_keeps_working() {
    let probe = InFlight::default();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(3, 5)))
        .buffer(2)
        .concurrency_limit(2)
        .service(probe.service());
    let calls: Vec<_> = (0..6).map(|i| svc.clone().oneshot(i)).collect();
    let results = futures_util::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as u32);
    }
    assert_eq!(probe.calls.load(Ordering::SeqCst), 12);
    assert!(probe.max.load(Ordering::SeqCst) <= 2);
}

/// Retry(LoadShed(S)): a shed request is not retried (that would add load to an overloaded
/// service), with the default classifier.
#[tokio::test(start_paused = true)]
async fn load_shed_rejections_are_not_retried() {
    let retries = counter();
    let r = retries.clone();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(5, 1)).on_retry(
            move |_: &tower_retrier::telemetry::RetryEvent<'_, (), BoxError>| {
                r.fetch_add(1, Ordering::SeqCst);
            },
        ))
        .load_shed()
        .service(NeverReady);
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<tower::load_shed::error::Overloaded>());
    assert_eq!(retries.load(Ordering::SeqCst), 0);
}

/// A service that is never ready: `LoadShed` sheds every call to it.
#[derive(Clone)]
struct NeverReady;

impl Service<()> for NeverReady {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Pending
    }
    fn call(&mut self, _: ()) -> Self::Future {
        unreachable!("LoadShed never calls a service that is not ready")
    }
}

/// Retry(CircuitBreaker(S)) with tower-resilience-circuitbreaker: the breaker sees every
/// attempt (so its failure rate is honest), and once it opens, its rejections end the call
/// instead of being retried.
#[tokio::test]
async fn circuit_breaker_sees_every_attempt_and_open_rejections_are_not_retried() {
    let failures = counter();
    let rejections = counter();
    let (f, r) = (failures.clone(), rejections.clone());
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .wait_duration_in_open(Duration::from_secs(60))
        .on_failure(move |_| {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .on_call_rejected(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    // The breaker's error type is generic; tell the retry layer which of its errors are
    // deliberate rejections.
    let classifier = classify_fn(
        |_req: &(), res: &Result<(), CircuitBreakerError<std::io::Error>>| match res {
            Ok(()) => Decision::Success,
            Err(e) if e.is_circuit_open() => Decision::Fail,
            Err(_) => Decision::retry(RetryReason::Error),
        },
    );
    let calls = counter();
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(5, 1)).with_classifier(classifier))
        .layer(breaker)
        .service(service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(std::io::Error::other("down")) }
        }));

    // Three attempts reach the service and fail; the breaker opens; the fourth attempt is
    // rejected, and that rejection is returned rather than retried.
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert!(err.is_circuit_open(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        3,
        "the breaker saw every attempt"
    );
    assert_eq!(rejections.load(Ordering::SeqCst), 1);

    // While open: one attempt, rejected, not retried.
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is_circuit_open());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(rejections.load(Ordering::SeqCst), 2);
}
