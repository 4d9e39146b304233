//! The success path never talks to Redis: deposits (ratio mode) and successes (adaptive mode)
//! are flushed by one script call per flush interval per instance, whatever the request rate.
//! Counted by the server itself (`INFO commandstats`), with real time (Redis is real).
#![cfg(feature = "redis")]

mod support;

use std::time::{Duration, Instant};
use support::redis::RedisServer;
use tower_retrier::budget::redis::{Mode, RedisBudgetBuilder};
use tower_retrier::budget::{Budget, RedisBudget};

const FLUSH: Duration = Duration::from_millis(100);
const PHASE: Duration = Duration::from_secs(1);

/// What the success path of `mode` reports for each request.
fn success_path(b: &RedisBudget, mode: Mode) {
    match mode {
        Mode::Ratio => b.deposit(),
        _ => b.record_success(),
    }
}

/// Runs the success path `per_tick` times every millisecond for one `PHASE`; returns the
/// script calls the server received meanwhile and the requests made.
async fn phase(server: &RedisServer, b: &RedisBudget, mode: Mode, per_tick: u64) -> (u64, u64) {
    let before = server.command_calls("evalsha");
    let start = Instant::now();
    let mut deposits = 0;
    while start.elapsed() < PHASE {
        for _ in 0..per_tick {
            success_path(b, mode);
        }
        deposits += per_tick;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (server.command_calls("evalsha") - before, deposits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_script_call_per_flush_interval_whatever_the_request_rate() {
    cadence(Mode::Ratio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_successes_are_flushed_at_the_same_cadence() {
    cadence(Mode::Adaptive).await;
}

async fn cadence(mode: Mode) {
    let server = RedisServer::start();
    fn tuned<M>(b: RedisBudgetBuilder<M>) -> RedisBudgetBuilder<M> {
        b.flush_interval(FLUSH)
            .command_timeout(Duration::from_millis(500))
    }
    let url = server.url();
    let b = match mode {
        Mode::Ratio => {
            tuned(RedisBudget::ratio("cadence"))
                .build_from_url(&url)
                .await
        }
        _ => {
            tuned(RedisBudget::adaptive("cadence"))
                .build_from_url(&url)
                .await
        }
    }
    .unwrap();
    let (slow_calls, slow) = phase(&server, &b, mode, 1).await;
    let (fast_calls, fast) = phase(&server, &b, mode, 1_000).await;
    println!("{slow} deposits: {slow_calls} calls; {fast} deposits: {fast_calls} calls");
    assert!(
        fast >= 100 * slow,
        "the second phase is far busier: {fast} vs {slow}"
    );
    // The flusher sleeps a whole interval between calls, so a 1 s phase holds at most
    // 1 s / 100 ms + 1 calls (the +1: a call just before the phase ends may land in the
    // next one's count). That bound is exact, independent of load and of the rate.
    let most = (PHASE.as_millis() / FLUSH.as_millis()) as u64 + 1;
    for calls in [slow_calls, fast_calls] {
        assert!(calls <= most, "{calls} script calls in {PHASE:?}");
        // And it does flush: measured 9 to 10 calls per phase at load 3 to 5 on 2 cores; a
        // starved flusher could fall behind, hence only half.
        assert!(calls >= most / 2, "{calls} script calls in {PHASE:?}");
    }
    // Every deposit (or success) reached Redis, in those few calls.
    b.flush().await.unwrap();
    assert_eq!(b.stats().deposits_flushed, slow + fast);
    assert_eq!(
        b.stats().round_trips,
        0,
        "no withdrawals: the success path alone"
    );
}
