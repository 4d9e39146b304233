//! The local lease: retries already granted by Redis in one batch, handed out without a round
//! trip until they run out or go stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Tokens leased from the shared budget.
///
/// Leased tokens were counted as withdrawals in the slot they were granted in, so in ratio
/// mode they are only valid for one slot (`ttl / 10`); after that the withdrawal they stand
/// for has left Redis' window and using them would over-spend. Adaptive mode keeps them as
/// long (1 s) as the default window would.
#[derive(Debug)]
pub(crate) struct Lease {
    tokens: AtomicU64,
    /// Nanoseconds since `origin` after which the tokens are stale.
    expires: AtomicU64,
    /// Nanoseconds since `origin` until which Redis is known to have nothing left.
    empty_until: AtomicU64,
    origin: Instant,
    valid_for: Duration,
}

impl Lease {
    pub(crate) fn new(valid_for: Duration) -> Self {
        Lease {
            tokens: AtomicU64::new(0),
            expires: AtomicU64::new(0),
            empty_until: AtomicU64::new(0),
            origin: Instant::now(),
            valid_for,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes one token if a fresh one is left.
    pub(crate) fn take(&self) -> bool {
        if self.tokens.load(Ordering::Acquire) == 0 {
            return false;
        }
        if self.now() > self.expires.load(Ordering::Acquire) {
            self.tokens.store(0, Ordering::Release);
            return false;
        }
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1))
            .is_ok()
    }

    /// Stores freshly granted tokens (replacing any stale ones).
    pub(crate) fn put(&self, n: u64) {
        let expires = self
            .now()
            .saturating_add(u64::try_from(self.valid_for.as_nanos()).unwrap_or(u64::MAX));
        self.expires.store(expires, Ordering::Release);
        self.tokens.store(n, Ordering::Release);
    }

    /// Returns a token taken for a caller that went away before using it. It keeps the
    /// expiry of the batch it came from (it was counted in Redis' window at the same time).
    pub(crate) fn give_back(&self, n: u64) {
        self.tokens.fetch_add(n, Ordering::AcqRel);
    }

    /// Redis just granted nothing. The shared budget can only grow when some instance
    /// flushes deposits (once per flush interval) or a slot leaves the window, so until
    /// `for_how_long` has passed a retry is denied locally instead of asking again.
    pub(crate) fn mark_empty(&self, for_how_long: Duration) {
        let until = self
            .now()
            .saturating_add(u64::try_from(for_how_long.as_nanos()).unwrap_or(u64::MAX));
        self.empty_until.store(until, Ordering::Release);
    }

    /// Forgets an empty mark (this instance just flushed deposits that may add budget).
    pub(crate) fn clear_empty(&self) {
        self.empty_until.store(0, Ordering::Release);
    }

    /// Whether Redis recently reported the budget spent.
    pub(crate) fn known_empty(&self) -> bool {
        let until = self.empty_until.load(Ordering::Acquire);
        until != 0 && self.now() < until
    }

    /// Tokens currently held (stale ones included until the next `take`).
    pub(crate) fn outstanding(&self) -> u64 {
        self.tokens.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokens_run_out_and_go_stale() {
        let lease = Lease::new(Duration::from_secs(1));
        assert!(!lease.take());
        lease.put(2);
        assert!(lease.take());
        assert!(lease.take());
        assert!(!lease.take());
        lease.put(5);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(!lease.take(), "stale after one slot");
        assert_eq!(lease.outstanding(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_given_back_is_handed_out_again_until_the_batch_goes_stale() {
        let lease = Lease::new(Duration::from_secs(1));
        lease.put(1);
        assert!(lease.take());
        lease.give_back(1);
        assert!(lease.take(), "given back");
        lease.give_back(1);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(!lease.take(), "still stale with its batch");
    }

    #[tokio::test(start_paused = true)]
    async fn empty_mark_expires_or_is_cleared() {
        let lease = Lease::new(Duration::from_secs(1));
        assert!(!lease.known_empty());
        lease.mark_empty(Duration::from_millis(100));
        assert!(lease.known_empty());
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(!lease.known_empty());
        lease.mark_empty(Duration::from_millis(100));
        lease.clear_empty();
        assert!(!lease.known_empty());
    }
}
