//! A backoff written as a closure.

use super::{Backoff, BackoffContext};
use std::fmt;
use std::time::Duration;

/// A [`Backoff`] from a closure; build it with [`backoff_fn`].
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::backoff::{Backoff, BackoffContext, backoff_fn};
///
/// let fib = backoff_fn(|ctx: &mut BackoffContext| {
///     let (mut a, mut b) = (0u64, 1u64);
///     for _ in 0..ctx.retry() { (a, b) = (b, a + b); }
///     Duration::from_millis(10 * a)
/// });
/// assert_eq!(fib.delay(&mut BackoffContext::new(4, 0)), Duration::from_millis(30));
/// ```
#[derive(Clone)]
pub struct BackoffFn<F> {
    f: F,
}

/// Wraps `f` as a [`Backoff`].
///
/// ```
/// # use std::time::Duration;
/// let b = tower_retrier::backoff::backoff_fn(|_ctx: &mut tower_retrier::backoff::BackoffContext| Duration::from_millis(1));
/// # let _ = b;
/// ```
pub fn backoff_fn<F>(f: F) -> BackoffFn<F>
where
    F: Fn(&mut BackoffContext) -> Duration,
{
    BackoffFn { f }
}

impl<F> Backoff for BackoffFn<F>
where
    F: Fn(&mut BackoffContext) -> Duration,
{
    fn delay(&self, ctx: &mut BackoffContext) -> Duration {
        (self.f)(ctx)
    }
}

impl<F> fmt::Debug for BackoffFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffFn").finish_non_exhaustive()
    }
}
