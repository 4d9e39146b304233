//! RedisBudget on a 3-node Redis Cluster: the same decisions as the local ratio budget.

mod support;

use std::time::Duration;
use support::budget::take;
use support::redis::RedisCluster;
use tower_retrier::budget::redis::Unavailable;
use tower_retrier::budget::{Budget, RatioBudget, RedisBudget};

const TTL: Duration = Duration::from_secs(10);

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
        let shared = RedisBudget::ratio(name)
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

const COMMAND_TIMEOUT: Duration = Duration::from_millis(50);
/// Scheduling noise on a loaded 2-core machine (see `redis_budget_faults.rs`, where the
/// slowest withdrawal measured 95 ms at load 5+, 45 ms past the timeout).
const SLACK: Duration = Duration::from_millis(100);

/// A budget on the cluster whose withdrawals we can count exactly: the ratio mode with a
/// floor of `per_sec` over 10 s (10 × `per_sec` retries fleet-wide), no ratio, one token per
/// round trip.
async fn instance(cluster: &RedisCluster, name: &str, per_sec: u32) -> RedisBudget {
    RedisBudget::ratio(name)
        .ttl(TTL)
        .min_per_sec(per_sec)
        .ratio(0.0)
        .lease_size(1)
        .flush_interval(Duration::from_millis(20))
        .command_timeout(COMMAND_TIMEOUT)
        .on_unavailable(Unavailable::Fallback)
        .build_from_url(&cluster.url())
        .await
        .expect("build on the cluster")
}

/// A withdrawal that must finish within the command timeout (plus scheduling slack).
async fn bounded(b: &RedisBudget) -> bool {
    tokio::time::timeout(COMMAND_TIMEOUT + SLACK, b.withdraw())
        .await
        .expect("a retry waited longer than the command timeout for the budget")
}

/// Polls `cond` until it holds (at most 20 s: a cluster node rejoining is the slow part).
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Withdrawals from `a` and `b` alternately until Redis denies both: how many Redis granted
/// each, and how many of their round trips failed (timed out) meanwhile. Decisions the
/// outage policy took after such a failure are neither counted nor an end to the drain.
async fn drain(a: &RedisBudget, b: &RedisBudget) -> (usize, usize, usize) {
    let errors = || (a.stats().backend_errors + b.stats().backend_errors) as usize;
    let before = errors();
    let mut granted = [0, 0];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut denied_by_redis = 0;
        for (i, budget) in [a, b].into_iter().enumerate() {
            let fallbacks = budget.stats().fallback_decisions;
            let yes = bounded(budget).await;
            if budget.stats().fallback_decisions == fallbacks {
                granted[i] += usize::from(yes);
                denied_by_redis += usize::from(!yes);
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await; // let the probe run
            }
        }
        if denied_by_redis == 2 {
            return (granted[0], granted[1], errors() - before);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis never denied both"
        );
    }
}

/// The two instances shared one floor: `used` withdrawals were in Redis' window before the
/// drain, `x` and `y` were granted during it. Exact, except that a round trip that timed out
/// on a saturated machine may still have been counted by Redis (at most one per failed
/// round trip, `lost`): the fleet never gets more than the floor.
fn one_floor(floor: usize, used: usize, (x, y, lost): (usize, usize, usize)) {
    assert!(x > 0 && y > 0, "both instances drew from Redis: {x} + {y}");
    let total = used + x + y;
    assert!(
        total <= floor && total + lost >= floor,
        "one floor of {floor} for the fleet: {used} + {x} + {y}, {lost} round trips failed"
    );
}

/// The node that owns the budget's slot dies (SIGKILL) in the middle of traffic, then comes
/// back with its slots: no withdrawal waits past the command timeout, the outage policy
/// (the local fallback) decides meanwhile, and both instances share Redis again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_owner_dies_mid_load_and_returns() {
    let mut cluster = RedisCluster::start(3);
    let name = "failover";
    let slot = cluster.keyslot(&format!("{{rb:{name}}}:w"));
    let owner = cluster.owner_of(slot).expect("an owner");
    let (a, b) = (
        instance(&cluster, name, 1).await,
        instance(&cluster, name, 1).await,
    );
    // Shared before: 10 retries for the two together.
    one_floor(10, 0, drain(&a, &b).await);

    let errors_before = a.stats().backend_errors;
    for i in 0..1500 {
        a.deposit();
        b.deposit();
        if i == 300 {
            cluster.nodes[owner].kill();
        }
        bounded(&a).await;
        bounded(&b).await;
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await; // spread over ~1 s
        }
    }
    let s = a.stats();
    println!("during the outage: {s:?}");
    assert!(!s.redis_up, "{s:?}");
    assert!(s.fallback_decisions > 0, "the outage policy decided: {s:?}");
    // Known down = no timeout paid per retry: a handful of errors, not one per withdrawal.
    assert!(s.backend_errors - errors_before < 100, "{s:?}");

    cluster.nodes[owner].restart(); // same port and nodes.conf: same ID, same slots
    for budget in [&a, &b] {
        eventually("Redis to be used again", || async {
            let before = budget.stats();
            bounded(budget).await;
            let after = budget.stats();
            after.redis_up
                && after.round_trips > before.round_trips
                && after.fallback_decisions == before.fallback_decisions
        })
        .await;
    }
    // Shared again: the restarted node holds a fresh window (no persistence), and the two
    // instances split what is left of one floor of 10 between them.
    let key = format!("{{rb:{name}}}:w");
    let used = withdrawals(&cluster.nodes[owner], &key);
    one_floor(10, used, drain(&a, &b).await);
    assert_eq!(withdrawals(&cluster.nodes[owner], &key), 10);
}

/// Withdrawals recorded in a budget's window hash (the `w<slot>` fields).
fn withdrawals(node: &support::redis::RedisServer, key: &str) -> usize {
    // ASKING: during a move, the importing node answers only after it.
    let flat = node.command_asking(&["HGETALL", key]);
    assert!(!flat.starts_with("ERR:"), "{flat}");
    let lines: Vec<&str> = flat.lines().collect();
    lines
        .chunks(2)
        .filter(|kv| kv[0].starts_with('w'))
        .map(|kv| kv[1].parse::<usize>().unwrap())
        .sum()
}

/// The budget's slot moves to another node while both instances keep using it, as
/// `redis-cli --cluster reshard` does it: first the key migrates (the old owner answers
/// `-ASK`), then the slot is handed over (`-MOVED`). No withdrawal waits past the command
/// timeout, and once the slot has its new owner, Redis decides again and the two instances
/// share one floor.
///
/// During the `-ASK` window the outage policy decides: fred 10.1 sends `ASKING` to the new
/// node but then routes the command by slot again, i.e. back to the old owner, until its
/// redirections run out. (With its attempts running out first, as they did with one attempt
/// per command, fred ended the client's connection task for good and the budget never
/// returned to Redis; this test caught that.) The budget contains it: bounded waits,
/// fallback decisions, Redis again right after the handover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_the_budgets_slot_keeps_it_shared() {
    let cluster = RedisCluster::start(3);
    let name = "resharded";
    let key = format!("{{rb:{name}}}:w");
    let slot = cluster.keyslot(&key);
    let from = cluster.owner_of(slot).expect("an owner");
    let to = (from + 1) % 3;
    let (a, b) = (
        instance(&cluster, name, 1).await,
        instance(&cluster, name, 1).await,
    );
    for budget in [&a, &b] {
        assert!(bounded(budget).await);
        budget.deposit();
        budget.flush().await.expect("flush before the move");
    }
    assert_eq!(withdrawals(&cluster.nodes[from], &key), 2);

    // The key moves; the slot is still `from`'s, which now redirects with -ASK.
    cluster.begin_move(slot, from, to);
    assert_eq!(withdrawals(&cluster.nodes[to], &key), 2, "the key moved");
    for _ in 0..50 {
        for budget in [&a, &b] {
            budget.deposit();
            bounded(budget).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The slot is handed over: the old owner answers -MOVED, the client follows.
    cluster.finish_move(slot, to);
    assert_eq!(cluster.owner_of(slot), Some(to));
    for budget in [&a, &b] {
        eventually("Redis to decide again after the move", || async {
            let before = budget.stats();
            bounded(budget).await;
            let after = budget.stats();
            after.redis_up
                && after.round_trips > before.round_trips
                && after.fallback_decisions == before.fallback_decisions
        })
        .await;
    }
    // Shared: whatever the window on the new owner holds, the two instances split the rest
    // of one floor of 10.
    let used = withdrawals(&cluster.nodes[to], &key);
    one_floor(10, used, drain(&a, &b).await);
    assert_eq!(withdrawals(&cluster.nodes[to], &key), 10);
    let moved = cluster.nodes[from].command(&["EXISTS", &key]);
    let to_port = cluster.nodes[to].port();
    assert!(moved.ends_with(&format!(":{to_port}")), "{moved}");
    for budget in [&a, &b] {
        assert!(budget.stats().redis_up);
    }
}

/// With replicas: the node that owns the budget's slot dies mid-load, its replica is promoted
/// (a real failover, `cluster-node-timeout` 1 s), and the budget follows the slot to the new
/// primary while the old one is still down; when the old primary returns it rejoins as a
/// replica. No withdrawal waits past the command timeout, the outage policy decides until the
/// promotion, and the two instances share the new primary's window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_takes_over_the_slot_and_the_budget_follows() {
    let mut cluster = RedisCluster::start_with(3, 1, Some(1000));
    let name = "promoted";
    let key = format!("{{rb:{name}}}:w");
    let slot = cluster.keyslot(&key);
    let owner = cluster.owner_of(slot).expect("an owner");
    let replica = cluster.replica_of(owner).expect("a replica of the owner");
    eventually("the replica to be in sync", || {
        let info = cluster.nodes[replica].command(&["INFO", "replication"]);
        async move { info.contains("master_link_status:up") }
    })
    .await;
    let (a, b) = (
        // A floor of 30: the many rounds of the failover leave enough for both to draw.
        instance(&cluster, name, 3).await,
        instance(&cluster, name, 3).await,
    );
    for budget in [&a, &b] {
        assert!(bounded(budget).await);
    }

    cluster.nodes[owner].kill();
    // Traffic through the outage, until the replica has been promoted and the budget uses
    // it: the failure is detected after the 1 s node timeout, then an election.
    let mut during = 0u64;
    eventually("the budget to decide through the promoted replica", || {
        during += 1;
        let (a, b) = (&a, &b);
        let promoted = cluster.owner_of(slot) == Some(replica);
        async move {
            a.deposit();
            b.deposit();
            let before = a.stats();
            bounded(a).await;
            bounded(b).await;
            let after = a.stats();
            promoted
                && after.redis_up
                && after.round_trips > before.round_trips
                && after.fallback_decisions == before.fallback_decisions
        }
    })
    .await;
    let s = a.stats();
    println!("after {during} rounds: {s:?}");
    assert!(
        s.fallback_decisions > 0,
        "the outage policy decided meanwhile: {s:?}"
    );
    eventually("the second instance to follow", || async {
        let before = b.stats();
        bounded(&b).await;
        let after = b.stats();
        after.redis_up && after.fallback_decisions == before.fallback_decisions
    })
    .await;

    // The old primary returns and rejoins as a replica of the new one.
    cluster.nodes[owner].restart();
    eventually("the old primary to rejoin as a replica", || {
        let rejoined = cluster.replica_of(replica) == Some(owner);
        async move { rejoined }
    })
    .await;
    assert_eq!(cluster.owner_of(slot), Some(replica));
    // The topology changed again (a new replica): the client may see a hiccup; wait until
    // both instances decide through Redis.
    for budget in [&a, &b] {
        eventually("Redis to decide after the old primary rejoined", || async {
            let before = budget.stats();
            bounded(budget).await;
            let after = budget.stats();
            after.redis_up
                && after.round_trips > before.round_trips
                && after.fallback_decisions == before.fallback_decisions
        })
        .await;
    }
    // Shared on the new primary: the two instances split what is left of one floor of 30.
    let used = withdrawals(&cluster.nodes[replica], &key);
    one_floor(30, used, drain(&a, &b).await);
    assert_eq!(withdrawals(&cluster.nodes[replica], &key), 30);
    for budget in [&a, &b] {
        assert!(budget.stats().redis_up);
    }
}
