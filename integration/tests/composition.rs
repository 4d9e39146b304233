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
    // A `String` error cannot carry an admission refusal: admission control off.
    let svc = RetryLayer::new(cfg)
        .without_admission()
        .layer(service_fn(move |_: ()| {
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
        // The breaker decides admission here: ours is off.
        .layer(
            RetryLayer::new(config(5, 1))
                .with_classifier(classifier)
                .without_admission(),
        )
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

// ------------------------------------------------------------------ load shedding

/// An error type of a service that boxes nothing: a typed wrapper around whatever the inner
/// layers said, with `source()` leading to it.
#[derive(Debug)]
struct Upstream(BoxError);

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream: {}", self.0)
    }
}

impl std::error::Error for Upstream {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Calls of `svc` (a `LoadShed` over a service that is never ready, possibly mapped) through
/// a 5-attempt retry layer with `classifier`; returns how many retries were granted.
async fn retries_of_a_shed_call<S, C>(classifier: C, svc: S) -> usize
where
    S: Service<(), Response = ()> + Clone + Send + 'static,
    S::Error: std::fmt::Debug + std::error::Error + Send + Sync + 'static,
    S::Future: Send,
    C: tower_retrier::classify::Classify<(), (), S::Error> + Clone + Send + Sync + 'static,
{
    let retries = counter();
    let r = retries.clone();
    let layer = RetryLayer::new(config(5, 1))
        .with_classifier(classifier)
        .without_admission()
        .on_retry(
            move |_: &tower_retrier::telemetry::RetryEvent<'_, (), S::Error>| {
                r.fetch_add(1, Ordering::SeqCst);
            },
        );
    let err = layer.layer(svc).oneshot(()).await.unwrap_err();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut shed = false;
    while let Some(e) = cur {
        shed |= e.is::<tower::load_shed::error::Overloaded>();
        cur = e.source();
    }
    assert!(shed, "the caller gets the rejection: {err:?}");
    retries.load(Ordering::SeqCst)
}

/// Retry(LoadShed(S)) with `MatchErrors`: a shed request is final whether or not `retry`
/// types are given, through `boxed()` (tower's `BoxError`) and `typed()` (a concrete error
/// whose `source()` is the rejection); only listing `Overloaded` itself retries it.
#[tokio::test(start_paused = true)]
async fn match_errors_never_retries_load_shed_rejections_unless_listed() {
    use tower::load_shed::error::Overloaded;
    use tower_retrier::classify::MatchErrors;

    // boxed(): the classifier opens tower's BoxError.
    let boxed = || ServiceBuilder::new().load_shed().service(NeverReady);
    let shed_boxed = |c: MatchErrors| async move {
        let retries = counter();
        let r = retries.clone();
        let layer = RetryLayer::new(config(5, 1)).with_classifier(c).on_retry(
            move |_: &tower_retrier::telemetry::RetryEvent<'_, (), BoxError>| {
                r.fetch_add(1, Ordering::SeqCst);
            },
        );
        let err = layer.layer(boxed()).oneshot(()).await.unwrap_err();
        assert!(err.is::<Overloaded>(), "{err}");
        retries.load(Ordering::SeqCst)
    };
    assert_eq!(shed_boxed(MatchErrors::boxed()).await, 0, "no retry types");
    assert_eq!(
        shed_boxed(MatchErrors::boxed().retry::<std::io::Error>()).await,
        0,
        "unrelated retry types"
    );
    assert_eq!(
        shed_boxed(MatchErrors::boxed().never::<std::io::Error>()).await,
        0,
        "only never types"
    );
    assert_eq!(
        shed_boxed(MatchErrors::boxed().retry::<Overloaded>()).await,
        4,
        "listed explicitly: retried until the attempts run out"
    );

    // typed(): the service's error is a concrete type with the rejection in its chain.
    let typed = || {
        ServiceBuilder::new()
            .map_err(|e: BoxError| Upstream(e))
            .load_shed()
            .service(NeverReady)
    };
    assert_eq!(
        retries_of_a_shed_call(MatchErrors::typed(), typed()).await,
        0,
        "no retry types"
    );
    assert_eq!(
        retries_of_a_shed_call(MatchErrors::typed().retry::<Upstream>(), typed()).await,
        0,
        "the wrapper is listed, the rejection inside it is not"
    );
    assert_eq!(
        retries_of_a_shed_call(MatchErrors::typed().retry::<Overloaded>(), typed()).await,
        4,
        "listed explicitly"
    );
}

// ------------------------------------------------------------------ rate limits and timeouts

/// Retry(Buffer(RateLimit(S))): `RateLimit` is not `Clone`, so a `Buffer` sits between; every
/// retry goes through the buffer and takes a rate token like a first attempt, so the rate
/// holds across retries.
#[tokio::test(start_paused = true)]
async fn rate_limit_behind_a_buffer_inside_retry_holds_across_retries() {
    let at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let failed_once = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let (log, failed) = (at.clone(), failed_once.clone());
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(3, 1)))
        .buffer(8)
        .rate_limit(1, Duration::from_millis(100))
        .service(service_fn(move |req: u32| {
            log.lock().unwrap().push(Instant::now());
            let first = failed.lock().unwrap().insert(req);
            async move {
                if first {
                    Err::<u32, BoxError>("transient".into())
                } else {
                    Ok(req)
                }
            }
        }));
    let start = Instant::now();
    let calls: Vec<_> = (0..3).map(|i| svc.clone().oneshot(i)).collect();
    let results = futures_util::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as u32);
    }
    let at = at.lock().unwrap();
    assert_eq!(at.len(), 6, "3 first attempts + 3 retries");
    // One attempt per 100 ms window, retries included: without the limit applying to
    // retries, the 6 attempts would fit in a few milliseconds.
    for w in at.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(100), "{at:?}");
    }
    assert!(start.elapsed() >= Duration::from_millis(500));
}

/// Timeout(Retry(Timeout(S))): each attempt is cut at the inner timeout and retried, and the
/// outer timeout bounds the whole call.
#[tokio::test(start_paused = true)]
async fn outer_and_per_attempt_timeouts_together() {
    let calls = counter();
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_millis(250))
        .layer(RetryLayer::new(config(10, 10)))
        .timeout(Duration::from_millis(100))
        .service(service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(3600)).await; // always hangs
                Ok::<_, BoxError>(())
            }
        }));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    // Attempts start at 0, 110 and 220 ms (100 ms cut + 10 ms backoff each); the outer
    // deadline cuts the third at 250 ms, long before its own 100 ms are up.
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// Timeout(Retry(S)) over a real loopback connection: when the overall deadline fires, the
/// attempt in flight is dropped, and the server sees its connection close.
#[tokio::test]
async fn an_outer_timeout_drops_the_attempt_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4];
        conn.read_exact(&mut request).await.unwrap();
        // Never answers; the next read returns when the client closes the connection.
        let mut rest = [0u8; 16];
        let after = conn.read(&mut rest).await;
        (request, after.map_err(|e| e.kind()))
    });
    let connects = counter();
    let c = connects.clone();
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_millis(200))
        .layer(RetryLayer::new(config(3, 10)))
        .service(service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut conn = tokio::net::TcpStream::connect(addr).await?;
                conn.write_all(b"ping").await?;
                let mut reply = [0u8; 1];
                conn.read_exact(&mut reply).await?; // no reply ever comes
                Ok::<_, BoxError>(())
            }
        }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    let (request, after) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server saw the connection go")
        .unwrap();
    assert_eq!(&request, b"ping");
    // 0 bytes = orderly close (or a reset): either way the client dropped the attempt.
    assert!(
        matches!(after, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "{after:?}"
    );
    assert_eq!(
        connects.load(Ordering::SeqCst),
        1,
        "no retry after the deadline"
    );
}

// ------------------------------------------------------------------ circuit breakers

fn breaker(failures: &Arc<AtomicUsize>, rejections: &Arc<AtomicUsize>) -> CircuitBreakerLayer {
    let (f, r) = (failures.clone(), rejections.clone());
    CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .wait_duration_in_open(Duration::from_secs(60))
        .on_failure(move |_| {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .on_call_rejected(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap()
}

/// CircuitBreaker(Retry(S)): the breaker sees one result per call, after the retries, so it
/// opens only once three whole calls (15 attempts) have failed.
#[tokio::test]
async fn a_breaker_outside_the_retry_layer_counts_calls_not_attempts() {
    let (failures, rejections) = (counter(), counter());
    let calls = counter();
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(breaker(&failures, &rejections))
        .layer(RetryLayer::new(config(5, 1)))
        .service(service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(std::io::Error::other("down")) }
        }));
    for call in 1..=3 {
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(!err.is_circuit_open(), "call {call}: {err}");
        assert_eq!(calls.load(Ordering::SeqCst), 5 * call, "all retries ran");
        assert_eq!(
            failures.load(Ordering::SeqCst),
            call,
            "one failure per call"
        );
    }
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is_circuit_open(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 15);
    assert_eq!(rejections.load(Ordering::SeqCst), 1);
}

/// Retry(Timeout(CircuitBreaker(S))): the boxing `Timeout` turns the breaker's error into a
/// `BoxError`; the classifier downcasts it, so open-circuit rejections are final while the
/// inner errors keep being retried. `MatchErrors::boxed().never::<CircuitBreakerError<E>>()`
/// would stop both, as the README warns.
#[tokio::test]
async fn a_breaker_behind_a_boxing_layer_is_matched_by_downcast() {
    type BreakerError = CircuitBreakerError<std::io::Error>;
    let classifier = classify_fn(|_req: &(), res: &Result<(), BoxError>| match res {
        Ok(()) => Decision::Success,
        Err(e)
            if e.downcast_ref::<BreakerError>()
                .is_some_and(|e| e.is_circuit_open()) =>
        {
            Decision::Fail
        }
        Err(_) => Decision::retry(RetryReason::Error),
    });
    let (failures, rejections) = (counter(), counter());
    let calls = counter();
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config(5, 1)).with_classifier(classifier))
        .timeout(Duration::from_secs(5))
        .layer(breaker(&failures, &rejections))
        .service(service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(std::io::Error::other("down")) }
        }));
    let err = svc.clone().oneshot(()).await.unwrap_err();
    let err = err.downcast_ref::<BreakerError>().expect("a breaker error");
    assert!(err.is_circuit_open(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "inner errors were retried");
    assert_eq!(failures.load(Ordering::SeqCst), 3);
    assert_eq!(
        rejections.load(Ordering::SeqCst),
        1,
        "the rejection was not retried"
    );

    // The shortcut the README warns about: a `never` on the breaker's type also ends the
    // retries of its inner errors.
    let (failures, rejections) = (counter(), counter());
    let calls = counter();
    let c = calls.clone();
    let svc =
        ServiceBuilder::new()
            .layer(RetryLayer::new(config(5, 1)).with_classifier(
                tower_retrier::classify::MatchErrors::boxed().never::<BreakerError>(),
            ))
            .timeout(Duration::from_secs(5))
            .layer(breaker(&failures, &rejections))
            .service(service_fn(move |_: ()| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(std::io::Error::other("down")) }
            }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(
        !err.downcast_ref::<BreakerError>()
            .unwrap()
            .is_circuit_open()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried at all");
}
