//! Serves the retry layer's metrics to Prometheus, with traffic that moves every panel of
//! `dashboards/tower-retrier.json`.
//!
//! ```text
//! cargo run -p tower-retrier-integration --example prometheus -- [SECONDS]
//! ```
//!
//! Starts its own `redis-server` (a shared adaptive budget) and a Prometheus scrape endpoint
//! on a free loopback port (printed), sends traffic for SECONDS (default 60) and prints a
//! scrape at the end. Point a Prometheus at the printed address and import the dashboard to
//! watch it live.

#[allow(dead_code)]
#[path = "../../tests/support/redis.rs"]
mod redis_server;

#[path = "common/prometheus_workload.rs"]
mod workload;

use std::time::Duration;
use tower_retrier::budget::RedisBudget;

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("SECONDS must be a number, not {s:?}"))?,
        None => 60,
    };
    let addr = workload::serve_metrics().await?;
    println!("Prometheus scrape endpoint: http://{addr}/metrics");
    let redis = redis_server::RedisServer::start();
    let budget = RedisBudget::adaptive("checkout")
        .build_from_url(&redis.url())
        .await?;
    let every = Duration::from_millis(10);
    workload::traffic(budget, seconds * 100, every).await?;
    let text = workload::scrape(addr).await?;
    for line in text.lines().filter(|l| l.starts_with("retrier_")) {
        println!("{line}");
    }
    Ok(())
}
