//! The `metrics` back-end (feature `metrics`): counters and histograms through the `metrics`
//! facade, to whatever recorder the application installs.
//!
//! Handles are registered once per layer, at its first call, so a call costs a few handle
//! updates and never builds a metric key. Registering at the first call (rather than when
//! the layer is built) means a recorder installed after the layer was built still receives
//! the metrics.

use super::names::{
    ADMISSION_LIMIT, ADMISSION_REJECTED_TOTAL, ADMISSION_STATE, ATTEMPTS_PER_CALL, ATTEMPTS_TOTAL,
    BACKOFF_DELAY_SECONDS, BUDGET_BACKEND_ERRORS_TOTAL, BUDGET_DENIED_TOTAL,
    BUDGET_FALLBACKS_TOTAL, BUDGET_REMAINING, CALLS_TOTAL, FAILED_CALLS_TOTAL,
    HEDGES_BUDGET_DENIED_TOTAL, HEDGES_TOTAL, HEDGES_WON_TOTAL, LABEL_OPERATION, LABEL_OUTCOME,
    LABEL_REASON, LABEL_SERVICE, LABEL_SOURCE, LABEL_STOP_REASON, REPLAY_BYTES_HELD, RETRIES_TOTAL,
    RETRIES_WAITING,
};
use super::{DelaySource, Outcome, StopReason};
use crate::admission::{AdmissionState, RejectReason};
use crate::classify::RetryReason;
use metrics::{Counter, Gauge, Histogram, SharedString, Unit};
use std::borrow::Cow;
use std::time::Duration;

/// Describes every metric of this crate (name, unit, help text) to the current recorder.
///
/// Layers do this themselves at their first call; call it yourself to have the descriptions
/// before any traffic, e.g. right after installing a Prometheus exporter.
///
/// ```
/// tower_retrier::telemetry::describe_metrics();
/// ```
pub fn describe_metrics() {
    metrics::describe_counter!(
        CALLS_TOTAL,
        Unit::Count,
        "Calls through the retry layer, by final outcome (success_without_retry, \
         success_after_retry, failed_without_retry, failed_after_retry)."
    );
    metrics::describe_counter!(
        ATTEMPTS_TOTAL,
        Unit::Count,
        "Attempts sent to the inner service, first attempts and retries."
    );
    metrics::describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Retries granted, by reason (error, timeout, server_error, throttled, response, \
         not_sent, hedge, transparent)."
    );
    metrics::describe_counter!(
        FAILED_CALLS_TOTAL,
        Unit::Count,
        "Failed calls, by the reason retrying stopped (not_retryable, attempts_exhausted, \
         budget_denied, deadline_exceeded, pushback_too_long, not_idempotent, not_replayable, \
         not_ready, cancelled)."
    );
    metrics::describe_counter!(
        BUDGET_DENIED_TOTAL,
        Unit::Count,
        "Retries refused by the retry budget; the last result was returned instead."
    );
    metrics::describe_counter!(
        BUDGET_BACKEND_ERRORS_TOTAL,
        Unit::Count,
        "Errors talking to a shared retry budget's back-end (Redis)."
    );
    metrics::describe_counter!(
        BUDGET_FALLBACKS_TOTAL,
        Unit::Count,
        "Budget decisions taken locally because the shared back-end was unavailable."
    );
    metrics::describe_counter!(
        HEDGES_TOTAL,
        Unit::Count,
        "Hedges sent: attempts beyond the first of a hedged call."
    );
    metrics::describe_counter!(
        HEDGES_WON_TOTAL,
        Unit::Count,
        "Hedged calls whose final answer came from a hedge."
    );
    metrics::describe_counter!(
        HEDGES_BUDGET_DENIED_TOTAL,
        Unit::Count,
        "Hedges the retry budget refused (not sent)."
    );
    metrics::describe_gauge!(
        BUDGET_REMAINING,
        Unit::Count,
        "Retries a budget would grant right now: a named AdaptiveBudget's stock, or a shared budget's as Redis last reported it."
    );
    metrics::describe_counter!(
        ADMISSION_REJECTED_TOTAL,
        Unit::Count,
        "Calls admission control refused before sending them, by reason (open, concurrency_limit, throttled)."
    );
    metrics::describe_gauge!(
        ADMISSION_STATE,
        Unit::Count,
        "Admission control's state: 0 closed, 1 limited, 2 open, 3 throttling."
    );
    metrics::describe_gauge!(
        ADMISSION_LIMIT,
        Unit::Count,
        "Admission control's concurrency limit while one applies (0 when none)."
    );
    metrics::describe_gauge!(
        RETRIES_WAITING,
        Unit::Count,
        "Calls currently backing off before a retry."
    );
    metrics::describe_gauge!(
        REPLAY_BYTES_HELD,
        Unit::Bytes,
        "Request body bytes currently held so that requests can be replayed."
    );
    metrics::describe_histogram!(
        BACKOFF_DELAY_SECONDS,
        Unit::Seconds,
        "Delay before each retry, by source (backoff or server pushback)."
    );
    metrics::describe_histogram!(
        ATTEMPTS_PER_CALL,
        Unit::Count,
        "Attempts made per call (1 means no retry)."
    );
}

/// The pre-registered handles of one layer.
#[derive(Debug)]
pub(crate) struct MetricsHandles {
    calls: [Counter; 4],
    attempts: Counter,
    retries: [Counter; 8],
    failed: [Counter; 10],
    admission_rejected: [Counter; 3],
    admission_state: Gauge,
    admission_limit: Gauge,
    budget_denied: Counter,
    hedges: [Counter; 3],
    waiting: Gauge,
    backoff_delay: [Histogram; 2],
    attempts_per_call: Histogram,
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::SuccessWithoutRetry => 0,
        Outcome::SuccessAfterRetry => 1,
        Outcome::FailedWithoutRetry => 2,
        Outcome::FailedAfterRetry => 3,
    }
}

const OUTCOMES: [Outcome; 4] = [
    Outcome::SuccessWithoutRetry,
    Outcome::SuccessAfterRetry,
    Outcome::FailedWithoutRetry,
    Outcome::FailedAfterRetry,
];

fn reason_index(reason: RetryReason) -> usize {
    match reason {
        RetryReason::Error => 0,
        RetryReason::Timeout => 1,
        RetryReason::ServerError => 2,
        RetryReason::Throttled => 3,
        RetryReason::Response => 4,
        RetryReason::NotSent => 5,
        RetryReason::Hedge => 6,
        RetryReason::Transparent => 7,
    }
}

fn stop_index(stop: StopReason) -> usize {
    STOPS.iter().position(|s| *s == stop).unwrap_or(0)
}

/// Why a failed call stopped (`Success` is not among them).
const STOPS: [StopReason; 10] = [
    StopReason::NotRetryable,
    StopReason::AttemptsExhausted,
    StopReason::BudgetDenied,
    StopReason::DeadlineExceeded,
    StopReason::NotReplayable,
    StopReason::NotReady,
    StopReason::Cancelled,
    StopReason::PushbackTooLong,
    StopReason::NotIdempotent,
    StopReason::Overloaded,
];

const REJECTS: [RejectReason; 3] = [
    RejectReason::Open,
    RejectReason::ConcurrencyLimit,
    RejectReason::Throttled,
];

fn source_index(source: DelaySource) -> usize {
    match source {
        DelaySource::Backoff => 0,
        DelaySource::Pushback => 1,
    }
}

const SOURCES: [DelaySource; 2] = [DelaySource::Backoff, DelaySource::Pushback];

fn shared(s: Cow<'static, str>) -> SharedString {
    match s {
        Cow::Borrowed(b) => SharedString::const_str(b),
        Cow::Owned(o) => SharedString::from(o),
    }
}

impl MetricsHandles {
    /// Describes the metrics and registers every handle with the current recorder.
    pub(crate) fn register(service: Cow<'static, str>, operation: Cow<'static, str>) -> Self {
        describe_metrics();
        let svc = shared(service);
        let op = shared(operation);
        let base = || [(LABEL_SERVICE, svc.clone()), (LABEL_OPERATION, op.clone())];
        let with = |key: &'static str, value: &'static str| {
            let [a, b] = base();
            [a, b, (key, SharedString::const_str(value))]
        };
        MetricsHandles {
            calls: OUTCOMES
                .map(|o| metrics::counter!(CALLS_TOTAL, &with(LABEL_OUTCOME, o.as_str()))),
            attempts: metrics::counter!(ATTEMPTS_TOTAL, &base()),
            retries: RetryReason::ALL
                .map(|r| metrics::counter!(RETRIES_TOTAL, &with(LABEL_REASON, r.as_str()))),
            failed: STOPS.map(|s| {
                metrics::counter!(FAILED_CALLS_TOTAL, &with(LABEL_STOP_REASON, s.as_str()))
            }),
            budget_denied: metrics::counter!(BUDGET_DENIED_TOTAL, &base()),
            admission_rejected: REJECTS.map(|r| {
                metrics::counter!(ADMISSION_REJECTED_TOTAL, &with(LABEL_REASON, r.as_str()))
            }),
            admission_state: metrics::gauge!(ADMISSION_STATE, &base()),
            admission_limit: metrics::gauge!(ADMISSION_LIMIT, &base()),
            hedges: [HEDGES_TOTAL, HEDGES_WON_TOTAL, HEDGES_BUDGET_DENIED_TOTAL]
                .map(|name| metrics::counter!(name, &base())),
            waiting: metrics::gauge!(RETRIES_WAITING, &base()),
            backoff_delay: SOURCES.map(|s| {
                metrics::histogram!(BACKOFF_DELAY_SECONDS, &with(LABEL_SOURCE, s.as_str()))
            }),
            attempts_per_call: metrics::histogram!(ATTEMPTS_PER_CALL, &base()),
        }
    }

    #[inline]
    pub(crate) fn attempt_started(&self) {
        self.attempts.increment(1);
    }

    pub(crate) fn retry_scheduled(
        &self,
        delay: Duration,
        reason: RetryReason,
        source: DelaySource,
    ) {
        self.retries[reason_index(reason)].increment(1);
        self.backoff_delay[source_index(source)].record(delay.as_secs_f64());
    }

    /// One more (`+1`) or one fewer (`-1`) call backing off.
    pub(crate) fn retries_waiting(&self, delta: i8) {
        self.waiting.increment(f64::from(delta));
    }

    pub(crate) fn budget_denied(&self) {
        self.budget_denied.increment(1);
    }

    /// `event`: 0 a hedge sent, 1 a hedge won, 2 a hedge denied by the budget.
    pub(crate) fn hedge(&self, event: usize) {
        self.hedges[event].increment(1);
    }

    pub(crate) fn admission_rejected(&self, reason: RejectReason) {
        let i = REJECTS.iter().position(|r| *r == reason).unwrap_or(0);
        self.admission_rejected[i].increment(1);
    }

    pub(crate) fn admission_state(&self, state: AdmissionState, limit: Option<u32>) {
        self.admission_state.set(f64::from(state.level()));
        self.admission_limit.set(f64::from(limit.unwrap_or(0)));
    }

    #[inline]
    pub(crate) fn finished(&self, outcome: Outcome, stop: StopReason, attempts: u32) {
        self.calls[outcome_index(outcome)].increment(1);
        self.attempts_per_call.record(f64::from(attempts));
        if stop != StopReason::Success {
            self.failed[stop_index(stop)].increment(1);
        }
    }
}
