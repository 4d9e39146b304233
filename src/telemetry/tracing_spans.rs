//! The `tracing` back-end: one span per call, one child span per attempt, and events for the
//! decisions an operator needs to see.
//!
//! Field names follow the OpenTelemetry conventions where one exists
//! (`http.request.resend_count` on resends only, a low-cardinality `error.type`,
//! `otel.status_code`); `tracing-opentelemetry` turns the spans into OpenTelemetry spans.
//! Spans are never held entered across an `.await`: the response future enters the attempt
//! span only while it polls the inner future, as `tracing::Instrument` does.

use super::{AttemptResult, DelaySource, Outcome, StopReason};
use crate::classify::RetryReason;
use std::time::Duration;
use tracing::Span;
use tracing::field::Empty;

/// The spans of one call; both are `Span::none()` when tracing is off or nobody listens.
#[derive(Debug)]
pub(crate) struct CallSpans {
    call: Span,
    attempt: Span,
}

impl Default for CallSpans {
    fn default() -> Self {
        CallSpans {
            call: Span::none(),
            attempt: Span::none(),
        }
    }
}

impl CallSpans {
    /// Opens the call span, a child of whatever span is current when `call` runs.
    #[inline]
    pub(crate) fn start(service: &str, operation: &str) -> Self {
        CallSpans {
            call: tracing::info_span!(
                "retry",
                retry.service = service,
                retry.operation = operation,
                retry.attempts = Empty,
                retry.outcome = Empty,
                retry.stop_reason = Empty,
                otel.status_code = Empty,
            ),
            attempt: Span::none(),
        }
    }

    /// The span to enter while the current attempt is being sent or polled.
    #[inline]
    pub(crate) fn attempt(&self) -> &Span {
        &self.attempt
    }

    /// Opens the span of attempt `attempt` (1 for the first), closing the previous one.
    #[inline]
    pub(crate) fn attempt_started(&mut self, attempt: u32) {
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
                otel.status_code = Empty,
            )
        };
    }

    /// Records how the current attempt went.
    #[inline]
    pub(crate) fn attempt_finished(&self, result: AttemptResult) {
        if self.attempt.is_none() {
            return;
        }
        self.attempt
            .record("retry.attempt_outcome", result.outcome_str());
        if let Some(error_type) = result.error_type() {
            self.attempt.record("error.type", error_type);
            self.attempt.record("otel.status_code", "error");
        }
        if let AttemptResult::Retryable(reason) = result {
            self.attempt.record("retry.reason", reason.as_str());
        }
    }

    /// The request could not be kept for replay.
    pub(crate) fn not_replayable(&self, service: &str, operation: &str) {
        tracing::debug!(
            parent: &self.call,
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
        let delay_ms = delay.as_secs_f64() * 1e3;
        if !self.attempt.is_none() {
            self.attempt.record("retry.delay_ms", delay_ms);
            self.attempt.record("retry.delay_source", source.as_str());
        }
        tracing::debug!(
            parent: &self.attempt,
            retry.attempt = attempt,
            retry.delay_ms = delay_ms,
            retry.reason = reason.as_str(),
            retry.delay_source = source.as_str(),
            "attempt failed; retrying after backoff"
        );
        self.attempt = Span::none();
    }

    /// The budget refused a retry.
    pub(crate) fn budget_denied(&mut self, service: &str, operation: &str, attempt: u32) {
        tracing::debug!(
            parent: &self.attempt,
            retry.service = service,
            retry.operation = operation,
            retry.attempt = attempt,
            "retry budget exhausted; returning the last result"
        );
    }

    /// The call ended: records the outcome on the call span, closes both spans, and warns
    /// when retries did not save the call.
    pub(crate) fn finished(
        &mut self,
        service: &str,
        operation: &str,
        outcome: Outcome,
        stop: StopReason,
        attempts: u32,
    ) {
        if !self.call.is_none() {
            self.call.record("retry.attempts", attempts);
            self.call.record("retry.outcome", outcome.as_str());
            self.call.record("retry.stop_reason", stop.as_str());
            if !outcome.is_success() {
                self.call.record("otel.status_code", "error");
            }
        }
        if outcome == Outcome::FailedAfterRetry {
            tracing::warn!(
                parent: &self.call,
                retry.service = service,
                retry.operation = operation,
                retry.attempts = attempts,
                retry.stop_reason = stop.as_str(),
                "request failed after retries"
            );
        }
        // Close the spans now rather than when the future is dropped.
        self.attempt = Span::none();
        self.call = Span::none();
    }
}
