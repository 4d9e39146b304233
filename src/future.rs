//! [`ResponseFuture`]: drives one call through its attempts. What to do after each attempt is
//! decided in [`decide`](crate::decide); this file only moves between the states.

use crate::admission::Admit;
use crate::backoff::Backoff;
use crate::budget::Budget;
use crate::classify::Classify;
use crate::classify::RetryReason;
use crate::decide::{Plan, Step, announce_retry, before_send, budget_answered, decide, finish};
use crate::lifetime::SharedRef;
use crate::replay::Replay;
use crate::shared::{CallState, Shared};
use crate::state::{PauseProj, State, StateProj, WithdrawalProj};
use crate::telemetry::{OnRetry, StopReason};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower_service::Service;

pin_project! {
    /// The future returned by [`RetryService`](crate::RetryService): one call, with its
    /// retries.
    ///
    /// A state machine (call, withdraw budget, sleep, poll ready, call again): nothing is
    /// boxed, and dropping it at any point cancels cleanly (the in-flight attempt or the sleep
    /// is dropped, no further call is made).
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<Req, S, K, C, B, R, H, A>
    where
        K: 'static, C: 'static, B: 'static, R: 'static, H: 'static, A: 'static,
        R: Replay<Req>,
        S: Service<R::Request>,
        B: Budget,
        A: Admit,
    {
        pub(crate) shared: SharedRef<Shared<K, C, B, R, H, A>>,
        pub(crate) service: S,
        pub(crate) saved: Option<R::Saved>,
        pub(crate) call: CallState,
        #[pin]
        pub(crate) state: State<S::Future, B::Withdraw, R::Request, Result<S::Response, S::Error>, S::Error>,
        pub(crate) _req: PhantomData<fn(Req)>,
    }

    // A call dropped before it finished (an outer timeout, a hedge that lost) is still
    // reported, so dashboards count every call.
    impl<Req, S, K, C, B, R, H, A> PinnedDrop for ResponseFuture<Req, S, K, C, B, R, H, A>
    where
        K: 'static, C: 'static, B: 'static, R: 'static, H: 'static, A: 'static,
        R: Replay<Req>,
        S: Service<R::Request>,
        B: Budget,
        A: Admit,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !this.call.finished {
                // A refused call dropped before it was polled was still refused.
                let stop = match this.state.project() {
                    StateProj::Refused { .. } => {
                        this.call.attempt = 0;
                        StopReason::Overloaded
                    }
                    _ => StopReason::Cancelled,
                };
                let _ = finish(this.shared, this.call, stop, ());
            }
        }
    }
}

impl<Req, S, K, C, B, R, H, A> Future for ResponseFuture<Req, S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request>,
    K: Backoff,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
    A: Admit,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // An attempt's answer, in a small frame: most calls end at the first.
            if let StateProj::Calling { future } = this.state.as_mut().project() {
                let result = {
                    let _span = this.call.telemetry.enter_attempt();
                    ready!(future.poll(cx))
                };
                if let Some(done) = this.answered(result) {
                    return done;
                }
            }
            if let Some(done) = ready!(this.between_attempts(cx)) {
                return Poll::Ready(done);
            }
        }
    }
}

/// The steps of a call between its attempts, on the future's projection (one set of bounds
/// for all of them).
impl<Req, S, K, C, B, R, H, A> ResponseFutureProj<'_, Req, S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request>,
    K: Backoff,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
    A: Admit,
{
    /// An attempt answered: ends the call, or starts the retry the decision step allows.
    /// `None` while the retry is under way.
    #[inline]
    fn answered(
        &mut self,
        result: Result<S::Response, S::Error>,
    ) -> Option<Poll<Result<S::Response, S::Error>>> {
        let shared = &**self.shared;
        match decide(shared, self.call, self.saved.as_mut(), &result) {
            Step::Stop(stop) => Some(finish(shared, self.call, stop, result)),
            Step::Retry(next, plan) => self.start_retry(next, plan, result),
        }
    }

    /// Asks the budget for the retry: a local budget answers at once (no state for the
    /// withdrawal), another is polled in `Withdrawing`.
    #[inline(never)]
    fn start_retry(
        &mut self,
        next: R::Request,
        plan: Plan,
        last: Result<S::Response, S::Error>,
    ) -> Option<Poll<Result<S::Response, S::Error>>> {
        let shared = &**self.shared;
        if plan.reason == RetryReason::Transparent {
            // Not processed by the server: resent at once, free of the budget.
            announce_retry(shared, self.call, &plan, &last);
            drop(last);
            self.state.set(State::Readying {
                next: Some(next),
                transparent: true,
            });
            return None;
        }
        let Some(granted) = shared.budget.withdraw_now() else {
            let withdraw = shared.budget.withdraw();
            let retry = Some((next, last, plan));
            self.state.set(State::withdrawing(withdraw, retry));
            return None;
        };
        self.budget_granted(granted, next, plan, last)
    }

    /// The budget answered: the call ends with `last` if it refused, otherwise the backoff
    /// starts. `None` while the retry is under way.
    fn budget_granted(
        &mut self,
        granted: bool,
        next: R::Request,
        plan: Plan,
        last: Result<S::Response, S::Error>,
    ) -> Option<Poll<Result<S::Response, S::Error>>> {
        let shared = &**self.shared;
        if let Some(stop) = budget_answered(shared, self.call, granted, &plan, &last) {
            self.state.set(State::Done);
            return Some(finish(shared, self.call, stop, last));
        }
        // Release the failed response (and its connection) before backing off.
        drop(last);
        self.state
            .set(State::backing_off(next, plan.delay, &shared.telemetry));
        None
    }

    /// Drives a retry from the budget's answer to the next attempt's dispatch: `Ready(None)`
    /// once that attempt is in flight, `Ready(Some(..))` if the call ended on the way.
    #[inline(never)]
    fn between_attempts(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<S::Response, S::Error>>> {
        loop {
            match self.state.as_mut().project() {
                StateProj::Calling { .. } => return Poll::Ready(None),
                StateProj::Withdrawing { waiting } => {
                    let WithdrawalProj { withdraw, retry } = waiting.as_mut().project();
                    let granted = ready!(withdraw.poll(cx));
                    let (next, last, plan) = retry.take().expect("a retry waits for the budget");
                    if let Some(done) = self.budget_granted(granted, next, plan, last) {
                        return done.map(Some);
                    }
                }
                StateProj::Sleeping { waiting } => {
                    let PauseProj { sleep, next, .. } = waiting.as_mut().project();
                    ready!(sleep.poll(cx));
                    let next = next.take();
                    self.state.set(State::Readying {
                        next,
                        transparent: false,
                    });
                }
                StateProj::Readying { next, transparent } => {
                    let shared = &**self.shared;
                    if let Err(e) = ready!(self.service.poll_ready(cx)) {
                        self.state.set(State::Done);
                        return finish(shared, self.call, StopReason::NotReady, Err(e)).map(Some);
                    }
                    let mut next = next.take().expect("a request waits for the service");
                    let call = &mut *self.call;
                    if !*transparent {
                        call.attempt += 1;
                    }
                    before_send(
                        shared,
                        &mut next,
                        call.started,
                        call.attempt,
                        call.transparent,
                    );
                    shared
                        .telemetry
                        .attempt_started(&mut call.telemetry, call.attempt);
                    let future = {
                        let _span = call.telemetry.enter_attempt();
                        self.service.call(next)
                    };
                    self.state.set(State::Calling { future });
                }
                StateProj::Refused { error } => {
                    let shared = &**self.shared;
                    let error = error.take().expect("a refused call fails once");
                    self.state.set(State::Done);
                    self.call.attempt = 0; // nothing was sent
                    return finish(shared, self.call, StopReason::Overloaded, Err(error)).map(Some);
                }
                StateProj::Done => unreachable!("ResponseFuture polled after completion"),
            }
        }
    }
}

impl<Req, S, K, C, B, R, H, A> fmt::Debug for ResponseFuture<Req, S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request>,
    B: Budget,
    A: Admit,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.call.attempt)
            .finish_non_exhaustive()
    }
}
