//! [`RetryService`]: a thin service that hands each call to a [`ResponseFuture`].

use crate::admission::{AdmitFor, Ticket};
use crate::backoff::Backoff;
use crate::budget::Budget;
use crate::classify::Classify;
use crate::decide::before_send;
use crate::front;
use crate::future::ResponseFuture;
use crate::lifetime::SharedRef;
use crate::replay::Replay;
use crate::shared::{CallState, Shared};
use crate::state::State;
use crate::telemetry::CallTelemetry;
use crate::telemetry::OnRetry;
use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tower_service::Service;

/// Retries calls to the inner service; built by [`RetryLayer`](crate::RetryLayer).
///
/// `poll_ready` is the inner service's. `call` deposits into the budget, keeps the request
/// for replay and sends it; the returned [`ResponseFuture`] drives the retries. The inner
/// service is cloned per call (as `tower::retry` does), and each retry polls that clone ready
/// before calling it.
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
/// use tower_retrier::{RetryConfig, RetryLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = RetryLayer::new(RetryConfig::default())
///     .layer(service_fn(|x: u8| async move { Ok::<_, std::io::Error>(x + 1) }));
/// assert_eq!(svc.get_ref().clone().oneshot(1).await.unwrap(), 2);
/// # }
/// ```
pub struct RetryService<S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
{
    inner: S,
    shared: SharedRef<Shared<K, C, B, R, H, A>>,
}

crate::front::holds_inner!(
    RetryService,
    Shared<K, C, B, R, H, A>,
    "tower_retrier::RetryLayer::new(Default::default())"
);

impl<S: fmt::Debug, K: fmt::Debug, C: fmt::Debug, B: fmt::Debug, R, H, A> fmt::Debug
    for RetryService<S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("backoff", &self.shared.backoff)
            .field("classifier", &self.shared.classifier)
            .field("budget", &self.shared.budget)
            .field("telemetry", &self.shared.telemetry)
            .finish_non_exhaustive()
    }
}

impl<Req, S, K, C, B, R, H, A> Service<Req> for RetryService<S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    K: Backoff,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
    A: AdmitFor<S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<Req, S, K, C, B, R, H, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        let admitted = front::admit(shared);
        let mut service = front::take_ready(&mut self.inner);
        let started = CallState::start_time(&shared.config);
        let (mut request, saved) = match shared.replay.save(req) {
            Ok((request, saved)) => (request, Some(saved)),
            Err(request) => (request, None),
        };
        before_send(shared, &mut request, started, 1, 0);
        // One way to build the future, refused or not: with two, the compiler builds it
        // aside and copies it out (16 instructions a call, measured).
        let (state, ticket, telemetry) = match admitted {
            Ok(ticket) => {
                let mut telemetry = shared.telemetry.start_first_attempt();
                let future = {
                    let _span = telemetry.enter_attempt();
                    service.call(request)
                };
                if saved.is_none() {
                    shared.telemetry.not_replayable(&mut telemetry);
                }
                (State::Calling { future }, ticket, telemetry)
            }
            Err(error) => refused(shared, error),
        };
        // The call's state is assembled last, in the future itself, from values never lent
        // out, and returned as it is: assembled earlier and moved, or changed after, its copy
        // stalled on the stores that had just written it (a third of the success path,
        // BENCHMARKS.md).
        ResponseFuture {
            shared: shared.clone(),
            service,
            saved,
            call: CallState::new(started, telemetry, ticket),
            state,
            _req: PhantomData,
        }
    }
}

/// A call admission control refused: nothing is sent (the request is dropped unsent) and
/// the future fails at once with `error`.
#[cold]
#[inline(never)]
fn refused<K, C, B, R, H, A, F, W, Q, T, E>(
    shared: &Shared<K, C, B, R, H, A>,
    error: E,
) -> (State<F, W, Q, T, E>, Ticket, CallTelemetry) {
    (
        State::Refused { error: Some(error) },
        Ticket::default(),
        shared.telemetry.start_call(),
    )
}
