//! Which budget a [`RedisBudget`](super::RedisBudget) shares: the success-weighted quota or the
//! Finagle ratio window.

use crate::budget::{AdaptiveBudget, Budget, RatioBudget};
use std::time::Duration;

/// The semantics a [`RedisBudget`](super::RedisBudget) applies to the fleet.
///
/// ```
/// use tower_retrier::budget::redis::Mode;
/// assert_eq!(Mode::default(), Mode::Adaptive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// The [`AdaptiveBudget`] shared by the fleet (the default), built by
    /// [`RedisBudget::adaptive`](super::RedisBudget::adaptive): one stock of at most
    /// `max_retries`, refilled by `per_success` per successful attempt anywhere in the fleet
    /// and by `min_per_sec` per second. A total outage drains it at once; a partial failure
    /// never does.
    #[default]
    Adaptive,
    /// The [`RatioBudget`] shared by the fleet, built by
    /// [`RedisBudget::ratio`](super::RedisBudget::ratio): in any `ttl` window at most
    /// `min_per_sec × ttl + ratio × requests` retries.
    Ratio,
}

/// What a [`RedisBudget`](super::RedisBudget) applies, with the parameters of its mode only
/// (validated): the settings of the other mode cannot be carried along unnoticed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Semantics {
    /// [`Mode::Adaptive`].
    Adaptive {
        max_retries: u32,
        per_success: f64,
        min_per_sec: u32,
    },
    /// [`Mode::Ratio`].
    Ratio {
        ttl: Duration,
        min_per_sec: u32,
        ratio: f64,
    },
}

/// An adaptive budget's state has no window; its leased tokens stay valid and its key lives
/// as long as a ratio budget's with the default 10 s window: a lease for 1 s, the key for 20 s
/// without traffic.
const ADAPTIVE_LEASE_VALIDITY: Duration = Duration::from_secs(1);
const ADAPTIVE_IDLE_EXPIRY: Duration = Duration::from_secs(20);

impl Semantics {
    pub(crate) fn mode(&self) -> Mode {
        match self {
            Semantics::Adaptive { .. } => Mode::Adaptive,
            Semantics::Ratio { .. } => Mode::Ratio,
        }
    }

    /// How long tokens leased from Redis may be handed out. Ratio mode: one slot of the
    /// window (`ttl / 10`); after that the withdrawal they stand for has left Redis' window
    /// and using them would over-spend.
    pub(crate) fn lease_validity(&self, slots: u32) -> Duration {
        match self {
            Semantics::Adaptive { .. } => ADAPTIVE_LEASE_VALIDITY,
            Semantics::Ratio { ttl, .. } => *ttl / slots,
        }
    }

    /// How long the shared state outlives the last traffic: two windows in ratio mode.
    pub(crate) fn idle_expiry(&self) -> Duration {
        match self {
            Semantics::Adaptive { .. } => ADAPTIVE_IDLE_EXPIRY,
            Semantics::Ratio { ttl, .. } => ttl.saturating_mul(2),
        }
    }

    /// The local budget with the same parameters, for the outage policy; validates them (the
    /// error names the field as the local budget does).
    pub(crate) fn fallback(&self) -> Result<Fallback, crate::ConfigError> {
        Ok(match *self {
            Semantics::Adaptive {
                max_retries,
                per_success,
                min_per_sec,
            } => Fallback::Adaptive(AdaptiveBudget::new(max_retries, per_success, min_per_sec)?),
            Semantics::Ratio {
                ttl,
                min_per_sec,
                ratio,
            } => Fallback::Ratio(RatioBudget::new(ttl, min_per_sec, ratio)?),
        })
    }
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
