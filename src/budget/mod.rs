//! Retry budgets: a cap on retries relative to real traffic, so that retries cannot multiply
//! an outage into a retry storm.
//!
//! Every original request [`deposit`](Budget::deposit)s; every retry must
//! [`withdraw`](Budget::withdraw). A denied withdrawal ends the request with its last result.
//! Budgets are shared by every clone of the layer or budget they come from.
//!
//! - [`AdaptiveBudget`] (the default): a stock of `max_retries` retries paid for by successes
//!   (`per_success` each, plus `min_per_sec` per second), so a partial failure is retried away
//!   while a total outage gets almost no retries.
//! - [`RatioBudget`]: Finagle/Linkerd semantics; in any `ttl` window at most
//!   `min_per_sec × ttl + ratio × requests` retries.
//! - [`TokenBucket`]: gRPC's retry throttling (gRFC A6), with gRFC A6's names: `token_ratio`
//!   is tokens refunded per success.
//! - [`Unlimited`]: no budget.
//! - `RedisBudget` (feature `redis`): either budget shared by a whole fleet,
//!   `RedisBudget::adaptive(name)` or `RedisBudget::ratio(name)`, with the same parameters.
//!
//! One name, one meaning: `ratio` is always retries per original request, `per_success`
//! retries earned per successful attempt, and `min_per_sec` retries per second granted
//! without any traffic.

mod adaptive;
pub(crate) mod counter;
mod ratio;
// The fleet-wide budget (feature `redis`).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod token_bucket;
mod unlimited;

use std::future::Future;
use std::sync::Arc;

pub use adaptive::AdaptiveBudget;
pub use ratio::RatioBudget;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisBudget;
pub use token_bucket::TokenBucket;
pub use unlimited::Unlimited;

/// A retry budget.
///
/// `deposit` runs on every original request and must be cheap, synchronous and
/// allocation-free. `withdraw` runs before every retry and may be asynchronous (a shared
/// budget may need a round trip); local budgets return a ready future.
///
/// ```
/// use std::future::{Ready, ready};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use tower_retrier::budget::Budget;
///
/// /// At most `n` retries in total, ever.
/// #[derive(Clone, Debug)]
/// struct Fixed(Arc<AtomicI64>);
///
/// impl Budget for Fixed {
///     type Withdraw = Ready<bool>;
///     fn deposit(&self) {}
///     fn withdraw(&self) -> Ready<bool> {
///         ready(self.0.fetch_sub(1, Ordering::Relaxed) > 0)
///     }
///     // Answers without waiting, so a retry skips polling the `Ready` future.
///     fn withdraw_now(&self) -> Option<bool> {
///         Some(self.withdraw().into_inner())
///     }
/// }
///
/// let b = Fixed(Arc::new(AtomicI64::new(1)));
/// assert!(b.withdraw().into_inner());
/// assert!(!b.withdraw().into_inner());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a retry budget",
    label = "expected a `tower_retrier::budget::Budget`",
    note = "use `AdaptiveBudget::new(max_retries, per_success, min_per_sec)?`, `RatioBudget::new(ttl, min_per_sec, ratio)?`, `TokenBucket::new(max_tokens, token_ratio)?`, `RedisBudget::adaptive(name)` (feature `redis`) or `Unlimited::new()`; budget constructors return a `Result`: did you forget the `?`"
)]
pub trait Budget {
    /// Resolves to `true` when the retry may go ahead.
    type Withdraw: Future<Output = bool>;

    /// Records one original request. Never blocks.
    fn deposit(&self);

    /// Asks for one retry.
    fn withdraw(&self) -> Self::Withdraw;

    /// Asks for one retry when the answer needs no waiting: `Some(granted)` instead of
    /// [`withdraw`](Budget::withdraw) (which is then not called), or `None` to go through
    /// `withdraw`. Local budgets answer here, which saves the response future a state per
    /// retry. The default is `None`; an implementation that returns `Some` must take the retry
    /// from the budget exactly as `withdraw` would.
    fn withdraw_now(&self) -> Option<bool> {
        None
    }

    /// Records that an attempt succeeded (used by [`AdaptiveBudget`] and [`TokenBucket`]); a
    /// no-op by default.
    fn record_success(&self) {}
}

impl<B: Budget + ?Sized> Budget for Arc<B> {
    type Withdraw = B::Withdraw;

    fn deposit(&self) {
        (**self).deposit()
    }

    fn withdraw(&self) -> Self::Withdraw {
        (**self).withdraw()
    }

    fn withdraw_now(&self) -> Option<bool> {
        (**self).withdraw_now()
    }

    fn record_success(&self) {
        (**self).record_success()
    }
}
