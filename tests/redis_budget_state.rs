//! What a Redis budget does with shared state it did not expect, on a real `redis-server`:
//! values out of range (corruption) are reset, counted and logged once, instead of sticking
//! the fleet's budget at zero; instances sharing a name with other parameters are detected,
//! counted and logged.

mod support;

use std::time::Duration;
use support::redis::RedisServer;
use tower_retrier::budget::redis::{AdaptiveMode, RedisBudgetBuilder, Unavailable};
use tower_retrier::budget::{Budget, RedisBudget};

fn builder(name: &str, max_retries: u32) -> RedisBudgetBuilder<AdaptiveMode> {
    tuned(
        RedisBudget::adaptive(name)
            .max_retries(max_retries)
            .per_success(0.5)
            .min_per_sec(0),
    )
}

/// The settings every budget here shares, whatever its mode.
fn tuned<M>(b: RedisBudgetBuilder<M>) -> RedisBudgetBuilder<M> {
    b.lease_size(1)
        .flush_interval(Duration::from_millis(20))
        .command_timeout(Duration::from_millis(500))
        .on_unavailable(Unavailable::Deny)
}

async fn take<B: Budget>(b: &B, n: usize) -> usize {
    let mut granted = 0;
    for _ in 0..n {
        if b.withdraw().await {
            granted += 1;
        }
        // Past the "Redis said empty" mark, so every ask goes to Redis.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_adaptive_stock_is_reset_counted_and_logged_once() {
    let server = RedisServer::start();
    let b = builder("corrupt", 20)
        .build_from_url(&server.url())
        .await
        .unwrap();
    assert_eq!(take(&b, 5).await, 5);
    // A stock below zero (what `-99999999999999999999` parses to) used to grant nothing
    // for good while Redis reported healthy.
    server.command(&["HSET", "{rb:corrupt}:q", "s", "-99999999999999999999"]);
    assert_eq!(take(&b, 5).await, 5, "reset to a full stock");
    let stats = b.stats();
    assert_eq!(stats.corrupt_state_repaired, 1, "{stats:?}");
    assert_eq!(stats.fallback_decisions, 0, "Redis answered: no fall-back");
    assert_eq!(stats.shared_stock, Some(15));
    // A stock that is not a number, a refill time that is not one either.
    server.command(&["HSET", "{rb:corrupt}:q", "s", "lots", "t", "-1e300"]);
    assert_eq!(take(&b, 3).await, 3);
    assert_eq!(b.stats().corrupt_state_repaired, 2);
    assert_eq!(b.stats().shared_stock, Some(17));
    // Healthy state is left alone.
    assert_eq!(take(&b, 3).await, 3);
    assert_eq!(b.stats().corrupt_state_repaired, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_ratio_window_count_is_dropped_and_counted() {
    let server = RedisServer::start();
    let b = tuned(RedisBudget::ratio("window").ratio(0.5).min_per_sec(1))
        .build_from_url(&server.url())
        .await
        .unwrap();
    assert_eq!(take(&b, 1).await, 1);
    // The withdrawal's slot field, set to an absurd count: every grant refused.
    let fields = server.command(&["HKEYS", "{rb:window}:w"]);
    let field = fields
        .split_whitespace()
        .find(|f| f.starts_with('w'))
        .unwrap_or_else(|| panic!("a withdrawal field in {fields:?}"))
        .to_owned();
    server.command(&["HSET", "{rb:window}:w", &field, "99999999999999999999"]);
    server.command(&["HSET", "{rb:window}:w", "d0x", "1"]);
    assert!(
        take(&b, 3).await >= 1,
        "the bad count no longer blocks the window"
    );
    let stats = b.stats();
    assert!(stats.corrupt_state_repaired >= 1, "{stats:?}");
    assert_eq!(stats.fallback_decisions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_name_with_other_parameters_are_detected() {
    let server = RedisServer::start();
    let big = builder("shared", 1000)
        .build_from_url(&server.url())
        .await
        .unwrap();
    let small = builder("shared", 5)
        .build_from_url(&server.url())
        .await
        .unwrap();
    let same = builder("shared", 1000)
        .build_from_url(&server.url())
        .await
        .unwrap();
    assert_eq!(take(&big, 2).await, 2);
    assert_eq!(take(&same, 2).await, 2);
    take(&small, 2).await;
    assert_eq!(big.stats().parameter_mismatches, 0);
    assert_eq!(same.stats().parameter_mismatches, 0);
    assert_eq!(small.stats().parameter_mismatches, 2, "{:?}", small.stats());
    // Deposits (flushes) check too.
    small.record_success();
    small.flush().await.unwrap();
    assert_eq!(small.stats().parameter_mismatches, 3);
}
