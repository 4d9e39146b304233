//! The built-in per-attempt timeout: each attempt is cut after
//! [`RetryConfig::attempt_timeout`](crate::RetryConfig::attempt_timeout) *inside* the layer,
//! so the inner service keeps its error type and typed classifiers keep working.
//!
//! How it fits together (a layer switched with
//! [`RetryLayer::timed_attempts`](crate::RetryLayer::timed_attempts)):
//!
//! - [`AttemptTimeout`] wraps the inner service. Its response is the inner service's whole
//!   `Result<Res, E>`; its error is [`AttemptError::TimedOut`] when the attempt was cut. The
//!   inner result is never boxed or converted.
//! - [`ClassifyTimeouts`] wraps the classifier: an inner result goes to your classifier
//!   untouched (`&Result<Res, E>`, exactly as without the timeout); a cut attempt has no
//!   result and is decided by [`Classify::classify_timeout`] (by default a retry with reason
//!   `timeout`, checked by the idempotency guard like any other retry).
//! - [`Flatten`] on top turns the nested result back into `Result<Res, AttemptError<E>>`,
//!   the service's error type: the caller still needs an error when the last attempt times
//!   out, and only this mode can produce one without boxing. The default stack (no timeout)
//!   keeps `S::Error` exactly.
//!
//! An `on_retry` hook on a timed layer sees the nested form
//! `RetryEvent<'_, Result<Res, E>, AttemptError<E>>`.

use crate::admission::Rejected;
use crate::classify::{Classify, Decision};
use pin_project_lite::pin_project;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

/// The error of a layer with a per-attempt timeout: the inner service's own error, or the
/// last attempt cut by the timeout.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::AttemptError;
///
/// let e: AttemptError<std::io::Error> = AttemptError::TimedOut(Duration::from_millis(300));
/// assert!(e.is_timeout());
/// assert_eq!(e.to_string(), "attempt timed out after 300ms");
/// let e = AttemptError::Service(std::io::Error::other("reset"));
/// assert_eq!(e.into_service_error().unwrap().to_string(), "reset");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AttemptError<E> {
    /// The inner service's error, as it returned it.
    Service(E),
    /// The last attempt took longer than the configured attempt timeout.
    TimedOut(Duration),
    /// Admission control refused the call: nothing was sent (see [`crate::admission`]).
    Rejected(Rejected),
}

impl<E> From<Rejected> for AttemptError<E> {
    fn from(r: Rejected) -> Self {
        AttemptError::Rejected(r)
    }
}

impl<E> crate::admission::FromRejected for AttemptError<E> {
    fn from_rejected(r: Rejected) -> Self {
        AttemptError::Rejected(r)
    }
}

impl<E> AttemptError<E> {
    /// Whether the last attempt was cut by the timeout.
    ///
    /// See [`AttemptError`] for an example.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AttemptError::TimedOut(_))
    }

    /// The inner service's error, if that is what ended the call.
    ///
    /// See [`AttemptError`] for an example.
    pub fn into_service_error(self) -> Option<E> {
        match self {
            AttemptError::Service(e) => Some(e),
            AttemptError::TimedOut(_) | AttemptError::Rejected(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for AttemptError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Service(e) => e.fmt(f),
            AttemptError::TimedOut(d) => write!(f, "attempt timed out after {d:?}"),
            AttemptError::Rejected(r) => r.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for AttemptError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            AttemptError::Service(e) => Some(e),
            AttemptError::TimedOut(_) => None,
            AttemptError::Rejected(r) => Some(r),
        }
    }
}

/// Cuts each call to the inner service after a timeout; see the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceExt, service_fn};
/// use tower_retrier::timeout::AttemptTimeout;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let slow = service_fn(|_: ()| async {
///     tokio::time::sleep(Duration::from_secs(5)).await;
///     Ok::<_, std::io::Error>("late")
/// });
/// let svc = AttemptTimeout::new(slow, Some(Duration::from_millis(100)));
/// assert!(svc.oneshot(()).await.unwrap_err().is_timeout());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AttemptTimeout<S> {
    inner: S,
    timeout: Option<Duration>,
}

impl<S> AttemptTimeout<S> {
    /// Wraps `inner`; `None` never cuts an attempt.
    ///
    /// See [`AttemptTimeout`] for an example.
    pub fn new(inner: S, timeout: Option<Duration>) -> Self {
        AttemptTimeout { inner, timeout }
    }

    /// The inner service.
    ///
    /// ```
    /// let t = tower_retrier::timeout::AttemptTimeout::new(3u8, None);
    /// assert_eq!(*t.get_ref(), 3);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req> Service<Req> for AttemptTimeout<S>
where
    S: Service<Req>,
{
    type Response = Result<S::Response, S::Error>;
    type Error = AttemptError<S::Error>;
    type Future = AttemptFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(AttemptError::Service)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let timer = match self.timeout {
            Some(d) => Timer::On {
                sleep: tokio::time::sleep(d),
                after: d,
            },
            None => Timer::Off,
        };
        AttemptFuture {
            future: self.inner.call(req),
            timer,
        }
    }
}

pin_project! {
    #[project = TimerProj]
    enum Timer {
        Off,
        On { #[pin] sleep: Sleep, after: Duration },
    }
}

pin_project! {
    /// The future of one [`AttemptTimeout`] call.
    pub struct AttemptFuture<F> {
        #[pin]
        future: F,
        #[pin]
        timer: Timer,
    }
}

impl<F: fmt::Debug> fmt::Debug for AttemptFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptFuture")
            .field("future", &self.future)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for AttemptFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<Result<T, E>, AttemptError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The answer first: one that is ready as the timer fires still counts.
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(Ok(result));
        }
        match this.timer.project() {
            TimerProj::Off => Poll::Pending,
            TimerProj::On { sleep, after } => {
                ready!(sleep.poll(cx));
                Poll::Ready(Err(AttemptError::TimedOut(*after)))
            }
        }
    }
}

/// A classifier for the timed stack: your classifier for every result, and
/// [`Classify::classify_timeout`] for a cut attempt. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::AttemptError;
/// use tower_retrier::classify::{Classify, Decision, RetryAnyError, RetryReason};
/// use tower_retrier::timeout::ClassifyTimeouts;
///
/// let c = ClassifyTimeouts::new(RetryAnyError::new());
/// let cut: Result<Result<u8, std::io::Error>, _> = Err(AttemptError::TimedOut(Duration::from_secs(1)));
/// assert_eq!(c.classify(&(), &cut), Decision::retry(RetryReason::Timeout));
/// let ok: Result<Result<u8, std::io::Error>, _> = Ok(Ok(1));
/// assert_eq!(c.classify(&(), &ok), Decision::Success);
/// ```
#[derive(Clone, Debug)]
pub struct ClassifyTimeouts<C> {
    inner: C,
}

impl<C> ClassifyTimeouts<C> {
    /// Wraps `inner`.
    ///
    /// See [`ClassifyTimeouts`] for an example.
    pub fn new(inner: C) -> Self {
        ClassifyTimeouts { inner }
    }
}

impl<Q, Res, E, C> Classify<Q, Result<Res, E>, AttemptError<E>> for ClassifyTimeouts<C>
where
    C: Classify<Q, Res, E>,
{
    fn classify(&self, req: &Q, result: &Result<Result<Res, E>, AttemptError<E>>) -> Decision {
        match result {
            Ok(inner) => self.inner.classify(req, inner),
            Err(AttemptError::TimedOut(_)) => self.inner.classify_timeout(req),
            // `AttemptTimeout` only returns its service's errors from `poll_ready`, which ends
            // the call without classification.
            Err(AttemptError::Service(_)) => Decision::Fail,
            // A nested layer's admission control refused it: never retried.
            Err(AttemptError::Rejected(_)) => Decision::Fail,
        }
    }

    fn handles_idempotency(&self) -> bool {
        self.inner.handles_idempotency()
    }

    fn classify_timeout(&self, req: &Q) -> Decision {
        self.inner.classify_timeout(req)
    }

    fn allows_resend(&self, req: &Q) -> bool {
        self.inner.allows_resend(req)
    }

    /// A cut attempt was not served, whatever the request's rules.
    fn is_final_answer(&self, req: &Q, result: &Result<Result<Res, E>, AttemptError<E>>) -> bool {
        match result {
            Ok(inner) => self.inner.is_final_answer(req, inner),
            Err(AttemptError::TimedOut(_) | AttemptError::Rejected(_)) => false,
            Err(AttemptError::Service(_)) => true,
        }
    }
}

/// Turns a timed stack's nested result back into `Result<Res, AttemptError<E>>`; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Flatten<S> {
    inner: S,
}

impl<S> Flatten<S> {
    pub(crate) fn new(inner: S) -> Self {
        Flatten { inner }
    }

    /// The wrapped service (the retry or hedge service).
    ///
    /// ```
    /// # use tower::Layer;
    /// use std::time::Duration;
    /// use tower_retrier::{RetryConfig, RetryLayer};
    /// let cfg = RetryConfig::builder().attempt_timeout(Duration::from_secs(1)).build().unwrap();
    /// let svc = RetryLayer::new(cfg).timed_attempts().layer(());
    /// assert_eq!(svc.get_ref().budget().remaining(), 100);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req, Res, E> Service<Req> for Flatten<S>
where
    S: Service<Req, Response = Result<Res, E>, Error = AttemptError<E>>,
{
    type Response = Res;
    type Error = AttemptError<E>;
    type Future = FlattenFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        FlattenFuture {
            future: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of a [`Flatten`] call.
    #[derive(Debug)]
    pub struct FlattenFuture<F> {
        #[pin]
        future: F,
    }
}

impl<F, Res, E> Future for FlattenFuture<F>
where
    F: Future<Output = Result<Result<Res, E>, AttemptError<E>>>,
{
    type Output = Result<Res, AttemptError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().future.poll(cx)) {
            Ok(Ok(res)) => Ok(res),
            Ok(Err(e)) => Err(AttemptError::Service(e)),
            Err(e) => Err(e),
        })
    }
}

/// A retry or hedge layer with the per-attempt timeout: built by
/// [`RetryLayer::timed_attempts`](crate::RetryLayer::timed_attempts) (and its hedging
/// counterpart); wraps the inner service in [`AttemptTimeout`] and the result in [`Flatten`].
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// use tower_retrier::{RetryConfig, RetryLayer};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let cfg = RetryConfig::builder().attempt_timeout(Duration::from_millis(50)).build().unwrap();
/// let svc = RetryLayer::new(cfg).timed_attempts().layer(service_fn(|_: ()| async {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, std::io::Error>(())
/// }));
/// let err = svc.oneshot(()).await.unwrap_err();
/// assert!(err.is_timeout()); // after 3 attempts of 50 ms
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TimedLayer<L> {
    inner: L,
    timeout: Option<Duration>,
}

impl<L> TimedLayer<L> {
    pub(crate) fn new(inner: L, timeout: Option<Duration>) -> Self {
        TimedLayer { inner, timeout }
    }

    /// The same timeout around the wrapped layer passed through `map`.
    pub(crate) fn map<L2>(self, map: impl FnOnce(L) -> L2) -> TimedLayer<L2> {
        TimedLayer {
            inner: map(self.inner),
            timeout: self.timeout,
        }
    }

    /// The wrapped layer.
    ///
    /// ```
    /// use tower_retrier::{RetryConfig, RetryLayer};
    /// let l = RetryLayer::new(RetryConfig::default()).timed_attempts();
    /// assert_eq!(l.get_ref().config().max_attempts(), 3);
    /// ```
    pub fn get_ref(&self) -> &L {
        &self.inner
    }
}

impl<S, L> Layer<S> for TimedLayer<L>
where
    L: Layer<AttemptTimeout<S>>,
{
    type Service = Flatten<L::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        Flatten::new(self.inner.layer(AttemptTimeout::new(inner, self.timeout)))
    }
}
