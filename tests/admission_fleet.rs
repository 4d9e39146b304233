//! Fleet-wide admission control against a real `redis-server`: shared detection, a
//! low-traffic fleet in a total outage, one bad instance among healthy ones, the fleet-wide
//! probe quota, a close spreading to the fleet, and Redis down at start, killed, paused or
//! holding a key of the wrong type. Real time (Redis' clock); each test takes a few seconds.
//!
//! The instances are driven directly through `AdmitFor::admit` / `Admit::record`, as the
//! retry layer drives them: a call is admitted (maybe as a probe) or rejected, and an
//! admitted call's attempt is accepted or not.

mod support;

use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};
use std::time::Duration;
use support::redis::RedisServer;
use tokio::time::Instant;
use tower_retrier::admission::redis::RedisAdmissionError;
use tower_retrier::admission::{
    Admission, AdmissionConfig, AdmissionState, Admit, AdmitFor, Rejected,
};
use tower_retrier::telemetry::Telemetry;

const FLUSH: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Sent,
    Probe,
    Rejected,
}

/// One call: admitted or not; an admitted call's attempt is `accepted` or not.
fn call(a: &Admission, accepted: bool) -> Outcome {
    let telemetry = Telemetry::disabled();
    match AdmitFor::<Rejected>::admit(a, &telemetry) {
        Ok(ticket) => {
            a.record(ticket, accepted, &telemetry);
            a.release(ticket);
            if ticket.is_probe() {
                Outcome::Probe
            } else {
                Outcome::Sent
            }
        }
        Err(_) => Outcome::Rejected,
    }
}

/// A client the instances of one test share (as separate processes would each have one;
/// one connection keeps 64 instances light on a 2-core machine).
async fn shared_client(server: &RedisServer) -> Client {
    let client = Builder::from_config(Config::from_url(&server.url()).unwrap())
        .set_policy(ReconnectPolicy::new_constant(0, 50))
        .build()
        .unwrap();
    client.init().await.unwrap();
    client
}

async fn fleet(client: &Client, name: &str, n: usize, cfg: &AdmissionConfig) -> Vec<Admission> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(
            Admission::redis(name)
                .client(client.clone())
                .config(cfg.clone())
                .flush_interval(FLUSH)
                .build()
                .await
                .unwrap(),
        );
    }
    v
}

fn local(n: usize, cfg: &AdmissionConfig) -> Vec<Admission> {
    (0..n).map(|_| Admission::new(cfg.clone())).collect()
}

/// Calls each instance `per_sec` times a second (staggered) for `length`; `accepted(i)` says
/// whether instance `i`'s downstream serves. Returns, per instance, the outcomes with their
/// time since the start.
async fn drive(
    fleet: &[Admission],
    per_sec: u32,
    length: Duration,
    accepted: impl Fn(usize) -> bool,
) -> Vec<Vec<(Duration, Outcome)>> {
    let n = fleet.len();
    let tick = Duration::from_secs(1) / (per_sec * n as u32);
    let start = Instant::now();
    let mut out = vec![Vec::new(); n];
    let mut k = 0usize;
    let mut next = start;
    while next.duration_since(start) < length {
        tokio::time::sleep_until(next).await;
        let i = k % n;
        let before = std::time::Instant::now();
        let o = call(&fleet[i], accepted(i));
        assert!(
            before.elapsed() < Duration::from_millis(50),
            "a decision took {:?}",
            before.elapsed()
        );
        out[i].push((start.elapsed(), o));
        k += 1;
        next += tick;
    }
    out
}

fn share(outcomes: &[Vec<(Duration, Outcome)>], from: Duration, what: Outcome) -> (usize, usize) {
    let all: Vec<Outcome> = outcomes
        .iter()
        .flatten()
        .filter(|(t, _)| *t >= from)
        .map(|(_, o)| *o)
        .collect();
    (all.iter().filter(|o| **o == what).count(), all.len())
}

async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_too_quiet_to_judge_alone_open_together() {
    let server = RedisServer::start();
    let client = shared_client(&server).await;
    let cfg = AdmissionConfig::default(); // opens at 80 % of >= 20 attempts in 1 s
    // 16 instances × 5 calls/s, all failing: 5 attempts per window each, 80 for the fleet.
    let shared = fleet(&client, "quiet", 16, &cfg).await;
    let alone = local(16, &cfg);
    let both: Vec<Admission> = shared.iter().chain(&alone).cloned().collect();
    let _ = drive(&both, 5, Duration::from_millis(1500), |_| false).await;
    let open = |v: &[Admission]| {
        v.iter()
            .filter(|a| a.state() == AdmissionState::Open)
            .count()
    };
    println!(
        "16 × 5/s failing: {} of 16 open fleet-wide, {} of 16 local; fleet view {:?}",
        open(&shared),
        open(&alone),
        shared[0].fleet_stats()
    );
    assert_eq!(open(&alone), 0, "too few calls for a local decision");
    assert_eq!(open(&shared), 16, "the fleet's totals open every instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_traffic_fleet_in_a_total_outage_sheds_its_originals_within_two_seconds() {
    let server = RedisServer::start();
    let client = shared_client(&server).await;
    let cfg = AdmissionConfig::default();
    let length = Duration::from_secs(4);
    let shared = fleet(&client, "outage64", 64, &cfg).await;
    let fleet_out = drive(&shared, 2, length, |_| false).await;
    let alone = local(64, &cfg);
    let local_out = drive(&alone, 2, length, |_| false).await;
    let two = Duration::from_secs(2);
    let (shed, total) = share(&fleet_out, two, Outcome::Rejected);
    let (local_shed, local_total) = share(&local_out, two, Outcome::Rejected);
    let (probes, _) = share(&fleet_out, two, Outcome::Probe);
    let first_open = fleet_out
        .iter()
        .flatten()
        .filter(|(_, o)| *o == Outcome::Rejected)
        .map(|(t, _)| *t)
        .min();
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "64 × 2/s total outage, after 2 s: fleet-wide {:.1} % shed ({shed}/{total}, {probes} \
         probes; first rejection at {first_open:?}), local {:.1} % ({local_shed}/{local_total})",
        pct(shed, total),
        pct(local_shed, local_total),
    );
    assert!(pct(shed, total) >= 90.0);
    assert_eq!(
        local_shed, 0,
        "alone, no instance sees enough calls to judge"
    );
    // The downstream is back: a probe from the fleet's quota finds it (at 2 calls/s an
    // instance still gets to use one) and the close reaches every instance.
    let back = drive(&shared, 2, Duration::from_secs(3), |_| true).await;
    let last_refusal = back
        .iter()
        .flatten()
        .filter(|(_, o)| *o == Outcome::Rejected)
        .map(|(t, _)| *t)
        .max();
    let open = shared
        .iter()
        .filter(|a| a.state() == AdmissionState::Open)
        .count();
    println!(
        "64 × 2/s, downstream back: last refusal at {last_refusal:?}; {open} still open after 3 s"
    );
    assert_eq!(open, 0);
    assert!(last_refusal.is_none_or(|t| t < Duration::from_millis(2500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broken_instance_among_fifteen_healthy_ones_rejects_nothing_on_them() {
    let server = RedisServer::start();
    let client = shared_client(&server).await;
    let cfg = AdmissionConfig::default();
    let shared = fleet(&client, "onebad", 16, &cfg).await;
    let out = drive(&shared, 30, Duration::from_secs(3), |i| i != 0).await;
    let rejected = |i: usize| {
        out[i]
            .iter()
            .filter(|(_, o)| *o == Outcome::Rejected)
            .count()
    };
    let healthy: usize = (1..16).map(rejected).sum();
    let stats = shared[1].fleet_stats().unwrap();
    println!(
        "1 broken among 15 healthy (30/s each, 3 s): {healthy} rejections on the healthy ones, \
         {} of {} on the broken one (state {:?}); fleet totals {} failed / {} accepted over {} \
         instances",
        rejected(0),
        out[0].len(),
        shared[0].state(),
        stats.fleet_failed,
        stats.fleet_accepted,
        stats.fleet_instances
    );
    assert_eq!(healthy, 0);
    assert!(
        rejected(0) > out[0].len() / 2,
        "the broken instance sheds on its own counts"
    );
    assert_eq!(stats.fleet_instances, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_a_fleet_wide_quota() {
    let server = RedisServer::start();
    let client = shared_client(&server).await;
    let interval = Duration::from_millis(200);
    let cfg = AdmissionConfig::builder()
        .probes(2)
        .probe_interval(interval)
        .build()
        .unwrap();
    let n = 8;
    let shared = fleet(&client, "quota", n, &cfg).await;
    // Open the fleet: enough failures fleet-wide.
    let _ = drive(&shared, 10, Duration::from_millis(600), |_| false).await;
    eventually("the fleet to open", Duration::from_secs(2), || {
        shared.iter().all(|a| a.state() == AdmissionState::Open)
    })
    .await;
    // Every instance now calls 100 times a second into a dead downstream for 2 s.
    let length = Duration::from_secs(2);
    let out = drive(&shared, 100, length, |_| false).await;
    let (probes, total) = share(&out, Duration::ZERO, Outcome::Probe);
    let granted: u64 = shared
        .iter()
        .map(|a| a.fleet_stats().unwrap().probes_granted)
        .sum();
    let intervals = length.as_millis() / interval.as_millis();
    // At most 2 granted per interval fleet-wide: the run's intervals and one more for its
    // edges, plus the grants made before it and still held (a grant lasts one 1 s window:
    // at most 5 intervals' worth).
    let bound = 2 * (intervals as usize + 1 + 5);
    let local = n * 2 * intervals as usize;
    println!(
        "probe quota (2 per 200 ms, {n} open instances, 2 s): {probes} probes fleet-wide of \
         {total} calls (bound {bound}; {granted} granted over the whole test; local mode would \
         send about {local})"
    );
    assert!(probes >= 1, "probes still go out");
    assert!(probes <= bound, "{probes} probes > {bound}");
    assert!(shared.iter().all(|a| a.state() == AdmissionState::Open));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_probe_on_one_instance_closes_the_others_and_old_counts_do_not_reopen() {
    let server = RedisServer::start();
    let client = shared_client(&server).await;
    let cfg = AdmissionConfig::builder()
        .probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let shared = fleet(&client, "close", 8, &cfg).await;
    let _ = drive(&shared, 10, Duration::from_millis(600), |_| false).await;
    eventually("the fleet to open", Duration::from_secs(2), || {
        shared.iter().all(|a| a.state() == AdmissionState::Open)
    })
    .await;
    // The downstream is back; only instance 0 has traffic: its first probe is accepted.
    let start = Instant::now();
    loop {
        match call(&shared[0], true) {
            Outcome::Probe => break,
            Outcome::Rejected => tokio::time::sleep(Duration::from_millis(2)).await,
            Outcome::Sent => panic!("sent while open"),
        }
        assert!(start.elapsed() < Duration::from_secs(2), "no probe granted");
    }
    assert_ne!(shared[0].state(), AdmissionState::Open);
    let took = eventually("every instance to close", Duration::from_secs(2), || {
        shared.iter().all(|a| a.state() != AdmissionState::Open)
    })
    .await;
    println!(
        "accepted probe on instance 0: the 7 others closed {took:?} later (flush interval {FLUSH:?})"
    );
    // One flush for instance 0 to announce it, one for the others to read it, and
    // scheduling slack for a loaded 2-core machine.
    assert!(took <= FLUSH * 2 + Duration::from_millis(150), "{took:?}");
    // The outage's counts, published before the close, must not open the fleet again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let states: Vec<_> = shared.iter().map(|a| a.state()).collect();
    assert!(
        states.iter().all(|s| *s != AdmissionState::Open),
        "{states:?}"
    );
}

fn faulty(url: String, name: &str) -> tower_retrier::admission::redis::RedisAdmissionBuilder {
    Admission::redis(name)
        .url(url)
        .config(AdmissionConfig::builder().min_calls(10).build().unwrap())
        .flush_interval(FLUSH)
        .command_timeout(Duration::from_millis(50))
        .connect_timeout(Duration::from_secs(2))
}

/// `n` failing calls on one instance: its own counts open it (min_calls 10).
async fn fail_alone(a: &Admission, n: usize) {
    for _ in 0..n {
        let before = std::time::Instant::now();
        call(a, false);
        assert!(before.elapsed() < Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_is_a_clear_error_or_a_lazy_local_start() {
    let port = RedisServer::unused_port();
    let url = format!("redis://127.0.0.1:{port}");
    let err = tokio::time::timeout(Duration::from_secs(5), faulty(url.clone(), "down").build())
        .await
        .expect("bounded by connect_timeout")
        .expect_err("nothing listens there");
    println!("down at start: {err}");
    assert!(
        matches!(err, RedisAdmissionError::Connect { ref server, .. } if *server == format!("127.0.0.1:{port}")),
        "{err:?}"
    );
    assert!(err.to_string().contains("connection refused"), "{err}");
    // Lazily: builds at once, the local state decides, the fleet is used once Redis is there.
    let a = faulty(url, "down")
        .lazy_connect(true)
        .build()
        .await
        .unwrap();
    fail_alone(&a, 12).await;
    assert_eq!(a.state(), AdmissionState::Open, "local counts decide");
    let s = a.fleet_stats().unwrap();
    assert!(!s.redis_up && s.flushes == 0, "{s:?}");
    let _server = RedisServer::start_on(port);
    let took = eventually("the fleet link to start", Duration::from_secs(5), || {
        a.fleet_stats().unwrap().flushes > 0
    })
    .await;
    println!("lazy start: Redis used {took:?} after it came up");
    assert!(a.fleet_stats().unwrap().redis_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_run_the_local_state_decides_and_the_fleet_returns_with_redis() {
    let mut server = RedisServer::start();
    let cfg = AdmissionConfig::builder()
        .probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut shared = Vec::new();
    for _ in 0..4 {
        shared.push(
            Admission::redis("killed")
                .url(server.url())
                .config(cfg.clone())
                .flush_interval(FLUSH)
                .build()
                .await
                .unwrap(),
        );
    }
    // 4 × 8/s failing: too quiet alone (min_calls 20), open through the fleet.
    let _ = drive(&shared, 8, Duration::from_millis(1500), |_| false).await;
    assert!(shared.iter().all(|a| a.state() == AdmissionState::Open));
    server.kill();
    eventually("the link to notice", Duration::from_secs(2), || {
        shared.iter().all(|a| !a.fleet_stats().unwrap().redis_up)
    })
    .await;
    // Without the fleet's quota, each instance probes on its own clock; calls never wait.
    let out = drive(&shared, 20, Duration::from_millis(600), |_| false).await;
    let probing = (0..4)
        .filter(|&i| out[i].iter().any(|(_, o)| *o == Outcome::Probe))
        .count();
    assert_eq!(probing, 4, "each instance probes on its own clock");
    // The downstream comes back while Redis is still away: local probes close each one.
    let _ = drive(&shared, 20, Duration::from_millis(400), |_| true).await;
    assert!(
        shared.iter().all(|a| a.state() != AdmissionState::Open),
        "{:?}",
        shared.iter().map(|a| a.state()).collect::<Vec<_>>()
    );
    server.restart();
    let took = eventually("the fleet to be back", Duration::from_secs(5), || {
        shared.iter().all(|a| a.fleet_stats().unwrap().redis_up)
    })
    .await;
    let s = shared[0].fleet_stats().unwrap();
    println!("killed: back {took:?} after the restart; {s:?}");
    assert_eq!(s.outages, 1, "one outage, logged once");
    assert!(s.backend_errors >= 1);
    // And the fleet decides together again.
    let _ = drive(&shared, 8, Duration::from_millis(1500), |_| false).await;
    assert!(shared.iter().all(|a| a.state() == AdmissionState::Open));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_leaves_the_local_state_in_charge_and_recovers() {
    let server = RedisServer::start();
    let a = faulty(server.url(), "paused").build().await.unwrap();
    eventually("a first flush", Duration::from_secs(2), || {
        a.fleet_stats().unwrap().flushes > 0
    })
    .await;
    server.pause(1000);
    let paused_at = Instant::now();
    eventually("the link to notice", Duration::from_secs(1), || {
        !a.fleet_stats().unwrap().redis_up
    })
    .await;
    fail_alone(&a, 12).await;
    assert_eq!(a.state(), AdmissionState::Open, "local counts decide");
    let took = eventually("Redis to be used again", Duration::from_secs(5), || {
        a.fleet_stats().unwrap().redis_up
    })
    .await;
    let s = a.fleet_stats().unwrap();
    println!(
        "paused 1 s: back {:?} after the pause began; {s:?}",
        paused_at.elapsed()
    );
    let _ = took;
    assert_eq!(s.outages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_the_wrong_type_or_corrupt_entries_never_break_calls() {
    let server = RedisServer::start();
    assert_eq!(server.command(&["SET", "{ra:clobbered}:c", "oops"]), "OK");
    let a = faulty(server.url(), "clobbered").build().await.unwrap();
    eventually("a failed flush", Duration::from_secs(2), || {
        a.fleet_stats().unwrap().backend_errors > 0
    })
    .await;
    assert!(!a.fleet_stats().unwrap().redis_up);
    fail_alone(&a, 12).await;
    assert_eq!(a.state(), AdmissionState::Open, "local counts decide");
    server.command(&["DEL", "{ra:clobbered}:c"]);
    eventually("Redis to be used again", Duration::from_secs(2), || {
        a.fleet_stats().unwrap().redis_up
    })
    .await;
    // The state hash of the wrong type, then unreadable values in both hashes.
    server.command(&["SET", "{ra:clobbered}:s", "oops"]);
    eventually("a failed flush", Duration::from_secs(2), || {
        !a.fleet_stats().unwrap().redis_up
    })
    .await;
    server.command(&["DEL", "{ra:clobbered}:s"]);
    server.command(&[
        "HSET",
        "{ra:clobbered}:s",
        "ct",
        "nonsense",
        "ps",
        "-x",
        "pu",
        "1e999",
    ]);
    server.command(&[
        "HSET",
        "{ra:clobbered}:c",
        "intruder",
        "99999999999999999999 x y z",
    ]);
    let before = a.fleet_stats().unwrap().flushes;
    eventually("flushes to succeed", Duration::from_secs(2), || {
        let s = a.fleet_stats().unwrap();
        s.redis_up && s.flushes > before + 2
    })
    .await;
    assert_eq!(
        server.command(&["HEXISTS", "{ra:clobbered}:c", "intruder"]),
        "0",
        "an unreadable entry is dropped"
    );
    let s = a.fleet_stats().unwrap();
    println!("wrong type / corrupt: {s:?}");
    assert_eq!(s.outages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_key_closes_nothing() {
    let server = RedisServer::start();
    // A close happened before these instances started (its token is what they see first).
    server.command(&["HSET", "{ra:lost}:s", "ct", "5"]);
    let client = shared_client(&server).await;
    let shared = fleet(&client, "lost", 4, &AdmissionConfig::default()).await;
    let _ = drive(&shared, 8, Duration::from_millis(1500), |_| false).await;
    assert!(shared.iter().all(|a| a.state() == AdmissionState::Open));
    // Redis forgets the state (as after a restart or an expiry): the token goes back to 0.
    server.command(&["DEL", "{ra:lost}:s"]);
    tokio::time::sleep(FLUSH * 4).await;
    let states: Vec<_> = shared.iter().map(|a| a.state()).collect();
    assert!(
        states.iter().all(|s| *s == AdmissionState::Open),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_ends_when_the_admission_is_dropped() {
    let server = RedisServer::start();
    let a = faulty(server.url(), "dropped").build().await.unwrap();
    let clone = a.clone();
    eventually("a first flush", Duration::from_secs(2), || {
        a.fleet_stats().unwrap().flushes > 0
    })
    .await;
    drop(a);
    tokio::time::sleep(FLUSH * 2).await;
    assert!(server.command_calls("evalsha") > 0);
    let before = server.command_calls("evalsha");
    tokio::time::sleep(FLUSH * 2).await;
    assert!(
        server.command_calls("evalsha") > before,
        "a clone keeps it alive"
    );
    drop(clone);
    tokio::time::sleep(FLUSH * 3).await;
    let after = server.command_calls("evalsha");
    tokio::time::sleep(FLUSH * 3).await;
    assert_eq!(
        server.command_calls("evalsha"),
        after,
        "no flush after the last handle"
    );
    // The client it made from the URL is closed too: only this check's connection is left.
    let clients = server.command(&["CLIENT", "LIST"]);
    assert_eq!(clients.lines().count(), 1, "{clients}");
}
