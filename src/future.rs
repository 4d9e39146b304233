//! [`ResponseFuture`]: drives one call through its attempts. What to do after each attempt is
//! decided in [`decide`](crate::decide); this file only moves between the states.

use crate::backoff::Backoff;
use crate::budget::Budget;
use crate::classify::Classify;
use crate::decide::{Plan, Step, decide, finish, retry_granted};
use crate::replay::Replay;
use crate::shared::{CallState, Shared};
use crate::telemetry::{OnRetry, Outcome, StopReason};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// The future returned by [`RetryService`](crate::RetryService): one call, with its
    /// retries.
    ///
    /// A state machine (call, withdraw budget, sleep, poll ready, call again): nothing is
    /// boxed, and dropping it at any point cancels cleanly (the in-flight attempt or the sleep
    /// is dropped, no further call is made).
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<Req, S, K, C, B, R, H>
    where
        R: Replay<Req>,
        S: Service<R::Request>,
        B: Budget,
    {
        shared: Arc<Shared<K, C, B, R, H>>,
        service: S,
        saved: Option<R::Saved>,
        call: CallState,
        #[pin]
        state: State<S::Future, B::Withdraw, R::Request, Result<S::Response, S::Error>>,
        _req: PhantomData<fn(Req)>,
    }

    // A call dropped before it finished (an outer timeout, a hedge that lost) is still
    // reported, so dashboards count every call.
    impl<Req, S, K, C, B, R, H> PinnedDrop for ResponseFuture<Req, S, K, C, B, R, H>
    where
        R: Replay<Req>,
        S: Service<R::Request>,
        B: Budget,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let call = this.call;
            if !call.telemetry.is_finished() {
                let attempts = call.attempt;
                this.shared.telemetry.finished(
                    &mut call.telemetry,
                    Outcome::new(false, attempts),
                    StopReason::Cancelled,
                    attempts,
                );
            }
        }
    }
}

pin_project! {
    /// Retry-only data lives in the variants, so a call that succeeds at once carries
    /// nothing but its attempt.
    #[project = StateProj]
    #[project_replace = StateTake]
    enum State<F, W, Q, T> {
        // An attempt is in flight.
        Calling { #[pin] future: F },
        // Asking the budget for the retry `plan` describes; `last` is returned if denied.
        Withdrawing { #[pin] withdraw: W, next: Q, last: T, plan: Plan },
        // Backing off before sending `next`.
        Sleeping { #[pin] sleep: Sleep, next: Q },
        // Polling the inner service ready to send `next`.
        Readying { next: Q },
        // Finished, or between two states while their data moves across.
        Done,
    }
}

impl<Req, S, K, C, B, R, H> ResponseFuture<Req, S, K, C, B, R, H>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    B: Budget,
{
    #[inline]
    pub(crate) fn new(
        shared: Arc<Shared<K, C, B, R, H>>,
        service: S,
        saved: Option<R::Saved>,
        call: CallState,
        future: S::Future,
    ) -> Self {
        ResponseFuture {
            shared,
            service,
            saved,
            call,
            state: State::Calling { future },
            _req: PhantomData,
        }
    }
}

impl<Req, S, K, C, B, R, H> Future for ResponseFuture<Req, S, K, C, B, R, H>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    K: Backoff,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The first attempt's answer, in a small frame: most calls end here.
        if let StateProj::Calling { future } = this.state.as_mut().project() {
            let result = {
                let _span = this.call.telemetry.enter_attempt();
                ready!(future.poll(cx))
            };
            let shared = &**this.shared;
            match decide(shared, this.call, this.saved.as_mut(), &result) {
                Step::Stop(stop) => return finish(shared, this.call, stop, result),
                Step::Retry(next, plan) => this.state.set(State::Withdrawing {
                    withdraw: shared.budget.withdraw(),
                    next,
                    last: result,
                    plan,
                }),
            }
        }
        retrying(this, cx)
    }
}

/// Drives the states after a retryable failure until the call ends or must wait.
#[inline(never)]
fn retrying<Req, S, K, C, B, R, H>(
    this: ResponseFutureProj<'_, Req, S, K, C, B, R, H>,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Response, S::Error>>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    K: Backoff,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
{
    let mut state = this.state;
    let shared = &**this.shared;
    let call = this.call;
    loop {
        match state.as_mut().project() {
            StateProj::Calling { future } => {
                let result = {
                    let _span = call.telemetry.enter_attempt();
                    ready!(future.poll(cx))
                };
                match decide(shared, call, this.saved.as_mut(), &result) {
                    Step::Stop(stop) => return finish(shared, call, stop, result),
                    Step::Retry(next, plan) => state.set(State::Withdrawing {
                        withdraw: shared.budget.withdraw(),
                        next,
                        last: result,
                        plan,
                    }),
                }
            }
            StateProj::Withdrawing { withdraw, .. } => {
                let granted = ready!(withdraw.poll(cx));
                let StateTake::Withdrawing {
                    next, last, plan, ..
                } = state.as_mut().project_replace(State::Done)
                else {
                    unreachable!("the state was Withdrawing")
                };
                if !granted {
                    shared
                        .telemetry
                        .budget_denied(&mut call.telemetry, call.attempt);
                    return finish(shared, call, StopReason::BudgetDenied, last);
                }
                retry_granted(shared, call, &plan, &last);
                // Release the failed response (and its connection) before backing off.
                drop(last);
                state.set(if plan.delay.is_zero() {
                    State::Readying { next }
                } else {
                    State::Sleeping {
                        sleep: tokio::time::sleep(plan.delay),
                        next,
                    }
                });
            }
            StateProj::Sleeping { sleep, .. } => {
                ready!(sleep.poll(cx));
                let StateTake::Sleeping { next, .. } = state.as_mut().project_replace(State::Done)
                else {
                    unreachable!("the state was Sleeping")
                };
                state.set(State::Readying { next });
            }
            StateProj::Readying { .. } => {
                if let Err(e) = ready!(this.service.poll_ready(cx)) {
                    state.set(State::Done);
                    return finish(shared, call, StopReason::NotReady, Err(e));
                }
                let StateTake::Readying { next } = state.as_mut().project_replace(State::Done)
                else {
                    unreachable!("the state was Readying")
                };
                call.attempt += 1;
                shared
                    .telemetry
                    .attempt_started(&mut call.telemetry, call.attempt);
                let future = {
                    let _span = call.telemetry.enter_attempt();
                    this.service.call(next)
                };
                state.set(State::Calling { future });
            }
            StateProj::Done => unreachable!("ResponseFuture polled after completion"),
        }
    }
}

impl<Req, S, K, C, B, R, H> fmt::Debug for ResponseFuture<Req, S, K, C, B, R, H>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    B: Budget,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.call.attempt)
            .finish_non_exhaustive()
    }
}
