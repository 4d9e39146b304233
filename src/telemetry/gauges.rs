//! Resource gauges held by RAII guards: calls waiting to retry, and body bytes held for
//! replay. A guard adds to its gauge when created and takes it back when dropped, so the
//! gauges stay right whichever way a call ends (success, error, cancellation).

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
use super::lazy::Lazy;
#[cfg(feature = "metrics")]
use super::metrics::MetricsHandles;
#[cfg(feature = "metrics")]
use super::names::REPLAY_BYTES_HELD;
#[cfg(feature = "opentelemetry")]
use super::otel::OtelInstruments;
use std::fmt;
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
use std::sync::Arc;

/// Counts one call in the "waiting to retry" gauges while it backs off; held by the response
/// future in its sleeping state. It keeps a reference to the layer's handles, not copies of
/// them, so the future stays small: the gauges are updated through the layer's back-ends
/// (panics caught, as every other telemetry call).
#[derive(Default)]
pub(crate) struct RetryWait {
    #[cfg(feature = "metrics")]
    pub(super) metrics: Option<Arc<Lazy<MetricsHandles>>>,
    #[cfg(feature = "opentelemetry")]
    pub(super) otel: Option<Arc<Lazy<OtelInstruments>>>,
}

impl fmt::Debug for RetryWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryWait").finish_non_exhaustive()
    }
}

impl Drop for RetryWait {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(lazy) = &self.metrics {
            lazy.if_ready("metrics", |m| m.retries_waiting(-1));
        }
        #[cfg(feature = "opentelemetry")]
        if let Some(lazy) = &self.otel {
            lazy.if_ready("opentelemetry", |o| o.retries_waiting(-1));
        }
    }
}

/// Body bytes one request keeps for replay, reported in the process-wide
/// [`REPLAY_BYTES_HELD`](super::names::REPLAY_BYTES_HELD) gauge until dropped.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) struct HeldBytes {
    #[cfg(feature = "metrics")]
    held: usize,
}

#[cfg_attr(not(feature = "http"), allow(dead_code))]
impl HeldBytes {
    /// `n` more bytes are held.
    #[inline]
    pub(crate) fn add(&mut self, n: usize) {
        #[cfg(feature = "metrics")]
        if n > 0 {
            self.held += n;
            ::metrics::gauge!(REPLAY_BYTES_HELD).increment(n as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = n;
    }

    /// Nothing is held any more (the recording was dropped).
    pub(crate) fn clear(&mut self) {
        #[cfg(feature = "metrics")]
        if self.held > 0 {
            ::metrics::gauge!(REPLAY_BYTES_HELD).decrement(self.held as f64);
            self.held = 0;
        }
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.clear();
    }
}
