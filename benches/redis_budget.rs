//! RedisBudget costs against a real redis-server this benchmark starts on a free port:
//! - `deposit` (the success path) next to the local RatioBudget (criterion);
//! - retry-path `withdraw` latency p50/p99 with a lease of 1 (every call a round trip) next to
//!   a bare `PING` to the same server, the physical floor;
//! - Redis commands per 1,000 successful requests at two request rates.
//!
//! `cargo bench -p tower-retrier-integration --bench redis_budget`

use criterion::{Criterion, criterion_group};
use fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tower_retrier::budget::{Budget, RatioBudget, RedisBudget};

#[allow(dead_code)]
#[path = "../tests/support/redis.rs"]
mod redis_server;

/// Full measurements under `cargo bench`; a quick pass under `cargo test --all-targets`.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn deposit(c: &mut Criterion, url: &str) {
    let rt = runtime();
    let redis = rt
        .block_on(RedisBudget::ratio("bench-deposit").build_from_url(url))
        .unwrap();
    let local = RatioBudget::default();
    let mut group = c.benchmark_group("deposit");
    group.bench_function("local RatioBudget", |b| {
        b.iter(|| black_box(&local).deposit())
    });
    // The background flusher runs on `rt` meanwhile, as in production.
    group.bench_function("RedisBudget", |b| b.iter(|| black_box(&redis).deposit()));
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn latency(url: &str) {
    let rt = runtime();
    let samples = if full() { 5_000 } else { 50 };
    rt.block_on(async {
        // Never runs dry: 1,000,000/s × 10 s floor.
        let budget = RedisBudget::ratio("bench-withdraw")
            .min_per_sec(1_000_000)
            .lease_size(1)
            .command_timeout(Duration::from_millis(500))
            .build_from_url(url)
            .await
            .unwrap();
        let client = Builder::from_config(Config::from_url(url).unwrap())
            .set_policy(ReconnectPolicy::new_constant(0, 100))
            .build()
            .unwrap();
        client.init().await.unwrap();
        for _ in 0..samples / 10 {
            budget.withdraw().await;
            let _: () = client.ping(None).await.unwrap();
        }
        let (mut withdraw, mut ping) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let t = Instant::now();
            assert!(budget.withdraw().await);
            withdraw.push(t.elapsed());
            let t = Instant::now();
            let _: () = client.ping(None).await.unwrap();
            ping.push(t.elapsed());
        }
        withdraw.sort();
        ping.sort();
        let s = budget.stats();
        assert_eq!(s.round_trips as usize, samples + samples / 10, "lease 1: one round trip per withdraw");
        println!("\nretry-path withdraw (lease 1, one script round trip each), {samples} samples:");
        println!(
            "  withdraw  p50 {:>8.1?}  p99 {:>8.1?}",
            percentile(&withdraw, 0.5),
            percentile(&withdraw, 0.99)
        );
        println!(
            "  PING      p50 {:>8.1?}  p99 {:>8.1?}   (bare round trip: the floor)",
            percentile(&ping, 0.5),
            percentile(&ping, 0.99)
        );
        // With the default lease of 10, nine retries in ten need no round trip.
        let leased = RedisBudget::ratio("bench-withdraw-lease")
            .min_per_sec(1_000_000)
            .build_from_url(url)
            .await
            .unwrap();
        let t = Instant::now();
        for _ in 0..samples {
            leased.withdraw().await;
        }
        println!(
            "  withdraw with the default lease (10): mean {:.1?}, {} round trips for {samples} retries",
            t.elapsed() / samples as u32,
            leased.stats().round_trips
        );
        let _ = client.quit().await;
    });
}

fn commands_per_request(server: &redis_server::RedisServer) {
    let rt = runtime();
    let seconds = if full() { 2 } else { 1 };
    println!(
        "\nRedis commands per 1,000 successful requests (flush interval 100 ms, {seconds} s each):"
    );
    for rate in [10_000u64, 100_000] {
        rt.block_on(async {
            let budget = RedisBudget::ratio(format!("bench-rate-{rate}"))
                .build_from_url(&server.url())
                .await
                .unwrap();
            let before = total_commands(server);
            let evalsha_before = server.command_calls("evalsha");
            let ticks = seconds * 100; // every 10 ms
            for _ in 0..ticks {
                for _ in 0..rate / 100 {
                    budget.deposit();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            budget.flush().await.unwrap();
            // Commands sent over the network (one EVALSHA per flush), and all commands the
            // server ran including those inside the script (TIME, HINCRBY, ...), minus the
            // two INFO calls made here.
            let sent = server.command_calls("evalsha") - evalsha_before;
            let executed = total_commands(server) - before - 2;
            let requests = rate * seconds;
            println!(
                "  {rate:>7} req/s: {sent:>3} commands sent ({executed} executed inside Redis) for {requests:>7} requests \
                 = {:.3} per 1,000 ({:.1}/s); flushes {}",
                sent as f64 * 1000.0 / requests as f64,
                sent as f64 / seconds as f64,
                budget.stats().flushes
            );
        });
    }
}

/// Every command the server executed so far, from `INFO commandstats`.
fn total_commands(server: &redis_server::RedisServer) -> u64 {
    server
        .command(&["INFO", "commandstats"])
        .lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

fn benches(c: &mut Criterion) {
    let server = redis_server::RedisServer::start();
    deposit(c, &server.url());
    latency(&server.url());
    commands_per_request(&server);
}

criterion_group!(redis_budget, benches);

fn main() {
    redis_budget();
    Criterion::default().configure_from_args().final_summary();
}
