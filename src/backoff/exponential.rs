//! The default schedule: exponential growth with optional proportional jitter.

use super::{Backoff, BackoffContext, clamp_secs, grown};
use crate::RetryConfig;
use std::time::Duration;

/// Exponential backoff with optional ± jitter: the reference formula.
///
/// Delay before retry *n* = `min(initial × base^(n-1), max)`; with jitter, a uniform value in
/// `delay × (1 ± factor)`; finally clamped to `[0, max]`.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext, Exponential};
///
/// let b = Exponential::new(Duration::from_millis(100), Duration::from_secs(1), 2.0).without_jitter();
/// let delays: Vec<_> = (1..=5).map(|n| b.delay(&mut BackoffContext::new(n, 0))).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000].map(Duration::from_millis));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Exponential {
    initial: Duration,
    max: Duration,
    base: f64,
    jitter_factor: Option<f64>,
}

impl Exponential {
    /// Exponential growth from `initial` by `base`, capped at `max`, with ±10% jitter.
    /// Invalid values are tamed rather than rejected: a base below 1 or non-finite becomes 1,
    /// use [`RetryConfig`] for validated construction.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::Exponential::new(Duration::from_millis(10), Duration::from_secs(1), 2.0);
    /// ```
    pub fn new(initial: Duration, max: Duration, base: f64) -> Self {
        let base = if base.is_finite() && base >= 1.0 {
            base
        } else {
            1.0
        };
        Exponential {
            initial: initial.min(max),
            max,
            base,
            jitter_factor: Some(0.1),
        }
    }

    /// The schedule a [`RetryConfig`] describes.
    ///
    /// ```
    /// let b = tower_retrier::backoff::Exponential::from_config(&tower_retrier::RetryConfig::default());
    /// # let _ = b;
    /// ```
    pub fn from_config(cfg: &RetryConfig) -> Self {
        Exponential {
            initial: cfg.initial_delay(),
            max: cfg.max_delay(),
            base: cfg.exponential_base(),
            jitter_factor: cfg.jitter().then_some(cfg.jitter_factor()),
        }
    }

    /// Sets the relative jitter (clamped to [0, 1]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::Exponential::new(Duration::from_millis(10), Duration::from_secs(1), 2.0).with_jitter(0.5);
    /// ```
    pub fn with_jitter(mut self, factor: f64) -> Self {
        let factor = if factor.is_nan() {
            0.0
        } else {
            factor.clamp(0.0, 1.0)
        };
        self.jitter_factor = Some(factor);
        self
    }

    /// Removes the jitter: the exact formula, same for every request.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let _ = tower_retrier::backoff::Exponential::new(Duration::from_millis(10), Duration::from_secs(1), 2.0).without_jitter();
    /// ```
    pub fn without_jitter(mut self) -> Self {
        self.jitter_factor = None;
        self
    }
}

impl Default for Exponential {
    fn default() -> Self {
        Exponential::from_config(&RetryConfig::default())
    }
}

impl Backoff for Exponential {
    fn delay(&self, ctx: &mut BackoffContext) -> Duration {
        let base = grown(self.initial, self.base, ctx.retry()).min(self.max.as_secs_f64());
        let secs = match self.jitter_factor {
            Some(f) if f > 0.0 => base * (1.0 + f * (2.0 * ctx.rng().next_f64() - 1.0)),
            _ => base,
        };
        clamp_secs(secs, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let b = Exponential::from_config(&RetryConfig::default());
        let mut seen = std::collections::HashSet::new();
        for seed in 0..1000 {
            for n in 1..=3u32 {
                let d = b.delay(&mut BackoffContext::new(n, seed)).as_secs_f64();
                let nominal = 0.1 * 2f64.powi(n as i32 - 1);
                assert!(
                    d >= nominal * 0.9 - 1e-9 && d <= nominal * 1.1 + 1e-9,
                    "{d}"
                );
                seen.insert(d.to_bits());
            }
        }
        assert!(seen.len() > 2900);
    }

    #[test]
    fn jitter_never_exceeds_cap() {
        let cfg = RetryConfig::builder()
            .max_delay(Duration::from_millis(150))
            .jitter_factor(1.0)
            .build()
            .unwrap();
        let b = Exponential::from_config(&cfg);
        for seed in 0..1000 {
            assert!(b.delay(&mut BackoffContext::new(10, seed)) <= Duration::from_millis(150));
        }
    }
}
