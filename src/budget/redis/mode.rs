//! Which budget a [`RedisBudget`](super::RedisBudget) shares: the success-weighted quota or the
//! Finagle ratio window.

use crate::budget::{AdaptiveBudget, Budget, RatioBudget};

/// The semantics a [`RedisBudget`](super::RedisBudget) applies to the fleet.
///
/// ```
/// use tower_retrier::budget::redis::Mode;
/// assert_eq!(Mode::default(), Mode::Adaptive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// The [`AdaptiveBudget`] shared by the fleet (the default): one stock of at most
    /// `max_retries`, refilled by `ratio` per successful attempt anywhere in the fleet and by
    /// `min_per_sec` per second. A total outage drains it at once; a partial failure never does.
    #[default]
    Adaptive,
    /// The [`RatioBudget`] shared by the fleet: in any `ttl` window at most
    /// `min_per_sec × ttl + ratio × requests` retries.
    Ratio,
}

/// The local budget a `RedisBudget` decides with while Redis is unavailable (policy
/// [`Unavailable::Fallback`](super::Unavailable::Fallback)); it always sees this instance's
/// traffic so that it is warm when needed.
#[derive(Clone, Debug)]
pub(crate) enum Fallback {
    Ratio(RatioBudget),
    Adaptive(AdaptiveBudget),
}

impl Fallback {
    /// Feeds `n` batched events: deposits in ratio mode, successes in adaptive mode.
    pub(crate) fn feed(&self, n: u64) {
        match self {
            Fallback::Ratio(b) => b.deposit_n(n),
            Fallback::Adaptive(b) => b.record_successes(n),
        }
    }

    pub(crate) fn withdraw(&self) -> bool {
        match self {
            Fallback::Ratio(b) => b.withdraw().into_inner(),
            Fallback::Adaptive(b) => b.withdraw().into_inner(),
        }
    }
}
