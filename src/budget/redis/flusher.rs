//! The background task: flushes batched deposits (or successes) to Redis once per flush
//! interval, probes Redis while it is down, and ends when the budget is dropped.

use super::Inner;
use super::backend::Backend;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// While Redis is down the task probes this often (or at the flush interval if shorter), so
/// decisions return to Redis well within a second of it coming back.
const PROBE_EVERY: Duration = Duration::from_millis(250);

pub(crate) fn spawn(inner: &Arc<Inner>, owned: Option<Backend>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let flush_every = inner.params.flush_interval;
    let probe_every = flush_every.min(PROBE_EVERY);
    let quit_within = inner.params.command_timeout.max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            let wait = match weak.upgrade() {
                Some(inner) if inner.health.is_down() => probe_every,
                Some(_) => flush_every,
                None => break,
            };
            tokio::time::sleep(wait).await;
            // Hold the budget only while working, never while sleeping, so dropping the last
            // handle ends this task at its next tick.
            let Some(inner) = weak.upgrade() else { break };
            if inner.health.is_down() {
                // Deposits made while Redis is down count in the fallback budget only.
                inner.take_pending_for_fallback();
                inner.forget_unsent();
                inner.probe().await;
            } else {
                // Errors are recorded by `flush_pending` (health, counters, one log line).
                let _ = inner.flush_pending().await;
            }
        }
        if let Some(backend) = owned {
            backend.quit(quit_within).await;
        }
    });
}
