//! The adaptive budget shared through a real `redis-server`: several instances drain one
//! stock, successes anywhere refill it, it is capped, refilled by time on the server's clock,
//! and it bounds a fleet of retry layers. (The arithmetic itself is unit-tested with paused
//! time in `src/budget/adaptive.rs`.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::budget::take;
use support::redis::RedisServer;
use tower::{Layer, service_fn};
use tower_retrier::budget::redis::{AdaptiveMode, Mode, RedisBudgetBuilder, Unavailable};
use tower_retrier::budget::{AdaptiveBudget, Budget, RedisBudget};
use tower_retrier::{RetryConfig, RetryLayer};

fn builder(
    name: &str,
    max_retries: u32,
    per_success: f64,
    min_per_sec: u32,
) -> RedisBudgetBuilder<AdaptiveMode> {
    RedisBudget::adaptive(name)
        .max_retries(max_retries)
        .per_success(per_success)
        .min_per_sec(min_per_sec)
        .lease_size(1)
        .flush_interval(Duration::from_millis(20))
        // Generous for a loaded CI machine; the fault tests cover short timeouts.
        .command_timeout(Duration::from_millis(500))
        .on_unavailable(Unavailable::Deny)
}

async fn fleet(
    server: &RedisServer,
    name: &str,
    n: usize,
    b: RedisBudgetBuilder<AdaptiveMode>,
) -> Vec<RedisBudget> {
    let _ = name;
    let mut out = Vec::new();
    for _ in 0..n {
        // One client per instance, as in a fleet.
        out.push(
            b.clone()
                .build_from_url(&server.url())
                .await
                .expect("build"),
        );
    }
    out
}

/// Waits out the "Redis said empty" mark (one flush interval) so the next ask goes to Redis.
async fn past_empty_mark() {
    tokio::time::sleep(Duration::from_millis(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_drain_one_stock_and_successes_anywhere_refill_it() {
    let server = RedisServer::start();
    let b = fleet(&server, "fleet", 4, builder("fleet", 20, 0.5, 0)).await;
    assert_eq!(b[0].mode(), Mode::Adaptive);
    // The stock starts full and is shared: 20 retries for the whole fleet.
    assert_eq!(take(&b[0], 12).await, 12);
    assert_eq!(take(&b[1], 12).await, 8);
    assert_eq!(take(&b[2], 5).await, 0, "drained by the others");
    assert_eq!(b[1].stats().shared_stock, Some(0));

    // Ten successes on instance 3 pay for five retries, which instance 2 gets.
    for _ in 0..10 {
        b[3].record_success();
    }
    b[3].flush().await.unwrap();
    assert_eq!(b[3].stats().shared_stock, Some(5));
    past_empty_mark().await;
    assert_eq!(take(&b[2], 10).await, 5);

    // Original requests do not refill it: only successes do.
    for _ in 0..1000 {
        b[0].deposit();
    }
    b[0].flush().await.unwrap();
    past_empty_mark().await;
    assert_eq!(take(&b[0], 5).await, 0);

    // Capped at max_retries, however many successes.
    for _ in 0..1000 {
        b[1].record_success();
    }
    b[1].flush().await.unwrap();
    assert_eq!(b[1].stats().shared_stock, Some(20));
    past_empty_mark().await;
    assert_eq!(take(&b[2], 30).await, 20);
    for x in &b {
        assert_eq!(x.stats().fallback_decisions, 0, "{:?}", x.stats());
    }

    // One small hash, on the server's clock, expiring when idle.
    assert_eq!(server.command(&["TYPE", "{rb:fleet}:q"]), "hash");
    let pttl: i64 = server.command(&["PTTL", "{rb:fleet}:q"]).parse().unwrap();
    assert!(pttl > 0 && pttl <= 20_000, "expires after 2 × ttl: {pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_refills_on_the_server_clock() {
    let server = RedisServer::start();
    let b = builder("floor", 50, 0.2, 20)
        .build_from_url(&server.url())
        .await
        .unwrap();
    assert_eq!(take(&b, 60).await, 50);
    // Real time: 20/s for 500 ms = 10, give or take scheduling on a loaded machine.
    tokio::time::sleep(Duration::from_millis(500)).await;
    past_empty_mark().await;
    let refilled = take(&b, 60).await;
    assert!((9..=20).contains(&refilled), "{refilled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_never_hand_out_more_than_the_stock() {
    let server = RedisServer::start();
    let b = fleet(
        &server,
        "leases",
        3,
        builder("leases", 25, 0.2, 0).lease_size(10),
    )
    .await;
    let mut granted = 0;
    for _ in 0..4 {
        for x in &b {
            granted += take(x, 5).await;
        }
    }
    assert_eq!(granted, 25, "the fleet's stock, whatever the leases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_a_fleet_of_retry_layers_in_an_outage_and_recovers_with_successes() {
    let server = RedisServer::start();
    let budgets = fleet(&server, "layers", 2, builder("layers", 5, 0.2, 0)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let config = RetryConfig::builder()
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(2))
        .build()
        .unwrap();
    let layers: Vec<_> = budgets
        .iter()
        .map(|b| {
            let (calls, down) = (calls.clone(), down.clone());
            RetryLayer::new(config.clone())
                .with_budget(b.clone())
                .layer(service_fn(move |x: u32| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    let down = down.load(Ordering::Relaxed);
                    async move {
                        if down {
                            Err(std::io::Error::other("down"))
                        } else {
                            Ok(x)
                        }
                    }
                }))
        })
        .collect();
    // Outage: 20 calls over two instances, 3 attempts each wanted; 5 retries in all.
    for i in 0..20 {
        let _ = layers[i % 2].clone().oneshot(i as u32).await;
    }
    assert_eq!(calls.load(Ordering::Relaxed), 20 + 5);
    // Recovery: 25 successes across the fleet pay for 5 retries again.
    down.store(false, Ordering::Relaxed);
    for i in 0..25 {
        layers[i % 2].clone().oneshot(i as u32).await.unwrap();
    }
    for b in &budgets {
        b.flush().await.unwrap();
    }
    past_empty_mark().await;
    assert_eq!(take(&budgets[0], 10).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_is_a_local_adaptive_budget() {
    // Redis is there but the policy decides while it is down: kill it and check the local
    // stock (max_retries of this instance), fed by this instance's successes.
    let mut server = RedisServer::start();
    let b = RedisBudget::adaptive("fb")
        .max_retries(10)
        .min_per_sec(0)
        .lease_size(1)
        .flush_interval(Duration::from_millis(20))
        .command_timeout(Duration::from_millis(50))
        .build_from_url(&server.url())
        .await
        .unwrap();
    server.kill();
    let mut granted = 0;
    for _ in 0..30 {
        granted += usize::from(
            tokio::time::timeout(Duration::from_millis(500), b.withdraw())
                .await
                .expect("bounded"),
        );
    }
    // Redis may grant a few before the kill is noticed; the local stock grants 10 at most.
    assert!((10..=11).contains(&granted), "{granted}");
    for _ in 0..20 {
        b.record_success();
    }
    // The background task moves this instance's successes into the fallback.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(take(&b, 10).await, 4, "20 successes × 0.2");
    assert!(b.stats().fallback_decisions >= 30);
}

#[test]
fn the_layer_default_is_the_adaptive_budget() {
    let layer = RetryLayer::new(RetryConfig::default());
    let _: &AdaptiveBudget = layer.budget();
    assert_eq!(layer.budget().max_retries(), 100);
    assert_eq!(layer.budget().per_success(), 0.2);
}
