//! Retrying plain async closures, on the same engine as the layer.

use crate::admission::AdmitFor;
use crate::backoff::Backoff;
use crate::budget::{Budget, Unlimited};
use crate::classify::Classify;
use crate::replay::{CloneRequest, Replay};
use crate::telemetry::OnRetry;
use crate::{RetryConfig, RetryLayer};
use std::borrow::Cow;
use std::future::{Future, poll_fn};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// An async closure seen as a `Service<()>`; borrowing it keeps it `Clone` without requiring
/// the closure to be.
struct Operation<'a, F>(&'a F);

impl<F> Clone for Operation<'_, F> {
    fn clone(&self) -> Self {
        Operation(self.0)
    }
}

impl<F, Fut, T, E> Service<()> for Operation<'_, F>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Response = T;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: ()) -> Fut {
        (self.0)()
    }
}

/// The replays [`RetryLayer::execute`] works with: those of a request that carries nothing,
/// as a closure's call is (`()`, kept as it is). [`CloneRequest`], the default, is one.
///
/// Not the replays of the presets: [`RetryLayer::new_for_http`] and `new_for_grpc` record
/// and replay an `http::Request` (body, method, `grpc-previous-rpc-attempts`), and a closure
/// has none to give them. The compiler says so:
///
/// ```compile_fail
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = tower_retrier::RetryLayer::new_for_http(Default::default());
/// let _ = layer.execute(|| async { Ok::<_, std::io::Error>(http::Response::new(())) }).await;
/// # }
/// ```
///
/// ```
/// use tower_retrier::replay::CloneRequest;
/// fn works_with_execute<R: tower_retrier::ReplaysNothing>(_: R) {}
/// works_with_execute(CloneRequest::new());
/// ```
#[diagnostic::on_unimplemented(
    message = "`execute` runs a closure, which has no request for `{Self}` to replay",
    label = "this layer's replay needs a request",
    note = "the `new_for_http` / `new_for_grpc` presets judge and replay an `http::Request` (its method, its body), which a closure does not have: wrap the client with `.layer(client)` and call the service with the request",
    note = "for a closure, build the layer with `RetryLayer::new(config)` (its replay is `CloneRequest`) and a classifier of its results, e.g. `.with_classifier(MatchErrors::typed().retry::<MyError>())`"
)]
pub trait ReplaysNothing: Replay<(), Request = (), Saved = ()> {}

impl ReplaysNothing for CloneRequest {}

impl<K, C, B, R, H, A> RetryLayer<K, C, B, R, H, A>
where
    A: Clone + Send + Sync + 'static,
    K: Backoff + Clone + Send + Sync + 'static,
    B: Budget + Clone + Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
    H: Clone + Send + Sync + 'static,
{
    /// Runs `operation` with this layer's retries, backoff, classifier, budget and telemetry.
    /// The classifier sees `&()` as the request.
    ///
    /// Build the layer once and reuse it, so that calls share its budget.
    ///
    /// Works on every layer whose replay repeats a call without a request
    /// ([`ReplaysNothing`]: the default [`CloneRequest`], so every layer built by
    /// [`RetryLayer::new`]) and whose classifier judges the closure's results
    /// (`Classify<(), T, E>`). Not on layers built by [`RetryLayer::new_for_http`] or
    /// `new_for_grpc`: their replay records an `http::Request` and their classifier reads its
    /// method (to keep a POST from being resent), and a closure has no request to give
    /// them; call the service they wrap instead. The compiler says so (see
    /// [`ReplaysNothing`]).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use tower_retrier::{RetryConfig, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let layer = RetryLayer::new(RetryConfig::default()).operation_name("fetch_config");
    /// let calls = AtomicU32::new(0);
    /// let value = layer
    ///     .execute(|| async {
    ///         if calls.fetch_add(1, Ordering::Relaxed) == 0 {
    ///             Err(std::io::Error::other("connection reset"))
    ///         } else {
    ///             Ok("config")
    ///         }
    ///     })
    ///     .await;
    /// assert_eq!(value.unwrap(), "config");
    /// assert_eq!(calls.load(Ordering::Relaxed), 2);
    /// # }
    /// ```
    pub async fn execute<F, Fut, T, E>(&self, operation: F) -> Result<T, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        R: ReplaysNothing,
        C: Classify<(), T, E>,
        H: OnRetry<T, E>,
        A: AdmitFor<E>,
    {
        let mut svc = self.layer(Operation(&operation));
        poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(()).await
    }
}

/// Runs `operation` with retries: `config`'s attempts and backoff, `retry_on` deciding what is
/// retried, and the names used in telemetry.
///
/// A one-off call has no traffic to budget against or to learn a downstream's state from, so
/// this uses no retry budget and no admission control; to share both across calls, build a
/// [`RetryLayer`] once and use [`RetryLayer::execute`].
///
/// ```
/// use tower_retrier::{RetryConfig, classify::MatchErrors, execute_with_retry};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let result: Result<u32, std::io::Error> = execute_with_retry(
///     &RetryConfig::default(),
///     MatchErrors::typed().retry::<std::io::Error>(),
///     "inventory",
///     "count",
///     || async { Err(std::io::Error::other("unreachable")) },
/// )
/// .await;
/// assert!(result.is_err()); // after 3 attempts
/// # }
/// ```
pub async fn execute_with_retry<F, Fut, T, E, C>(
    config: &RetryConfig,
    retry_on: C,
    service_name: impl Into<Cow<'static, str>>,
    operation_name: impl Into<Cow<'static, str>>,
    operation: F,
) -> Result<T, E>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Classify<(), T, E> + Clone + Send + Sync + 'static,
{
    // A layer for one call: freed with it, not kept for the process.
    RetryLayer::new(config.clone())
        .release_on_drop()
        .with_classifier(retry_on)
        .with_budget(Unlimited::new())
        .without_admission()
        .service_name(service_name)
        .operation_name(operation_name)
        .execute(operation)
        .await
}
