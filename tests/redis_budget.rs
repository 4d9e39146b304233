//! RedisBudget against a real redis-server: same decisions as the local ratio budget, a fleet
//! sharing one budget, isolation between names, expiry, ACL credentials.

mod support;

use std::time::Duration;
use support::budget::take;
use support::redis::{Options, RedisServer};
use tower_retrier::budget::redis::{RedisBudgetError, Unavailable};
use tower_retrier::budget::{Budget, RatioBudget, RedisBudget};

const TTL: Duration = Duration::from_secs(10);

async fn redis_budget(url: &str, name: &str, min: u32, ratio: f64, lease: u32) -> RedisBudget {
    builder(name, min, ratio, lease)
        .build_from_url(url)
        .await
        .expect("build RedisBudget")
}

fn builder(
    name: &str,
    min: u32,
    ratio: f64,
    lease: u32,
) -> tower_retrier::budget::redis::RedisBudgetBuilder<tower_retrier::budget::redis::RatioMode> {
    RedisBudget::ratio(name)
        .ttl(TTL)
        .min_per_sec(min)
        .ratio(ratio)
        .lease_size(lease)
        // Generous for a loaded CI machine; the fault tests cover short timeouts.
        .command_timeout(Duration::from_millis(500))
        .on_unavailable(Unavailable::Deny)
}

/// Up to `n` withdrawals; how many were granted.
#[derive(Clone, Copy, Debug)]
enum Op {
    Deposit(u32),
    Withdraw(usize),
}

/// Runs `ops` on a local budget and a Redis budget and returns the granted counts per
/// withdraw step, (local, redis).
async fn run_both(
    url: &str,
    name: &str,
    min: u32,
    ratio: f64,
    lease: u32,
    ops: &[Op],
) -> Vec<(usize, usize)> {
    let local = RatioBudget::new(TTL, min, ratio).unwrap();
    let shared = redis_budget(url, name, min, ratio, lease).await;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Deposit(n) => {
                for _ in 0..n {
                    local.deposit();
                    shared.deposit();
                }
                shared.flush().await.expect("flush");
            }
            Op::Withdraw(n) => out.push((take(&local, n).await, take(&shared, n).await)),
        }
    }
    let stats = shared.stats();
    assert_eq!(stats.fallback_decisions, 0, "Redis was up: {stats:?}");
    out
}

pub(crate) fn sequences() -> Vec<(u32, f64, Vec<Op>)> {
    use Op::*;
    vec![
        (
            0,
            0.5,
            vec![Deposit(100), Withdraw(80), Deposit(10), Withdraw(10)],
        ),
        (
            1,
            0.2,
            vec![
                Withdraw(3),
                Deposit(37),
                Withdraw(30),
                Deposit(50),
                Withdraw(5),
                Withdraw(20),
            ],
        ),
        (0, 0.6, vec![Deposit(100), Withdraw(100)]), // tower#857: exactly 60
        (2, 0.0, vec![Withdraw(25), Deposit(1000), Withdraw(5)]),
        (
            0,
            1.5,
            vec![Deposit(7), Withdraw(4), Deposit(3), Withdraw(20)],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_decisions_as_the_local_budget_with_lease_of_one() {
    let server = RedisServer::start();
    for (i, (min, ratio, ops)) in sequences().into_iter().enumerate() {
        let steps = run_both(&server.url(), &format!("sem-{i}"), min, ratio, 1, &ops).await;
        for (step, (local, shared)) in steps.iter().enumerate() {
            assert_eq!(local, shared, "sequence {i} step {step}: {ops:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_stay_within_lease_size_of_the_local_budget() {
    let server = RedisServer::start();
    let lease = 8;
    for (i, (min, ratio, ops)) in sequences().into_iter().enumerate() {
        let steps = run_both(
            &server.url(),
            &format!("lease-{i}"),
            min,
            ratio,
            lease,
            &ops,
        )
        .await;
        let (mut local_total, mut shared_total) = (0i64, 0i64);
        for (local, shared) in steps {
            local_total += local as i64;
            shared_total += shared as i64;
            assert!(
                (local_total - shared_total).abs() < i64::from(lease),
                "sequence {i}: local {local_total} vs shared {shared_total}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_shares_one_budget() {
    const INSTANCES: usize = 4;
    const REQUESTS: usize = 40; // per instance
    const MAX_RETRIES: usize = 5; // per request
    const LEASE: u32 = 4;
    let (min, ratio) = (10, 0.1);
    let server = RedisServer::start();

    // Each instance has its own client, as separate processes would.
    let mut shared = Vec::new();
    for _ in 0..INSTANCES {
        // Deposits reach Redis within 5 ms, so the ratio part of the budget is credited.
        let b = builder("fleet", min, ratio, LEASE).flush_interval(Duration::from_millis(5));
        shared.push(b.build_from_url(&server.url()).await.unwrap());
    }
    let local: Vec<RatioBudget> = (0..INSTANCES)
        .map(|_| RatioBudget::new(TTL, min, ratio).unwrap())
        .collect();

    // The downstream fails every call: each request retries until the budget says no.
    async fn serve<B: Budget + Send + Sync + 'static>(budget: B) -> usize
    where
        B::Withdraw: Send,
    {
        let mut retries = 0;
        for _ in 0..REQUESTS {
            budget.deposit();
            for _ in 0..MAX_RETRIES {
                if !budget.withdraw().await {
                    break;
                }
                retries += 1;
            }
            // Requests arrive spread over time, not all in one instant.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        retries
    }
    let shared_tasks: Vec<_> = shared
        .iter()
        .cloned()
        .map(|b| tokio::spawn(serve(b)))
        .collect();
    let local_tasks: Vec<_> = local.into_iter().map(|b| tokio::spawn(serve(b))).collect();
    let mut shared_retries = 0;
    for t in shared_tasks {
        shared_retries += t.await.unwrap();
    }
    let mut local_retries = 0;
    for t in local_tasks {
        local_retries += t.await.unwrap();
    }

    let requests = INSTANCES * REQUESTS;
    let floor = f64::from(min) * TTL.as_secs_f64();
    let outstanding: u64 = shared.iter().map(RedisBudget::lease_outstanding).sum();
    let bound = ratio * requests as f64 + floor + (INSTANCES as f64) * f64::from(LEASE - 1);
    println!(
        "fleet of {INSTANCES}, {requests} requests, downstream failing 100%, ratio {ratio}, floor {floor}: \
         shared budget {shared_retries} retries ({:.3}/request, lease tokens outstanding {outstanding}); \
         {INSTANCES} local budgets {local_retries} retries ({:.3}/request); local/shared = {:.2}",
        shared_retries as f64 / requests as f64,
        local_retries as f64 / requests as f64,
        local_retries as f64 / shared_retries as f64,
    );
    assert!(shared_retries as f64 <= bound, "{shared_retries} > {bound}");
    // Every local budget grants its own floor: close to INSTANCES × the shared figure.
    assert!(
        local_retries as f64 >= 3.0 * shared_retries as f64,
        "local {local_retries} vs shared {shared_retries}"
    );
    for b in &shared {
        assert_eq!(b.stats().fallback_decisions, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_isolated_and_keys_expire() {
    let server = RedisServer::start();
    let a = redis_budget(&server.url(), "svc-a", 1, 0.0, 1).await;
    let b = redis_budget(&server.url(), "svc-b", 1, 0.0, 1).await;
    assert_eq!(take(&a, 20).await, 10);
    assert_eq!(take(&b, 20).await, 10, "svc-b has its own window");
    let pttl: i64 = server.command(&["PTTL", "{rb:svc-a}:w"]).parse().unwrap();
    assert!(
        pttl > 0 && pttl <= 20_000,
        "key expires after 2 × ttl: {pttl}"
    );
    let keys = server.command(&["KEYS", "*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort();
    assert_eq!(keys, ["{rb:svc-a}:w", "{rb:svc-b}:w"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_roll_on_server_time() {
    let server = RedisServer::start();
    let ttl = Duration::from_secs(1);
    let b = RedisBudget::ratio("rolling")
        .ttl(ttl)
        .min_per_sec(0)
        .ratio(1.0)
        .lease_size(1)
        .command_timeout(Duration::from_millis(500))
        .build_from_url(&server.url())
        .await
        .unwrap();
    for _ in 0..10 {
        b.deposit();
    }
    b.flush().await.unwrap();
    assert_eq!(take(&b, 20).await, 10);
    // Real time: the window lives on the Redis server's clock.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(take(&b, 5).await, 0, "old deposits left the window");
    for _ in 0..4 {
        b.deposit();
    }
    b.flush().await.unwrap();
    assert_eq!(take(&b, 10).await, 4, "old withdrawals left too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_cost_one_script_call_per_flush_not_per_request() {
    let server = RedisServer::start();
    let b = RedisBudget::ratio("flushes")
        .flush_interval(Duration::from_secs(1))
        .build_from_url(&server.url())
        .await
        .unwrap();
    let before = server.command_calls("evalsha");
    for _ in 0..10_000 {
        b.deposit();
    }
    b.flush().await.unwrap();
    let stats = b.stats();
    assert_eq!(stats.deposits_flushed, 10_000);
    let calls = server.command_calls("evalsha") - before;
    assert!(calls <= 2, "10,000 deposits took {calls} EVALSHA calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_and_password_work_and_never_show() {
    let server = RedisServer::start();
    let reply = server.command(&[
        "ACL",
        "SETUSER",
        "retrier",
        "on",
        ">s3cr3t-pw",
        "~{rb:*",
        "+@all",
    ]);
    assert_eq!(reply, "OK");
    let url = format!("redis://retrier:s3cr3t-pw@127.0.0.1:{}", server.port());
    let b = redis_budget(&url, "acl", 1, 0.0, 1).await;
    assert_eq!(take(&b, 20).await, 10);
    assert!(!format!("{b:?}").contains("s3cr3t"), "{b:?}");

    let server_port = server.port();
    let wrong = format!("redis://retrier:not-the-pw@127.0.0.1:{server_port}");
    let err = RedisBudget::ratio("acl")
        .build_from_url(&wrong)
        .await
        .expect_err("wrong password must fail at construction");
    assert!(
        matches!(err, RedisBudgetError::Connect { ref server, .. } if *server == format!("127.0.0.1:{}", server_port)),
        "{err:?}"
    );
    assert!(err.to_string().contains("authentication failed"), "{err}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("not-the-pw"), "{text}");
    }
    println!("wrong password: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_server_and_bad_urls() {
    let server = RedisServer::start_with(Options {
        password: Some("p4ss".into()),
        ..Options::default()
    });
    let url = format!("redis://:p4ss@127.0.0.1:{}", server.port());
    let b = redis_budget(&url, "pw", 1, 0.0, 1).await;
    assert_eq!(take(&b, 20).await, 10);

    let err = RedisBudget::adaptive("pw")
        .build_from_url(&format!("redis://127.0.0.1:{}", server.port()))
        .await
        .expect_err("no password");
    assert!(matches!(err, RedisBudgetError::Connect { .. }), "{err:?}");

    let err = RedisBudget::adaptive("pw")
        .build_from_url("http://user:secret@nowhere")
        .await
        .expect_err("not a Redis URL");
    assert!(!err.to_string().contains("secret"), "{err}");
}

fn connected_clients(server: &RedisServer) -> usize {
    server.command(&["CLIENT", "LIST"]).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_own_client_or_pool() {
    use fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy};
    let server = RedisServer::start();
    let config = || Config::from_url(&server.url()).unwrap();

    let client = Builder::from_config(config())
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build()
        .unwrap();
    client.init().await.unwrap();
    let b = builder("own-client", 1, 0.0, 1)
        .build_with_client(client.clone())
        .await
        .unwrap();
    assert_eq!(take(&b, 20).await, 10);
    drop(b);
    // The user's client stays usable: the budget does not close what it does not own.
    let _: () = client.ping(None).await.unwrap();

    let pool = Builder::from_config(config())
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build_pool(3)
        .unwrap();
    pool.init().await.unwrap();
    let b = builder("own-pool", 1, 0.0, 1)
        .build_with_pool(pool)
        .await
        .unwrap();
    assert_eq!(take(&b, 20).await, 10);

    // fred never reconnects without a policy: refused with a clear error naming the field.
    let no_policy = Builder::from_config(config()).build().unwrap();
    no_policy.init().await.unwrap();
    let err = builder("no-policy", 1, 0.0, 1)
        .build_with_client(no_policy)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RedisBudgetError::Config(ref c) if c.field() == "client"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_budget_ends_its_task_and_closes_its_client() {
    let server = RedisServer::start();
    let base = connected_clients(&server);
    let b = RedisBudget::ratio("dropped")
        .flush_interval(Duration::from_millis(10))
        .build_from_url(&server.url())
        .await
        .unwrap();
    assert!(connected_clients(&server) > base);
    drop(b);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while connected_clients(&server) > base {
        assert!(
            tokio::time::Instant::now() < deadline,
            "client still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_as_the_budget_of_a_tower_retry_layer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceBuilder;
    use tower_retrier::{RetryConfig, RetryLayer};

    let server = RedisServer::start();
    // Floor of 3 retries in the window, no ratio: the fleet-wide cap is 3.
    let budget = RedisBudget::ratio("tower")
        .ttl(Duration::from_secs(1))
        .min_per_sec(3)
        .ratio(0.0)
        .lease_size(1)
        .command_timeout(Duration::from_millis(500))
        .build_from_url(&server.url())
        .await
        .unwrap();
    let config = RetryConfig::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(2))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config).with_budget(budget.clone()))
        .service_fn(move |_req: u32| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Err::<u32, _>(std::io::Error::other("down")) }
        });
    // Requests run on spawned tasks: the retry future with a RedisBudget is Send.
    for i in 0..4 {
        let svc = svc.clone();
        let result = tokio::spawn(async move { svc.oneshot(i).await })
            .await
            .unwrap();
        assert!(result.is_err());
    }
    // 4 originals + at most 3 retries granted by the shared budget.
    assert_eq!(calls.load(Ordering::Relaxed), 4 + 3);
    assert_eq!(budget.stats().fallback_decisions, 0);
}
