//! The two resource gauges: calls waiting to retry (per layer) and request body bytes held
//! for replay (per process). Each goes up while a call holds the resource and back to zero
//! whichever way the call ends: success, exhausted attempts, or dropped mid-backoff.
#![cfg(all(feature = "metrics", feature = "http"))]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tower::{BoxError, Layer, service_fn};
use tower_retrier::budget::{AdaptiveBudget, Budget, Unlimited};
use tower_retrier::classify::HttpClassifier;
use tower_retrier::replay::{ReplayBody, ReplayHttp};
use tower_retrier::telemetry::names;
use tower_retrier::{RetryConfig, RetryLayer};

/// Gauge values so far. A debugging snapshot swaps every value to zero, so the current value
/// is the sum of everything seen since the start.
#[derive(Default)]
struct Gauges(BTreeMap<String, f64>);

impl Gauges {
    fn read(&mut self, s: &Snapshotter) -> &BTreeMap<String, f64> {
        for (key, _, _, value) in s.snapshot().into_vec() {
            if let DebugValue::Gauge(g) = value {
                *self.0.entry(key.key().name().to_owned()).or_default() += g.into_inner();
            }
        }
        &self.0
    }
}

/// Runs `test` on a paused runtime with a recorder of its own; `test` reads the budget level
/// gauge (`retrier_budget_remaining`) through the function it is given.
fn with_budget_level(test: impl FnOnce(&dyn Fn() -> f64)) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let level = || Gauges::default().read(&snapshotter)[names::BUDGET_REMAINING];
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async { test(&level) })
    });
}

#[test]
fn gauges_follow_calls_backing_off_and_return_to_zero() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut g = Gauges::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let config = RetryConfig::builder()
                .max_attempts(3)
                .initial_delay(Duration::from_secs(1))
                .jitter(false)
                .build()
                .unwrap();
            let attempts = Arc::new(AtomicU32::new(0));
            let counted = attempts.clone();
            // Fails the first attempt of every call, after reading the body as a client would.
            let inner = service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
                let n = counted.fetch_add(1, Ordering::Relaxed);
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let status = if n < 3 { 503 } else { 200 };
                    Ok::<_, BoxError>(http::Response::builder().status(status).body(body)?)
                }
            });
            let svc = RetryLayer::new(config)
                .with_classifier(HttpClassifier::new())
                .with_replay(ReplayHttp::new())
                .with_budget(Unlimited::new())
                .layer(inner);
            let req = || {
                http::Request::put("http://x/")
                    .body(Full::new(Bytes::from(vec![0u8; 1000])))
                    .unwrap()
            };
            let calls: Vec<_> = (0..3)
                .map(|_| tokio::spawn(svc.clone().oneshot(req())))
                .collect();
            // Let every first attempt fail: three calls now back off, each holding 1,000 bytes.
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(g.read(&snapshotter)[names::RETRIES_WAITING], 3.0);
            assert_eq!(g.read(&snapshotter)[names::REPLAY_BYTES_HELD], 3000.0);
            // One of them is dropped mid-backoff (an outer timeout would do that).
            calls[2].abort();
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(g.read(&snapshotter)[names::RETRIES_WAITING], 2.0);
            assert_eq!(g.read(&snapshotter)[names::REPLAY_BYTES_HELD], 2000.0);
            // The others retry after 1 s and succeed.
            tokio::time::sleep(Duration::from_secs(2)).await;
            for call in calls.into_iter().take(2) {
                assert_eq!(call.await.unwrap().unwrap().status(), 200);
            }
            assert_eq!(g.read(&snapshotter)[names::RETRIES_WAITING], 0.0);
            assert_eq!(g.read(&snapshotter)[names::REPLAY_BYTES_HELD], 0.0);
        })
    });
}

#[test]
fn a_named_adaptive_budget_exports_its_level() {
    // The level is set (not added to): each snapshot shows the last value set.
    with_budget_level(|level| {
        let budget = AdaptiveBudget::new(10, 0.5, 0).unwrap().named("inventory");
        for _ in 0..4 {
            assert!(budget.withdraw().into_inner());
        }
        assert_eq!(level(), 6.0);
        for _ in 0..3 {
            budget.record_success();
        }
        assert!(budget.withdraw().into_inner());
        assert_eq!(level(), 6.5);
    });
}

#[test]
fn a_named_adaptive_budget_level_follows_the_recovery_without_withdrawals() {
    // After an outage the stock is empty; successes refill it. The gauge used to keep the
    // value of the last withdrawal (0 here) however many successes followed.
    with_budget_level(|level| {
        let budget = AdaptiveBudget::new(100, 0.2, 0)
            .unwrap()
            .named("recovering");
        while budget.withdraw().into_inner() {}
        assert_eq!(level(), 0.0);
        for _ in 0..256 {
            budget.record_success();
        }
        let partway = level();
        assert!(
            (25.0..=51.2).contains(&partway),
            "the gauge follows the refill: {partway}"
        );
        for _ in 0..4000 {
            budget.record_success();
        }
        assert_eq!(level(), 100.0, "full again, and the gauge says so");
    });
}
