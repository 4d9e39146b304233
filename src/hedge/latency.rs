//! The adaptive hedging delay: a latency percentile of recent attempts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many recent attempts the percentile is taken over.
const WINDOW: usize = 512;
/// The percentile is recomputed after this many new samples (not on every call), and only
/// once this many are in: before that the upper bound is used.
const REFRESH: u64 = 32;
const NO_DATA: u64 = u64::MAX;

/// Recent attempt latencies (one per finished attempt, shared by every service of a layer)
/// and the percentile last computed from them. A call reads one atomic; the lock is taken
/// once per finished attempt, the sort once per [`REFRESH`] attempts.
#[derive(Debug)]
pub(crate) struct LatencyTracker {
    percentile: f64,
    ring: Mutex<Ring>,
    current_micros: AtomicU64,
}

#[derive(Debug, Default)]
struct Ring {
    samples: Vec<u64>,
    next: usize,
    seen: u64,
}

impl LatencyTracker {
    pub(crate) fn new(percentile: f64) -> Self {
        LatencyTracker {
            percentile,
            ring: Mutex::new(Ring::default()),
            current_micros: AtomicU64::new(NO_DATA),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX - 1);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.samples.len() < WINDOW {
            ring.samples.push(micros);
        } else {
            let i = ring.next;
            ring.samples[i] = micros;
        }
        ring.next = (ring.next + 1) % WINDOW;
        ring.seen += 1;
        if ring.seen.is_multiple_of(REFRESH) {
            let mut sorted = ring.samples.clone();
            drop(ring);
            let last = sorted.len() - 1;
            let rank = ((self.percentile / 100.0) * last as f64).round() as usize;
            let (_, p, _) = sorted.select_nth_unstable(rank.min(last));
            self.current_micros.store(*p, Ordering::Relaxed);
        }
    }

    /// The delay for the next hedge: the percentile within `[min, max]`, or `max` without
    /// enough data.
    pub(crate) fn delay(&self, min: Duration, max: Duration) -> Duration {
        match self.current_micros.load(Ordering::Relaxed) {
            NO_DATA => max,
            p => Duration::from_micros(p).clamp(min, max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_recent_attempts_within_bounds() {
        let t = LatencyTracker::new(95.0);
        let (min, max) = (Duration::from_millis(1), Duration::from_millis(500));
        assert_eq!(t.delay(min, max), max, "no data: the upper bound");
        // 95 % at 10 ms, 5 % at 1 s: p95 sits at the boundary, p90 would be 10 ms.
        for i in 0..1000 {
            t.record(Duration::from_millis(if i % 100 < 90 { 10 } else { 20 }));
        }
        assert_eq!(t.delay(min, max), Duration::from_millis(20));
        for _ in 0..WINDOW {
            t.record(Duration::from_millis(3));
        }
        assert_eq!(
            t.delay(min, max),
            Duration::from_millis(3),
            "old samples age out"
        );
        assert_eq!(
            t.delay(Duration::from_millis(5), max),
            Duration::from_millis(5)
        );
    }
}
