//! A classifier written as a closure.

use super::{Classify, Decision};
use std::fmt;

/// A [`Classify`] from a closure; build it with [`classify_fn`].
///
/// ```
/// use tower_retrier::classify::{Classify, Decision, RetryReason, classify_fn};
///
/// let c = classify_fn(|req: &u32, res: &Result<(), String>| match res {
///     Err(_) if *req % 2 == 0 => Decision::retry(RetryReason::Error),
///     Err(_) => Decision::Fail,
///     Ok(()) => Decision::Success,
/// });
/// assert!(c.classify(&2, &Err("x".into())).is_retry());
/// assert_eq!(c.classify(&3, &Err("x".into())), Decision::Fail);
/// ```
#[derive(Clone)]
pub struct ClassifyFn<F> {
    f: F,
}

/// Wraps `f(&request, &result) -> Decision` as a [`Classify`].
///
/// ```
/// use tower_retrier::classify::{Decision, classify_fn};
/// let _c = classify_fn(|_req: &(), res: &Result<(), ()>| if res.is_ok() { Decision::Success } else { Decision::Fail });
/// ```
pub fn classify_fn<F>(f: F) -> ClassifyFn<F> {
    ClassifyFn { f }
}

impl<Req, Res, E, F> Classify<Req, Res, E> for ClassifyFn<F>
where
    F: Fn(&Req, &Result<Res, E>) -> Decision,
{
    fn classify(&self, req: &Req, result: &Result<Res, E>) -> Decision {
        (self.f)(req, result)
    }
}

impl<F> fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifyFn").finish_non_exhaustive()
    }
}
