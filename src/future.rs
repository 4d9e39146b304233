//! [`ResponseFuture`]: the retry state machine of one call.

use crate::backoff::{Backoff, BackoffContext};
use crate::budget::Budget;
use crate::classify::{Classify, Decision, RetryReason};
use crate::config::{Pushback, RetryConfig};
use crate::replay::Replay;
use crate::service::Shared;
use crate::telemetry::{CallTelemetry, DelaySource, OnRetry, Outcome, RetryEvent, StopReason};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// The future returned by [`RetryService`](crate::RetryService): one call, with its
    /// retries.
    ///
    /// A state machine (call, withdraw budget, sleep, poll ready, call again): nothing is
    /// boxed, and dropping it at any point cancels cleanly (the in-flight attempt or the sleep
    /// is dropped, no further call is made).
    pub struct ResponseFuture<Req, S, K, C, B, R, H>
    where
        R: Replay<Req>,
        S: Service<R::Request>,
        B: Budget,
    {
        shared: Arc<Shared<K, C, B, R, H>>,
        service: S,
        saved: Option<R::Saved>,
        next: Option<R::Request>,
        last: Option<Result<S::Response, S::Error>>,
        retry: Option<Pending>,
        attempt: u32,
        backoff: Option<BackoffContext>,
        started: Option<Instant>,
        telemetry: CallTelemetry,
        #[pin]
        state: State<S::Future, B::Withdraw>,
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
            if !this.telemetry.is_finished() {
                let attempts = *this.attempt;
                this.shared.telemetry.finished(
                    this.telemetry,
                    Outcome::new(false, attempts),
                    StopReason::Cancelled,
                    attempts,
                );
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, W> {
        // An attempt is in flight.
        Calling { #[pin] future: F },
        // Asking the budget for the retry that `retry` describes.
        Withdrawing { #[pin] withdraw: W },
        // Backing off before the next attempt.
        Sleeping { #[pin] sleep: Sleep },
        // Polling the inner service ready for the next attempt.
        Readying,
    }
}

/// A retry that has been decided but not yet granted by the budget.
#[derive(Clone, Copy, Debug)]
struct Pending {
    delay: Duration,
    reason: RetryReason,
    source: DelaySource,
}

impl<Req, S, K, C, B, R, H> ResponseFuture<Req, S, K, C, B, R, H>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    B: Budget,
{
    pub(crate) fn new(
        shared: Arc<Shared<K, C, B, R, H>>,
        service: S,
        saved: Option<R::Saved>,
        future: S::Future,
        started: Option<Instant>,
        telemetry: CallTelemetry,
    ) -> Self {
        ResponseFuture {
            shared,
            service,
            saved,
            next: None,
            last: None,
            retry: None,
            attempt: 1,
            backoff: None,
            started,
            telemetry,
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = &**this.shared;
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = {
                        let _span = this.telemetry.enter_attempt();
                        ready!(future.poll(cx))
                    };
                    let attempt = *this.attempt;
                    let decision = match this.saved.as_ref() {
                        Some(saved) => shared.classifier.classify(saved, &result),
                        // Not replayable: never retried, so only success matters.
                        None if result.is_ok() => Decision::Success,
                        None => Decision::Fail,
                    };
                    shared
                        .telemetry
                        .attempt_finished(this.telemetry, &decision, result.is_err());
                    let (after, reason) = match decision {
                        Decision::Success => {
                            shared.budget.record_success();
                            return finish(
                                shared,
                                this.telemetry,
                                attempt,
                                true,
                                StopReason::Success,
                                result,
                            );
                        }
                        Decision::Fail => {
                            return finish(
                                shared,
                                this.telemetry,
                                attempt,
                                false,
                                StopReason::NotRetryable,
                                result,
                            );
                        }
                        Decision::Retry { after, reason } => (after, reason),
                    };
                    let Some(saved) = this.saved.as_mut() else {
                        return finish(
                            shared,
                            this.telemetry,
                            attempt,
                            false,
                            StopReason::NotReplayable,
                            result,
                        );
                    };
                    if reason != RetryReason::NotSent
                        && !shared.retry_non_idempotent
                        && !shared.classifier.handles_idempotency()
                        && !shared.replay.may_resend(saved)
                    {
                        return finish(
                            shared,
                            this.telemetry,
                            attempt,
                            false,
                            StopReason::NotIdempotent,
                            result,
                        );
                    }
                    if attempt >= shared.config.max_attempts() {
                        return finish(
                            shared,
                            this.telemetry,
                            attempt,
                            false,
                            StopReason::AttemptsExhausted,
                            result,
                        );
                    }
                    let ctx = this
                        .backoff
                        .get_or_insert_with(|| BackoffContext::new(1, shared.seeds.next()));
                    let (delay, source) = match after {
                        Some(pushback) => {
                            // gRFC A6: after pushback the schedule starts over.
                            ctx.restart();
                            (pushback, DelaySource::Pushback)
                        }
                        None => {
                            let d = shared.backoff.delay(ctx).min(shared.config.max_delay());
                            ctx.advance(d);
                            (d, DelaySource::Backoff)
                        }
                    };
                    let delay = match check_delay(&shared.config, *this.started, delay, source) {
                        Ok(delay) => delay,
                        Err(stop) => {
                            return finish(shared, this.telemetry, attempt, false, stop, result);
                        }
                    };
                    let Some(next) = shared.replay.replay(saved) else {
                        shared.telemetry.not_replayable(this.telemetry);
                        return finish(
                            shared,
                            this.telemetry,
                            attempt,
                            false,
                            StopReason::NotReplayable,
                            result,
                        );
                    };
                    *this.next = Some(next);
                    *this.last = Some(result);
                    *this.retry = Some(Pending {
                        delay,
                        reason,
                        source,
                    });
                    let withdraw = shared.budget.withdraw();
                    this.state.set(State::Withdrawing { withdraw });
                }
                StateProj::Withdrawing { withdraw } => {
                    let granted = ready!(withdraw.poll(cx));
                    let attempt = *this.attempt;
                    let last = this
                        .last
                        .take()
                        .expect("a result is kept while the budget decides");
                    if !granted {
                        *this.next = None;
                        shared.telemetry.budget_denied(this.telemetry, attempt);
                        return finish(
                            shared,
                            this.telemetry,
                            attempt,
                            false,
                            StopReason::BudgetDenied,
                            last,
                        );
                    }
                    let p = this
                        .retry
                        .take()
                        .expect("a retry is pending while the budget decides");
                    shared.on_retry.on_retry(&RetryEvent {
                        attempt,
                        delay: p.delay,
                        reason: p.reason,
                        source: p.source,
                        result: &last,
                    });
                    shared.telemetry.retry_scheduled(
                        this.telemetry,
                        attempt,
                        p.delay,
                        p.reason,
                        p.source,
                    );
                    // Release the failed response (and its connection) before backing off.
                    drop(last);
                    if p.delay.is_zero() {
                        this.state.set(State::Readying);
                    } else {
                        this.state.set(State::Sleeping {
                            sleep: tokio::time::sleep(p.delay),
                        });
                    }
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    if let Err(e) = ready!(this.service.poll_ready(cx)) {
                        *this.next = None;
                        let attempt = *this.attempt;
                        return finish(
                            shared,
                            this.telemetry,
                            attempt,
                            false,
                            StopReason::NotReady,
                            Err(e),
                        );
                    }
                    *this.attempt += 1;
                    let request = this
                        .next
                        .take()
                        .expect("the next request is built before backing off");
                    shared
                        .telemetry
                        .attempt_started(this.telemetry, *this.attempt);
                    let future = {
                        let _span = this.telemetry.enter_attempt();
                        this.service.call(request)
                    };
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

/// The delay before the next attempt, or why there is none: a server pushback the config
/// cannot honour ends the retries (never sooner than the server asked) unless
/// [`Pushback::Cap`] was chosen; no retry is started if its delay crosses the deadline.
fn check_delay(
    config: &RetryConfig,
    started: Option<Instant>,
    delay: Duration,
    source: DelaySource,
) -> Result<Duration, StopReason> {
    let honor = source == DelaySource::Pushback && config.pushback() == Pushback::Honor;
    let delay = if delay > config.max_delay() {
        if honor {
            return Err(StopReason::PushbackTooLong);
        }
        config.max_delay()
    } else {
        delay
    };
    if let (Some(deadline), Some(started)) = (config.deadline(), started)
        && started.elapsed().saturating_add(delay) >= deadline
    {
        return Err(if honor {
            StopReason::PushbackTooLong
        } else {
            StopReason::DeadlineExceeded
        });
    }
    Ok(delay)
}

/// Reports the end of the call and hands back its result.
fn finish<K, C, B, R, H, T>(
    shared: &Shared<K, C, B, R, H>,
    telemetry: &mut CallTelemetry,
    attempts: u32,
    success: bool,
    stop: StopReason,
    result: T,
) -> Poll<T> {
    shared
        .telemetry
        .finished(telemetry, Outcome::new(success, attempts), stop, attempts);
    Poll::Ready(result)
}

impl<Req, S, K, C, B, R, H> fmt::Debug for ResponseFuture<Req, S, K, C, B, R, H>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    B: Budget,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
