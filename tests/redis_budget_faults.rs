//! RedisBudget when Redis misbehaves: down at start, killed mid-run, paused (slow), restarted
//! (scripts gone), wrong password. No retry may wait longer than the command timeout, nothing
//! panics, and decisions return to Redis once it is back.

mod support;

use std::time::Duration;
use support::redis::{Options, RedisServer};
use support::redis_faults::{COMMAND_TIMEOUT, SLACK, bounded, decides_through_redis, eventually};
use tower_retrier::budget::redis::{RatioMode, RedisBudgetBuilder, RedisBudgetError, Unavailable};
use tower_retrier::budget::{Budget, RedisBudget};

fn builder(name: &str) -> RedisBudgetBuilder<RatioMode> {
    RedisBudget::ratio(name)
        .ttl(Duration::from_secs(10))
        .min_per_sec(1)
        .ratio(0.2)
        .lease_size(4)
        .flush_interval(Duration::from_millis(20))
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_is_a_clear_error() {
    let port = RedisServer::unused_port();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        builder("down").build_from_url(&format!("redis://127.0.0.1:{port}")),
    )
    .await
    .expect("construction is bounded by connect_timeout")
    .expect_err("nothing listens there");
    assert!(
        matches!(err, RedisBudgetError::Connect { ref server, .. } if *server == format!("127.0.0.1:{port}")),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "cannot connect to 127.0.0.1:{port}: connection refused"
        )),
        "{err}"
    );
    println!("down at start: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_budget_starts_on_fallback_and_moves_to_redis_when_it_appears() {
    let port = RedisServer::unused_port();
    let b = builder("lazy")
        .lazy_connect(true)
        .build_from_url(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect("lazy construction succeeds without Redis");
    assert!(!b.stats().redis_up);
    // Fallback: the local ratio budget, floor 1/s × 10 s = 10 retries.
    let granted = {
        let mut n = 0;
        for _ in 0..30 {
            n += usize::from(bounded(&b).await);
        }
        n
    };
    assert_eq!(granted, 10, "fallback budget decides");
    let s = b.stats();
    assert_eq!(s.round_trips, 0, "no network while known down: {s:?}");
    assert_eq!(s.fallback_decisions, 30);

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
    let mut outage_withdrawals = 0u64;
    let mut errors_at_kill = 0;
    for i in 0..3000 {
        b.deposit();
        if i == 1000 {
            server.kill();
            errors_at_kill = b.stats().backend_errors;
        }
        if i == 2000 {
            server.restart();
        }
        if (1000..2000).contains(&i) {
            outage_withdrawals += 1;
            // Spread the outage over about a second of requests.
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if i % 3 == 0 || (1000..2000).contains(&i) {
            bounded(&b).await;
        }
    }
    let s = b.stats();
    println!("killed: {s:?}");
    assert!(s.fallback_decisions > 0, "{s:?}");
    // Known down = no timeout paid per retry: a handful of errors, not one per withdrawal.
    let errors = s.backend_errors - errors_at_kill;
    assert!(
        errors < outage_withdrawals / 10,
        "{errors} backend errors for {outage_withdrawals} withdrawals"
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
    println!("paused: {during:?}");
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
    // SCRIPT FLUSH: the next call gets NOSCRIPT, reloads and succeeds without a fallback.
    assert_eq!(server.command(&["SCRIPT", "FLUSH"]), "OK");
    assert!(bounded(&b).await);
    let s = b.stats();
    assert_eq!((s.fallback_decisions, s.backend_errors), (0, 0), "{s:?}");

    server.restart();
    for _ in 0..20 {
        bounded(&b).await;
    }
    decides_through_redis(&b).await;
    // The new server holds the window again (floor 10, some already used above).
    let all = server.command(&["HGETALL", "{rb:restarted}:w"]);
    let lines: Vec<&str> = all.lines().collect();
    let used: usize = lines
        .chunks(2)
        .filter(|kv| kv[0].starts_with('w'))
        .map(|kv| kv[1].parse::<usize>().unwrap())
        .sum();
    assert!(used >= 1, "withdrawals recorded on the restarted server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_with_lazy_connect_falls_back_without_panicking() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let server = RedisServer::start_with(Options {
        password: Some("right".into()),
        ..Options::default()
    });
    let url = format!("redis://:wrong@127.0.0.1:{}", server.port());
    let b = builder("badpw")
        .lazy_connect(true)
        .on_unavailable(Unavailable::Deny)
        .build_from_url(&url)
        .await
        .expect("lazy construction succeeds; the error is logged");
    for _ in 0..20 {
        assert!(!bounded(&b).await, "Deny policy");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = b.stats();
    assert!(!s.redis_up && s.round_trips == 0, "{s:?}");
    assert!(!format!("{b:?}").contains("wrong"));
}

#[cfg(feature = "metrics")]
#[test]
fn backend_errors_and_fallbacks_are_counted_in_metrics() {
    use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder};
    use metrics::{SharedString, Unit};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    type Counts = Arc<Mutex<BTreeMap<String, u64>>>;
    struct Count(Counts, String);
    impl CounterFn for Count {
        fn increment(&self, v: u64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() += v;
        }
        fn absolute(&self, _: u64) {}
    }
    struct Rec(Counts);
    impl Recorder for Rec {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(Arc::new(Count(self.0.clone(), name)))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    let counts = Counts::default();
    let recorder = Rec(counts.clone());
    // The recorder is thread-local: run everything on this thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let mut server = RedisServer::start();
            let b = builder("metered")
                .build_from_url(&server.url())
                .await
                .unwrap();
            server.kill();
            for _ in 0..5 {
                bounded(&b).await;
            }
        })
    });
    let counts = counts.lock().unwrap();
    println!("{counts:?}");
    assert!(counts["retrier_budget_backend_errors_total{budget=metered}"] >= 1);
    assert_eq!(counts["retrier_budget_fallbacks_total{budget=metered}"], 5);
}

/// A retry dropped while its lease refill is at the server (an outer timeout, a cancelled
/// request): the script still runs and Redis counts the tokens as withdrawn, so they must
/// land in the local lease rather than be lost. Floor 1/s × 10 s = 10 retries in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdraw_dropped_in_flight_keeps_the_granted_tokens() {
    let server = RedisServer::start();
    let b = RedisBudget::ratio("dropped")
        .ttl(Duration::from_secs(10))
        .min_per_sec(1)
        .ratio(0.0)
        .lease_size(5)
        // Longer than the pause below: the refill must still be in flight when dropped.
        .command_timeout(Duration::from_secs(3))
        .on_unavailable(Unavailable::Deny)
        .build_from_url(&server.url())
        .await
        .unwrap();
    // The server stalls every command for 500 ms; the caller gives up after 100 ms, while
    // the script call is queued at the server.
    server.pause(500);
    let dropped = tokio::time::timeout(Duration::from_millis(100), b.withdraw()).await;
    assert!(
        dropped.is_err(),
        "the withdrawal was still waiting on Redis"
    );
    assert_eq!(b.stats().round_trips, 1);
    // Once the server resumes, the whole grant (nobody took a token) is in the lease.
    eventually("the granted tokens to reach the lease", || async {
        b.lease_outstanding() == 5
    })
    .await;
    // Field `p` holds the parameters' fingerprint; `w<slot>` the withdrawals.
    let all = server.command(&["HGETALL", "{rb:dropped}:w"]);
    let lines: Vec<&str> = all.lines().collect();
    let withdrawn: u64 = lines
        .chunks(2)
        .filter(|kv| kv[0].starts_with('w'))
        .map(|kv| kv[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(withdrawn, 5, "Redis counted the grant once");
    // Nothing lost: 5 from the lease, 5 more from Redis, then the floor is spent.
    let mut granted = 0;
    for _ in 0..20 {
        granted += usize::from(b.withdraw().await);
    }
    assert_eq!(granted, 10);
    let s = b.stats();
    assert_eq!((s.round_trips, s.fallback_decisions), (3, 0), "{s:?}");
}

/// Redis answers a lease refill after the caller stopped waiting (slower than the command
/// timeout, faster than the refill's own bound of 4 × that): the caller got the outage
/// policy's answer, and the tokens Redis granted land in the lease rather than being lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_arrives_after_the_command_timeout_is_kept() {
    let server = RedisServer::start();
    let b = RedisBudget::ratio("late")
        .ttl(Duration::from_secs(10))
        .min_per_sec(1)
        .ratio(0.0)
        .lease_size(5)
        .command_timeout(Duration::from_millis(100))
        .on_unavailable(Unavailable::Deny)
        .build_from_url(&server.url())
        .await
        .unwrap();
    // Stalled for 250 ms: past the 100 ms a retry waits, within the refill's 400 ms.
    server.pause(250);
    // Bounded by the command timeout (the slack is measured above).
    let answer = tokio::time::timeout(Duration::from_millis(100) + SLACK, b.withdraw())
        .await
        .expect("the retry waited no longer than the command timeout");
    assert!(!answer, "the Deny policy answered the waiting retry");
    eventually("the late grant to reach the lease", || async {
        b.lease_outstanding() == 5
    })
    .await;
    // Nothing lost: 5 from the lease, 5 more from Redis, then the floor is spent.
    eventually("Redis to be used again", || async { b.stats().redis_up }).await;
    let mut granted = 0;
    for _ in 0..20 {
        granted += usize::from(bounded(&b).await);
    }
    assert_eq!(granted, 10, "{:?}", b.stats());
}

/// A server that accepts connections but never answers: `connect_timeout` bounds the whole
/// build (the failed client is shut down in the background, not awaited), and the error
/// names the server and the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_bounds_the_whole_build_against_a_silent_server() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    // Accept and hold every connection, answering nothing.
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let connect_timeout = Duration::from_secs(1);
    // Waiting for QUIT too used to take twice connect_timeout (2 s); 0.6 s of slack covers
    // scheduling on a loaded 2-core machine without admitting that.
    let err = tokio::time::timeout(
        connect_timeout + Duration::from_millis(600),
        builder("silent")
            .connect_timeout(connect_timeout)
            .build_from_url(&format!("redis://127.0.0.1:{}", addr.port())),
    )
    .await
    .expect("build_from_url returns within connect_timeout")
    .expect_err("the server never answers");
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot connect to {addr}")) && text.contains("connect_timeout"),
        "{text}"
    );
}
