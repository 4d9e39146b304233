//! Several service instances share one retry budget through Redis, against a downstream that
//! fails every call: compare the retries granted by a shared budget with per-instance budgets.
//!
//! ```text
//! cargo run --example shared_budget --features redis            # starts its own redis-server
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example shared_budget --features redis
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower_retrier::budget::{Budget, RatioBudget, RedisBudget};
use tower_retrier::{RetryConfig, RetryLayer};

// The test suite's redis-server harness (free loopback port, temporary directory).
#[allow(dead_code)]
#[path = "../tests/support/redis.rs"]
mod redis_server;

const INSTANCES: usize = 4;
const REQUESTS: usize = 50; // per instance
const TTL: Duration = Duration::from_secs(10);
const MIN_PER_SEC: u32 = 10;
const RATIO: f64 = 0.1;
/// Attempts per request, the first included: up to 4 retries each, so the budget decides.
const MAX_ATTEMPTS: u32 = 5;
/// Requests arrive this far apart, so each instance's batched deposits (flushed every
/// 100 ms) reach Redis while the run lasts, as they would in a service under steady load.
const SPACING: Duration = Duration::from_millis(10);

/// One instance serving its requests; returns the downstream calls it made.
async fn instance<B>(budget: B) -> u64
where
    B: Budget + Clone + Send + Sync + 'static,
{
    let config = RetryConfig::builder()
        .max_attempts(MAX_ATTEMPTS)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(2))
        .build()
        .expect("valid config");
    let layer = RetryLayer::new(config).with_budget(budget);
    let calls = Arc::new(AtomicU64::new(0));
    for _ in 0..REQUESTS {
        tokio::time::sleep(SPACING).await;
        let calls = Arc::clone(&calls);
        let _ = layer
            .execute(move || {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), _>(std::io::Error::other("downstream is down")) }
            })
            .await;
    }
    calls.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = redis_server::RedisServer::start();
            let url = server.url();
            (Some(server), url)
        }
    };
    let requests = (INSTANCES * REQUESTS) as u64;
    let floor = u64::from(MIN_PER_SEC) * TTL.as_secs();
    let ratio_share = |n: u64| (RATIO * n as f64).floor() as u64;
    println!(
        "Redis at {url}; {INSTANCES} instances × {REQUESTS} requests ({} ms apart), downstream \
         failing 100%, max_attempts {MAX_ATTEMPTS} (up to {} retries per request)",
        SPACING.as_millis(),
        MAX_ATTEMPTS - 1
    );
    println!(
        "budget: floor {MIN_PER_SEC}/s × {}s = {floor} retries, plus {RATIO} × requests",
        TTL.as_secs()
    );
    println!(
        "ceiling, one shared budget:  {floor} + {RATIO} × {requests} = {}",
        floor + ratio_share(requests)
    );
    println!(
        "ceiling, {INSTANCES} separate budgets: {INSTANCES} × ({floor} + {RATIO} × {REQUESTS}) = {}\n",
        INSTANCES as u64 * (floor + ratio_share(REQUESTS as u64))
    );

    let mut shared = Vec::new();
    for _ in 0..INSTANCES {
        // Each instance builds its own budget and client, as separate processes would.
        shared.push(
            RedisBudget::ratio("example-downstream")
                .ttl(TTL)
                .min_per_sec(MIN_PER_SEC)
                .ratio(RATIO)
                .build_from_url(&url)
                .await?,
        );
    }
    let tasks: Vec<_> = shared
        .iter()
        .cloned()
        .map(|b| tokio::spawn(instance(b)))
        .collect();
    let mut shared_calls = 0;
    for t in tasks {
        shared_calls += t.await?;
    }
    let tasks: Vec<_> = (0..INSTANCES)
        .map(|_| tokio::spawn(instance(RatioBudget::new(TTL, MIN_PER_SEC, RATIO).unwrap())))
        .collect();
    let mut local_calls = 0;
    for t in tasks {
        local_calls += t.await?;
    }

    let (shared_retries, local_retries) = (shared_calls - requests, local_calls - requests);
    println!("                      retries  per request");
    println!(
        "shared Redis budget   {shared_retries:>7}  {:>11.2}",
        shared_retries as f64 / requests as f64
    );
    println!(
        "per-instance budgets  {local_retries:>7}  {:>11.2}",
        local_retries as f64 / requests as f64
    );
    println!(
        "\nper-instance budgets let through {:.1}× the retries of the shared one",
        local_retries as f64 / shared_retries.max(1) as f64
    );
    println!(
        "(the shared figure can sit a few under its ceiling: the last deposits of each instance \
         reach Redis with its next flush)"
    );
    for (i, b) in shared.iter().enumerate() {
        println!("instance {i}: {:?}", b.stats());
    }
    Ok(())
}
