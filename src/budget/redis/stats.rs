//! Counters a `RedisBudget` keeps about its own work, for tests, benchmarks and dashboards.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a [`RedisBudget`](super::RedisBudget)'s counters since it was built.
///
/// ```
/// let s = tower_retrier::budget::redis::RedisBudgetStats::default();
/// assert_eq!(s.round_trips, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisBudgetStats {
    /// Deposit batches written to Redis (one script call each).
    pub flushes: u64,
    /// Deposits (ratio mode) or successes (adaptive mode) carried to Redis by those batches.
    pub deposits_flushed: u64,
    /// Withdraw script calls (one per lease refill).
    pub round_trips: u64,
    /// Retries served from the local lease without a round trip.
    pub lease_hits: u64,
    /// Retries denied without a round trip because Redis had just reported the budget spent.
    pub denied_locally: u64,
    /// Retries decided by the unavailability policy because Redis was down or slow.
    pub fallback_decisions: u64,
    /// Failed or timed-out Redis commands.
    pub backend_errors: u64,
    /// Health probes sent while Redis was down.
    pub probes: u64,
    /// Script calls that found the shared state out of range (corrupted: a stock below zero
    /// or beyond 2^53, a count that is not a whole number, a field that is not a slot) and
    /// reset it: the stock to a full one, a bad slot field deleted. The first is logged.
    pub corrupt_state_repaired: u64,
    /// Script calls that found the shared state created by an instance with other parameters
    /// (adaptive: `max_retries`, `per_success`, `min_per_sec`; ratio: `ttl`, `ratio`,
    /// `min_per_sec`). Each instance keeps applying its own, which is why instances sharing a
    /// name must agree; the first is logged.
    pub parameter_mismatches: u64,
    /// Whether Redis is currently considered reachable.
    pub redis_up: bool,
    /// The fleet's stock of retries as Redis last reported it (adaptive mode; `None` in ratio
    /// mode or before Redis first answered).
    pub shared_stock: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) flushes: AtomicU64,
    pub(crate) deposits_flushed: AtomicU64,
    pub(crate) round_trips: AtomicU64,
    pub(crate) lease_hits: AtomicU64,
    pub(crate) denied_locally: AtomicU64,
    pub(crate) fallback_decisions: AtomicU64,
    pub(crate) backend_errors: AtomicU64,
    pub(crate) probes: AtomicU64,
    pub(crate) corrupt_state_repaired: AtomicU64,
    pub(crate) parameter_mismatches: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, redis_up: bool) -> RedisBudgetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisBudgetStats {
            flushes: get(&self.flushes),
            deposits_flushed: get(&self.deposits_flushed),
            round_trips: get(&self.round_trips),
            lease_hits: get(&self.lease_hits),
            denied_locally: get(&self.denied_locally),
            fallback_decisions: get(&self.fallback_decisions),
            backend_errors: get(&self.backend_errors),
            probes: get(&self.probes),
            corrupt_state_repaired: get(&self.corrupt_state_repaired),
            parameter_mismatches: get(&self.parameter_mismatches),
            redis_up,
            shared_stock: None,
        }
    }
}
