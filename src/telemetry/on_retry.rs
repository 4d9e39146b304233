//! A user hook called before every retry (Polly's `OnRetry`, backon's `notify`).

use crate::classify::RetryReason;
use crate::telemetry::DelaySource;
use std::time::Duration;

/// What a retry hook sees: which attempt failed, what happens next, and the failed result.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::telemetry::RetryEvent;
///
/// fn log(e: &RetryEvent<'_, u16, std::io::Error>) {
///     println!("attempt {} failed ({}), retrying in {:?}", e.attempt(), e.reason(), e.delay());
/// }
/// # let _ = log;
/// ```
#[derive(Debug)]
pub struct RetryEvent<'a, Res, E> {
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) reason: RetryReason,
    pub(crate) source: DelaySource,
    pub(crate) result: &'a Result<Res, E>,
}

impl<'a, Res, E> RetryEvent<'a, Res, E> {
    /// The attempt that just failed (1 for the first).
    ///
    /// See [`RetryEvent`] for an example.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How long the engine waits before the next attempt.
    ///
    /// See [`RetryEvent`] for an example.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Why the attempt is retried.
    ///
    /// See [`RetryEvent`] for an example.
    pub fn reason(&self) -> RetryReason {
        self.reason
    }

    /// Whether the delay came from the backoff or from the server.
    ///
    /// See [`RetryEvent`] for an example.
    pub fn delay_source(&self) -> DelaySource {
        self.source
    }

    /// The failed result (an error, or a response the classifier wants retried).
    ///
    /// See [`RetryEvent`] for an example.
    pub fn result(&self) -> &'a Result<Res, E> {
        self.result
    }
}

/// Called before every retry, after the budget granted it.
///
/// Implemented for closures `Fn(&RetryEvent<'_, Res, E>)`. The short form
/// `|e: &RetryEvent<'_, _, _>|` lets the compiler fill in the response and error types from
/// the service the layer wraps.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use tower_retrier::{RetryConfig, RetryLayer};
/// use tower::{Layer, ServiceExt};
/// use tower_retrier::telemetry::RetryEvent;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let retries = Arc::new(AtomicU32::new(0));
/// let seen = retries.clone();
/// let svc = RetryLayer::new(RetryConfig::default())
///     .on_retry(move |e: &RetryEvent<'_, _, _>| {
///         tracing::info!(attempt = e.attempt(), reason = %e.reason(), "retrying");
///         seen.fetch_add(1, Ordering::Relaxed);
///     })
///     .layer(tower::service_fn(|_: u32| async move { Err::<u32, _>(std::io::Error::other("down")) }));
/// assert!(svc.oneshot(1).await.is_err());
/// assert_eq!(retries.load(Ordering::Relaxed), 2);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot observe retries of results `Result<{Res}, {E}>`",
    label = "the hook's argument type does not match the inner service",
    note = "the hook takes `&RetryEvent<'_, Res, E>` with the inner service's response and error types; write `|e: &RetryEvent<'_, _, _>|` and let the compiler fill them in",
    note = "a `.timeout(..)`, `Buffer` or `LoadShed` below the retry layer turns the error into `tower::BoxError`"
)]
pub trait OnRetry<Res, E> {
    /// Observes one retry. Must not block.
    fn on_retry(&self, event: &RetryEvent<'_, Res, E>);
}

impl<Res, E, F> OnRetry<Res, E> for F
where
    F: Fn(&RetryEvent<'_, Res, E>),
{
    fn on_retry(&self, event: &RetryEvent<'_, Res, E>) {
        self(event)
    }
}

/// The default hook: does nothing.
///
/// ```
/// let _ = tower_retrier::telemetry::NoHook;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

impl<Res, E> OnRetry<Res, E> for NoHook {
    #[inline]
    fn on_retry(&self, _event: &RetryEvent<'_, Res, E>) {}
}
