//! [`HedgeFuture`]: one hedged call. The decisions are the retry engine's
//! ([`classify_attempt`], [`check_delay`], [`finish`]); this file only schedules attempts
//! side by side instead of one after another.

use super::shared::HedgeShared;
use crate::admission::Admit;
use crate::budget::Budget;
use crate::classify::{Classify, Decision, RetryReason};
use crate::decide::{
    Plan, announce_retry, before_send, check_delay, classify_attempt, finish, transparent_copy,
};
use crate::lifetime::SharedRef;
use crate::replay::Replay;
use crate::shared::{CallState, Shared};
use crate::telemetry::{DelaySource, OnRetry, RetryEvent, StopReason};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// One attempt in flight. Boxed: several are in flight at once and the vector moves them.
struct Attempt<F> {
    number: u32,
    /// Its own span (when tracing listens): several attempts are in flight at once.
    span: Option<tracing::Span>,
    started: Instant,
    future: Pin<Box<F>>,
}

/// Whether further hedges may be sent, or why not (the stop reason if every attempt ends
/// non-fatal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hedging {
    Open,
    Closed(StopReason),
}

pin_project! {
    /// The future returned by [`HedgeService`](super::HedgeService): one call, with its
    /// hedges. Dropping it drops every attempt in flight.
    #[project = HedgeFutureProj]
    pub struct HedgeFuture<Req, S, K, C, B, R, H, A>
    where
        (K, C, B, R, H, A): 'static,
        R: Replay<Req>,
        S: Service<R::Request>,
        B: Budget,
        A: Admit,
    {
        shared: SharedRef<HedgeShared<K, C, B, R, H, A>>,
        service: S,
        saved: Option<R::Saved>,
        call: CallState,
        attempts: Vec<Attempt<S::Future>>,
        // When the next hedge is due (unused once hedging is closed).
        #[pin]
        timer: Sleep,
        hedging: Hedging,
        // Why the next hedge goes: `Some` after a non-fatal result, `None` for the delay.
        trigger: Option<RetryReason>,
        // A shared budget's answer on its way.
        withdraw: Option<Pin<Box<B::Withdraw>>>,
        // A granted hedge waiting for the service to be ready.
        next: Option<R::Request>,
        // `next` is a transparent resend (of an attempt the server did not process): not
        // counted as an attempt, sent even once hedging is closed.
        resend: bool,
        // The latest non-fatal result, returned if no attempt ends final.
        last: Option<Result<S::Response, S::Error>>,
        _req: PhantomData<fn(Req)>,
    }

    impl<Req, S, K, C, B, R, H, A> PinnedDrop for HedgeFuture<Req, S, K, C, B, R, H, A>
    where
        (K, C, B, R, H, A): 'static,
        R: Replay<Req>,
        S: Service<R::Request>,
        B: Budget,
        A: Admit,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !this.call.finished {
                let _ = finish(&this.shared.core, this.call, StopReason::Cancelled, ());
            }
        }
    }
}

/// Whether a hedge of this request may be sent at all (before any answer is known).
fn may_hedge<Req, Res, E, K, C, B, R, H, A>(
    core: &Shared<K, C, B, R, H, A>,
    saved: &R::Saved,
) -> bool
where
    R: Replay<Req>,
    C: Classify<R::Saved, Res, E>,
{
    core.retry_non_idempotent
        || if core.classifier.handles_idempotency() {
            core.classifier.allows_resend(saved)
        } else {
            core.replay.may_resend(saved)
        }
}

impl<Req, S, K, C, B, R, H, A> HedgeFuture<Req, S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request>,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    A: Admit,
{
    /// Sends the first attempt on the ready `service`.
    pub(crate) fn start(
        shared: SharedRef<HedgeShared<K, C, B, R, H, A>>,
        mut service: S,
        mut call: CallState,
        req: Req,
    ) -> Self {
        let core = &shared.core;
        let (mut request, saved) = match core.replay.save(req) {
            Ok((request, saved)) => (request, Some(saved)),
            Err(request) => {
                core.telemetry.not_replayable(&mut call.telemetry);
                (request, None)
            }
        };
        before_send(core, &mut request, call.started, 1, 0);
        let hedging = match &saved {
            None => Hedging::Closed(StopReason::NotReplayable),
            Some(_) if shared.hedge.max_attempts() <= 1 => {
                Hedging::Closed(StopReason::AttemptsExhausted)
            }
            Some(saved)
                if !may_hedge::<Req, S::Response, S::Error, K, C, B, R, H, A>(core, saved) =>
            {
                Hedging::Closed(StopReason::NotIdempotent)
            }
            Some(_) => Hedging::Open,
        };
        core.telemetry.attempt_started(&mut call.telemetry, 1);
        let future = {
            let _span = call.telemetry.enter_attempt();
            service.call(request)
        };
        let span = call.telemetry.attempt_span();
        let timer = tokio::time::sleep(shared.delay());
        HedgeFuture {
            shared,
            service,
            saved,
            call,
            attempts: vec![Attempt {
                number: 1,
                span,
                started: Instant::now(),
                future: Box::pin(future),
            }],
            timer,
            hedging,
            trigger: None,
            withdraw: None,
            next: None,
            resend: false,
            last: None,
            _req: PhantomData,
        }
    }
}

impl<Req, S, K, C, B, R, H, A> HedgeFuture<Req, S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request>,
    B: Budget,
    A: Admit,
{
    /// A call admission control refused: nothing is sent; the first poll fails it with
    /// `error`.
    #[cold]
    pub(crate) fn refused(
        shared: SharedRef<HedgeShared<K, C, B, R, H, A>>,
        service: S,
        mut call: CallState,
        error: S::Error,
    ) -> Self {
        call.attempt = 0;
        HedgeFuture {
            timer: tokio::time::sleep(Duration::ZERO),
            shared,
            service,
            saved: None,
            call,
            attempts: Vec::new(),
            hedging: Hedging::Closed(StopReason::Overloaded),
            trigger: None,
            withdraw: None,
            next: None,
            resend: false,
            last: Some(Err(error)),
            _req: PhantomData,
        }
    }
}

type Proj<'a, Req, S, K, C, B, R, H, A> = HedgeFutureProj<'a, Req, S, K, C, B, R, H, A>;
type Output<S, Q> = Result<<S as Service<Q>>::Response, <S as Service<Q>>::Error>;

impl<Req, S, K, C, B, R, H, A> Future for HedgeFuture<Req, S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request>,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
    A: Admit,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(done) = this.poll_attempts(cx) {
                return done;
            }
            match this.next_hedge(cx) {
                // A new attempt or a new timer: poll it too, so it registers its waker.
                Next::Again => continue,
                Next::Done(done) => return done,
                Next::Idle => {}
            }
            let idle = this.attempts.is_empty() && this.next.is_none() && this.withdraw.is_none();
            if let (true, Hedging::Closed(stop)) = (idle, *this.hedging) {
                // Every attempt ended non-fatal and no hedge is left: the last one stands.
                let last = this.last.take().expect("an attempt answered");
                return finish(&this.shared.core, this.call, stop, last);
            }
            return Poll::Pending;
        }
    }
}

/// The two halves of a hedged call's poll, on the future's projection (one set of bounds
/// for both).
impl<Req, S, K, C, B, R, H, A> Proj<'_, Req, S, K, C, B, R, H, A>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
    A: Admit,
{
    /// Polls every attempt in flight: the first final result ends the call (the others are
    /// dropped, which cancels them); a non-fatal one schedules the next hedge at once (or after
    /// the server's pushback).
    fn poll_attempts(&mut self, cx: &mut Context<'_>) -> Option<Poll<Output<S, R::Request>>> {
        let shared = &**self.shared;
        let core = &shared.core;
        let mut i = 0;
        while i < self.attempts.len() {
            let polled = {
                let attempt = &mut self.attempts[i];
                let _span = attempt.span.as_ref().map(|s| s.enter());
                attempt.future.as_mut().poll(cx)
            };
            let Poll::Ready(result) = polled else {
                i += 1;
                continue;
            };
            let mut attempt = self.attempts.swap_remove(i);
            if let Some(span) = attempt.span.take() {
                // Its outcome is recorded on its own span, not the latest hedge's.
                self.call.telemetry.select_attempt(span);
            }
            if let Some(latency) = &shared.latency {
                latency.record(attempt.started.elapsed());
            }
            let decision = classify_attempt::<Req, _, _, K, C, B, R, H, A>(
                core,
                self.call,
                self.saved.as_ref(),
                &result,
            );
            let Decision::Retry { after, reason } = decision else {
                // Cancel the losers now, not when the caller drops self future.
                self.attempts.clear();
                *self.next = None;
                *self.withdraw = None;
                if attempt.number > 1 {
                    core.telemetry.hedge_won();
                }
                let stop = if decision == Decision::Success {
                    core.budget.record_success();
                    StopReason::Success
                } else {
                    StopReason::NotRetryable
                };
                return Some(finish(core, self.call, stop, result));
            };
            if reason == RetryReason::Transparent
                && self.next.is_none()
                && self.withdraw.is_none()
                && let Some(request) =
                    transparent_resend(core, self.call, self.saved.as_mut(), &result)
            {
                // Resent at once, outside the hedging schedule and the budget.
                *self.next = Some(request);
                *self.resend = true;
                *self.last = Some(result);
                continue;
            }
            *self.last = Some(result);
            if *self.hedging == Hedging::Open && self.next.is_none() && self.withdraw.is_none() {
                *self.trigger = Some(reason);
                let now = Instant::now();
                match after {
                    None => self.timer.as_mut().reset(now),
                    Some(pushback) => match check_delay(
                        &core.config,
                        self.call.started,
                        pushback,
                        DelaySource::Pushback,
                    ) {
                        Ok(delay) => self.timer.as_mut().reset(deadline_after(now, delay)),
                        Err(stop) => *self.hedging = Hedging::Closed(stop),
                    },
                }
            }
        }
        None
    }

    /// Sends the next hedge when it is due: the budget is asked first (a refusal closes
    /// hedging), then the request is replayed and the service polled ready.
    fn next_hedge(&mut self, cx: &mut Context<'_>) -> Next<Output<S, R::Request>> {
        let shared = &**self.shared;
        let core = &shared.core;
        if *self.hedging != Hedging::Open && self.next.is_none() {
            return Next::Idle;
        }
        if self.next.is_none() {
            let granted = if let Some(withdraw) = self.withdraw.as_mut() {
                let Poll::Ready(granted) = withdraw.as_mut().poll(cx) else {
                    return Next::Idle;
                };
                *self.withdraw = None;
                granted
            } else {
                if self.timer.as_mut().poll(cx).is_pending() {
                    return Next::Idle;
                }
                // The retry config's deadline bounds hedges as it bounds retries, floor included.
                if let Err(stop) = check_delay(
                    &core.config,
                    self.call.started,
                    Duration::ZERO,
                    DelaySource::Backoff,
                ) {
                    *self.hedging = Hedging::Closed(stop);
                    return Next::Idle;
                }
                let saved = self
                    .saved
                    .as_ref()
                    .expect("hedging is closed without a saved request");
                if !self.attempts.is_empty() && !core.replay.is_complete(saved) {
                    // The body is still being sent: never hedge a truncated copy; look again later.
                    let again = deadline_after(Instant::now(), shared.delay());
                    self.timer.as_mut().reset(again);
                    return Next::Again;
                }
                if !core.admission.allows_retry() {
                    *self.hedging = Hedging::Closed(StopReason::Overloaded);
                    return Next::Idle;
                }
                match core.budget.withdraw_now() {
                    Some(granted) => granted,
                    None => {
                        *self.withdraw = Some(Box::pin(core.budget.withdraw()));
                        return Next::Again; // poll the withdrawal
                    }
                }
            };
            if !granted {
                core.telemetry
                    .budget_denied(&mut self.call.telemetry, self.call.attempt);
                core.telemetry.hedge_denied();
                *self.hedging = Hedging::Closed(StopReason::BudgetDenied);
                return Next::Idle;
            }
            let saved = self
                .saved
                .as_mut()
                .expect("hedging is closed without a saved request");
            let Some(request) = core.replay.replay(saved) else {
                core.telemetry.not_replayable(&mut self.call.telemetry);
                *self.hedging = Hedging::Closed(StopReason::NotReplayable);
                return Next::Idle;
            };
            hedge_granted(core, self.call, self.trigger.take(), self.last.as_ref());
            *self.next = Some(request);
        }
        match self.service.poll_ready(cx) {
            Poll::Pending => Next::Idle,
            Poll::Ready(Err(e)) => {
                *self.next = None;
                *self.resend = false;
                *self.hedging = Hedging::Closed(StopReason::NotReady);
                if self.attempts.is_empty() {
                    return Next::Done(finish(core, self.call, StopReason::NotReady, Err(e)));
                }
                Next::Idle
            }
            Poll::Ready(Ok(())) => {
                let mut request = self
                    .next
                    .take()
                    .expect("a granted hedge waits for the service");
                let resend = std::mem::take(self.resend);
                let call = &mut *self.call;
                if !resend {
                    call.attempt += 1;
                }
                before_send(
                    core,
                    &mut request,
                    call.started,
                    call.attempt,
                    call.transparent,
                );
                core.telemetry
                    .attempt_started(&mut call.telemetry, call.attempt);
                let future = {
                    let _span = call.telemetry.enter_attempt();
                    self.service.call(request)
                };
                if !resend {
                    core.telemetry.hedge_sent(&mut call.telemetry);
                }
                self.attempts.push(Attempt {
                    number: call.attempt,
                    span: call.telemetry.attempt_span(),
                    started: Instant::now(),
                    future: Box::pin(future),
                });
                if resend || *self.hedging != Hedging::Open {
                    // A resend leaves the hedging schedule as it was.
                } else if call.attempt >= shared.hedge.max_attempts() {
                    *self.hedging = Hedging::Closed(StopReason::AttemptsExhausted);
                } else {
                    let due = deadline_after(Instant::now(), shared.delay());
                    self.timer.as_mut().reset(due);
                }
                Next::Again
            }
        }
    }
}

/// `now + delay`, or a far-future instant (never reached in practice) when that overflows: a
/// configured `Duration::MAX` delay or a server's absurd pushback must not panic the call.
fn deadline_after(now: Instant, delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(delay)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

enum Next<T> {
    /// Something moved (an attempt sent, a timer reset): poll again.
    Again,
    Idle,
    Done(Poll<T>),
}

/// A transparent resend of an attempt the server did not process, if the call's allowance
/// and the deadline leave room and the request can be replayed (see
/// [`RetryReason::Transparent`]); the hook and telemetry hear of it.
fn transparent_resend<Req, K, C, B, R, H, A, Res, E>(
    core: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    saved: Option<&mut R::Saved>,
    last: &Result<Res, E>,
) -> Option<R::Request>
where
    R: Replay<Req>,
    H: OnRetry<Res, E>,
{
    if !call.may_resend_transparently() {
        return None;
    }
    let request = transparent_copy(core, call, saved).ok()?;
    announce_retry(core, call, &Plan::TRANSPARENT, last);
    Some(request)
}

/// The hook and telemetry hear of a granted hedge. The hook (an `on_retry` hook) is called
/// for hedges sent after a non-fatal result, with that result; a hedge sent because the
/// delay passed has no result to show, and is only reported to telemetry (reason `hedge`).
fn hedge_granted<K, C, B, R, H, A, Res, E>(
    core: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    trigger: Option<RetryReason>,
    last: Option<&Result<Res, E>>,
) where
    H: OnRetry<Res, E>,
{
    let reason = trigger.unwrap_or(RetryReason::Hedge);
    if let (Some(_), Some(result)) = (trigger, last) {
        core.on_retry.on_retry(&RetryEvent {
            attempt: call.attempt,
            delay: Duration::ZERO,
            reason,
            source: DelaySource::Backoff,
            result,
        });
    }
    core.telemetry.retry_scheduled(
        &mut call.telemetry,
        call.attempt,
        Duration::ZERO,
        reason,
        DelaySource::Backoff,
    );
}

impl<Req, S, K, C, B, R, H, A> fmt::Debug for HedgeFuture<Req, S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request>,
    B: Budget,
    A: Admit,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeFuture")
            .field("attempts_sent", &self.call.attempt)
            .field("in_flight", &self.attempts.len())
            .finish_non_exhaustive()
    }
}
