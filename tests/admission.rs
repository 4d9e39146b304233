//! Admission control through the layer: a dead downstream gets refused calls (at once, typed,
//! never retried by this or an outer layer) and probes; it is closed again by the first
//! accepted probe; partial failures never refuse anything; hedges pass admission too; every
//! refusal reaches the metrics back-end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_retrier::admission::{
    Admission, AdmissionConfig, AdmissionState, RejectReason, Rejected,
};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::{AttemptError, RetryConfig, RetryLayer};

/// A downstream that fails while `down` is set, counting the attempts it receives.
#[derive(Clone, Default)]
struct Switchable {
    down: Arc<AtomicBool>,
    attempts: Arc<AtomicU32>,
}

impl Switchable {
    fn dead() -> Self {
        let s = Switchable::default();
        s.down.store(true, Ordering::SeqCst);
        s
    }

    fn service(
        &self,
    ) -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone + Send + use<>
    {
        let s = self.clone();
        service_fn(move |x: u32| {
            let s = s.clone();
            async move {
                s.attempts.fetch_add(1, Ordering::SeqCst);
                if s.down.load(Ordering::SeqCst) {
                    Err(std::io::Error::other("503 service unavailable"))
                } else {
                    Ok(x)
                }
            }
        })
    }

    fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }
}

fn one_attempt() -> RetryConfig {
    RetryConfig::builder().max_attempts(1).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_dead_downstream_gets_refused_calls_at_once_then_probes_then_everything_again() {
    let downstream = Switchable::dead();
    let layer = RetryLayer::new(one_attempt());
    let admission = layer.admission().clone();
    let svc = layer.layer(downstream.service());
    for _ in 0..20 {
        svc.clone().oneshot(1).await.unwrap_err();
    }
    assert_eq!(admission.state(), AdmissionState::Open);
    let t0 = tokio::time::Instant::now();
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::ZERO, "a refusal returns at once");
    assert_eq!(
        Rejected::find(&err).map(Rejected::reason),
        Some(RejectReason::Open)
    );
    assert_eq!(downstream.attempts(), 20, "nothing was sent");
    // While open, one probe per 250 ms reaches the downstream.
    for _ in 0..100 {
        tokio::time::advance(Duration::from_millis(10)).await;
        let _ = svc.clone().oneshot(1).await;
    }
    assert_eq!(downstream.attempts(), 24, "4 probes in a second");
    // The downstream comes back: the next probe closes it, and every call goes through.
    downstream.down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(250)).await;
    assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
    for i in 0..1000 {
        assert_eq!(svc.clone().oneshot(i).await.unwrap(), i);
    }
    assert_ne!(admission.state(), AdmissionState::Open);
}

#[tokio::test(start_paused = true)]
async fn ten_percent_failures_are_retried_and_nothing_is_refused() {
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let layer = RetryLayer::new(RetryConfig::default());
    let admission = layer.admission().clone();
    let svc = layer.layer(service_fn(move |x: u32| {
        let n = a.fetch_add(1, Ordering::SeqCst);
        async move {
            if n.is_multiple_of(10) {
                Err(std::io::Error::other("503"))
            } else {
                Ok(x)
            }
        }
    }));
    for i in 0..10_000 {
        assert_eq!(svc.clone().oneshot(i).await.unwrap(), i, "call {i}");
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    assert_eq!(admission.state(), AdmissionState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_never_retried_by_an_outer_retry_layer() {
    let downstream = Switchable::dead();
    // No probe within the test: every call while open is refused.
    let no_probes = AdmissionConfig::builder()
        .probe_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let inner = RetryLayer::new(one_attempt()).with_admission(Admission::new(no_probes));
    let admission = inner.admission().clone();
    let outer_attempts = Arc::new(AtomicU32::new(0));
    let counted = outer_attempts.clone();
    let svc = ServiceBuilder::new()
        // An outer layer of its own (no admission, so only the inner one refuses).
        .layer(RetryLayer::new(RetryConfig::default()).without_admission())
        .map_request(move |x: u32| {
            counted.fetch_add(1, Ordering::SeqCst);
            x
        })
        .layer(inner)
        .service(downstream.service());
    // Calls in parallel, so that 20 failures fall within the one-second window.
    let calls: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot(1)))
        .collect();
    for c in calls {
        let _ = c.await.unwrap();
    }
    assert_eq!(admission.state(), AdmissionState::Open);
    let before = outer_attempts.load(Ordering::SeqCst);
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert!(Rejected::find(&err).is_some());
    assert_eq!(
        outer_attempts.load(Ordering::SeqCst),
        before + 1,
        "the outer layer did not retry the refusal"
    );
}

#[tokio::test(start_paused = true)]
async fn the_error_carries_the_rejection_under_a_timeout_and_with_timed_attempts() {
    // A `.timeout(..)` below: errors are `BoxError`.
    let downstream = Switchable::dead();
    let layer = RetryLayer::new(one_attempt());
    let svc = ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_millis(100))
        .service(downstream.service());
    let mut last: Option<BoxError> = None;
    for _ in 0..21 {
        last = svc.clone().oneshot(1).await.err();
    }
    assert!(Rejected::find(&*last.unwrap()).is_some());

    // `.timed_attempts()`: the error is `AttemptError::Rejected`.
    let cfg = RetryConfig::builder()
        .max_attempts(1)
        .attempt_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let dead = Switchable::dead();
    let svc = RetryLayer::new(cfg).timed_attempts().layer(dead.service());
    let mut last = None;
    for _ in 0..21 {
        last = svc.clone().oneshot(1).await.err();
    }
    assert!(matches!(last, Some(AttemptError::Rejected(_))));
}

#[tokio::test(start_paused = true)]
async fn hedges_pass_admission_too() {
    let downstream = Switchable::dead();
    let layer = RetryLayer::new(RetryConfig::default());
    let admission = layer.admission().clone();
    let svc = layer
        .hedge(
            HedgeConfig::builder()
                .delay(Duration::from_millis(20))
                .build()
                .unwrap(),
        )
        .layer(downstream.service());
    while admission.state() != AdmissionState::Open {
        let _ = svc.clone().oneshot(1).await;
    }
    let sent = downstream.attempts();
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert!(Rejected::find(&err).is_some());
    assert_eq!(downstream.attempts(), sent);
}

#[test]
fn refusals_and_the_state_reach_the_metrics_back_end() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let svc = RetryLayer::new(one_attempt())
                    .service_name("inventory")
                    .layer(Switchable::dead().service());
                for _ in 0..25 {
                    let _ = svc.clone().oneshot(1).await;
                }
            })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, label: Option<(&str, &str)>| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "service" && l.value() == "inventory")
                    && label.is_none_or(|(k, v)| {
                        key.key().labels().any(|l| l.key() == k && l.value() == v)
                    })
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => f64::NAN,
            })
    };
    assert_eq!(
        find("retrier_admission_rejected_total", Some(("reason", "open"))),
        Some(5.0)
    );
    assert_eq!(find("retrier_admission_state", None), Some(2.0));
    assert_eq!(
        find(
            "retrier_failed_calls_total",
            Some(("stop_reason", "overloaded"))
        ),
        Some(5.0)
    );
}

/// An HTTP downstream answering every request with `status`.
#[cfg(feature = "http")]
fn answering(
    status: u16,
) -> impl Service<
    http::Request<tower_retrier::replay::ReplayBody<String>>,
    Response = http::Response<()>,
    Error = std::io::Error,
    Future: Send,
> + Clone {
    service_fn(move |_req: http::Request<_>| async move {
        let mut res = http::Response::new(());
        *res.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
        Ok::<_, std::io::Error>(res)
    })
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn answers_a_request_may_not_be_retried_after_still_count_as_unserved() {
    // A POST without Idempotency-Key is never resent, but its 503s are the downstream's
    // overload all the same.
    let layer = RetryLayer::new_for_http(RetryConfig::default());
    let admission = layer.admission().clone();
    let svc = layer.layer(answering(503));
    for _ in 0..20 {
        let post = http::Request::post("/orders").body(String::new()).unwrap();
        assert_eq!(svc.clone().oneshot(post).await.unwrap().status(), 503);
    }
    assert_eq!(admission.state(), AdmissionState::Open);
    // A 404 is a final answer: it never opens it.
    let layer = RetryLayer::new_for_http(RetryConfig::default());
    let admission = layer.admission().clone();
    let svc = layer.layer(answering(404));
    for _ in 0..100 {
        let post = http::Request::post("/orders").body(String::new()).unwrap();
        assert_eq!(svc.clone().oneshot(post).await.unwrap().status(), 404);
    }
    assert_eq!(admission.state(), AdmissionState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_load_shed_below_counts_as_unserved() {
    let layer = RetryLayer::new(RetryConfig::default());
    let admission = layer.admission().clone();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .load_shed()
        .service(service_fn(|_: u32| async {
            std::future::pending::<()>().await;
            Ok::<u32, std::io::Error>(0)
        }));
    // Called without being polled ready, `LoadShed` sheds every call (`Overloaded`): the
    // default classifier never retries it, and admission control counts it as unserved.
    for _ in 0..20 {
        let mut one = svc.clone();
        let _ = tower::Service::call(&mut one, 1).await;
    }
    assert_eq!(admission.state(), AdmissionState::Open);
}
