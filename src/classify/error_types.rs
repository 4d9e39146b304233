//! Classifying errors by type, looking through the `source()` chain.

use super::error_class::ErrorClass;
use super::{Classify, Decision, RetryReason};
use std::any::Any;
use std::error::Error;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

type Matcher = fn(&(dyn Error + 'static)) -> bool;

/// Retries only errors of given types, or never retries given types, matching any error in
/// the `source()` chain.
///
/// Two flavours (see [`InspectError`]): [`MatchErrors::boxed`] for services whose error is
/// `Box<dyn Error + Send + Sync>` (tower's `BoxError`, what `Timeout`, `Buffer` and `LoadShed`
/// return), and [`MatchErrors::typed`] for services whose error is a concrete
/// `std::error::Error` type.
///
/// Rules, in order: an error matching a `never` type fails at once; a load-shed rejection
/// (`tower::load_shed::error::Overloaded` anywhere in the chain) fails too, unless you list
/// `Overloaded` itself with [`retry`](Self::retry) (retrying into an overloaded service is
/// how overload becomes an outage); with no `retry` types every other error is retried;
/// otherwise only errors matching a `retry` type are. An error that cannot be looked into (a
/// non-boxed error seen through `boxed()`) is retried only when no `retry` types are given.
/// `Ok` is success.
///
/// ```
/// use tower::BoxError;
/// use tower_retrier::classify::{Classify, Decision, MatchErrors, RetryReason};
///
/// let c = MatchErrors::boxed()
///     .retry::<std::io::Error>()
///     .retry::<tower::timeout::error::Elapsed>();
///
/// let timeout: Result<(), BoxError> = Err(tower::timeout::error::Elapsed::new().into());
/// assert_eq!(c.classify(&(), &timeout), Decision::retry(RetryReason::Timeout));
/// let other: Result<(), BoxError> = Err("bad request".into());
/// assert_eq!(c.classify(&(), &other), Decision::Fail);
///
/// // A shed request is final, even with no `retry` types at all.
/// let shed: Result<(), BoxError> = Err(tower::load_shed::error::Overloaded::new().into());
/// assert_eq!(MatchErrors::boxed().classify(&(), &shed), Decision::Fail);
/// ```
pub struct MatchErrors<V = Auto> {
    retry: Arc<[Matcher]>,
    never: Arc<[Matcher]>,
    _view: PhantomData<fn() -> V>,
}

/// How a classifier looks into a service's error type `E` to walk its `source()` chain.
///
/// [`Auto`] (the default) sees boxed errors (`tower::BoxError`, what `Timeout`, `Buffer` and
/// `LoadShed` return) and `std::io::Error`, and treats any other error type as opaque. [`Typed`] sees a concrete
/// `std::error::Error` (for example hyper-util's client error or tonic's transport error).
/// Two markers, because Rust cannot treat boxed and concrete errors alike through one impl.
///
/// ```
/// use tower_retrier::classify::{Auto, InspectError, Typed};
///
/// let e = std::fmt::Error;
/// assert!(<Typed as InspectError<std::fmt::Error>>::inspect(&e).is_some());
/// assert!(<Auto as InspectError<std::fmt::Error>>::inspect(&e).is_none());
/// let boxed: tower::BoxError = Box::new(std::io::Error::other("x"));
/// assert!(<Auto as InspectError<tower::BoxError>>::inspect(&boxed).is_some());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot look into errors of type `{E}`",
    label = "this error view does not fit the inner service's error",
    note = "`.typed_errors()` needs the inner service's error to be a concrete `std::error::Error`; a `.timeout(..)`, `Buffer` or `LoadShed` below the retry layer boxes it into `tower::BoxError`: drop `.typed_errors()` (the default view looks into boxed errors)"
)]
pub trait InspectError<E> {
    /// The error as a trait object, or `None` when it cannot be looked into.
    fn inspect(err: &E) -> Option<&(dyn Error + 'static)>;
}

/// Marker: see boxed errors and `io::Error`, treat other error types as opaque (see
/// [`InspectError`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Auto;

/// Marker: the service's error is a concrete `std::error::Error` type (see [`InspectError`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Typed;

impl<E: 'static> InspectError<E> for Auto {
    fn inspect(err: &E) -> Option<&(dyn Error + 'static)> {
        boxed_error(err as &dyn Any)
    }
}

impl<E: Error + 'static> InspectError<E> for Typed {
    fn inspect(err: &E) -> Option<&(dyn Error + 'static)> {
        Some(err)
    }
}

/// The error inside `err`, if `err` is one of the common boxed error types or an
/// `io::Error` (which may wrap one, such as an admission-control refusal).
pub(crate) fn boxed_error(err: &dyn Any) -> Option<&(dyn Error + 'static)> {
    if let Some(b) = err.downcast_ref::<Box<dyn Error + Send + Sync>>() {
        return Some(&**b);
    }
    if let Some(b) = err.downcast_ref::<Box<dyn Error + Send>>() {
        return Some(&**b);
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        return Some(io);
    }
    err.downcast_ref::<Box<dyn Error>>().map(|b| &**b)
}

fn is<T: Error + 'static>(e: &(dyn Error + 'static)) -> bool {
    e.is::<T>()
}

impl MatchErrors<Auto> {
    /// For services whose error is `tower::BoxError` (or another `Box<dyn Error>`); other
    /// error types are treated as opaque.
    ///
    /// ```
    /// let _ = tower_retrier::classify::MatchErrors::boxed().never::<tower::load_shed::error::Overloaded>();
    /// ```
    pub fn boxed() -> Self {
        MatchErrors::empty()
    }
}

impl MatchErrors<Typed> {
    /// For services whose error is a concrete type implementing `std::error::Error`.
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, MatchErrors};
    /// let c = MatchErrors::typed().retry::<std::io::Error>();
    /// assert!(c.classify(&(), &Err::<(), _>(std::io::Error::other("reset"))).is_retry());
    /// ```
    pub fn typed() -> Self {
        MatchErrors::empty()
    }
}

impl<V> MatchErrors<V> {
    fn empty() -> Self {
        MatchErrors {
            retry: Arc::from([]),
            never: Arc::from([]),
            _view: PhantomData,
        }
    }

    /// Retries errors whose chain contains a `T` (and, once any `retry` type is given, only
    /// those).
    ///
    /// ```
    /// let _ = tower_retrier::classify::MatchErrors::boxed().retry::<std::io::Error>();
    /// ```
    pub fn retry<T: Error + 'static>(mut self) -> Self {
        self.retry = push(&self.retry, is::<T>);
        self
    }

    /// Never retries errors whose chain contains a `T`.
    ///
    /// ```
    /// let _ = tower_retrier::classify::MatchErrors::boxed().never::<std::fmt::Error>();
    /// ```
    pub fn never<T: Error + 'static>(mut self) -> Self {
        self.never = push(&self.never, is::<T>);
        self
    }

    fn decide(&self, err: &(dyn Error + 'static)) -> Decision {
        let mut matched_retry = self.retry.is_empty();
        let mut cur = Some(err);
        while let Some(e) = cur {
            if self.never.iter().any(|m| m(e)) {
                return Decision::Fail;
            }
            let listed = self.retry.iter().any(|m| m(e));
            // Only an explicit `retry::<Overloaded>()` may send a shed request again.
            if !listed && e.is::<tower::load_shed::error::Overloaded>() {
                return Decision::Fail;
            }
            matched_retry |= listed;
            cur = e.source();
        }
        if !matched_retry {
            return Decision::Fail;
        }
        let reason = match ErrorClass::of(Some(err)) {
            ErrorClass::NotSent => RetryReason::NotSent,
            ErrorClass::Unprocessed => RetryReason::Transparent,
            ErrorClass::Timeout => RetryReason::Timeout,
            ErrorClass::Never | ErrorClass::Other => RetryReason::Error,
        };
        Decision::retry(reason)
    }
}

fn push(list: &[Matcher], m: Matcher) -> Arc<[Matcher]> {
    list.iter().copied().chain(std::iter::once(m)).collect()
}

impl<Req, Res, E, V: InspectError<E>> Classify<Req, Res, E> for MatchErrors<V> {
    fn classify(&self, _req: &Req, result: &Result<Res, E>) -> Decision {
        match result {
            Ok(_) => Decision::Success,
            Err(e) => match V::inspect(e) {
                Some(err) => self.decide(err),
                None if self.retry.is_empty() => Decision::retry(RetryReason::Error),
                None => Decision::Fail,
            },
        }
    }

    /// A shed or a refusal is not an answer; an error type you chose not to retry is.
    fn is_final_answer(&self, _req: &Req, result: &Result<Res, E>) -> bool {
        match result {
            Ok(_) => true,
            Err(e) => ErrorClass::of(V::inspect(e)) != ErrorClass::Never,
        }
    }
}

impl<V> Clone for MatchErrors<V> {
    fn clone(&self) -> Self {
        MatchErrors {
            retry: self.retry.clone(),
            never: self.never.clone(),
            _view: PhantomData,
        }
    }
}

impl<V> fmt::Debug for MatchErrors<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatchErrors")
            .field("retry_types", &self.retry.len())
            .field("never_types", &self.never.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapper")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn finds_types_deep_in_the_chain() {
        let c = MatchErrors::typed().retry::<std::io::Error>();
        let r: Result<(), Wrapper> = Err(Wrapper(std::io::Error::other("x")));
        assert!(c.classify(&(), &r).is_retry());
        let c = MatchErrors::typed().never::<std::io::Error>();
        assert_eq!(c.classify(&(), &r), Decision::Fail);
    }

    #[test]
    fn never_wins_over_retry() {
        let c = MatchErrors::boxed()
            .retry::<Wrapper>()
            .never::<std::io::Error>();
        let r: Result<(), tower::BoxError> = Err(Box::new(Wrapper(std::io::Error::other("x"))));
        assert_eq!(c.classify(&(), &r), Decision::Fail);
    }
}
