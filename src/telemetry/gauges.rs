//! Resource gauges held by RAII guards: calls waiting to retry, and body bytes held for
//! replay. A guard adds to its gauge when created and takes it back when dropped, so the
//! gauges stay right whichever way a call ends (success, error, cancellation).

#[cfg(feature = "metrics")]
use super::names::REPLAY_BYTES_HELD;

/// Counts one call in the "waiting to retry" gauges while it backs off; held by the response
/// future in its sleeping state.
#[derive(Debug, Default)]
pub(crate) struct RetryWait {
    #[cfg(feature = "metrics")]
    gauge: Option<::metrics::Gauge>,
    #[cfg(feature = "opentelemetry")]
    otel: Option<(
        opentelemetry::metrics::UpDownCounter<i64>,
        [opentelemetry::KeyValue; 2],
    )>,
}

impl RetryWait {
    #[cfg(feature = "metrics")]
    pub(crate) fn with_gauge(mut self, gauge: ::metrics::Gauge) -> Self {
        gauge.increment(1.0);
        self.gauge = Some(gauge);
        self
    }

    #[cfg(feature = "opentelemetry")]
    pub(crate) fn with_otel(
        mut self,
        counter: opentelemetry::metrics::UpDownCounter<i64>,
        attrs: [opentelemetry::KeyValue; 2],
    ) -> Self {
        counter.add(1, &attrs);
        self.otel = Some((counter, attrs));
        self
    }
}

impl Drop for RetryWait {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(g) = &self.gauge {
            g.decrement(1.0);
        }
        #[cfg(feature = "opentelemetry")]
        if let Some((c, attrs)) = &self.otel {
            c.add(-1, attrs);
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
