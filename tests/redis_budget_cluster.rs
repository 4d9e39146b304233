//! RedisBudget on a 3-node Redis Cluster: the same decisions as the local ratio budget.

mod support;

use std::time::Duration;
use support::redis::RedisCluster;
use tower_retrier::budget::redis::Unavailable;
use tower_retrier::budget::{Budget, RatioBudget, RedisBudget};

const TTL: Duration = Duration::from_secs(10);

async fn take<B: Budget>(b: &B, n: usize) -> usize {
    let mut granted = 0;
    for _ in 0..n {
        granted += usize::from(b.withdraw().await);
    }
    granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_gives_the_same_decisions_as_the_local_budget() {
    let cluster = RedisCluster::start(3);
    // Names chosen to land on different nodes' slots; every key of a budget shares its tag.
    let cases: [(&str, u32, f64, [u32; 3]); 4] = [
        ("orders", 0, 0.5, [100, 10, 0]),
        ("search", 1, 0.2, [37, 50, 3]),
        ("billing:v2", 0, 0.6, [100, 0, 0]),
        ("users", 2, 0.0, [1000, 0, 0]),
    ];
    for (name, min, ratio, deposits) in cases {
        let local = RatioBudget::new(TTL, min, ratio).unwrap();
        let shared = RedisBudget::builder(name)
            .mode(tower_retrier::budget::redis::Mode::Ratio)
            .ttl(TTL)
            .min_per_sec(min)
            .ratio(ratio)
            .lease_size(1)
            .command_timeout(Duration::from_millis(500))
            .on_unavailable(Unavailable::Deny)
            .build_from_url(&cluster.url())
            .await
            .expect("build on the cluster");
        for (step, n) in deposits.into_iter().enumerate() {
            for _ in 0..n {
                local.deposit();
                shared.deposit();
            }
            shared.flush().await.expect("flush");
            let (l, s) = (take(&local, 40).await, take(&shared, 40).await);
            assert_eq!(l, s, "{name} step {step}");
        }
        let stats = shared.stats();
        assert_eq!(stats.fallback_decisions, 0, "{name}: {stats:?}");
    }
    // The keys are spread over the nodes (not all on one), each within its own slot.
    let nodes_with_keys = cluster
        .nodes
        .iter()
        .filter(|n| n.command(&["DBSIZE"]) != "0")
        .count();
    assert!(nodes_with_keys >= 2, "keys on {nodes_with_keys} node(s)");
}
