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
            cur = e.source();
        }
        class
    }
}
