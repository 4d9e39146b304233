//! [`DeadlineHeader`]: which header carries a propagated deadline, in which format.

use super::wire::{
    GRPC_TIMEOUT, encode_grpc_timeout, encode_millis, parse_grpc_timeout, parse_millis,
};
use http::{HeaderMap, HeaderName};
use std::time::Duration;

/// [`GRPC_TIMEOUT`] with a fixed address, so [`DeadlineHeader::name`] can lend it.
static GRPC_TIMEOUT_NAME: HeaderName = GRPC_TIMEOUT;

/// Envoy's header for the time the caller will wait, in whole milliseconds.
const ENVOY_EXPECTED_TIMEOUT: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

/// The header that carries what is left of a caller's deadline, and its format.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::deadline::DeadlineHeader;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-envoy-expected-rq-timeout-ms", "250".parse().unwrap());
/// assert_eq!(DeadlineHeader::envoy().read(&headers), Some(Duration::from_millis(250)));
/// assert_eq!(DeadlineHeader::GrpcTimeout.read(&headers), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadlineHeader {
    /// gRPC's `grpc-timeout` (digits and a unit, e.g. `300m`): the gRPC preset sends it.
    GrpcTimeout,
    /// Whole milliseconds in the header named.
    Millis(HeaderName),
}

impl DeadlineHeader {
    /// Envoy's `x-envoy-expected-rq-timeout-ms`, in whole milliseconds.
    ///
    /// ```
    /// let h = tower_retrier::deadline::DeadlineHeader::envoy();
    /// assert_eq!(h.name(), "x-envoy-expected-rq-timeout-ms");
    /// ```
    pub fn envoy() -> Self {
        DeadlineHeader::Millis(ENVOY_EXPECTED_TIMEOUT)
    }

    /// The header's name.
    ///
    /// ```
    /// assert_eq!(tower_retrier::deadline::DeadlineHeader::GrpcTimeout.name(), "grpc-timeout");
    /// ```
    pub fn name(&self) -> &HeaderName {
        match self {
            DeadlineHeader::GrpcTimeout => &GRPC_TIMEOUT_NAME,
            DeadlineHeader::Millis(name) => name,
        }
    }

    /// The time left that `headers` carry; `None` when the header is absent or malformed
    /// (the first value counts).
    ///
    /// See [`DeadlineHeader`] for an example.
    pub fn read(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get(self.name())?;
        match self {
            DeadlineHeader::GrpcTimeout => parse_grpc_timeout(value),
            DeadlineHeader::Millis(_) => parse_millis(value),
        }
    }

    /// Writes `left` into `headers`, unless they already carry a shorter limit (the caller's
    /// own `grpc-timeout`, for example: the shorter one is the truth).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::deadline::DeadlineHeader;
    ///
    /// let mut headers = http::HeaderMap::new();
    /// DeadlineHeader::GrpcTimeout.write(&mut headers, Duration::from_millis(300));
    /// assert_eq!(headers["grpc-timeout"], "300000u");
    /// DeadlineHeader::GrpcTimeout.write(&mut headers, Duration::from_secs(2));
    /// assert_eq!(headers["grpc-timeout"], "300000u"); // the shorter limit stands
    /// ```
    pub fn write(&self, headers: &mut HeaderMap, left: Duration) {
        if self.read(headers).is_some_and(|theirs| theirs <= left) {
            return;
        }
        let value = match self {
            DeadlineHeader::GrpcTimeout => encode_grpc_timeout(left),
            DeadlineHeader::Millis(_) => encode_millis(left),
        };
        headers.insert(self.name().clone(), value);
    }
}
