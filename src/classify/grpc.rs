//! The gRPC classifier: `grpc-status` codes and `grpc-retry-pushback-ms` (gRFC A6).

use super::error_class::ErrorClass;
use super::retry_after::parse_grpc_pushback;
use super::{Auto, Classify, Decision, InspectError, RetryReason, Typed};
use http::Response;
use std::fmt;
use std::marker::PhantomData;

/// A gRPC status code. Values match `tonic::Code` (`GrpcCode::from_i32(code as i32)`).
///
/// ```
/// use tower_retrier::classify::GrpcCode;
/// assert_eq!(GrpcCode::from_i32(14), Some(GrpcCode::Unavailable));
/// assert_eq!(GrpcCode::Unavailable as i32, 14);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrpcCode {
    /// Not an error.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error (also: an unparsable status).
    Unknown = 2,
    /// The client sent an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the operation completed.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity the client tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not run this operation.
    PermissionDenied = 7,
    /// A resource (quota, rate) is exhausted: the server is throttling.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted (a concurrency conflict, for instance).
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or not supported.
    Unimplemented = 12,
    /// An internal invariant was broken.
    Internal = 13,
    /// The service is currently unavailable: the retryable code by default.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request lacks valid authentication credentials.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code for a number, `None` outside 0–16.
    ///
    /// ```
    /// assert_eq!(tower_retrier::classify::GrpcCode::from_i32(17), None);
    /// ```
    pub fn from_i32(n: i32) -> Option<Self> {
        use GrpcCode::*;
        const ALL: [GrpcCode; 17] = [
            Ok,
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        usize::try_from(n).ok().and_then(|i| ALL.get(i).copied())
    }

    /// The code a gRPC response reports: `grpc-status` in its headers (a trailers-only
    /// response), else the HTTP status mapped as the gRPC spec says (a proxy's 503 is
    /// UNAVAILABLE). `None` when the headers carry no status and the HTTP status is 200: the
    /// status then comes in the trailers.
    ///
    /// ```
    /// use tower_retrier::classify::GrpcCode;
    /// let r = http::Response::builder().header("grpc-status", "14").body(()).unwrap();
    /// assert_eq!(GrpcCode::of_response(&r), Some(GrpcCode::Unavailable));
    /// let r = http::Response::builder().status(502).body(()).unwrap();
    /// assert_eq!(GrpcCode::of_response(&r), Some(GrpcCode::Unavailable));
    /// ```
    pub fn of_response<B>(res: &Response<B>) -> Option<Self> {
        if let Some(v) = res.headers().get("grpc-status") {
            let n = std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            return Some(n.and_then(GrpcCode::from_i32).unwrap_or(GrpcCode::Unknown));
        }
        // https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md
        Some(match res.status().as_u16() {
            200 => return None,
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        })
    }
}

/// Classifies gRPC calls by status code, honouring server pushback (gRFC A6).
///
/// - Retryable codes: **UNAVAILABLE** by default; add others with
///   [`retry_on`](Self::retry_on) (e.g. RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED).
/// - The code is read from the response headers: that is where servers put it in a
///   *trailers-only* response, which is how UNAVAILABLE and other immediate errors are sent
///   (tonic does this for every `Err(Status)` from a handler). A status sent in the trailers
///   after a `200` head is not in the head: on its own the classifier returns such a call as
///   it is, not retried. For unary calls, add [`GrpcTrailersLayer`](super::GrpcTrailersLayer)
///   below the retry layer: it reads the response to its trailers and surfaces the status.
/// - `grpc-retry-pushback-ms`: a non-negative value replaces the backoff and is waited in
///   full; a negative or unparsable value means **do not retry** (gRFC A6). A value longer
///   than `max_delay`, or past the deadline, ends the retries (see [`Pushback`](crate::Pushback)).
/// - Every gRPC call is an HTTP POST: the retryable codes are the opt-in (as in gRFC A6's
///   per-method retry policy), so the layer's idempotency guard steps aside for this
///   classifier. Configure retryable codes only for methods that are safe to repeat.
/// - Transport errors (`Err`) are retried, except load-shed rejections.
///
/// ```
/// use tower_retrier::classify::{Classify, Decision, GrpcClassifier, GrpcCode, RetryReason};
///
/// let c = GrpcClassifier::new().retry_on(GrpcCode::ResourceExhausted);
/// let res = |status: &str, pushback: Option<&str>| {
///     let mut b = http::Response::builder().header("grpc-status", status);
///     if let Some(p) = pushback { b = b.header("grpc-retry-pushback-ms", p); }
///     Ok::<_, std::io::Error>(b.body(()).unwrap())
/// };
/// assert_eq!(c.classify(&(), &res("0", None)), Decision::Success);
/// assert_eq!(c.classify(&(), &res("14", None)), Decision::retry(RetryReason::ServerError));
/// assert_eq!(c.classify(&(), &res("8", Some("250"))),
///     Decision::retry_after(RetryReason::Throttled, std::time::Duration::from_millis(250)));
/// assert_eq!(c.classify(&(), &res("14", Some("-1"))), Decision::Fail);
/// assert_eq!(c.classify(&(), &res("3", None)), Decision::Fail);
/// ```
pub struct GrpcClassifier<V = Auto> {
    codes: u32,
    retry_errors: bool,
    _view: PhantomData<fn() -> V>,
}

impl GrpcClassifier<Auto> {
    /// Retries UNAVAILABLE and transport errors.
    ///
    /// ```
    /// let c = tower_retrier::classify::GrpcClassifier::new();
    /// assert!(c.is_retryable(tower_retrier::classify::GrpcCode::Unavailable));
    /// ```
    pub fn new() -> Self {
        GrpcClassifier {
            codes: 1 << GrpcCode::Unavailable as u32,
            retry_errors: true,
            _view: PhantomData,
        }
    }
}

impl Default for GrpcClassifier<Auto> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> GrpcClassifier<V> {
    /// Also retries `code`.
    ///
    /// ```
    /// use tower_retrier::classify::{GrpcClassifier, GrpcCode};
    /// let c = GrpcClassifier::new().retry_on(GrpcCode::DeadlineExceeded);
    /// assert!(c.is_retryable(GrpcCode::DeadlineExceeded));
    /// ```
    pub fn retry_on(mut self, code: GrpcCode) -> Self {
        if code != GrpcCode::Ok {
            self.codes |= 1 << code as u32;
        }
        self
    }

    /// Stops retrying `code`.
    ///
    /// ```
    /// use tower_retrier::classify::{GrpcClassifier, GrpcCode};
    /// let c = GrpcClassifier::new().no_retry_on(GrpcCode::Unavailable);
    /// assert!(!c.is_retryable(GrpcCode::Unavailable));
    /// ```
    pub fn no_retry_on(mut self, code: GrpcCode) -> Self {
        self.codes &= !(1 << code as u32);
        self
    }

    /// Whether `code` is retried.
    ///
    /// See [`GrpcClassifier::new`] for an example.
    pub fn is_retryable(&self, code: GrpcCode) -> bool {
        self.codes & (1 << code as u32) != 0
    }

    /// Whether transport errors (`Err`) are retried (default true).
    ///
    /// ```
    /// let _c = tower_retrier::classify::GrpcClassifier::new().retry_errors(false);
    /// ```
    pub fn retry_errors(mut self, on: bool) -> Self {
        self.retry_errors = on;
        self
    }

    /// Looks into concrete error types (see [`InspectError`]).
    ///
    /// ```
    /// let _c = tower_retrier::classify::GrpcClassifier::new().typed_errors();
    /// ```
    pub fn typed_errors(self) -> GrpcClassifier<Typed> {
        GrpcClassifier {
            codes: self.codes,
            retry_errors: self.retry_errors,
            _view: PhantomData,
        }
    }

    fn classify_response<B>(&self, res: &Response<B>) -> Decision {
        let code = match GrpcCode::of_response(res) {
            None | Some(GrpcCode::Ok) => return Decision::Success,
            Some(code) => code,
        };
        if !self.is_retryable(code) {
            return Decision::Fail;
        }
        let reason = match code {
            GrpcCode::ResourceExhausted => RetryReason::Throttled,
            GrpcCode::DeadlineExceeded => RetryReason::Timeout,
            _ => RetryReason::ServerError,
        };
        match res.headers().get("grpc-retry-pushback-ms") {
            None => Decision::retry(reason),
            Some(v) => match parse_grpc_pushback(v.as_bytes()) {
                Err(()) => Decision::Fail,
                Ok(d) => Decision::retry_after(reason, d),
            },
        }
    }
}

impl<Req, B, E, V: InspectError<E>> Classify<Req, Response<B>, E> for GrpcClassifier<V> {
    fn classify(&self, _req: &Req, result: &Result<Response<B>, E>) -> Decision {
        match result {
            Ok(res) => self.classify_response(res),
            Err(e) => match ErrorClass::of(V::inspect(e)) {
                // What the server did not process is resent even with error retries off
                // (gRFC A6's transparent retries do not depend on the retry policy).
                ErrorClass::Unprocessed => Decision::retry(RetryReason::Transparent),
                _ if !self.retry_errors => Decision::Fail,
                ErrorClass::Never => Decision::Fail,
                ErrorClass::Timeout => Decision::retry(RetryReason::Timeout),
                ErrorClass::NotSent => Decision::retry(RetryReason::NotSent),
                ErrorClass::Other => Decision::retry(RetryReason::Error),
            },
        }
    }

    /// A retryable status kept from a retry, or a transport error, was not served.
    fn is_final_answer(&self, _req: &Req, result: &Result<Response<B>, E>) -> bool {
        match result {
            Ok(res) => !self.classify_response(res).is_retry(),
            Err(_) => false,
        }
    }

    /// The retryable codes are the gRPC opt-in, so the layer's guard steps aside.
    fn handles_idempotency(&self) -> bool {
        true
    }

    /// A timed-out attempt is retried like a timeout error (unless errors are not retried).
    fn classify_timeout(&self, _req: &Req) -> Decision {
        if self.retry_errors {
            Decision::retry(RetryReason::Timeout)
        } else {
            Decision::Fail
        }
    }

    /// Configuring hedging for a method is the gRPC opt-in (gRFC A6), as the retryable codes
    /// are for retries.
    fn allows_resend(&self, _req: &Req) -> bool {
        true
    }
}

impl<V> Clone for GrpcClassifier<V> {
    fn clone(&self) -> Self {
        GrpcClassifier {
            codes: self.codes,
            retry_errors: self.retry_errors,
            _view: PhantomData,
        }
    }
}

impl<V> fmt::Debug for GrpcClassifier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<GrpcCode> = (0..17)
            .filter_map(GrpcCode::from_i32)
            .filter(|c| self.is_retryable(*c))
            .collect();
        f.debug_struct("GrpcClassifier")
            .field("codes", &codes)
            .field("retry_errors", &self.retry_errors)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tower::BoxError;

    fn res(status: u16, headers: &[(&str, &[u8])]) -> Result<Response<()>, BoxError> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Ok(b.body(()).unwrap())
    }

    #[test]
    fn codes_and_http_mapping() {
        let c = GrpcClassifier::new();
        assert_eq!(c.classify(&(), &res(200, &[])), Decision::Success);
        assert_eq!(
            c.classify(&(), &res(200, &[("grpc-status", b"14")])),
            Decision::retry(RetryReason::ServerError)
        );
        assert_eq!(
            c.classify(&(), &res(200, &[("grpc-status", b"8")])),
            Decision::Fail
        );
        assert_eq!(
            c.classify(&(), &res(503, &[])),
            Decision::retry(RetryReason::ServerError)
        );
        assert_eq!(c.classify(&(), &res(404, &[])), Decision::Fail);
        // Garbage status: UNKNOWN, not retried.
        for bad in [&b"abc"[..], b"99", b"-1", b"\xff"] {
            assert_eq!(
                c.classify(&(), &res(200, &[("grpc-status", bad)])),
                Decision::Fail
            );
        }
        let c = c
            .retry_on(GrpcCode::DeadlineExceeded)
            .retry_on(GrpcCode::Ok);
        assert_eq!(
            c.classify(&(), &res(200, &[("grpc-status", b"4")])),
            Decision::retry(RetryReason::Timeout)
        );
        assert_eq!(
            c.classify(&(), &res(200, &[("grpc-status", b"0")])),
            Decision::Success
        );
    }

    #[test]
    fn pushback() {
        let c = GrpcClassifier::new();
        let with = |p: &[u8]| {
            res(
                200,
                &[("grpc-status", b"14"), ("grpc-retry-pushback-ms", p)],
            )
        };
        assert_eq!(
            c.classify(&(), &with(b"40")),
            Decision::retry_after(RetryReason::ServerError, Duration::from_millis(40))
        );
        assert_eq!(c.classify(&(), &with(b"-1")), Decision::Fail);
        assert_eq!(c.classify(&(), &with(b"x")), Decision::Fail);
        // Long pushback is passed on as asked; the engine decides it cannot wait that long.
        assert_eq!(
            c.classify(&(), &with(b"99999999999")),
            Decision::retry_after(
                RetryReason::ServerError,
                Duration::from_millis(99_999_999_999)
            )
        );
    }

    #[test]
    fn errors() {
        let c = GrpcClassifier::new();
        let shed: Result<Response<()>, BoxError> =
            Err(Box::new(tower::load_shed::error::Overloaded::new()));
        assert_eq!(c.classify(&(), &shed), Decision::Fail);
        let io: Result<Response<()>, std::io::Error> = Err(std::io::Error::other("reset"));
        assert!(c.classify(&(), &io).is_retry());
        assert!(c.clone().typed_errors().classify(&(), &io).is_retry());
        assert_eq!(c.retry_errors(false).classify(&(), &io), Decision::Fail);
    }
}
