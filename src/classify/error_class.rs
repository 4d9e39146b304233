//! What a transport error says about a retry, read from its `source()` chain.

use crate::admission::Rejected;
use std::error::Error;

/// What an `Err` from the inner service means for a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Never retry: a load-shed rejection or an admission-control refusal (retrying into
    /// overload is how it becomes an outage).
    Never,
    /// Nothing reached the server (connection refused): safe even for non-idempotent calls.
    NotSent,
    /// The server says it did not process the request (an HTTP/2 refused stream, a stream
    /// above a GOAWAY's last-stream-id): resent at once, whatever the method.
    Unprocessed,
    /// The attempt timed out (`tower::timeout::error::Elapsed`).
    Timeout,
    /// Anything else (reset mid-request, opaque errors): the request may have been processed.
    Other,
}

impl ErrorClass {
    /// Walks `err` and its sources; `None` (an error that cannot be looked into) is `Other`.
    pub(crate) fn of(err: Option<&(dyn Error + 'static)>) -> ErrorClass {
        let mut class = ErrorClass::Other;
        let mut cur = err;
        while let Some(e) = cur {
            if e.is::<tower::load_shed::error::Overloaded>() || e.is::<Rejected>() {
                return ErrorClass::Never;
            }
            // `io::Error::source` skips the error it wraps: look at it directly.
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                && inner.is::<Rejected>()
            {
                return ErrorClass::Never;
            }
            if e.is::<tower::timeout::error::Elapsed>() {
                class = ErrorClass::Timeout;
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                class = ErrorClass::NotSent;
            }
            if unprocessed(e) {
                class = ErrorClass::Unprocessed;
            }
            cur = e.source();
        }
        class
    }
}

/// RFC 9113 §8.7: a stream the server refused (RST_STREAM with REFUSED_STREAM) or one above
/// the last-stream-id of the server's GOAWAY "has not been processed", so it may be retried
/// whatever its method. h2 gives the GOAWAY's error only to the streams above that id (and to
/// requests sent on the connection after it); a stream the GOAWAY covers that is cut later
/// ends with an I/O error instead, and is not resent. Only the peer's word counts: h2's own
/// (library) errors say nothing about what the server did.
#[cfg(feature = "http")]
fn unprocessed(e: &(dyn Error + 'static)) -> bool {
    let Some(h2) = e.downcast_ref::<h2::Error>() else {
        return false;
    };
    h2.is_remote()
        && (h2.is_go_away() || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)))
}

#[cfg(not(feature = "http"))]
fn unprocessed(_: &(dyn Error + 'static)) -> bool {
    false
}
