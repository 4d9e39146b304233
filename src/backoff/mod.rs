//! Backoff: how long to wait before each retry.
//!
//! A [`Backoff`] turns a retry number (1 for the first retry) into a delay. Each request gets
//! its own [`BackoffContext`] with its own [`JitterRng`], so jitter really spreads a herd of
//! requests instead of handing all of them the same sequence. The engine caps every delay at
//! [`RetryConfig::max_delay`](crate::RetryConfig::max_delay) and the deadline, whatever the
//! backoff returns.

mod exponential;
mod function;
mod jittered;
mod linear;
mod rng;

use std::fmt;
use std::time::Duration;

pub use exponential::Exponential;
pub use function::{BackoffFn, backoff_fn};
pub use jittered::{DecorrelatedJitter, EqualJitter, FullJitter};
pub use linear::{Constant, Linear};
pub use rng::JitterRng;
pub(crate) use rng::SeedSource;

/// Chooses the delay before a retry.
///
/// Implement it for your own schedule; the per-request context carries the retry number, the
/// previous delay and a random source.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext};
///
/// /// 10 ms, 20 ms, 30 ms, ... plus up to 5 ms of noise.
/// #[derive(Clone, Debug)]
/// struct Steps;
///
/// impl Backoff for Steps {
///     fn delay(&self, ctx: &mut BackoffContext) -> Duration {
///         let noise = ctx.rng().next_f64() * 5.0;
///         Duration::from_millis(10 * u64::from(ctx.retry())) + Duration::from_secs_f64(noise / 1000.0)
///     }
/// }
///
/// let mut ctx = BackoffContext::new(2, 42);
/// let d = Steps.delay(&mut ctx);
/// assert!(d >= Duration::from_millis(20) && d < Duration::from_millis(25));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a backoff",
    label = "expected a `tower_retrier::backoff::Backoff`",
    note = "use a ready-made one (`Exponential`, `FullJitter`, `EqualJitter`, `DecorrelatedJitter`, `Constant`, `Linear`) or `backoff_fn(|ctx| ..)`"
)]
pub trait Backoff {
    /// The delay before retry number `ctx.retry()`.
    fn delay(&self, ctx: &mut BackoffContext) -> Duration;
}

/// Per-request backoff state: which retry this is, the previous delay, and a random source
/// seeded for this request alone.
///
/// ```
/// use tower_retrier::backoff::BackoffContext;
///
/// let mut ctx = BackoffContext::new(1, 7);
/// assert_eq!(ctx.retry(), 1);
/// assert_eq!(ctx.previous(), None);
/// let x = ctx.rng().next_f64();
/// assert!((0.0..1.0).contains(&x));
/// ```
#[derive(Clone)]
pub struct BackoffContext {
    retry: u32,
    /// The previous delay in nanoseconds, [`NO_PREVIOUS`] before the first: 8 bytes rather
    /// than an `Option<Duration>`'s 16, since every response future carries a context.
    previous_nanos: u64,
    rng: JitterRng,
}

const NO_PREVIOUS: u64 = u64::MAX;

impl fmt::Debug for BackoffContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffContext")
            .field("retry", &self.retry)
            .field("previous", &self.previous())
            .field("rng", &self.rng)
            .finish()
    }
}

impl BackoffContext {
    /// A context for retry number `retry` with a random source seeded by `seed`.
    ///
    /// ```
    /// let ctx = tower_retrier::backoff::BackoffContext::new(3, 1);
    /// assert_eq!(ctx.retry(), 3);
    /// ```
    pub fn new(retry: u32, seed: u64) -> Self {
        BackoffContext {
            retry,
            previous_nanos: NO_PREVIOUS,
            rng: JitterRng::new(seed),
        }
    }

    /// A call's context before its first retry: not seeded yet, so a call that never
    /// retries never draws a seed.
    pub(crate) fn unstarted() -> Self {
        BackoffContext::new(0, 0)
    }

    /// Whether the first retry seeded this context.
    pub(crate) fn is_started(&self) -> bool {
        self.retry > 0
    }

    /// The retry number: 1 before the first retry, 2 before the second, and so on.
    ///
    /// ```
    /// assert_eq!(tower_retrier::backoff::BackoffContext::new(1, 0).retry(), 1);
    /// ```
    pub fn retry(&self) -> u32 {
        self.retry
    }

    /// The delay the backoff chose last time for this request (`None` before the first).
    ///
    /// ```
    /// assert_eq!(tower_retrier::backoff::BackoffContext::new(1, 0).previous(), None);
    /// ```
    pub fn previous(&self) -> Option<Duration> {
        (self.previous_nanos != NO_PREVIOUS).then(|| Duration::from_nanos(self.previous_nanos))
    }

    /// This request's random source.
    ///
    /// ```
    /// let mut ctx = tower_retrier::backoff::BackoffContext::new(1, 0);
    /// let _ = ctx.rng().next_u64();
    /// ```
    pub fn rng(&mut self) -> &mut JitterRng {
        &mut self.rng
    }

    /// Moves to the next retry after `delay` was used.
    pub(crate) fn advance(&mut self, delay: Duration) {
        // Delays beyond 584 years saturate (`max_delay` caps them long before).
        self.previous_nanos =
            u64::try_from(delay.as_nanos()).map_or(NO_PREVIOUS - 1, |n| n.min(NO_PREVIOUS - 1));
        self.retry = self.retry.saturating_add(1);
    }

    /// Starts the schedule over (after server pushback, as gRFC A6 prescribes).
    pub(crate) fn restart(&mut self) {
        self.previous_nanos = NO_PREVIOUS;
        self.retry = 1;
    }
}

/// Converts seconds to a `Duration` in `[0, cap]`, treating NaN and infinities safely
/// (`Duration::from_secs_f64` would panic on them).
pub(crate) fn clamp_secs(secs: f64, cap: Duration) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    if secs >= cap.as_secs_f64() {
        return cap;
    }
    Duration::from_secs_f64(secs).min(cap)
}

/// `initial × base^(retry-1)` in seconds, saturating (never NaN for valid inputs).
pub(crate) fn grown(initial: Duration, base: f64, retry: u32) -> f64 {
    let exp = retry.saturating_sub(1).min(i32::MAX as u32) as i32;
    initial.as_secs_f64() * base.powi(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_handles_non_finite() {
        let cap = Duration::from_secs(10);
        assert_eq!(clamp_secs(f64::NAN, cap), Duration::ZERO);
        assert_eq!(clamp_secs(f64::INFINITY, cap), cap);
        assert_eq!(clamp_secs(-1.0, cap), Duration::ZERO);
        assert_eq!(clamp_secs(1.5, cap), Duration::from_millis(1500));
    }

    #[test]
    fn growth_saturates_to_infinity_not_panic() {
        let g = grown(Duration::from_secs(1), 10.0, u32::MAX);
        assert!(g.is_infinite());
        assert_eq!(
            clamp_secs(g, Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
