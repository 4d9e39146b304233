//! Attempts counted over a sliding window of ten buckets: how admission control knows what
//! the downstream did lately, and nothing older.

use std::time::Duration;
use tokio::time::Instant;

const BUCKETS: usize = 10;

/// Counts of one bucket, or of the whole window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Attempts that got a final answer (a success, a 404, `INVALID_ARGUMENT`).
    pub(crate) accepted: u64,
    /// Attempts the downstream could not serve (retryable errors, timeouts, 503, sheds).
    pub(crate) failed: u64,
    /// Calls asked for (admitted or not): the throttle's `requests`.
    pub(crate) requests: u64,
}

impl Counts {
    pub(crate) fn attempts(&self) -> u64 {
        self.accepted + self.failed
    }

    fn add(&mut self, other: Counts) {
        self.accepted += other.accepted;
        self.failed += other.failed;
        self.requests += other.requests;
    }
}

/// Ten buckets of `window / 10`; the oldest is dropped as time moves on.
#[derive(Debug)]
pub(crate) struct Window {
    buckets: [Counts; BUCKETS],
    bucket_len: Duration,
    /// The bucket counting now, and when it started.
    head: usize,
    head_start: Instant,
}

impl Window {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        Window {
            buckets: [Counts::default(); BUCKETS],
            bucket_len: (window / BUCKETS as u32).max(Duration::from_millis(1)),
            head: 0,
            head_start: now,
        }
    }

    /// Moves the head to `now`, emptying the buckets that fell out of the window.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.head_start);
        if elapsed < self.bucket_len {
            return;
        }
        let steps = (elapsed.as_nanos() / self.bucket_len.as_nanos()) as u64;
        for i in 1..=steps.min(BUCKETS as u64) as usize {
            self.buckets[(self.head + i) % BUCKETS] = Counts::default();
        }
        self.head = (self.head + (steps % BUCKETS as u64) as usize) % BUCKETS;
        // `steps` buckets later; saturating for clocks far apart (never panics).
        let moved = self
            .bucket_len
            .checked_mul(u32::try_from(steps).unwrap_or(u32::MAX))
            .unwrap_or(elapsed);
        self.head_start = self.head_start.checked_add(moved).unwrap_or(now);
    }

    /// Adds counts that happened at `now`.
    pub(crate) fn add(&mut self, now: Instant, counts: Counts) {
        self.advance(now);
        self.buckets[self.head].add(counts);
    }

    /// What the window holds at `now`.
    pub(crate) fn sums(&mut self, now: Instant) -> Counts {
        self.advance(now);
        let mut total = Counts::default();
        self.buckets.iter().for_each(|b| total.add(*b));
        total
    }

    /// Forgets everything (the breaker closed: old failures must not open it again).
    pub(crate) fn clear(&mut self) {
        self.buckets = [Counts::default(); BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(n: u64) -> Counts {
        Counts {
            failed: n,
            ..Counts::default()
        }
    }

    #[test]
    fn counts_age_out_bucket_by_bucket() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Window::new(Duration::from_secs(1), t0);
        w.add(t0, failed(5));
        w.add(t0 + ms(550), failed(3));
        assert_eq!(w.sums(t0 + ms(999)).failed, 8);
        assert_eq!(w.sums(t0 + ms(1000)).failed, 3); // the first bucket fell out
        assert_eq!(w.sums(t0 + ms(1600)).failed, 0);
        // A long silence, and a jump far ahead: nothing left, nothing panics.
        assert_eq!(w.sums(t0 + Duration::from_secs(86_400 * 365)).failed, 0);
        w.add(t0 + Duration::from_secs(86_400 * 365), failed(1));
        assert_eq!(w.sums(t0 + Duration::from_secs(86_400 * 365)).failed, 1);
    }
}
