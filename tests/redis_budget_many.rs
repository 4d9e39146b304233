//! A process that keeps building Redis budgets (a layer per tenant, kept for the process) is
//! warned once more than 32 are alive, long before the general limit of 1,024 kept layers:
//! each holds a connection and a flusher task. Its own test binary: the count is per process.

mod support;

use support::redis::RedisServer;
use support::warnings::Warnings;
use tower_retrier::budget::RedisBudget;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "current_thread")]
async fn more_than_32_redis_budgets_alive_are_warned_about_once() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = RedisServer::start();
    let url = server.url();
    let build = || RedisBudget::adaptive("tenant").build_from_url(&url);
    // Budgets dropped along the way do not count.
    for _ in 0..40 {
        drop(build().await.unwrap());
    }
    let mut kept = Vec::new();
    for _ in 0..32 {
        kept.push(build().await.unwrap());
    }
    let about_many = |w: &Vec<String>| {
        w.iter()
            .filter(|m| m.contains("Redis retry budgets are alive"))
            .count()
    };
    assert_eq!(about_many(&warnings.0.lock().unwrap()), 0);
    for _ in 0..3 {
        kept.push(build().await.unwrap());
    }
    let w = warnings.0.lock().unwrap();
    assert_eq!(about_many(&w), 1, "{w:?}");
    assert!(w.iter().any(|m| m.contains("release_on_drop")), "{w:?}");
}
