//! The overload simulation's model (`examples/common/overload_sim.rs`), tested in paused time:
//! the queued downstream keeps its promises (never more than `workers` jobs at once, sheds at
//! a full queue, never cancels work), and the baseline set-ups reproduce today's
//! behaviour (a plain client recovers, `tower::retry` without a budget never does); the queue
//! rebuilt for the server half gives the same counts without its layer, and with it a plain
//! client gets no fewer good calls and no stale queue to wait for.
//!
//! The scenario functions (`capacity_drop`, `total_outage`, `failure_rate`,
//! `low_traffic_fleet`, `one_bad_instance`) and the goal checks (`*_goals`, each returning the
//! goals a report misses) are what an admission-control row asserts with: build its `Setup`,
//! run the scenario, assert the goal list is empty. Phases are shortened where the assertion
//! allows, to keep the tests fast.

#[path = "../examples/common/overload_sim.rs"]
mod sim;

use sim::{
    BoxError, Client, Downstream, Front, Scenario, Server, ServerConfig, Setup, Shed, boxed,
    capacity_drop, capacity_drop_goals, failure_rate, partial_failure_goals, simulate,
    total_outage, total_outage_goals, virtual_runtime,
};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The capacity drop with shorter phases: the 500-deep queue fills within ~1.1 s of the
/// trigger and drains in ~2.1 s after it; 8 s after leave room for 5 s of recovery.
fn short_capacity_drop(queue: usize) -> Scenario {
    Scenario::capacity_drop(queue).phases(secs(2), secs(3), secs(8))
}

fn short_outage() -> Scenario {
    Scenario::total_outage().phases(secs(2), secs(5), secs(3))
}

#[test]
fn server_never_runs_more_than_its_workers() {
    let report = capacity_drop(&Setup::tower_retry(false), &short_capacity_drop(500));
    let c = &report.run.counts;
    assert_eq!(c.max_busy, 10, "saturated, never above the 10 workers");
    assert!(c.shed.iter().sum::<u64>() > 0, "the queue overflowed");
}

#[test]
fn timed_out_request_still_costs_a_worker() {
    virtual_runtime().block_on(async {
        let (server, _workers) = Server::start(ServerConfig {
            workers: 1,
            service: Duration::from_millis(10),
            queue: 10,
            slow: None,
        });
        let start = Instant::now();
        // Three callers give up after 5 ms; their jobs stay queued.
        let mut impatient = tower::timeout::Timeout::new(server.clone(), Duration::from_millis(5));
        let gave_up: Vec<_> = (0..3).map(|i| impatient.call(i)).collect();
        for r in futures_util::future::join_all(gave_up).await {
            assert!(r.unwrap_err().is::<tower::timeout::error::Elapsed>());
        }
        // A patient caller queued behind them waits for all three (3 × 10 ms) and its own.
        let answer = server.clone().oneshot(7).await.unwrap();
        assert_eq!(answer, 7);
        assert_eq!(start.elapsed(), Duration::from_millis(40));
        let stats = server.stats();
        assert_eq!((stats.served, stats.served_abandoned), (4, 3));
    });
}

#[test]
fn full_queue_sheds_at_once() {
    virtual_runtime().block_on(async {
        let (mut server, _workers) = Server::start(ServerConfig {
            workers: 1,
            service: Duration::from_millis(10),
            queue: 2,
            slow: None,
        });
        // The worker has not run yet: two calls fill the queue, the third is shed.
        let first = server.call(1);
        let second = server.call(2);
        let start = Instant::now();
        let shed = server.call(3).await.unwrap_err();
        assert!(shed.is::<Shed>());
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!((first.await.unwrap(), second.await.unwrap()), (1, 2));
        assert_eq!(start.elapsed(), Duration::from_millis(20));
    });
}

#[test]
fn service_time_is_taken_when_a_job_starts() {
    virtual_runtime().block_on(async {
        let (server, _workers) = Server::start(ServerConfig {
            workers: 1,
            service: Duration::from_millis(10),
            queue: 10,
            // Jobs started in [5 ms, 100 ms) take 30 ms.
            slow: Some((Duration::from_millis(5), Duration::from_millis(100), 3)),
        });
        let start = Instant::now();
        let a = server.clone().oneshot(1);
        let b = server.clone().oneshot(2);
        let (a, b) = tokio::join!(
            async {
                a.await.unwrap();
                start.elapsed()
            },
            async {
                b.await.unwrap();
                start.elapsed()
            }
        );
        // The first started at 0 (10 ms); the second at 10 ms, inside the slow span (30 ms).
        assert_eq!(a, Duration::from_millis(10));
        assert_eq!(b, Duration::from_millis(40));
    });
}

#[test]
fn plain_client_recovers_after_the_queue_drains() {
    let r = capacity_drop(&Setup::plain(), &short_capacity_drop(500));
    // The stale queue drains at 1,000 − 800 = 200/s: from 500 down to ~90 (100 ms of work).
    let recovery = r.recovery.expect("the plain client recovers");
    assert!(
        (Duration::from_millis(1800)..=Duration::from_millis(2400)).contains(&recovery),
        "{recovery:?}"
    );
    assert_eq!(r.healthy_local_rejections, 0);
    // Only the first ~40 calls of the trigger are answered within their 100 ms.
    let s = r.run.scenario;
    let trigger = s.bucket_of(s.healthy)..s.bucket_of(s.event_end());
    let good: u64 = r.run.counts.good[trigger].iter().sum();
    assert!((35..=45).contains(&good), "{good} good calls");
    assert!((r.attempts_per_original_trigger - 1.0).abs() < 1e-9);
}

#[test]
fn tower_retry_without_budget_is_metastable() {
    let r = capacity_drop(&Setup::tower_retry(false), &short_capacity_drop(500));
    assert_eq!(r.recovery, None, "retries keep the queue full");
    let s = r.run.scenario;
    let last_second = r.run.success(s.total() - secs(1), s.total());
    assert!(last_second < 0.05, "{last_second}");
    assert!(r.attempts_per_original_after > 2.5);
}

#[test]
fn baseline_defaults_miss_the_capacity_goals() {
    // Today's defaults: the layer's budget protects the downstream from retries only.
    let setup = Setup::ours_default();
    let a = capacity_drop(&setup, &short_capacity_drop(500));
    let missed = capacity_drop_goals(&[&a]);
    assert!(
        missed.iter().any(|m| m.contains("during the trigger")),
        "{missed:?}"
    );
    assert!(missed.iter().any(|m| m.contains("recovery")), "{missed:?}");
}

/// A set-up that rejects every other call locally (at once, typed): checks that local
/// rejections are counted by the set-up's predicate and never reach the downstream.
#[derive(Debug)]
struct Rejected;

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rejected locally")
    }
}

impl std::error::Error for Rejected {}

fn every_other_rejected() -> Setup {
    Setup::per_instance("every other call rejected", |_, inner: Client| {
        boxed(tower::service_fn(move |req: u64| {
            let call = (!req.is_multiple_of(2)).then(|| inner.clone().oneshot(req));
            async move {
                match call {
                    Some(call) => call.await,
                    None => Err::<u64, BoxError>(Box::new(Rejected)),
                }
            }
        }))
    })
    .with_local_rejection(|e| e.is::<Rejected>())
}

#[test]
fn local_rejections_are_counted_and_never_reach_the_downstream() {
    let r = total_outage(&every_other_rejected(), &short_outage());
    let c = &r.run.counts;
    let originals: u64 = c.originals.iter().sum();
    assert_eq!(c.local_rejections.iter().sum::<u64>(), originals / 2);
    assert_eq!(c.attempts.iter().sum::<u64>(), originals / 2);
    assert_eq!(r.rejection_latency, Some(Duration::ZERO));
    assert!((r.shed_after_warmup - 0.5).abs() < 1e-9);
    assert!((r.attempts_per_original_after_warmup - 0.5).abs() < 1e-9);
    let missed = total_outage_goals(&r);
    assert!(
        missed.iter().any(|m| m.contains("healthy phase")),
        "{missed:?}"
    );
}

#[test]
fn total_outage_amplification_of_the_baselines() {
    let s = short_outage();
    let plain = total_outage(&Setup::plain(), &s);
    assert!((plain.attempts_per_original_after_warmup - 1.0).abs() < 1e-9);
    // Blips outside the outage: a plain client never reaches 100 % success.
    assert_eq!(plain.full_success_after, None);
    let storm = total_outage(&Setup::tower_retry(false), &s);
    assert!((storm.attempts_per_original_after_warmup - 3.0).abs() < 0.01);
    assert!(storm.full_success_after.is_some_and(|d| d <= secs(1)));
    let ours = total_outage(&Setup::ours_default(), &s);
    assert!(ours.attempts_per_original_after_warmup < 1.1);
    assert!(!total_outage_goals(&ours).is_empty(), "no admission yet");
}

#[test]
fn ten_percent_failures_are_repaired_without_rejections() {
    let s = Scenario::failure_rate(0.1).phases(secs(2), secs(5), secs(1));
    let r = failure_rate(&Setup::ours_default(), &s);
    assert_eq!(partial_failure_goals(&r), Vec::<String>::new());
    assert!(r.attempts_per_original > 1.09 && r.attempts_per_original < 1.13);
}

#[test]
fn runs_are_deterministic() {
    let s = Scenario::capacity_drop(500).phases(secs(1), secs(2), secs(2));
    let a = simulate(&Setup::ours_default(), &s);
    let b = simulate(&Setup::ours_default(), &s);
    assert_eq!(a.counts.good, b.counts.good);
    assert_eq!(a.counts.attempts, b.counts.attempts);
    assert!(matches!(
        s.downstream,
        Downstream::Queued { queue: 500, .. }
    ));
}

#[test]
fn the_rebuilt_queue_changes_nothing_without_the_layer() {
    // The server half's queue (semaphores a layer can wait on) against the original one.
    for setup in [Setup::plain(), Setup::ours_default()] {
        let s = short_capacity_drop(500);
        let a = simulate(&setup, &s);
        let b = simulate(&setup, &s.with_front(Front::Semaphores));
        let (a, b) = (&a.counts, &b.counts);
        assert_eq!(a.good, b.good, "{}", setup.name);
        assert_eq!(a.attempts, b.attempts, "{}", setup.name);
        assert_eq!(a.shed, b.shed, "{}", setup.name);
        assert_eq!(
            (a.max_busy, a.served, a.served_abandoned),
            (b.max_busy, b.served, b.served_abandoned),
            "{}",
            setup.name
        );
        assert_eq!(b.expired_dropped, 0);
    }
}

/// The server half (`DropExpiredLayer` in front of the workers' queue, each attempt carrying
/// its 100 ms timeout): what waited past its caller's deadline is dropped when it reaches the
/// front instead of costing a worker. Measured on the full scenario in BENCHMARKS.md.
#[test]
fn the_server_half_serves_no_fewer_calls_and_recovers_at_once_for_a_plain_client() {
    let s = short_capacity_drop(500);
    let without = capacity_drop(&Setup::plain(), &s);
    let with = capacity_drop(&Setup::plain(), &s.with_server_half());
    assert!(
        with.good_per_sec_trigger >= without.good_per_sec_trigger,
        "{} < {}",
        with.good_per_sec_trigger,
        without.good_per_sec_trigger
    );
    // No stale queue left to drain when the trigger ends.
    assert!(
        with.recovery
            .is_some_and(|d| d <= Duration::from_millis(100)),
        "{:?}",
        with.recovery
    );
    assert!(without.recovery.is_some_and(|d| d >= secs(1)));
    let (w, wo) = (&with.run.counts, &without.run.counts);
    assert!(w.expired_dropped > 0);
    assert!(
        w.served_abandoned < wo.served_abandoned / 2,
        "{} vs {}",
        w.served_abandoned,
        wo.served_abandoned
    );
    assert_eq!(with.healthy_local_rejections, 0);
    // FIFO still hands a worker the oldest request with time left, which has too little to
    // finish (30 ms of work during the trigger): `min_time_left` drops those too.
    let floor = capacity_drop(
        &Setup::plain(),
        &s.with_front(Front::DropExpired(Duration::from_millis(30))),
    );
    assert!(
        floor.good_per_sec_trigger > 300.0,
        "{}",
        floor.good_per_sec_trigger
    );
    assert_eq!(floor.run.counts.served_abandoned, 0);
}

#[test]
fn the_server_half_serves_no_fewer_calls_with_the_defaults() {
    let s = short_capacity_drop(500);
    let setup = sim::Setup::server_half_rows()
        .pop()
        .expect("the defaults' row");
    let without = capacity_drop(&setup, &s);
    let with = capacity_drop(&setup, &s.with_server_half());
    assert!(
        with.good_per_sec_trigger >= without.good_per_sec_trigger,
        "{} < {}",
        with.good_per_sec_trigger,
        without.good_per_sec_trigger
    );
    assert_eq!(with.healthy_local_rejections, 0);
}
