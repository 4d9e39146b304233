//! The `tracing` back-end: one span per call, one child span per attempt, and events for the
//! decisions an operator needs to see.
//!
//! Field names follow the OpenTelemetry conventions where one exists
//! (`http.request.resend_count` on resends only, a low-cardinality `error.type`,
//! `otel.status_code`); `tracing-opentelemetry` turns the spans into OpenTelemetry spans.
//! Spans are never held entered across an `.await`: the response future enters the attempt
//! span only while it sends or polls the attempt, as `tracing::Instrument` does.
//!
//! When nobody listens at INFO, a call costs one relaxed atomic load here: no span is created
//! and the per-call state is a `None` (span methods are not inlined across crates, so they
//! are not even called).

use super::{AttemptResult, DelaySource, Outcome, StopReason};
use crate::classify::RetryReason;
use std::time::Duration;
use tracing::Span;
use tracing::field::Empty;

/// The spans of one call, when a subscriber is interested in them.
#[derive(Debug, Default)]
pub(crate) struct CallSpans(Option<Box<Active>>);

/// Boxed so that the response future stays small when tracing is idle.
#[derive(Debug)]
struct Active {
    call: Span,
    attempt: Span,
}

impl CallSpans {
    /// Opens the call span, a child of whatever span is current when `call` runs.
    #[inline]
    pub(crate) fn start(service: &str, operation: &str) -> Self {
        if tracing::level_enabled!(tracing::Level::INFO) {
            Active::start(service, operation)
        } else {
            CallSpans(None)
        }
    }

    /// Whether spans are open for this call (someone listens at INFO).
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// Enters the current attempt's span, if any, until the guard is dropped.
    #[inline]
    pub(crate) fn enter_attempt(&self) -> Option<tracing::span::Entered<'_>> {
        self.0.as_ref().map(|a| a.attempt.enter())
    }

    /// Opens the span of attempt `attempt` (1 for the first), closing the previous one.
    #[inline]
    pub(crate) fn attempt_started(&mut self, attempt: u32) {
        if let Some(a) = &mut self.0 {
            a.attempt_started(attempt);
        }
    }

    /// The current attempt's span: hedging keeps one per attempt in flight.
    pub(crate) fn attempt_span(&self) -> Option<Span> {
        self.0.as_ref().map(|a| a.attempt.clone())
    }

    /// Makes `span` the current attempt's span again (a hedged attempt answered), so what
    /// is recorded next lands on it.
    pub(crate) fn select_attempt(&mut self, span: Span) {
        if let Some(a) = &mut self.0 {
            a.attempt = span;
        }
    }

    /// Marks the attempt just started as a hedge (sent while others were in flight).
    pub(crate) fn hedge_started(&self) {
        if let Some(a) = &self.0 {
            a.attempt.record("retry.hedge", true);
        }
    }

    /// Records how the current attempt went.
    #[inline]
    pub(crate) fn attempt_finished(&self, result: AttemptResult) {
        if let Some(a) = &self.0 {
            a.attempt_finished(result);
        }
    }

    /// The request could not be kept for replay.
    pub(crate) fn not_replayable(&self, service: &str, operation: &str) {
        tracing::debug!(
            parent: self.call(),
            retry.service = service,
            retry.operation = operation,
            "request cannot be replayed; it is sent once and will not be retried"
        );
    }

    /// A retry was granted: records the delay and why on the failed attempt's span, emits a
    /// debug event, and closes that span (the backoff is not part of the attempt).
    pub(crate) fn retry_scheduled(
        &mut self,
        attempt: u32,
        delay: Duration,
        reason: RetryReason,
        source: DelaySource,
    ) {
        if self.0.is_none() && !tracing::level_enabled!(tracing::Level::DEBUG) {
            return;
        }
        let delay_ms = delay.as_secs_f64() * 1e3;
        let none = Span::none();
        let span = match &self.0 {
            Some(a) => {
                a.attempt.record("retry.delay_ms", delay_ms);
                a.attempt.record("retry.delay_source", source.as_str());
                &a.attempt
            }
            None => &none,
        };
        tracing::debug!(
            parent: span,
            retry.attempt = attempt,
            retry.delay_ms = delay_ms,
            retry.reason = reason.as_str(),
            retry.delay_source = source.as_str(),
            "attempt failed; retrying after backoff"
        );
        if let Some(a) = &mut self.0 {
            a.attempt = Span::none();
        }
    }

    /// The budget refused a retry.
    pub(crate) fn budget_denied(&self, service: &str, operation: &str, attempt: u32) {
        let none = Span::none();
        tracing::debug!(
            parent: self.0.as_ref().map_or(&none, |a| &a.attempt),
            retry.service = service,
            retry.operation = operation,
            retry.attempt = attempt,
            "retry budget exhausted; returning the last result"
        );
    }

    /// The call ended: records the outcome on the call span and closes both spans; warns
    /// when retries did not save the call (whether or not spans are on).
    #[inline]
    pub(crate) fn finished(
        &mut self,
        service: &str,
        operation: &str,
        outcome: Outcome,
        stop: StopReason,
        attempts: u32,
    ) {
        // Taking the spans closes them now rather than when the future is dropped.
        let active = self.0.take();
        if active.is_some() || outcome == Outcome::FailedAfterRetry {
            finished_slow(active, service, operation, outcome, stop, attempts);
        }
    }

    fn call(&self) -> &Span {
        static NONE: Span = Span::none();
        self.0.as_ref().map_or(&NONE, |a| &a.call)
    }
}

impl Active {
    #[inline(never)]
    fn start(service: &str, operation: &str) -> CallSpans {
        let call = tracing::info_span!(
            "retry",
            retry.service = service,
            retry.operation = operation,
            retry.attempts = Empty,
            retry.outcome = Empty,
            retry.stop_reason = Empty,
            otel.status_code = Empty,
        );
        if call.is_disabled() {
            return CallSpans(None);
        }
        CallSpans(Some(Box::new(Active {
            call,
            attempt: Span::none(),
        })))
    }

    fn attempt_started(&mut self, attempt: u32) {
        // `http.request.resend_count` is only present on resends (OpenTelemetry HTTP
        // conventions), hence two call sites instead of recording it afterwards.
        self.attempt = if attempt <= 1 {
            tracing::info_span!(
                parent: &self.call,
                "retry_attempt",
                retry.attempt = attempt,
                retry.attempt_outcome = Empty,
                "error.type" = Empty,
                retry.reason = Empty,
                retry.delay_ms = Empty,
                retry.delay_source = Empty,
                retry.hedge = Empty,
                otel.status_code = Empty,
            )
        } else {
            tracing::info_span!(
                parent: &self.call,
                "retry_attempt",
                retry.attempt = attempt,
                http.request.resend_count = attempt - 1,
                retry.attempt_outcome = Empty,
                "error.type" = Empty,
                retry.reason = Empty,
                retry.delay_ms = Empty,
                retry.delay_source = Empty,
                retry.hedge = Empty,
                otel.status_code = Empty,
            )
        };
    }

    fn attempt_finished(&self, result: AttemptResult) {
        let span = &self.attempt;
        span.record("retry.attempt_outcome", result.outcome_str());
        if let Some(error_type) = result.error_type() {
            span.record("error.type", error_type);
            span.record("otel.status_code", "error");
        }
        if let AttemptResult::Retryable(reason) = result {
            span.record("retry.reason", reason.as_str());
        }
    }
}

#[inline(never)]
fn finished_slow(
    active: Option<Box<Active>>,
    service: &str,
    operation: &str,
    outcome: Outcome,
    stop: StopReason,
    attempts: u32,
) {
    let none = Span::none();
    let call = match &active {
        Some(a) => {
            a.call.record("retry.attempts", attempts);
            a.call.record("retry.outcome", outcome.as_str());
            a.call.record("retry.stop_reason", stop.as_str());
            if !outcome.is_success() {
                a.call.record("otel.status_code", "error");
            }
            &a.call
        }
        None => &none,
    };
    if stop == StopReason::Cancelled {
        tracing::debug!(
            parent: call,
            retry.service = service,
            retry.operation = operation,
            retry.attempts = attempts,
            "request cancelled by the caller"
        );
    } else if outcome == Outcome::FailedAfterRetry {
        tracing::warn!(
            parent: call,
            retry.service = service,
            retry.operation = operation,
            retry.attempts = attempts,
            retry.stop_reason = stop.as_str(),
            "request failed after retries"
        );
    }
}
