//! The OpenTelemetry back-end (feature `opentelemetry`): instruments created from a
//! [`Meter`] the application injects, or from the global meter provider under this crate's
//! instrumentation scope.
//!
//! A library never installs a provider. Instruments bind to the provider they were created
//! from, so with the global provider they are created at the layer's first call: a provider
//! installed after the layer was built (but before traffic) still receives the metrics.
//! Attribute sets are built once, so recording never allocates on our side.

use super::Outcome;
use super::names::{
    OTEL_ADMISSION_LIMIT, OTEL_ADMISSION_REJECTED, OTEL_ADMISSION_STATE, OTEL_ATTEMPTS,
    OTEL_ATTR_OPERATION, OTEL_ATTR_OUTCOME, OTEL_ATTR_REASON, OTEL_ATTR_REJECT_REASON,
    OTEL_ATTR_SERVICE, OTEL_BUDGET_DENIED, OTEL_CALL_RETRIES, OTEL_CALL_RETRY_DELAY, OTEL_CALLS,
    OTEL_HEDGES, OTEL_HEDGES_BUDGET_DENIED, OTEL_HEDGES_WON, OTEL_RETRIES, OTEL_RETRIES_WAITING,
    SCOPE_NAME,
};
use crate::admission::{AdmissionState, RejectReason};
use crate::classify::RetryReason;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};
use opentelemetry::{InstrumentationScope, KeyValue};
use std::borrow::Cow;
use std::time::Duration;

/// Where instruments come from.
#[derive(Clone, Debug)]
pub(crate) enum MeterSource {
    /// `opentelemetry::global`, resolved at the layer's first call.
    Global,
    /// A meter the application gave us.
    Injected(Meter),
}

impl MeterSource {
    fn meter(&self) -> Meter {
        match self {
            MeterSource::Global => opentelemetry::global::meter_with_scope(scope()),
            MeterSource::Injected(meter) => meter.clone(),
        }
    }
}

/// This crate's instrumentation scope: its name and version.
///
/// ```
/// let scope = tower_retrier::telemetry::instrumentation_scope();
/// assert_eq!(scope.name(), "tower-retrier");
/// ```
pub fn instrumentation_scope() -> InstrumentationScope {
    scope()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

const OUTCOMES: [Outcome; 4] = [
    Outcome::SuccessWithoutRetry,
    Outcome::SuccessAfterRetry,
    Outcome::FailedWithoutRetry,
    Outcome::FailedAfterRetry,
];

const REJECTS: [RejectReason; 3] = [
    RejectReason::Open,
    RejectReason::ConcurrencyLimit,
    RejectReason::Throttled,
];

/// The instruments of one layer, with their attribute sets.
#[derive(Debug)]
pub(crate) struct OtelInstruments {
    calls: Counter<u64>,
    attempts: Counter<u64>,
    retries: Counter<u64>,
    budget_denied: Counter<u64>,
    waiting: UpDownCounter<i64>,
    call_retries: Histogram<u64>,
    call_retry_delay: Histogram<f64>,
    /// Hedges sent, won, denied by the budget.
    hedges: [Counter<u64>; 3],
    admission_rejected: Counter<u64>,
    admission_state: Gauge<u64>,
    admission_limit: Gauge<u64>,
    by_reject: [[KeyValue; 3]; 3],
    base: [KeyValue; 2],
    by_outcome: [[KeyValue; 3]; 4],
    by_reason: [[KeyValue; 3]; 8],
}

impl OtelInstruments {
    pub(crate) fn new(
        source: &MeterSource,
        service: Cow<'static, str>,
        operation: Cow<'static, str>,
    ) -> Self {
        let meter = source.meter();
        let base = [
            KeyValue::new(OTEL_ATTR_SERVICE, service),
            KeyValue::new(OTEL_ATTR_OPERATION, operation),
        ];
        let with = |key: &'static str, value: &'static str| {
            let [a, b] = base.clone();
            [a, b, KeyValue::new(key, value)]
        };
        OtelInstruments {
            calls: meter
                .u64_counter(OTEL_CALLS)
                .with_unit("{call}")
                .with_description("Calls through the retry layer, by final outcome.")
                .build(),
            attempts: meter
                .u64_counter(OTEL_ATTEMPTS)
                .with_unit("{attempt}")
                .with_description("Attempts sent to the inner service, first attempts and retries.")
                .build(),
            retries: meter
                .u64_counter(OTEL_RETRIES)
                .with_unit("{retry}")
                .with_description("Retries granted, by reason.")
                .build(),
            budget_denied: meter
                .u64_counter(OTEL_BUDGET_DENIED)
                .with_unit("{retry}")
                .with_description("Retries refused by the retry budget.")
                .build(),
            waiting: meter
                .i64_up_down_counter(OTEL_RETRIES_WAITING)
                .with_unit("{call}")
                .with_description("Calls currently backing off before a retry.")
                .build(),
            call_retries: meter
                .u64_histogram(OTEL_CALL_RETRIES)
                .with_unit("{retry}")
                .with_description(
                    "Retries made during a call, the first attempt not counted \
                     (calls without retries record nothing).",
                )
                .with_boundaries(vec![1.0, 2.0, 3.0, 4.0, 5.0, 10.0])
                .build(),
            call_retry_delay: meter
                .f64_histogram(OTEL_CALL_RETRY_DELAY)
                .with_unit("s")
                .with_description(
                    "Total time a call spent backing off between attempts \
                     (calls without retries record nothing).",
                )
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
                .build(),
            hedges: [
                (
                    OTEL_HEDGES,
                    "Hedges sent: attempts beyond the first of a hedged call.",
                ),
                (
                    OTEL_HEDGES_WON,
                    "Hedged calls whose final answer came from a hedge.",
                ),
                (
                    OTEL_HEDGES_BUDGET_DENIED,
                    "Hedges refused by the retry budget (not sent).",
                ),
            ]
            .map(|(name, description)| {
                meter
                    .u64_counter(name)
                    .with_unit("{hedge}")
                    .with_description(description)
                    .build()
            }),
            admission_rejected: meter
                .u64_counter(OTEL_ADMISSION_REJECTED)
                .with_unit("{call}")
                .with_description(
                    "Calls refused by admission control before they were sent, by reason.",
                )
                .build(),
            admission_state: meter
                .u64_gauge(OTEL_ADMISSION_STATE)
                .with_description(
                    "Admission control's state: 0 closed, 1 limited, 2 open, 3 throttling.",
                )
                .build(),
            admission_limit: meter
                .u64_gauge(OTEL_ADMISSION_LIMIT)
                .with_unit("{call}")
                .with_description("Admission control's concurrency limit (0 when none applies).")
                .build(),
            by_reject: REJECTS.map(|r| with(OTEL_ATTR_REJECT_REASON, r.as_str())),
            by_outcome: OUTCOMES.map(|o| with(OTEL_ATTR_OUTCOME, o.as_str())),
            by_reason: RetryReason::ALL.map(|r| with(OTEL_ATTR_REASON, r.as_str())),
            base,
        }
    }

    #[inline]
    pub(crate) fn attempt_started(&self) {
        self.attempts.add(1, &self.base);
    }

    pub(crate) fn retry_scheduled(&self, reason: RetryReason) {
        let i = RetryReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.retries.add(1, &self.by_reason[i]);
    }

    /// One more (`+1`) or one fewer (`-1`) call backing off.
    pub(crate) fn retries_waiting(&self, delta: i8) {
        self.waiting.add(i64::from(delta), &self.base);
    }

    pub(crate) fn budget_denied(&self) {
        self.budget_denied.add(1, &self.base);
    }

    /// `event`: 0 a hedge sent, 1 a hedge won, 2 a hedge denied by the budget.
    pub(crate) fn hedge(&self, event: usize) {
        self.hedges[event].add(1, &self.base);
    }

    pub(crate) fn admission_rejected(&self, reason: RejectReason) {
        let i = REJECTS.iter().position(|r| *r == reason).unwrap_or(0);
        self.admission_rejected.add(1, &self.by_reject[i]);
    }

    pub(crate) fn admission_state(&self, state: AdmissionState, limit: Option<u32>) {
        self.admission_state
            .record(u64::from(state.level()), &self.base);
        self.admission_limit
            .record(u64::from(limit.unwrap_or(0)), &self.base);
    }

    #[inline]
    pub(crate) fn finished(&self, outcome: Outcome, attempts: u32, total_delay: Duration) {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
        self.calls.add(1, &self.by_outcome[i]);
        if attempts > 1 {
            self.call_retries
                .record(u64::from(attempts - 1), &self.base);
            self.call_retry_delay
                .record(total_delay.as_secs_f64(), &self.base);
        }
    }
}
