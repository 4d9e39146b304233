//! The names telemetry uses: metric names, label keys and span names, fixed so that dashboards
//! and alerts keep working across releases.
//!
//! Label values come only from configuration (service and operation names) and from closed
//! enums ([`Outcome`](super::Outcome), [`RetryReason`](crate::classify::RetryReason),
//! [`DelaySource`](super::DelaySource)), never from errors, URLs or requests, so the number of
//! series is bounded whatever the traffic.
//!
//! ```
//! use tower_retrier::telemetry::names;
//! assert_eq!(names::CALLS_TOTAL, "retrier_calls_total");
//! ```

/// Counter of calls by final outcome; labels `service`, `operation`, `outcome`.
pub const CALLS_TOTAL: &str = "retrier_calls_total";
/// Counter of attempts sent (first attempts and retries); labels `service`, `operation`.
pub const ATTEMPTS_TOTAL: &str = "retrier_attempts_total";
/// Counter of retries granted, by reason; labels `service`, `operation`, `reason`.
pub const RETRIES_TOTAL: &str = "retrier_retries_total";
/// Counter of failed calls by the reason retrying stopped ([`StopReason`](super::StopReason),
/// e.g. `pushback_too_long`, `not_idempotent`); labels `service`, `operation`, `stop_reason`.
pub const FAILED_CALLS_TOTAL: &str = "retrier_failed_calls_total";
/// Counter of retries the budget refused; labels `service`, `operation`.
pub const BUDGET_DENIED_TOTAL: &str = "retrier_budget_denied_total";
/// Counter of errors talking to a shared budget's back-end (Redis); label `budget`.
pub const BUDGET_BACKEND_ERRORS_TOTAL: &str = "retrier_budget_backend_errors_total";
/// Counter of decisions a shared budget took locally because its back-end was unavailable;
/// label `budget`.
pub const BUDGET_FALLBACKS_TOTAL: &str = "retrier_budget_fallbacks_total";
/// Counter of hedges sent (attempts beyond the first of a hedged call); labels `service`,
/// `operation`.
pub const HEDGES_TOTAL: &str = "retrier_hedges_total";
/// Counter of hedged calls whose final answer came from a hedge rather than the first
/// attempt; labels `service`, `operation`.
pub const HEDGES_WON_TOTAL: &str = "retrier_hedges_won_total";
/// Counter of hedges the budget refused (also counted in `retrier_budget_denied_total`);
/// labels `service`, `operation`.
pub const HEDGES_BUDGET_DENIED_TOTAL: &str = "retrier_hedges_budget_denied_total";
/// Gauge of the retries a budget would grant right now: the stock of a named
/// [`AdaptiveBudget`](crate::budget::AdaptiveBudget), or of a shared adaptive `RedisBudget` as
/// Redis last reported it; label `budget`.
pub const BUDGET_REMAINING: &str = "retrier_budget_remaining";
/// Gauge of calls currently waiting (backing off) before a retry; labels `service`,
/// `operation`.
pub const RETRIES_WAITING: &str = "retrier_retries_waiting";
/// Gauge of request body bytes currently held so that a request can be replayed; no labels
/// (one per process).
pub const REPLAY_BYTES_HELD: &str = "retrier_replay_bytes_held";
/// Counter of calls admission control refused before sending them, by
/// [`RejectReason`](crate::admission::RejectReason); labels `service`, `operation`, `reason`.
pub const ADMISSION_REJECTED_TOTAL: &str = "retrier_admission_rejected_total";
/// Gauge of admission control's state ([`AdmissionState::level`](crate::admission::AdmissionState::level):
/// 0 closed, 1 limited, 2 open, 3 throttling); labels `service`, `operation`.
pub const ADMISSION_STATE: &str = "retrier_admission_state";
/// Gauge of admission control's concurrency limit while one applies (0 when none);
/// labels `service`, `operation`.
pub const ADMISSION_LIMIT: &str = "retrier_admission_limit";
/// Counter of errors talking to Redis for fleet-wide admission control (failed, timed-out or
/// malformed flushes); label `admission`.
pub const ADMISSION_BACKEND_ERRORS_TOTAL: &str = "retrier_admission_backend_errors_total";
/// Counter of times fleet-wide admission control lost the fleet's view (Redis away, slow or
/// holding something unreadable) and left the decisions to this instance's own counts;
/// label `admission`.
pub const ADMISSION_FLEET_LOST_TOTAL: &str = "retrier_admission_fleet_lost_total";
/// Histogram of the delay before each retry, in seconds; labels `service`, `operation`,
/// `source`.
pub const BACKOFF_DELAY_SECONDS: &str = "retrier_backoff_delay_seconds";
/// Histogram of attempts per call (1 = no retry); labels `service`, `operation`.
pub const ATTEMPTS_PER_CALL: &str = "retrier_attempts_per_call";

/// Label key: the configured service name.
pub const LABEL_SERVICE: &str = "service";
/// Label key: the configured operation name.
pub const LABEL_OPERATION: &str = "operation";
/// Label key: the call's [`Outcome`](super::Outcome).
pub const LABEL_OUTCOME: &str = "outcome";
/// Label key: the [`RetryReason`](crate::classify::RetryReason) of a retry.
pub const LABEL_REASON: &str = "reason";
/// Label key: the [`StopReason`](super::StopReason) of a failed call.
pub const LABEL_STOP_REASON: &str = "stop_reason";
/// Label key: the [`DelaySource`](super::DelaySource) of a retry's delay.
pub const LABEL_SOURCE: &str = "source";
/// Label key: the name of a shared budget.
pub const LABEL_BUDGET: &str = "budget";
/// Label key: the name of fleet-wide admission control (shared by the fleet).
pub const LABEL_ADMISSION: &str = "admission";

/// OpenTelemetry counter of calls by outcome (unit `{call}`).
pub const OTEL_CALLS: &str = "retrier.client.calls";
/// OpenTelemetry counter of attempts sent (unit `{attempt}`).
pub const OTEL_ATTEMPTS: &str = "retrier.client.attempts";
/// OpenTelemetry counter of retries granted, by reason (unit `{retry}`).
pub const OTEL_RETRIES: &str = "retrier.client.retries";
/// OpenTelemetry counter of retries the budget refused (unit `{retry}`).
pub const OTEL_BUDGET_DENIED: &str = "retrier.client.budget.denied";
/// OpenTelemetry counter of hedges sent (unit `{hedge}`).
pub const OTEL_HEDGES: &str = "retrier.client.hedges";
/// OpenTelemetry counter of hedged calls answered by a hedge (unit `{hedge}`).
pub const OTEL_HEDGES_WON: &str = "retrier.client.hedges.won";
/// OpenTelemetry counter of hedges the budget refused (unit `{hedge}`).
pub const OTEL_HEDGES_BUDGET_DENIED: &str = "retrier.client.hedges.budget.denied";
/// OpenTelemetry counter of calls refused by admission control, by reason (unit `{call}`).
pub const OTEL_ADMISSION_REJECTED: &str = "retrier.client.admission.rejected";
/// OpenTelemetry gauge of admission control's state (0 closed, 1 limited, 2 open, 3
/// throttling).
pub const OTEL_ADMISSION_STATE: &str = "retrier.client.admission.state";
/// OpenTelemetry gauge of admission control's concurrency limit (0 when none applies).
pub const OTEL_ADMISSION_LIMIT: &str = "retrier.client.admission.limit";
/// OpenTelemetry up-down counter of calls currently backing off before a retry (unit `{call}`).
pub const OTEL_RETRIES_WAITING: &str = "retrier.client.retries.waiting";
/// OpenTelemetry histogram of retries per call, like gRPC's `grpc.client.call.retries`
/// (unit `{retry}`; as in gRFC A96, calls without retries record nothing).
pub const OTEL_CALL_RETRIES: &str = "retrier.client.call.retries";
/// OpenTelemetry histogram of the total backoff of a call, like gRPC's
/// `grpc.client.call.retry_delay` (unit `s`; calls without retries record nothing).
pub const OTEL_CALL_RETRY_DELAY: &str = "retrier.client.call.retry_delay";

/// OpenTelemetry attribute key: the configured service name.
pub const OTEL_ATTR_SERVICE: &str = "retrier.service";
/// OpenTelemetry attribute key: the configured operation name.
pub const OTEL_ATTR_OPERATION: &str = "retrier.operation";
/// OpenTelemetry attribute key: the call's [`Outcome`](super::Outcome).
pub const OTEL_ATTR_OUTCOME: &str = "retrier.outcome";
/// OpenTelemetry attribute key: the [`RetryReason`](crate::classify::RetryReason) of a retry.
pub const OTEL_ATTR_REASON: &str = "retrier.reason";

/// OpenTelemetry attribute key: the [`RejectReason`](crate::admission::RejectReason) of a
/// call refused by admission control.
pub const OTEL_ATTR_REJECT_REASON: &str = "retrier.admission.reason";

/// The `tracing` span covering one call, retries included.
pub const SPAN_CALL: &str = "retry";
/// The `tracing` span covering one attempt, a child of [`SPAN_CALL`].
pub const SPAN_ATTEMPT: &str = "retry_attempt";

/// The instrumentation scope name given to OpenTelemetry.
pub const SCOPE_NAME: &str = "tower-retrier";
