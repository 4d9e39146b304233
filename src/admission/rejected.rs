//! [`Rejected`]: the error of a call that admission control refused before sending it.

use std::fmt;

/// Why admission control refused a call. A closed set, so it is safe as a metrics label.
///
/// ```
/// use tower_retrier::admission::RejectReason;
/// assert_eq!(RejectReason::Open.as_str(), "open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The downstream was found unable to serve (almost every recent attempt failed): calls
    /// are refused until a probe is served.
    Open,
    /// As many calls as the adaptive concurrency limit allows are already in flight.
    ConcurrencyLimit,
    /// Refused by client-side adaptive throttling (Google SRE), in proportion to the
    /// attempts the downstream did not accept.
    Throttled,
}

impl RejectReason {
    /// A stable, lower-case name for labels and logs.
    ///
    /// ```
    /// use tower_retrier::admission::RejectReason;
    /// assert_eq!(RejectReason::ConcurrencyLimit.as_str(), "concurrency_limit");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::Open => "open",
            RejectReason::ConcurrencyLimit => "concurrency_limit",
            RejectReason::Throttled => "throttled",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call refused by admission control: nothing was sent, and no retry layer (this crate's
/// or an outer one) should send it again, since the downstream is known to be unable to
/// serve it. Every classifier of this crate stops on it, also when it is wrapped in a
/// `BoxError` or an `io::Error`.
///
/// The layer turns it into the inner service's error type through [`FromRejected`]:
/// `BoxError` (a `.timeout(..)` below the layer), `std::io::Error` (kind `Other`) and
/// [`AttemptError`](crate::AttemptError) are covered (a tonic `Channel` or a hyper-util
/// client under a per-attempt `.timeout(..)` has `BoxError`); find it again with
/// [`Rejected::find`].
///
/// ```
/// use tower_retrier::admission::{RejectReason, Rejected};
/// let err: tower::BoxError = Rejected::new(RejectReason::Open).into();
/// assert_eq!(Rejected::find(&*err).unwrap().reason(), RejectReason::Open);
/// assert_eq!(err.to_string(), "call refused by admission control (open): the downstream is overloaded or down");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    reason: RejectReason,
}

impl Rejected {
    /// A rejection for `reason`.
    ///
    /// ```
    /// use tower_retrier::admission::{RejectReason, Rejected};
    /// assert_eq!(Rejected::new(RejectReason::Throttled).reason(), RejectReason::Throttled);
    /// ```
    pub fn new(reason: RejectReason) -> Self {
        Rejected { reason }
    }

    /// Why the call was refused.
    ///
    /// See [`Rejected::new`] for an example.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// Finds a rejection in `err` or its `source()` chain, looking into `io::Error`s too.
    ///
    /// ```
    /// use tower_retrier::admission::{RejectReason, Rejected};
    /// let err: std::io::Error = Rejected::new(RejectReason::ConcurrencyLimit).into();
    /// assert!(Rejected::find(&err).is_some());
    /// assert!(Rejected::find(&std::io::Error::other("boom")).is_none());
    /// ```
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Rejected> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(r) = e.downcast_ref::<Rejected>() {
                return Some(r);
            }
            // `io::Error::source` skips the error it wraps: look at it directly.
            if let Some(r) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Rejected>())
            {
                return Some(r);
            }
            cur = e.source();
        }
        None
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "call refused by admission control ({}): the downstream is overloaded or down",
            self.reason
        )
    }
}

impl std::error::Error for Rejected {}

impl From<Rejected> for std::io::Error {
    fn from(r: Rejected) -> Self {
        std::io::Error::other(r)
    }
}

/// An error type that can carry admission control's refusal: what a layer with admission
/// control needs of its inner service's error.
///
/// Implemented for `BoxError` (and the other boxed `dyn Error`s), `std::io::Error` and
/// [`AttemptError`](crate::AttemptError). For your own error type, one `impl`:
///
/// ```
/// use tower_retrier::admission::{FromRejected, Rejected};
///
/// #[derive(Debug)]
/// enum DbError {
///     Overloaded(Rejected),
///     Query(String),
/// }
///
/// impl FromRejected for DbError {
///     fn from_rejected(r: Rejected) -> Self {
///         DbError::Overloaded(r)
///     }
/// }
/// # let _ = DbError::Query(String::new());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry admission control's refusal",
    label = "the inner service's error type",
    note = "admission control is on by default and fails a refused call with the inner service's own error type",
    note = "put a `.timeout(..)` below the retry layer (its errors are `BoxError`), call `.timed_attempts()`, implement `tower_retrier::admission::FromRejected` for `{Self}`, or turn admission control off with `.without_admission()`"
)]
pub trait FromRejected {
    /// The error a refused call fails with.
    fn from_rejected(r: Rejected) -> Self;
}

impl FromRejected for Rejected {
    fn from_rejected(r: Rejected) -> Self {
        r
    }
}

// For any lifetime of the boxed error, so that a future holding one stays provably `Send`.
impl<'a> FromRejected for Box<dyn std::error::Error + Send + Sync + 'a> {
    fn from_rejected(r: Rejected) -> Self {
        Box::new(r)
    }
}

impl<'a> FromRejected for Box<dyn std::error::Error + Send + 'a> {
    fn from_rejected(r: Rejected) -> Self {
        Box::new(r)
    }
}

impl<'a> FromRejected for Box<dyn std::error::Error + 'a> {
    fn from_rejected(r: Rejected) -> Self {
        Box::new(r)
    }
}

impl FromRejected for std::io::Error {
    fn from_rejected(r: Rejected) -> Self {
        std::io::Error::other(r)
    }
}
