//! No budget at all.

use super::Budget;
use std::future::{Ready, ready};

/// Grants every retry: only `max_attempts` and the deadline limit retries.
///
/// Use it when something else (an Envoy sidecar, a token bucket in front) already bounds
/// retries; otherwise prefer [`RatioBudget`](super::RatioBudget).
///
/// ```
/// use tower_retrier::budget::{Budget, Unlimited};
/// assert!(Unlimited::new().withdraw().into_inner());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited {
    _priv: (),
}

impl Unlimited {
    /// A budget that never denies.
    ///
    /// ```
    /// let _ = tower_retrier::budget::Unlimited::new();
    /// ```
    pub fn new() -> Self {
        Unlimited { _priv: () }
    }
}

impl Budget for Unlimited {
    type Withdraw = Ready<bool>;

    #[inline]
    fn deposit(&self) {}

    fn withdraw_now(&self) -> Option<bool> {
        Some(self.withdraw().into_inner())
    }

    fn withdraw(&self) -> Ready<bool> {
        ready(true)
    }
}
