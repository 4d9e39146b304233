//! Telemetry: what the retry engine reports, and where it goes.
//!
//! The response future talks to one sink, [`Telemetry`], at each step of a call: attempt
//! started and finished, retry scheduled (with the delay and why), budget denied, request not
//! replayable, call finished. The sink fans out to `tracing` (always available) and, behind
//! features, to `metrics` and OpenTelemetry. Labels come only from configuration (service and
//! operation names) and from closed enums ([`Outcome`], [`StopReason`], [`RetryReason`]); the
//! names are in [`names`].
//!
//! A back-end that panics (a broken recorder) never fails a request: the panic is caught, the
//! back-end is switched off for that layer and one error is logged.

mod gauges;
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
mod lazy;
#[cfg(feature = "metrics")]
mod metrics;
pub mod names;
mod on_retry;
#[cfg(feature = "opentelemetry")]
mod otel;
mod tracing_spans;

use crate::classify::{Decision, RetryReason};
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
use lazy::Lazy;
use std::borrow::Cow;
use std::fmt;
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
use std::sync::Arc;
use std::time::Duration;
use tracing_spans::CallSpans;

#[cfg(feature = "http")]
pub(crate) use gauges::HeldBytes;
pub(crate) use gauges::RetryWait;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use self::metrics::describe_metrics;
use crate::admission::{AdmissionState, RejectReason};
pub use on_retry::{NoHook, OnRetry, RetryEvent};
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub use otel::instrumentation_scope;

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
    /// The caller dropped the call before it finished (e.g. an outer timeout fired).
    Cancelled,
    /// The server asked for a delay (`Retry-After`, `grpc-retry-pushback-ms`) longer than
    /// `max_delay` or past the deadline: its response is returned rather than retried sooner
    /// than it asked (see [`Pushback`](crate::Pushback)).
    PushbackTooLong,
    /// The request is not idempotent (an HTTP POST without `Idempotency-Key`, see
    /// [`Idempotent`](crate::replay::Idempotent)) and may have reached the server: it is not
    /// sent again.
    NotIdempotent,
    /// Admission control refused the call (nothing was sent), or refused its retry because
    /// the downstream is known to be unable to serve (see [`crate::admission`]).
    Overloaded,
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
            StopReason::Cancelled => "cancelled",
            StopReason::PushbackTooLong => "pushback_too_long",
            StopReason::NotIdempotent => "not_idempotent",
            StopReason::Overloaded => "overloaded",
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

/// How one attempt went, as telemetry reports it (`retry.attempt_outcome`, `error.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptResult {
    Success,
    Retryable(RetryReason),
    /// A failure the classifier will not retry; `error` tells an `Err` from a rejected response.
    Failed {
        error: bool,
    },
}

impl AttemptResult {
    pub(crate) fn new(decision: &Decision, is_err: bool) -> Self {
        match decision {
            Decision::Success => AttemptResult::Success,
            Decision::Retry { reason, .. } => AttemptResult::Retryable(*reason),
            Decision::Fail => AttemptResult::Failed { error: is_err },
        }
    }

    pub(crate) fn outcome_str(&self) -> &'static str {
        match self {
            AttemptResult::Success => "success",
            AttemptResult::Retryable(_) => "retryable_failure",
            AttemptResult::Failed { .. } => "failure",
        }
    }

    /// A low-cardinality `error.type`: the retry reason, or `error` / `response` for failures
    /// that are not retried. Never derived from an error's message.
    pub(crate) fn error_type(&self) -> Option<&'static str> {
        match self {
            AttemptResult::Success => None,
            AttemptResult::Retryable(reason) => Some(reason.as_str()),
            AttemptResult::Failed { error: true } => Some("error"),
            AttemptResult::Failed { error: false } => Some("response"),
        }
    }
}

/// The telemetry sink of one layer: names plus the enabled back-ends. Cheap to clone; clones
/// share metric handles and instruments.
///
/// By default `tracing` is on, and so are the `metrics` and OpenTelemetry back-ends when
/// their features are compiled in (they report to the installed recorder / global meter
/// provider, or nowhere when none is installed). [`Telemetry::disabled`] turns everything off.
///
/// ```
/// use tower_retrier::{RetryConfig, RetryLayer};
/// use tower_retrier::telemetry::Telemetry;
///
/// let t = Telemetry::new("billing", "charge");
/// assert_eq!(t.service_name(), "billing");
/// let layer = RetryLayer::new(RetryConfig::default()).with_telemetry(t);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct Telemetry {
    service: Cow<'static, str>,
    operation: Cow<'static, str>,
    tracing: bool,
    #[cfg(feature = "metrics")]
    metrics: Option<Arc<Lazy<metrics::MetricsHandles>>>,
    #[cfg(feature = "opentelemetry")]
    otel: Option<(otel::MeterSource, Arc<Lazy<otel::OtelInstruments>>)>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Telemetry");
        d.field("service", &self.service)
            .field("operation", &self.operation)
            .field("tracing", &self.tracing);
        #[cfg(feature = "metrics")]
        d.field("metrics", &self.metrics.is_some());
        #[cfg(feature = "opentelemetry")]
        d.field(
            "opentelemetry",
            &self.otel.as_ref().map(|(source, _)| source),
        );
        d.finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new("unknown", "unknown")
    }
}

/// Per-call telemetry state, owned by the response future.
#[derive(Debug, Default)]
pub(crate) struct CallTelemetry {
    spans: CallSpans,
    /// Time spent backing off, in nanoseconds (8 bytes of the response future rather than a
    /// `Duration`'s 16). Only OpenTelemetry reports it; kept out of the future otherwise.
    #[cfg(feature = "opentelemetry")]
    total_delay_nanos: u64,
}

impl CallTelemetry {
    /// The current attempt's span, if spans are open (hedging keeps one per attempt).
    pub(crate) fn attempt_span(&self) -> Option<tracing::Span> {
        self.spans.attempt_span()
    }

    /// Makes `span` the current attempt's span again.
    pub(crate) fn select_attempt(&mut self, span: tracing::Span) {
        self.spans.select_attempt(span);
    }

    /// Enter while sending or polling the current attempt (never across an `.await`).
    #[inline]
    pub(crate) fn enter_attempt(&self) -> Option<tracing::span::Entered<'_>> {
        self.spans.enter_attempt()
    }
}

impl Telemetry {
    /// A sink labelled with a service and an operation name, with every compiled-in back-end
    /// on.
    ///
    /// The names become metric labels: keep them constants, never request data.
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
            tracing: true,
            #[cfg(feature = "metrics")]
            metrics: Some(Lazy::new()),
            #[cfg(feature = "opentelemetry")]
            otel: Some((otel::MeterSource::Global, Lazy::new())),
        }
    }

    /// A sink that reports nothing: no spans, no events, no metrics.
    ///
    /// ```
    /// use tower_retrier::telemetry::Telemetry;
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .with_telemetry(Telemetry::disabled());
    /// assert!(!layer.telemetry().is_enabled());
    /// ```
    pub fn disabled() -> Self {
        Telemetry::default()
            .with_tracing(false)
            .without_metrics()
            .without_opentelemetry()
    }

    /// Turns the `tracing` spans and events on or off.
    ///
    /// ```
    /// let t = tower_retrier::telemetry::Telemetry::new("a", "b").with_tracing(false);
    /// # let _ = t;
    /// ```
    pub fn with_tracing(mut self, enabled: bool) -> Self {
        self.tracing = enabled;
        self
    }

    /// Turns the `metrics` back-end on or off (feature `metrics`; on by default).
    ///
    /// Handles are registered with the recorder current at the layer's first call.
    ///
    /// ```
    /// let t = tower_retrier::telemetry::Telemetry::new("a", "b").with_metrics(true);
    /// # let _ = t;
    /// ```
    #[cfg(feature = "metrics")]
    pub fn with_metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled.then(Lazy::new);
        self
    }

    /// Turns the OpenTelemetry back-end on or off (feature `opentelemetry`; on by default,
    /// with the global meter provider).
    ///
    /// ```
    /// let t = tower_retrier::telemetry::Telemetry::new("a", "b").with_opentelemetry(false);
    /// # let _ = t;
    /// ```
    #[cfg(feature = "opentelemetry")]
    pub fn with_opentelemetry(mut self, enabled: bool) -> Self {
        self.otel = enabled.then(|| (otel::MeterSource::Global, Lazy::new()));
        self
    }

    /// Creates the OpenTelemetry instruments from `meter` instead of the global provider
    /// (feature `opentelemetry`).
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// let provider = opentelemetry::global::meter_provider();
    /// let meter = provider.meter_with_scope(tower_retrier::telemetry::instrumentation_scope());
    /// let t = tower_retrier::telemetry::Telemetry::new("a", "b").with_meter(meter);
    /// # let _ = t;
    /// ```
    #[cfg(feature = "opentelemetry")]
    pub fn with_meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.otel = Some((otel::MeterSource::Injected(meter), Lazy::new()));
        self
    }

    fn without_metrics(self) -> Self {
        #[cfg(feature = "metrics")]
        let self_ = self.with_metrics(false);
        #[cfg(not(feature = "metrics"))]
        let self_ = self;
        self_
    }

    fn without_opentelemetry(self) -> Self {
        #[cfg(feature = "opentelemetry")]
        let self_ = self.with_opentelemetry(false);
        #[cfg(not(feature = "opentelemetry"))]
        let self_ = self;
        self_
    }

    /// Whether any back-end is on.
    ///
    /// ```
    /// assert!(tower_retrier::telemetry::Telemetry::default().is_enabled());
    /// assert!(!tower_retrier::telemetry::Telemetry::disabled().is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        #[allow(unused_mut)]
        let mut on = self.tracing;
        #[cfg(feature = "metrics")]
        {
            on |= self.metrics.is_some();
        }
        #[cfg(feature = "opentelemetry")]
        {
            on |= self.otel.is_some();
        }
        on
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
        self.relabel();
    }

    pub(crate) fn set_operation_name(&mut self, name: Cow<'static, str>) {
        self.operation = name;
        self.relabel();
    }

    /// Names changed: handles registered under the old labels must not be reused.
    fn relabel(&mut self) {
        #[cfg(feature = "metrics")]
        if self.metrics.is_some() {
            self.metrics = Some(Lazy::new());
        }
        #[cfg(feature = "opentelemetry")]
        if let Some((source, _)) = self.otel.take() {
            self.otel = Some((source, Lazy::new()));
        }
    }

    #[cfg(feature = "metrics")]
    #[inline]
    fn metrics(&self, f: impl FnOnce(&metrics::MetricsHandles)) {
        if let Some(lazy) = &self.metrics {
            let init =
                || metrics::MetricsHandles::register(self.service.clone(), self.operation.clone());
            lazy.with("metrics", init, f);
        }
    }

    #[cfg(feature = "opentelemetry")]
    #[inline]
    fn otel(&self, f: impl FnOnce(&otel::OtelInstruments)) {
        if let Some((source, lazy)) = &self.otel {
            let init =
                || otel::OtelInstruments::new(source, self.service.clone(), self.operation.clone());
            lazy.with("opentelemetry", init, f);
        }
    }

    /// Whether a metrics or OpenTelemetry back-end is on (spans are tracked per call).
    #[inline]
    fn counters_on(&self) -> bool {
        #[allow(unused_mut)]
        let mut on = false;
        #[cfg(feature = "metrics")]
        {
            on |= self.metrics.is_some();
        }
        #[cfg(feature = "opentelemetry")]
        {
            on |= self.otel.is_some();
        }
        on
    }

    // The per-call hooks below are split in two: an inlined check that returns at once when
    // no span is open and no counting back-end is on (the common case: `tracing` with no
    // subscriber), and an out-of-line body for when something listens.

    #[inline]
    pub(crate) fn start_call(&self) -> CallTelemetry {
        CallTelemetry {
            spans: if self.tracing {
                CallSpans::start(&self.service, &self.operation)
            } else {
                CallSpans::default()
            },
            #[cfg(feature = "opentelemetry")]
            total_delay_nanos: 0,
        }
    }

    /// Starts a call and its first attempt. The call's state is handed over by value (16
    /// bytes, in registers): the caller never lends it out, so the compiler keeps it out of
    /// memory until it lands in the response future.
    #[inline]
    pub(crate) fn start_first_attempt(&self) -> CallTelemetry {
        let call = self.start_call();
        if call.spans.is_active() || self.counters_on() {
            return self.first_attempt_slow(call);
        }
        call
    }

    #[inline(never)]
    fn first_attempt_slow(&self, mut call: CallTelemetry) -> CallTelemetry {
        self.attempt_started_slow(&mut call, 1);
        call
    }

    #[inline]
    pub(crate) fn attempt_started(&self, call: &mut CallTelemetry, attempt: u32) {
        if call.spans.is_active() || self.counters_on() {
            self.attempt_started_slow(call, attempt);
        }
    }

    #[inline(never)]
    fn attempt_started_slow(&self, call: &mut CallTelemetry, attempt: u32) {
        call.spans.attempt_started(attempt);
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.attempt_started());
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.attempt_started());
    }

    #[inline]
    pub(crate) fn attempt_finished(
        &self,
        call: &mut CallTelemetry,
        decision: &Decision,
        is_err: bool,
    ) {
        if call.spans.is_active() {
            call.spans
                .attempt_finished(AttemptResult::new(decision, is_err));
        }
    }

    #[cold]
    pub(crate) fn not_replayable(&self, call: &mut CallTelemetry) {
        if self.tracing {
            call.spans.not_replayable(&self.service, &self.operation);
        }
    }

    #[inline]
    pub(crate) fn retry_scheduled(
        &self,
        call: &mut CallTelemetry,
        attempt: u32,
        delay: Duration,
        reason: RetryReason,
        source: DelaySource,
    ) {
        // The debug event is the only report when no span is open and nothing counts.
        if call.spans.is_active()
            || self.counters_on()
            || (self.tracing && tracing::level_enabled!(tracing::Level::DEBUG))
        {
            self.retry_scheduled_slow(call, attempt, delay, reason, source);
        }
    }

    #[inline(never)]
    fn retry_scheduled_slow(
        &self,
        call: &mut CallTelemetry,
        attempt: u32,
        delay: Duration,
        reason: RetryReason,
        source: DelaySource,
    ) {
        #[cfg(feature = "opentelemetry")]
        {
            let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
            call.total_delay_nanos = call.total_delay_nanos.saturating_add(nanos);
        }
        if self.tracing {
            call.spans.retry_scheduled(attempt, delay, reason, source);
        }
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.retry_scheduled(delay, reason, source));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.retry_scheduled(reason));
    }

    /// A guard counting this call in the "waiting to retry" gauges until it is dropped.
    pub(crate) fn retry_wait(&self) -> RetryWait {
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.retries_waiting(1));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.retries_waiting(1));
        RetryWait {
            #[cfg(feature = "metrics")]
            metrics: self.metrics.clone(),
            #[cfg(feature = "opentelemetry")]
            otel: self.otel.as_ref().map(|(_, lazy)| lazy.clone()),
        }
    }

    #[cold]
    pub(crate) fn budget_denied(&self, call: &mut CallTelemetry, attempt: u32) {
        if self.tracing {
            call.spans
                .budget_denied(&self.service, &self.operation, attempt);
        }
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.budget_denied());
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.budget_denied());
    }

    /// Admission control refused a call: counted by reason, and a debug event (the state
    /// change itself is logged once, at warn).
    #[cold]
    pub(crate) fn admission_rejected(&self, reason: RejectReason) {
        if self.tracing {
            tracing::debug!(
                service = %self.service,
                operation = %self.operation,
                reason = reason.as_str(),
                "call refused by admission control"
            );
        }
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.admission_rejected(reason));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.admission_rejected(reason));
    }

    /// Admission control changed state (or its concurrency limit).
    #[cold]
    pub(crate) fn admission_state(&self, state: AdmissionState, limit: Option<u32>) {
        if self.tracing {
            if state == AdmissionState::Open {
                tracing::warn!(
                    service = %self.service,
                    operation = %self.operation,
                    "admission control opened: the downstream is not serving, calls are refused except probes"
                );
            } else {
                tracing::debug!(
                    service = %self.service,
                    operation = %self.operation,
                    state = state.as_str(),
                    limit,
                    "admission control state"
                );
            }
        }
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.admission_state(state, limit));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.admission_state(state, limit));
    }

    /// A hedge was just started (after `attempt_started`): its span says so.
    #[cold]
    pub(crate) fn hedge_sent(&self, call: &mut CallTelemetry) {
        if self.tracing {
            call.spans.hedge_started();
        }
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.hedge(0));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.hedge(0));
    }

    /// A hedged call's final answer came from a hedge.
    #[cold]
    pub(crate) fn hedge_won(&self) {
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.hedge(1));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.hedge(1));
    }

    /// The budget refused a hedge (after `budget_denied`).
    #[cold]
    pub(crate) fn hedge_denied(&self) {
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.hedge(2));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| o.hedge(2));
    }

    #[inline]
    pub(crate) fn finished(
        &self,
        call: &mut CallTelemetry,
        outcome: Outcome,
        stop: StopReason,
        attempts: u32,
    ) {
        // A failure after retries is logged even with no span open.
        if call.spans.is_active() || outcome == Outcome::FailedAfterRetry || self.counters_on() {
            self.finished_slow(call, outcome, stop, attempts);
        }
    }

    #[inline(never)]
    fn finished_slow(
        &self,
        call: &mut CallTelemetry,
        outcome: Outcome,
        stop: StopReason,
        attempts: u32,
    ) {
        if self.tracing {
            call.spans
                .finished(&self.service, &self.operation, outcome, stop, attempts);
        }
        #[cfg(feature = "metrics")]
        self.metrics(|m| m.finished(outcome, stop, attempts));
        #[cfg(feature = "opentelemetry")]
        self.otel(|o| {
            o.finished(
                outcome,
                attempts,
                Duration::from_nanos(call.total_delay_nanos),
            )
        });
    }
}
