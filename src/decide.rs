//! The decision step after each attempt, as plain functions: classify the result, then check
//! attempts, replayability, the deadline and the backoff, and say whether to stop or which
//! retry to ask the budget for. The response future only drives these decisions; a hedging
//! driver can reuse them as they are.

use crate::admission::Admit;
use crate::backoff::{Backoff, BackoffContext};
use crate::budget::Budget;
use crate::classify::{Classify, Decision, RetryReason};
use crate::config::{Pushback, RetryConfig};
use crate::replay::{AttemptInfo, Replay};
use crate::shared::{CallState, Shared};
use crate::telemetry::{DelaySource, OnRetry, Outcome, RetryEvent, StopReason};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

/// What to do after an attempt.
pub(crate) enum Step<Q> {
    /// End the call with this attempt's result.
    Stop(StopReason),
    /// Send `Q` after the planned delay, if the budget grants the retry.
    Retry(Q, Plan),
}

/// A retry the decision step allows; the budget has not been asked yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) delay: Duration,
    pub(crate) reason: RetryReason,
    pub(crate) source: DelaySource,
}

impl Plan {
    /// A transparent resend ([`RetryReason::Transparent`]): at once, no backoff.
    pub(crate) const TRANSPARENT: Plan = Plan {
        delay: Duration::ZERO,
        reason: RetryReason::Transparent,
        source: DelaySource::Backoff,
    };
}

/// Classifies `result` and decides: stop (and why) or retry (with what and when).
///
/// `saved` is `None` for a request that could not be kept for replay: it is never retried,
/// so only success matters.
#[inline]
pub(crate) fn decide<Req, Res, E, K, C, B, R, H, A>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    saved: Option<&mut R::Saved>,
    result: &Result<Res, E>,
) -> Step<R::Request>
where
    R: Replay<Req>,
    K: Backoff,
    C: Classify<R::Saved, Res, E>,
    B: Budget,
    A: Admit,
{
    match classify_attempt::<Req, Res, E, K, C, B, R, H, A>(shared, call, saved.as_deref(), result)
    {
        Decision::Success => {
            shared.budget.record_success();
            Step::Stop(StopReason::Success)
        }
        Decision::Fail => Step::Stop(StopReason::NotRetryable),
        Decision::Retry {
            reason: RetryReason::Transparent,
            ..
        } => plan_transparent::<Req, Res, E, K, C, B, R, H, A>(shared, call, saved),
        Decision::Retry { after, reason } => {
            plan_retry::<Req, Res, E, K, C, B, R, H, A>(shared, call, saved, after, reason)
        }
    }
}

/// Classifies one attempt's result and reports it to telemetry (the caller tells the budget
/// of a success). The hedging driver calls this directly: for it a retryable result is only
/// "non-fatal".
#[inline]
pub(crate) fn classify_attempt<Req, Res, E, K, C, B, R, H, A>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    saved: Option<&R::Saved>,
    result: &Result<Res, E>,
) -> Decision
where
    R: Replay<Req>,
    C: Classify<R::Saved, Res, E>,
    B: Budget,
    A: Admit,
{
    let decision = match saved {
        Some(saved) => shared.classifier.classify(saved, result),
        None if result.is_ok() => Decision::Success,
        None => Decision::Fail,
    };
    shared
        .telemetry
        .attempt_finished(&mut call.telemetry, &decision, result.is_err());
    // Admission control learns whether the downstream served this attempt: a success was
    // served and a retryable failure was not; a failure not to retry may be either.
    let served = decision == Decision::Success || failure_served(shared, &decision, saved, result);
    shared
        .admission
        .record(call.ticket, served, &shared.telemetry);
    decision
}

/// Whether a failed attempt was still the downstream's final answer (see
/// [`Classify::is_final_answer`]).
#[cold]
#[inline(never)]
fn failure_served<Req, Res, E, K, C, B, R, H, A>(
    shared: &Shared<K, C, B, R, H, A>,
    decision: &Decision,
    saved: Option<&R::Saved>,
    result: &Result<Res, E>,
) -> bool
where
    R: Replay<Req>,
    C: Classify<R::Saved, Res, E>,
{
    match (decision, saved) {
        (Decision::Fail, Some(saved)) => shared.classifier.is_final_answer(saved, result),
        _ => false,
    }
}

/// The checks a retryable failure must pass before the budget is asked, in order: the
/// request can be replayed and may be resent (idempotency), attempts are left, the delay
/// (backoff, or the server's pushback) fits `max_delay` and the deadline, and a copy of the
/// request can be made.
#[inline(never)]
fn plan_retry<Req, Res, E, K, C, B, R, H, A>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    saved: Option<&mut R::Saved>,
    after: Option<Duration>,
    reason: RetryReason,
) -> Step<R::Request>
where
    R: Replay<Req>,
    K: Backoff,
    C: Classify<R::Saved, Res, E>,
    A: Admit,
{
    let Some(saved) = saved else {
        return Step::Stop(StopReason::NotReplayable);
    };
    if reason != RetryReason::NotSent
        && !shared.retry_non_idempotent
        && !shared.classifier.handles_idempotency()
        && !shared.replay.may_resend(saved)
    {
        return Step::Stop(StopReason::NotIdempotent);
    }
    let config = &shared.config;
    if call.attempt >= config.max_attempts() {
        return Step::Stop(StopReason::AttemptsExhausted);
    }
    if !shared.admission.allows_retry() {
        return Step::Stop(StopReason::Overloaded);
    }
    let ctx = &mut call.backoff;
    if !ctx.is_started() {
        *ctx = BackoffContext::new(1, shared.seeds.next());
    }
    let (delay, source) = match after {
        Some(pushback) => {
            // gRFC A6: after pushback the schedule starts over.
            ctx.restart();
            (pushback, DelaySource::Pushback)
        }
        None => {
            let d = shared.backoff.delay(ctx).min(config.max_delay());
            ctx.advance(d);
            (d, DelaySource::Backoff)
        }
    };
    let delay = match check_delay(config, call.started, delay, source) {
        Ok(delay) => delay,
        Err(stop) => return Step::Stop(stop),
    };
    let Some(next) = shared.replay.replay(saved) else {
        shared.telemetry.not_replayable(&mut call.telemetry);
        return Step::Stop(StopReason::NotReplayable);
    };
    Step::Retry(
        next,
        Plan {
            delay,
            reason,
            source,
        },
    )
}

/// A resend of an attempt the server did not process ([`RetryReason::Transparent`]): at
/// once, not counted as an attempt and not charged to the budget (gRFC A6), while the call's
/// [`MAX_TRANSPARENT_RETRIES`] last and the deadline leaves room. After that the failure is an
/// ordinary retry of a request that was not processed: safe whatever the method, but
/// counted, charged and backed off, so a server that refuses everything ends the call.
#[cold]
#[inline(never)]
fn plan_transparent<Req, Res, E, K, C, B, R, H, A>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    saved: Option<&mut R::Saved>,
) -> Step<R::Request>
where
    R: Replay<Req>,
    K: Backoff,
    C: Classify<R::Saved, Res, E>,
    A: Admit,
{
    if !call.may_resend_transparently() {
        return plan_retry::<Req, Res, E, K, C, B, R, H, A>(
            shared,
            call,
            saved,
            None,
            RetryReason::NotSent,
        );
    }
    match transparent_copy(shared, call, saved) {
        Ok(next) => Step::Retry(next, Plan::TRANSPARENT),
        Err(stop) => Step::Stop(stop),
    }
}

/// The copy a transparent resend sends, counted as one, or why there is none: nothing kept
/// for replay, the deadline (and its floor) reached, or a body that can no longer be
/// replayed. The caller checks the call's allowance first
/// ([`CallState::may_resend_transparently`]).
pub(crate) fn transparent_copy<Req, K, C, B, R, H, A>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    saved: Option<&mut R::Saved>,
) -> Result<R::Request, StopReason>
where
    R: Replay<Req>,
{
    let saved = saved.ok_or(StopReason::NotReplayable)?;
    check_delay(
        &shared.config,
        call.started,
        Duration::ZERO,
        DelaySource::Backoff,
    )?;
    let Some(next) = shared.replay.replay(saved) else {
        shared.telemetry.not_replayable(&mut call.telemetry);
        return Err(StopReason::NotReplayable);
    };
    call.transparent += 1;
    Ok(next)
}

/// The delay before the next attempt, or why there is none: a server pushback the config
/// cannot honour ends the retries (never sooner than the server asked) unless
/// [`Pushback::Cap`] was chosen; no retry is started if its delay crosses the deadline.
pub(crate) fn check_delay(
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
    // An attempt needs time to be of use: none starts with less than the floor left.
    if let (Some(deadline), Some(started)) = (config.deadline(), started)
        && started
            .elapsed()
            .saturating_add(delay)
            .saturating_add(config.min_attempt_time())
            >= deadline
    {
        return Err(if honor {
            StopReason::PushbackTooLong
        } else {
            StopReason::DeadlineExceeded
        });
    }
    Ok(delay)
}

/// The budget answered the retry `plan`: `Some(BudgetDenied)` if it refused, otherwise
/// the hook and telemetry hear of the retry (before the failed result is released and the
/// backoff starts) and `None` lets it go ahead.
pub(crate) fn budget_answered<K, C, B, R, H, A, Res, E>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    granted: bool,
    plan: &Plan,
    last: &Result<Res, E>,
) -> Option<StopReason>
where
    H: OnRetry<Res, E>,
{
    if !granted {
        shared
            .telemetry
            .budget_denied(&mut call.telemetry, call.attempt);
        return Some(StopReason::BudgetDenied);
    }
    announce_retry(shared, call, plan, last);
    None
}

/// The hook and telemetry hear of a retry about to go out (before the failed result is
/// released and the backoff starts).
pub(crate) fn announce_retry<K, C, B, R, H, A, Res, E>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    plan: &Plan,
    last: &Result<Res, E>,
) where
    H: OnRetry<Res, E>,
{
    shared.on_retry.on_retry(&RetryEvent {
        attempt: call.attempt,
        delay: plan.delay,
        reason: plan.reason,
        source: plan.source,
        result: last,
    });
    shared.telemetry.retry_scheduled(
        &mut call.telemetry,
        call.attempt,
        plan.delay,
        plan.reason,
        plan.source,
    );
}

/// Hands the request about to be sent as `attempt` (after `transparent` resends) to the
/// replay's [`before_send`](Replay::before_send), with what it has left to live. Every send
/// goes through here: the first attempt, retries, hedges and transparent resends.
#[inline]
pub(crate) fn before_send<Req, K, C, B, R, H, A>(
    shared: &Shared<K, C, B, R, H, A>,
    request: &mut R::Request,
    started: Option<Instant>,
    attempt: u32,
    transparent: u8,
) where
    R: Replay<Req>,
{
    let first = attempt == 1 && transparent == 0;
    let left = time_left(&shared.config, started, first);
    let info = AttemptInfo::of(attempt, transparent, left);
    shared.replay.before_send(request, &info);
}

/// What the attempt about to be sent has left to live: the smaller of the per-attempt
/// timeout and what is left of the deadline (`None` when neither is configured). The first
/// attempt starts with the whole deadline, without reading the clock.
#[inline]
fn time_left(config: &RetryConfig, started: Option<Instant>, first: bool) -> Option<Duration> {
    let deadline = match (config.deadline(), started) {
        (Some(d), _) if first => Some(d),
        (Some(d), Some(started)) => Some(d.saturating_sub(started.elapsed())),
        _ => None,
    };
    match (deadline, config.attempt_timeout()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reports the end of the call and hands back its result.
#[inline]
pub(crate) fn finish<K, C, B, R, H, A: Admit, T>(
    shared: &Shared<K, C, B, R, H, A>,
    call: &mut CallState,
    stop: StopReason,
    result: T,
) -> Poll<T> {
    let attempts = call.attempt;
    call.finished = true;
    shared.admission.release(call.ticket);
    let outcome = Outcome::new(stop == StopReason::Success, attempts);
    shared
        .telemetry
        .finished(&mut call.telemetry, outcome, stop, attempts);
    Poll::Ready(result)
}
