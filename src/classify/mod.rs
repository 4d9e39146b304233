//! Classification: deciding, from a request and its result, whether to stop or retry.
//!
//! A [`Classify`] returns a [`Decision`]: [`Decision::Success`], [`Decision::Fail`] (stop, do
//! not retry) or [`Decision::Retry`] (optionally after a server-given delay, with a closed
//! [`RetryReason`] for telemetry). Ready-made classifiers:
//!
//! - [`RetryAnyError`] (the default): retries every `Err`, except load-shed rejections.
//! - [`MatchErrors`]: retries only, or never, errors of given types, found through the
//!   error's `source()` chain.
//! - [`ClassifyExt::retry_response_if`]: also retries `Ok` responses matching a predicate.
//! - [`classify_fn`]: any closure.
//! - `HttpClassifier` (feature `http`) and `GrpcClassifier` (feature `grpc`): status codes,
//!   idempotency and server pushback for HTTP and gRPC clients.

mod any_error;
mod error_class;
mod error_types;
mod function;
mod response;

// HTTP and gRPC classification (features `http`, `grpc`).
#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "grpc")]
mod grpc_trailers;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod retry_after;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub use grpc::{GrpcClassifier, GrpcCode};
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub use grpc_trailers::{
    DEFAULT_MAX_TRAILER_READ, GrpcTrailers, GrpcTrailersLayer, TrailersBody, TrailersFuture,
};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::HttpClassifier;
#[cfg(feature = "http")]
pub(crate) use http::is_idempotent_request;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use retry_after::{parse_grpc_pushback, parse_retry_after};

use std::time::Duration;

pub use any_error::RetryAnyError;
pub use error_types::{Auto, InspectError, MatchErrors, Typed};
pub use function::{ClassifyFn, classify_fn};
pub use response::RetryResponseIf;

/// Decides what to do with the result of one attempt.
///
/// `Req` is the request as the classifier sees it (for `Clone` requests, the request itself).
///
/// ```
/// use tower_retrier::classify::{Classify, Decision, RetryReason};
///
/// /// Retries `Err`s and `Ok(503)`; a 4xx is a failure that retrying will not fix.
/// #[derive(Clone, Debug)]
/// struct StatusCodes;
///
/// impl<Req, E> Classify<Req, u16, E> for StatusCodes {
///     fn classify(&self, _req: &Req, result: &Result<u16, E>) -> Decision {
///         match result {
///             Err(_) => Decision::retry(RetryReason::Error),
///             Ok(503) => Decision::retry(RetryReason::ServerError),
///             Ok(s) if *s >= 400 => Decision::Fail,
///             Ok(_) => Decision::Success,
///         }
///     }
/// }
///
/// assert_eq!(StatusCodes.classify(&(), &Ok::<u16, ()>(200)), Decision::Success);
/// assert!(StatusCodes.classify(&(), &Ok::<u16, ()>(503)).is_retry());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify results of type `Result<{Res}, {E}>` for requests `{Req}`",
    label = "not a classifier for this service",
    note = "the classifier sees the request as the replay keeps it, and the inner service's `Result<Response, Error>`",
    note = "HttpClassifier/GrpcClassifier need `http::Request`/`http::Response`; `.typed_errors()` needs a concrete `std::error::Error` (a `.timeout(..)` or `Buffer` below the retry layer boxes errors into `BoxError`: drop `.typed_errors()` there)"
)]
pub trait Classify<Req, Res, E> {
    /// Classifies `result`, the outcome of sending `req`.
    fn classify(&self, req: &Req, result: &Result<Res, E>) -> Decision;

    /// Whether this classifier judges by itself whether a request may be sent again (its
    /// retry decisions already account for idempotency), so the layer's idempotency guard
    /// must step aside. `false` (the default): the layer refuses to resend a request that
    /// says it is not idempotent (a POST without `Idempotency-Key`, see
    /// [`Idempotent`](crate::replay::Idempotent)), unless nothing reached the server
    /// ([`RetryReason::NotSent`]).
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, RetryAnyError};
    /// assert!(!Classify::<(), (), std::io::Error>::handles_idempotency(&RetryAnyError::new()));
    /// ```
    fn handles_idempotency(&self) -> bool {
        false
    }

    /// The decision for an attempt the layer cut because it outlived
    /// [`RetryConfig::attempt_timeout`](crate::RetryConfig::attempt_timeout): there is no
    /// result to look at, only the request. Defaults to a retry with reason
    /// [`RetryReason::Timeout`], which the layer's idempotency guard then checks like any
    /// other retry (a timed-out POST is not resent without an opt-in). Classifiers that judge
    /// idempotency themselves apply their own rules here.
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, Decision, RetryAnyError, RetryReason};
    /// let d = Classify::<(), (), std::io::Error>::classify_timeout(&RetryAnyError::new(), &());
    /// assert_eq!(d, Decision::retry(RetryReason::Timeout));
    /// ```
    fn classify_timeout(&self, req: &Req) -> Decision {
        let _ = req;
        Decision::retry(RetryReason::Timeout)
    }

    /// Whether `req` may be sent again before any answer is known (a hedge), for classifiers
    /// that [judge idempotency themselves](Classify::handles_idempotency); others are not
    /// asked (the replay's [`may_resend`](crate::replay::Replay::may_resend) decides).
    /// Defaults to `true`.
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, RetryAnyError};
    /// assert!(Classify::<(), (), std::io::Error>::allows_resend(&RetryAnyError::new(), &()));
    /// ```
    fn allows_resend(&self, req: &Req) -> bool {
        let _ = req;
        true
    }

    /// For a result this classifier called [`Decision::Fail`]: whether it is the
    /// downstream's final answer (a 404, `INVALID_ARGUMENT`, an error type you chose not to
    /// retry: `true`, the default) or something the downstream could not serve and only the
    /// request's rules keep from a retry (a 503 to a POST, a load-shed rejection: `false`).
    /// Admission control counts the latter against the downstream, as it counts retryable
    /// failures; successes are served and retryable failures are not, without asking.
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, RetryAnyError};
    /// let shed: Result<(), tower::BoxError> = Err(tower::load_shed::error::Overloaded::new().into());
    /// assert!(!RetryAnyError::new().is_final_answer(&(), &shed));
    /// ```
    fn is_final_answer(&self, req: &Req, result: &Result<Res, E>) -> bool {
        let _ = (req, result);
        true
    }
}

/// What to do after an attempt.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::classify::{Decision, RetryReason};
///
/// let d = Decision::retry_after(RetryReason::Throttled, Duration::from_secs(1));
/// assert!(d.is_retry());
/// assert!(!Decision::Fail.is_retry());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The attempt succeeded: return it.
    Success,
    /// The attempt failed and retrying will not help (or is not safe): return it.
    Fail,
    /// The attempt failed in a way a retry may fix.
    Retry {
        /// A delay the server asked for (`Retry-After`, `grpc-retry-pushback-ms`); it replaces
        /// the backoff, capped by `max_delay` and the deadline.
        after: Option<Duration>,
        /// Why, for telemetry.
        reason: RetryReason,
    },
}

impl Decision {
    /// Retry after the backoff's delay.
    ///
    /// ```
    /// use tower_retrier::classify::{Decision, RetryReason};
    /// assert_eq!(Decision::retry(RetryReason::Error), Decision::Retry { after: None, reason: RetryReason::Error });
    /// ```
    pub fn retry(reason: RetryReason) -> Self {
        Decision::Retry {
            after: None,
            reason,
        }
    }

    /// Retry after a server-given delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::classify::{Decision, RetryReason};
    /// let d = Decision::retry_after(RetryReason::Throttled, Duration::from_millis(300));
    /// assert_eq!(d, Decision::Retry { after: Some(Duration::from_millis(300)), reason: RetryReason::Throttled });
    /// ```
    pub fn retry_after(reason: RetryReason, after: Duration) -> Self {
        Decision::Retry {
            after: Some(after),
            reason,
        }
    }

    /// Whether this decision asks for a retry.
    ///
    /// ```
    /// assert!(!tower_retrier::classify::Decision::Success.is_retry());
    /// ```
    pub fn is_retry(&self) -> bool {
        matches!(self, Decision::Retry { .. })
    }
}

/// Why an attempt is retried. A closed set, so it is safe as a metrics label.
///
/// ```
/// assert_eq!(tower_retrier::classify::RetryReason::Timeout.as_str(), "timeout");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryReason {
    /// The service returned an error (transport, connection, ...).
    Error,
    /// The attempt timed out (for example `tower::timeout::error::Elapsed`).
    Timeout,
    /// The server reported a transient failure (HTTP 502/503/504, gRPC UNAVAILABLE, ...).
    ServerError,
    /// The server asked us to slow down (HTTP 429, gRPC RESOURCE_EXHAUSTED, ...).
    Throttled,
    /// A successful-looking response matched a retry predicate.
    Response,
    /// Nothing reached the server (the connection was refused), so resending is safe for
    /// every request, idempotent or not (Envoy's `connect-failure`, Finagle's requeue).
    NotSent,
    /// The server said it did not process the attempt (an HTTP/2 refused stream, a stream
    /// above a GOAWAY's last-stream-id; RFC 9113 §8.7), so it is resent at once whatever its
    /// method: a *transparent* retry (gRFC A6), not charged to the budget and not counted
    /// toward `max_attempts`, at most [`MAX_TRANSPARENT_RETRIES`](crate::MAX_TRANSPARENT_RETRIES)
    /// times per call. The built-in classifiers return it for those errors; yours may too.
    Transparent,
    /// No final answer came within the hedging delay, so a hedge was sent (hedging only;
    /// never returned by a classifier).
    Hedge,
}

impl RetryReason {
    /// Every reason, in the order of the telemetry back-ends' label sets.
    #[cfg_attr(
        not(any(feature = "metrics", feature = "opentelemetry")),
        allow(dead_code)
    )]
    pub(crate) const ALL: [RetryReason; 8] = [
        RetryReason::Error,
        RetryReason::Timeout,
        RetryReason::ServerError,
        RetryReason::Throttled,
        RetryReason::Response,
        RetryReason::NotSent,
        RetryReason::Hedge,
        RetryReason::Transparent,
    ];

    /// A stable, lower-case name for labels and logs.
    ///
    /// ```
    /// assert_eq!(tower_retrier::classify::RetryReason::ServerError.as_str(), "server_error");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            RetryReason::Error => "error",
            RetryReason::Timeout => "timeout",
            RetryReason::ServerError => "server_error",
            RetryReason::Throttled => "throttled",
            RetryReason::Response => "response",
            RetryReason::NotSent => "not_sent",
            RetryReason::Transparent => "transparent",
            RetryReason::Hedge => "hedge",
        }
    }
}

impl std::fmt::Display for RetryReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Adapters available on every classifier.
///
/// ```
/// use tower_retrier::classify::{Classify, ClassifyExt, RetryAnyError};
///
/// let c = RetryAnyError::new().retry_response_if(|status: &u16| *status == 503);
/// assert!(c.classify(&(), &Ok::<u16, std::io::Error>(503)).is_retry());
/// ```
pub trait ClassifyExt: Sized {
    /// Also retries `Ok` responses for which `predicate` returns true (reason
    /// [`RetryReason::Response`]); everything else is left to `self`.
    ///
    /// ```
    /// use tower_retrier::classify::{ClassifyExt, RetryAnyError};
    /// let _c = RetryAnyError::new().retry_response_if(|body: &String| body.is_empty());
    /// ```
    fn retry_response_if<F>(self, predicate: F) -> RetryResponseIf<Self, F> {
        RetryResponseIf::new(self, predicate)
    }
}

impl<C> ClassifyExt for C {}
