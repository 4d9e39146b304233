//! gRPC-style retry throttling (gRFC A6).

use super::Budget;
use crate::ConfigError;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milli-tokens per token: gRPC allows three decimal places in `tokenRatio`.
const MILLI: u64 = 1000;

/// gRPC's retry throttle: a bucket of `max_tokens` that starts full; each retry costs one
/// token (the failure that caused it), each successful attempt refunds `token_ratio`; retries
/// stop while the bucket is at or below half.
///
/// ```
/// use tower_retrier::budget::{Budget, TokenBucket};
///
/// let b = TokenBucket::new(10, 0.1)?;
/// let granted = (0..10).filter(|_| b.withdraw().into_inner()).count();
/// assert_eq!(granted, 4); // 10 → 9, 8, 7, 6 granted; at 5 (= half) retries stop
/// # Ok::<(), tower_retrier::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokenBucket {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tokens: AtomicU64,
    max: u64,
    ratio: u64,
}

impl TokenBucket {
    /// `max_tokens` in 1..=1000, `token_ratio` in (0, 1000] (rounded to 3 decimals), as
    /// gRFC A6 requires.
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::TokenBucket::new(0, 0.1).unwrap_err().field(), "max_tokens");
    /// ```
    pub fn new(max_tokens: u32, token_ratio: f64) -> Result<Self, ConfigError> {
        if !(1..=1000).contains(&max_tokens) {
            return Err(ConfigError::new(
                "max_tokens",
                max_tokens.to_string(),
                "must be between 1 and 1000",
            )
            .subject("retry budget"));
        }
        let ratio = (token_ratio * MILLI as f64).round();
        if !token_ratio.is_finite() || !(1.0..=1_000_000.0).contains(&ratio) {
            return Err(ConfigError::new(
                "token_ratio",
                token_ratio.to_string(),
                "must be a number in [0.001, 1000]",
            )
            .subject("retry budget"));
        }
        let max = u64::from(max_tokens) * MILLI;
        Ok(TokenBucket {
            inner: Arc::new(Inner {
                tokens: AtomicU64::new(max),
                max,
                ratio: ratio as u64,
            }),
        })
    }

    /// Tokens left (with fractions).
    ///
    /// ```
    /// let b = tower_retrier::budget::TokenBucket::new(10, 0.5).unwrap();
    /// assert_eq!(b.tokens(), 10.0);
    /// ```
    pub fn tokens(&self) -> f64 {
        self.inner.tokens.load(Ordering::Relaxed) as f64 / MILLI as f64
    }
}

impl Budget for TokenBucket {
    type Withdraw = Ready<bool>;

    #[inline]
    fn deposit(&self) {}

    fn withdraw(&self) -> Ready<bool> {
        let i = &self.inner;
        let prev = i
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(MILLI))
            })
            .unwrap_or(0);
        ready(prev.saturating_sub(MILLI) > i.max / 2)
    }

    fn record_success(&self) {
        let i = &self.inner;
        // A full bucket (the common case) costs one load and no write.
        if i.tokens.load(Ordering::Relaxed) >= i.max {
            return;
        }
        let _ = i
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some((t + i.ratio).min(i.max))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_on_success_and_caps() {
        let b = TokenBucket::new(4, 0.5).unwrap();
        assert!(b.withdraw().into_inner()); // 3 > 2
        assert!(!b.withdraw().into_inner()); // 2, not > 2
        assert_eq!(b.tokens(), 2.0);
        for _ in 0..3 {
            b.record_success();
        }
        assert_eq!(b.tokens(), 3.5);
        for _ in 0..10 {
            b.record_success();
        }
        assert_eq!(b.tokens(), 4.0);
    }

    #[test]
    fn rejects_bad_ratio() {
        assert_eq!(
            TokenBucket::new(10, 0.0).unwrap_err().field(),
            "token_ratio"
        );
        assert_eq!(
            TokenBucket::new(10, f64::NAN).unwrap_err().field(),
            "token_ratio"
        );
    }
}
