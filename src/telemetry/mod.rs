//! Telemetry: what the retry engine reports, and where it goes.
//!
//! The response future talks to one sink, [`Telemetry`], at each step of a call: attempt
//! started and finished, retry scheduled (with the delay and why), budget denied, request not
//! replayable, call finished. The sink fans out to `tracing` (always on) and, behind features,
//! to `metrics` and OpenTelemetry. Labels come only from configuration (service and operation
//! names) and from closed enums ([`Outcome`], [`StopReason`], [`RetryReason`]).

mod on_retry;

use crate::classify::RetryReason;
use std::borrow::Cow;
use std::time::Duration;

pub use on_retry::{NoHook, OnRetry, RetryEvent};

/// How a call ended, in resilience4j's four kinds.
///
/// ```
/// assert_eq!(tower_retrier::telemetry::Outcome::SuccessAfterRetry.as_str(), "success_after_retry");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The first attempt succeeded.
    SuccessWithoutRetry,
    /// A retry succeeded.
    SuccessAfterRetry,
    /// The only attempt failed (not retryable, no budget, not replayable, ...).
    FailedWithoutRetry,
    /// Retries were made and the last attempt still failed.
    FailedAfterRetry,
}

impl Outcome {
    pub(crate) fn new(success: bool, attempts: u32) -> Self {
        match (success, attempts > 1) {
            (true, false) => Outcome::SuccessWithoutRetry,
            (true, true) => Outcome::SuccessAfterRetry,
            (false, false) => Outcome::FailedWithoutRetry,
            (false, true) => Outcome::FailedAfterRetry,
        }
    }

    /// A stable label.
    ///
    /// ```
    /// assert_eq!(tower_retrier::telemetry::Outcome::FailedWithoutRetry.as_str(), "failed_without_retry");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::SuccessWithoutRetry => "success_without_retry",
            Outcome::SuccessAfterRetry => "success_after_retry",
            Outcome::FailedWithoutRetry => "failed_without_retry",
            Outcome::FailedAfterRetry => "failed_after_retry",
        }
    }

    /// Whether the call succeeded.
    ///
    /// ```
    /// assert!(tower_retrier::telemetry::Outcome::SuccessAfterRetry.is_success());
    /// ```
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::SuccessWithoutRetry | Outcome::SuccessAfterRetry
        )
    }
}

/// Why the engine stopped retrying.
///
/// ```
/// assert_eq!(tower_retrier::telemetry::StopReason::BudgetDenied.as_str(), "budget_denied");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The attempt succeeded.
    Success,
    /// The classifier said the failure is not retryable.
    NotRetryable,
    /// `max_attempts` attempts were made.
    AttemptsExhausted,
    /// The retry budget denied the retry.
    BudgetDenied,
    /// The next backoff would end after the deadline.
    DeadlineExceeded,
    /// The request could not be replayed.
    NotReplayable,
    /// The inner service failed to become ready for a retry.
    NotReady,
}

impl StopReason {
    /// A stable label.
    ///
    /// ```
    /// assert_eq!(tower_retrier::telemetry::StopReason::AttemptsExhausted.as_str(), "attempts_exhausted");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::Success => "success",
            StopReason::NotRetryable => "not_retryable",
            StopReason::AttemptsExhausted => "attempts_exhausted",
            StopReason::BudgetDenied => "budget_denied",
            StopReason::DeadlineExceeded => "deadline_exceeded",
            StopReason::NotReplayable => "not_replayable",
            StopReason::NotReady => "not_ready",
        }
    }
}

/// Where a retry's delay came from.
///
/// ```
/// assert_eq!(tower_retrier::telemetry::DelaySource::Pushback.as_str(), "pushback");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DelaySource {
    /// The configured backoff.
    Backoff,
    /// The server asked for it (`Retry-After`, `grpc-retry-pushback-ms`).
    Pushback,
}

impl DelaySource {
    /// A stable label.
    ///
    /// ```
    /// assert_eq!(tower_retrier::telemetry::DelaySource::Backoff.as_str(), "backoff");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            DelaySource::Backoff => "backoff",
            DelaySource::Pushback => "pushback",
        }
    }
}

/// The telemetry sink of one layer: names plus the enabled back-ends. Cheap to clone.
///
/// ```
/// let t = tower_retrier::telemetry::Telemetry::new("billing", "charge");
/// assert_eq!(t.service_name(), "billing");
/// ```
#[derive(Clone, Debug)]
pub struct Telemetry {
    service: Cow<'static, str>,
    operation: Cow<'static, str>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new("unknown", "unknown")
    }
}

/// Per-call telemetry state, owned by the response future.
#[derive(Debug, Default)]
pub(crate) struct CallTelemetry {
    _priv: (),
}

impl Telemetry {
    /// A sink labelled with a service and an operation name.
    ///
    /// ```
    /// let _ = tower_retrier::telemetry::Telemetry::new("users", "get");
    /// ```
    pub fn new(
        service: impl Into<Cow<'static, str>>,
        operation: impl Into<Cow<'static, str>>,
    ) -> Self {
        Telemetry {
            service: service.into(),
            operation: operation.into(),
        }
    }

    /// The service name label.
    ///
    /// ```
    /// assert_eq!(tower_retrier::telemetry::Telemetry::default().service_name(), "unknown");
    /// ```
    pub fn service_name(&self) -> &str {
        &self.service
    }

    /// The operation name label.
    ///
    /// ```
    /// assert_eq!(tower_retrier::telemetry::Telemetry::default().operation_name(), "unknown");
    /// ```
    pub fn operation_name(&self) -> &str {
        &self.operation
    }

    pub(crate) fn set_service_name(&mut self, name: Cow<'static, str>) {
        self.service = name;
    }

    pub(crate) fn set_operation_name(&mut self, name: Cow<'static, str>) {
        self.operation = name;
    }

    #[inline]
    pub(crate) fn start_call(&self) -> CallTelemetry {
        CallTelemetry::default()
    }

    #[inline]
    pub(crate) fn attempt_started(&self, _call: &mut CallTelemetry, _attempt: u32) {}

    pub(crate) fn not_replayable(&self, _call: &mut CallTelemetry) {
        tracing::debug!(
            service = %self.service,
            operation = %self.operation,
            "request cannot be replayed; it is sent once and will not be retried"
        );
    }

    pub(crate) fn retry_scheduled(
        &self,
        _call: &mut CallTelemetry,
        attempt: u32,
        delay: Duration,
        reason: RetryReason,
        source: DelaySource,
    ) {
        tracing::debug!(
            service = %self.service,
            operation = %self.operation,
            attempt,
            delay_ms = delay.as_secs_f64() * 1e3,
            reason = reason.as_str(),
            delay_source = source.as_str(),
            "retrying"
        );
    }

    pub(crate) fn budget_denied(&self, _call: &mut CallTelemetry, attempt: u32) {
        tracing::debug!(
            service = %self.service,
            operation = %self.operation,
            attempt,
            "retry budget exhausted; returning the last result"
        );
    }

    pub(crate) fn finished(
        &self,
        _call: &mut CallTelemetry,
        outcome: Outcome,
        stop: StopReason,
        attempts: u32,
    ) {
        if outcome == Outcome::FailedAfterRetry {
            tracing::warn!(
                service = %self.service,
                operation = %self.operation,
                attempts,
                stop = stop.as_str(),
                "request failed after retries"
            );
        }
    }
}
