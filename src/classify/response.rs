//! Retrying `Ok` responses that a predicate marks as transient.

use super::{Classify, Decision, RetryReason};
use std::fmt;

/// Retries `Ok` responses matching a predicate; defers everything else to the inner
/// classifier. Built with [`ClassifyExt::retry_response_if`](super::ClassifyExt::retry_response_if).
///
/// ```
/// use tower_retrier::classify::{Classify, ClassifyExt, Decision, RetryAnyError};
///
/// let c = RetryAnyError::new().retry_response_if(|r: &Result<u32, &str>| r.is_err());
/// assert!(c.classify(&(), &Ok::<_, ()>(Err::<u32, &str>("busy"))).is_retry());
/// assert_eq!(c.classify(&(), &Ok::<_, ()>(Ok::<u32, &str>(1))), Decision::Success);
/// ```
#[derive(Clone)]
pub struct RetryResponseIf<C, F> {
    inner: C,
    predicate: F,
}

impl<C, F> RetryResponseIf<C, F> {
    pub(crate) fn new(inner: C, predicate: F) -> Self {
        RetryResponseIf { inner, predicate }
    }
}

impl<Req, Res, E, C, F> Classify<Req, Res, E> for RetryResponseIf<C, F>
where
    C: Classify<Req, Res, E>,
    F: Fn(&Res) -> bool,
{
    fn classify(&self, req: &Req, result: &Result<Res, E>) -> Decision {
        match result {
            Ok(res) if (self.predicate)(res) => Decision::retry(RetryReason::Response),
            _ => self.inner.classify(req, result),
        }
    }

    fn handles_idempotency(&self) -> bool {
        self.inner.handles_idempotency()
    }

    fn classify_timeout(&self, req: &Req) -> Decision {
        self.inner.classify_timeout(req)
    }

    fn allows_resend(&self, req: &Req) -> bool {
        self.inner.allows_resend(req)
    }

    fn is_final_answer(&self, req: &Req, result: &Result<Res, E>) -> bool {
        self.inner.is_final_answer(req, result)
    }
}

impl<C: fmt::Debug, F> fmt::Debug for RetryResponseIf<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryResponseIf")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
