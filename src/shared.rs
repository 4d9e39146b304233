//! What every call of one service shares, and what one call carries: the ground both
//! [`RetryService`](crate::RetryService) and [`ResponseFuture`](crate::ResponseFuture) stand on.

use crate::RetryConfig;
use crate::admission::Ticket;
use crate::backoff::{BackoffContext, SeedSource};
use crate::telemetry::{CallTelemetry, Telemetry};
use std::sync::Arc;
use tokio::time::Instant;

/// The pluggable parts of a layer. One `Arc` per service; each response future holds a
/// reference-counted handle, because a retry may need any part long after `call` returned.
pub(crate) struct Shared<K, C, B, R, H, A> {
    pub(crate) config: RetryConfig,
    pub(crate) backoff: K,
    pub(crate) classifier: C,
    pub(crate) budget: B,
    pub(crate) replay: R,
    pub(crate) on_retry: H,
    pub(crate) telemetry: Telemetry,
    pub(crate) seeds: Arc<SeedSource>,
    /// Resend requests that say they are not idempotent (the user opted in).
    pub(crate) retry_non_idempotent: bool,
    /// Whether first attempts may go out (admission control).
    pub(crate) admission: A,
}

/// The bookkeeping of one call, across its attempts.
#[derive(Debug)]
pub(crate) struct CallState {
    /// The attempt in flight or last made (1 for the first); transparent resends are not
    /// attempts.
    pub(crate) attempt: u32,
    /// Transparent resends so far (see [`RetryReason::Transparent`](crate::classify::RetryReason::Transparent)).
    pub(crate) transparent: u8,
    /// The end of the call was reported (a call dropped before is reported as cancelled).
    pub(crate) finished: bool,
    /// What admission control handed this call (a concurrency slot, a probe).
    pub(crate) ticket: Ticket,
    /// When the call started; only read when a deadline is configured.
    pub(crate) started: Option<Instant>,
    /// Seeded at the first retry, so a call that succeeds at once never draws a seed.
    pub(crate) backoff: BackoffContext,
    pub(crate) telemetry: CallTelemetry,
}

impl CallState {
    /// When a call starts, if a deadline needs to know.
    #[inline]
    pub(crate) fn start_time(config: &RetryConfig) -> Option<Instant> {
        config.deadline().map(|_| Instant::now())
    }

    /// Whether the call may still resend transparently (at most
    /// [`MAX_TRANSPARENT_RETRIES`](crate::MAX_TRANSPARENT_RETRIES) times).
    pub(crate) fn may_resend_transparently(&self) -> bool {
        u32::from(self.transparent) < crate::MAX_TRANSPARENT_RETRIES
    }

    #[inline]
    pub(crate) fn new(started: Option<Instant>, telemetry: CallTelemetry, ticket: Ticket) -> Self {
        CallState {
            attempt: 1,
            transparent: 0,
            finished: false,
            ticket,
            started,
            backoff: BackoffContext::unstarted(),
            telemetry,
        }
    }
}
