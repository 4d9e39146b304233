//! Non-exponential schedules: a constant delay and a linearly growing one.

use super::{Backoff, BackoffContext};
use std::time::Duration;

/// The same delay before every retry.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext, Constant};
///
/// let b = Constant::new(Duration::from_millis(50));
/// assert_eq!(b.delay(&mut BackoffContext::new(7, 0)), Duration::from_millis(50));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constant {
    delay: Duration,
}

impl Constant {
    /// Waits `delay` before every retry.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::Constant::new(Duration::ZERO);
    /// ```
    pub fn new(delay: Duration) -> Self {
        Constant { delay }
    }
}

impl Backoff for Constant {
    fn delay(&self, _ctx: &mut BackoffContext) -> Duration {
        self.delay
    }
}

/// `initial + step × (n-1)`, capped at `max`.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext, Linear};
///
/// let b = Linear::new(Duration::from_millis(100), Duration::from_millis(50), Duration::from_millis(180));
/// let d: Vec<_> = (1..=3).map(|n| b.delay(&mut BackoffContext::new(n, 0))).collect();
/// assert_eq!(d, [100, 150, 180].map(Duration::from_millis));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linear {
    initial: Duration,
    step: Duration,
    max: Duration,
}

impl Linear {
    /// Starts at `initial`, adds `step` per retry, never above `max`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::Linear::new(Duration::ZERO, Duration::from_millis(10), Duration::from_secs(1));
    /// ```
    pub fn new(initial: Duration, step: Duration, max: Duration) -> Self {
        Linear { initial, step, max }
    }
}

impl Backoff for Linear {
    fn delay(&self, ctx: &mut BackoffContext) -> Duration {
        let extra = self.step.saturating_mul(ctx.retry().saturating_sub(1));
        self.initial.saturating_add(extra).min(self.max)
    }
}
