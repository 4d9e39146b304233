//! What the Redis fault tests share: the bound every withdrawal must meet while Redis
//! misbehaves, and waiting for the budget to decide through Redis again.

use std::future::Future;
use std::time::Duration;
use tower_retrier::budget::{Budget, RedisBudget};

/// The budgets' command timeout in the fault tests.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(50);
/// Scheduling noise on a loaded 2-core machine; the budget itself never waits longer than
/// COMMAND_TIMEOUT. Measured (the slowest withdrawal of the fault tests, 5 to 6 runs each):
/// 51.9 ms with the machine at load 3 to 4, 95.3 ms with four extra busy processes (load 5+),
/// i.e. at most 45 ms past the timeout; 100 ms leaves twice that.
pub const SLACK: Duration = Duration::from_millis(100);

/// A withdrawal that must finish within the command timeout (plus scheduling slack).
pub async fn bounded(b: &RedisBudget) -> bool {
    tokio::time::timeout(COMMAND_TIMEOUT + SLACK, b.withdraw())
        .await
        .expect("a retry waited longer than the command timeout for the budget")
}

/// Polls `cond` until it holds (at most 10 s).
pub async fn eventually<F: Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Redis answers again: a withdrawal goes to Redis (a round trip) without falling back.
pub async fn decides_through_redis(b: &RedisBudget) {
    eventually("Redis to be used again", || async {
        let before = b.stats();
        // Empty the lease so the next decision must ask Redis.
        while b.lease_outstanding() > 0 {
            bounded(b).await;
        }
        bounded(b).await;
        let after = b.stats();
        after.redis_up
            && after.round_trips > before.round_trips
            && after.fallback_decisions == before.fallback_decisions
    })
    .await;
}
