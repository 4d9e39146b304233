//! The default classifier: every error is worth another try, except overload rejections.

use super::error_class::ErrorClass;
use super::error_types::boxed_error;
use super::{Classify, Decision, RetryReason};
use std::any::Any;

/// Retries every `Err` and accepts every `Ok`. The default classifier.
///
/// When the error is a boxed `std::error::Error` (what tower's own middleware returns), it
/// looks through the `source()` chain: a load-shed rejection
/// (`tower::load_shed::error::Overloaded`) is **not** retried (retrying into an overloaded
/// service is what turns overload into an outage), and a `tower::timeout::error::Elapsed` is
/// retried with reason [`RetryReason::Timeout`], a refused connection with
/// [`RetryReason::NotSent`].
///
/// It does not judge idempotency: the layer's guard keeps a request that is not idempotent
/// (an HTTP POST, see [`Idempotent`](crate::replay::Idempotent)) from being resent unless
/// nothing reached the server.
///
/// ```
/// use tower_retrier::classify::{Classify, Decision, RetryAnyError, RetryReason};
/// use tower::BoxError;
///
/// let c = RetryAnyError::new();
/// let shed: Result<(), BoxError> = Err(Box::new(tower::load_shed::error::Overloaded::new()));
/// assert_eq!(c.classify(&(), &shed), Decision::Fail);
/// let io: Result<(), BoxError> = Err(Box::new(std::io::Error::other("reset")));
/// assert_eq!(c.classify(&(), &io), Decision::retry(RetryReason::Error));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryAnyError {
    _priv: (),
}

impl RetryAnyError {
    /// The default classifier.
    ///
    /// ```
    /// let _ = tower_retrier::classify::RetryAnyError::new();
    /// ```
    pub fn new() -> Self {
        RetryAnyError { _priv: () }
    }
}

impl<Req, Res, E: 'static> Classify<Req, Res, E> for RetryAnyError {
    fn classify(&self, _req: &Req, result: &Result<Res, E>) -> Decision {
        let Err(err) = result else {
            return Decision::Success;
        };
        match ErrorClass::of(boxed_error(err as &dyn Any)) {
            ErrorClass::Never => Decision::Fail,
            ErrorClass::NotSent => Decision::retry(RetryReason::NotSent),
            ErrorClass::Unprocessed => Decision::retry(RetryReason::Transparent),
            ErrorClass::Timeout => Decision::retry(RetryReason::Timeout),
            ErrorClass::Other => Decision::retry(RetryReason::Error),
        }
    }

    /// The only errors it does not retry are sheds and refusals: never a final answer.
    fn is_final_answer(&self, _req: &Req, result: &Result<Res, E>) -> bool {
        result.is_ok()
    }
}
