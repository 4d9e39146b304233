//! The jitter strategies from the AWS "Exponential Backoff and Jitter" study.

use super::{Backoff, BackoffContext, clamp_secs, grown};
use std::time::Duration;

/// Full jitter: `random(0, min(cap, base × multiplier^(n-1)))` (gRPC's and AWS's choice;
/// least total work in the AWS study).
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext, FullJitter};
///
/// let b = FullJitter::new(Duration::from_millis(100), Duration::from_secs(1));
/// let d = b.delay(&mut BackoffContext::new(3, 1));
/// assert!(d <= Duration::from_millis(400));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FullJitter {
    base: Duration,
    cap: Duration,
    multiplier: f64,
}

impl FullJitter {
    /// Full jitter doubling from `base` up to `cap`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::FullJitter::new(Duration::from_millis(25), Duration::from_millis(250));
    /// ```
    pub fn new(base: Duration, cap: Duration) -> Self {
        FullJitter {
            base,
            cap,
            multiplier: 2.0,
        }
    }

    /// Uses another growth factor (non-finite or < 1 becomes 1).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::FullJitter::new(Duration::from_millis(25), Duration::from_secs(1)).multiplier(1.6);
    /// ```
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = if m.is_finite() && m >= 1.0 { m } else { 1.0 };
        self
    }
}

impl Backoff for FullJitter {
    fn delay(&self, ctx: &mut BackoffContext) -> Duration {
        let ceiling = grown(self.base, self.multiplier, ctx.retry()).min(self.cap.as_secs_f64());
        clamp_secs(ctx.rng().uniform(0.0, ceiling), self.cap)
    }
}

/// Equal jitter: half the exponential delay fixed, half random.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext, EqualJitter};
///
/// let b = EqualJitter::new(Duration::from_millis(100), Duration::from_secs(1));
/// let d = b.delay(&mut BackoffContext::new(2, 1));
/// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EqualJitter {
    base: Duration,
    cap: Duration,
}

impl EqualJitter {
    /// Equal jitter doubling from `base` up to `cap`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::EqualJitter::new(Duration::from_millis(25), Duration::from_secs(1));
    /// ```
    pub fn new(base: Duration, cap: Duration) -> Self {
        EqualJitter { base, cap }
    }
}

impl Backoff for EqualJitter {
    fn delay(&self, ctx: &mut BackoffContext) -> Duration {
        let v = grown(self.base, 2.0, ctx.retry()).min(self.cap.as_secs_f64());
        clamp_secs(v / 2.0 + ctx.rng().uniform(0.0, v / 2.0), self.cap)
    }
}

/// Decorrelated jitter: `min(cap, random(base, previous × 3))`.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext, DecorrelatedJitter};
///
/// let b = DecorrelatedJitter::new(Duration::from_millis(100), Duration::from_secs(2));
/// let d = b.delay(&mut BackoffContext::new(1, 1));
/// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(300));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DecorrelatedJitter {
    base: Duration,
    cap: Duration,
}

impl DecorrelatedJitter {
    /// Decorrelated jitter from `base`, capped at `cap`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::DecorrelatedJitter::new(Duration::from_millis(25), Duration::from_secs(1));
    /// ```
    pub fn new(base: Duration, cap: Duration) -> Self {
        DecorrelatedJitter { base, cap }
    }
}

impl Backoff for DecorrelatedJitter {
    fn delay(&self, ctx: &mut BackoffContext) -> Duration {
        let base = self.base.as_secs_f64();
        let prev = ctx.previous().map_or(base, |d| d.as_secs_f64().max(base));
        clamp_secs(ctx.rng().uniform(base, prev * 3.0), self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decorrelated_grows_from_previous() {
        let b = DecorrelatedJitter::new(Duration::from_millis(10), Duration::from_secs(60));
        let mut ctx = BackoffContext::new(1, 5);
        for _ in 0..20 {
            let prev = ctx.previous().unwrap_or(Duration::from_millis(10));
            let d = b.delay(&mut ctx);
            assert!(
                d >= Duration::from_millis(10) && d <= prev * 3,
                "{d:?} {prev:?}"
            );
            ctx.advance(d);
        }
    }

    #[test]
    fn full_jitter_covers_range() {
        let b = FullJitter::new(Duration::from_millis(100), Duration::from_secs(10));
        let (mut lo, mut hi) = (f64::MAX, 0f64);
        for seed in 0..2000 {
            let d = b.delay(&mut BackoffContext::new(1, seed)).as_secs_f64();
            lo = lo.min(d);
            hi = hi.max(d);
        }
        assert!(lo < 0.005 && hi > 0.095 && hi <= 0.1, "{lo} {hi}");
    }
}
