//! The adaptive `RedisBudget` when Redis misbehaves, as the ratio mode is tested in
//! `redis_budget_faults.rs`: down at start, killed mid-run, paused (slow), restarted (scripts
//! gone), and a key of the wrong type. No retry waits longer than the command timeout, nothing
//! panics, and decisions return to Redis once it is back.

mod support;

use std::time::Duration;
use support::redis::RedisServer;
use support::redis_faults::{COMMAND_TIMEOUT, bounded, decides_through_redis};
use tower_retrier::budget::redis::{
    AdaptiveMode, RedisBudgetBuilder, RedisBudgetError, Unavailable,
};
use tower_retrier::budget::{Budget, RedisBudget};

fn builder(name: &str) -> RedisBudgetBuilder<AdaptiveMode> {
    RedisBudget::adaptive(name)
        .max_retries(1000)
        .per_success(0.2)
        .min_per_sec(0)
        .lease_size(4)
        .flush_interval(Duration::from_millis(20))
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_is_a_clear_error_or_a_lazy_fallback() {
    let port = RedisServer::unused_port();
    let url = format!("redis://127.0.0.1:{port}");
    let err = tokio::time::timeout(Duration::from_secs(5), builder("down").build_from_url(&url))
        .await
        .expect("construction is bounded by connect_timeout")
        .expect_err("nothing listens there");
    assert!(
        matches!(err, RedisBudgetError::Connect { ref server, .. } if *server == format!("127.0.0.1:{port}")),
        "{err:?}"
    );

    let b = builder("lazy")
        .max_retries(10)
        .lazy_connect(true)
        .build_from_url(&url)
        .await
        .expect("lazy construction succeeds without Redis");
    let mut granted = 0;
    for _ in 0..30 {
        granted += usize::from(bounded(&b).await);
    }
    assert_eq!(granted, 10, "the local adaptive stock decides");
    assert_eq!(b.stats().round_trips, 0, "no network while known down");
    let _server = RedisServer::start_on(port);
    decides_through_redis(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_run_then_restarted() {
    let mut server = RedisServer::start();
    let b = builder("killed")
        .build_from_url(&server.url())
        .await
        .unwrap();
    let mut errors_at_kill = 0;
    for i in 0..3000 {
        b.record_success();
        if i == 1000 {
            server.kill();
            errors_at_kill = b.stats().backend_errors;
        }
        if i == 2000 {
            server.restart();
        }
        if (1000..2000).contains(&i) && i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if i % 3 == 0 || (1000..2000).contains(&i) {
            bounded(&b).await;
        }
    }
    let s = b.stats();
    println!("killed: {s:?}");
    assert!(s.fallback_decisions > 0, "{s:?}");
    assert!(
        s.backend_errors - errors_at_kill < 100,
        "known down = no timeout paid per retry: {s:?}"
    );
    decides_through_redis(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_falls_back_within_the_timeout_and_recovers() {
    let server = RedisServer::start();
    let b = builder("paused")
        .on_unavailable(Unavailable::Allow)
        .build_from_url(&server.url())
        .await
        .unwrap();
    decides_through_redis(&b).await;
    server.pause(1500);
    let before = b.stats();
    for _ in 0..200 {
        assert!(bounded(&b).await, "policy Allow grants while Redis is slow");
    }
    let during = b.stats();
    assert!(during.fallback_decisions > before.fallback_decisions);
    assert!(
        during.backend_errors - before.backend_errors <= 5,
        "timeout paid once, then straight to the policy: {during:?}"
    );
    decides_through_redis(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_flushed_or_server_restarted() {
    let mut server = RedisServer::start();
    let b = builder("restarted")
        .lease_size(1)
        .build_from_url(&server.url())
        .await
        .unwrap();
    assert!(bounded(&b).await);
    assert_eq!(server.command(&["SCRIPT", "FLUSH"]), "OK");
    assert!(bounded(&b).await, "NOSCRIPT: reloaded, no fallback");
    let s = b.stats();
    assert_eq!((s.fallback_decisions, s.backend_errors), (0, 0), "{s:?}");

    server.restart();
    for _ in 0..20 {
        bounded(&b).await;
    }
    decides_through_redis(&b).await;
    // The new server holds the stock again (full at start, some taken since).
    let stock: i64 = server
        .command(&["HGET", "{rb:restarted}:q", "s"])
        .parse()
        .unwrap();
    assert!(stock < 1000 * 1_000_000 && stock > 0, "{stock}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_the_wrong_type_falls_back_without_panicking() {
    let server = RedisServer::start();
    // Something else wrote a string where the budget keeps its hash.
    assert_eq!(server.command(&["SET", "{rb:clobbered}:q", "oops"]), "OK");
    let b = builder("clobbered")
        .max_retries(10)
        .build_from_url(&server.url())
        .await
        .unwrap();
    let mut granted = 0;
    for _ in 0..30 {
        granted += usize::from(bounded(&b).await);
        b.record_success();
    }
    let s = b.stats();
    println!("wrong type: {s:?}");
    assert!(s.backend_errors > 0 && s.fallback_decisions > 0, "{s:?}");
    assert!(granted <= 30);
    // Once the key is gone the budget uses Redis again.
    server.command(&["DEL", "{rb:clobbered}:q"]);
    decides_through_redis(&b).await;
}
