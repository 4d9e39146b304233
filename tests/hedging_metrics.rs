//! Hedging telemetry: the metrics for hedges sent, hedges that won and hedges the budget
//! refused, with the bounded label set (service, operation) only.
#![cfg(feature = "metrics")]

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tower::{Layer, service_fn};
use tower_retrier::budget::Budget;
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::telemetry::names;
use tower_retrier::{RetryConfig, RetryLayer};

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A budget with nothing to give.
#[derive(Clone)]
struct DenyAll;

impl Budget for DenyAll {
    type Withdraw = Ready<bool>;
    fn deposit(&self) {}
    fn withdraw(&self) -> Ready<bool> {
        ready(false)
    }
}

/// The first attempt of each call (odd attempt numbers) takes `first_ms`, a hedge 10 ms.
fn first_slow(
    first_ms: u64,
) -> impl tower::Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone {
    let n = Arc::new(AtomicU32::new(0));
    service_fn(move |req: u32| {
        let first = n.fetch_add(1, Ordering::SeqCst).is_multiple_of(2);
        async move {
            tokio::time::sleep(Duration::from_millis(if first { first_ms } else { 10 })).await;
            Ok::<_, std::io::Error>(req)
        }
    })
}

#[test]
fn hedges_sent_won_and_denied_are_counted_with_bounded_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        paused_runtime().block_on(async {
            let hedging = HedgeConfig::builder()
                .delay(Duration::from_millis(20))
                .max_attempts(2)
                .build()
                .unwrap();
            let layer = RetryLayer::new(RetryConfig::default())
                .service_name("search")
                .operation_name("query");
            // Two calls whose first attempt hangs: a hedge each, and each hedge wins.
            let svc = layer.clone().hedge(hedging.clone()).layer(first_slow(1000));
            assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
            assert_eq!(svc.oneshot(2).await.unwrap(), 2);
            // A first attempt of 25 ms: the hedge goes at 20 ms but loses (30 ms).
            let svc = layer.clone().hedge(hedging.clone()).layer(first_slow(25));
            assert_eq!(svc.oneshot(3).await.unwrap(), 3);
            // A budget with nothing to give: the hedge is denied, never sent.
            let svc = layer
                .with_budget(DenyAll)
                .hedge(hedging)
                .layer(first_slow(100));
            assert_eq!(svc.oneshot(4).await.unwrap(), 4);
        })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str| -> u64 {
        snapshot
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .map(|(key, _, _, value)| {
                let labels: Vec<_> = key.key().labels().map(|l| l.key().to_owned()).collect();
                assert_eq!(labels, ["service", "operation"], "{name}");
                match value {
                    DebugValue::Counter(n) => *n,
                    other => panic!("{name}: {other:?}"),
                }
            })
            .sum()
    };
    assert_eq!(counter(names::HEDGES_TOTAL), 3);
    assert_eq!(counter(names::HEDGES_WON_TOTAL), 2);
    assert_eq!(counter(names::HEDGES_BUDGET_DENIED_TOTAL), 1);
    assert_eq!(counter(names::BUDGET_DENIED_TOTAL), 1);
    assert_eq!(counter(names::ATTEMPTS_TOTAL), 7);
}
