//! How many Redis budgets the process holds: each keeps a connection (or pool) and a flusher
//! task waking every flush interval, so a process that builds them as it runs (a layer per
//! tenant, kept for the process by default) is warned long before the general limit of
//! [`PROCESS_LIFETIME_LAYERS`](crate::PROCESS_LIFETIME_LAYERS) layers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Redis budgets alive at once past which a warning is logged (once per process).
pub(crate) const WARN_AT: usize = 32;

static ALIVE: AtomicUsize = AtomicUsize::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Counts one Redis budget while it lives.
#[derive(Debug)]
pub(crate) struct Alive(());

impl Alive {
    pub(crate) fn new(name: &str) -> Self {
        let alive = ALIVE.fetch_add(1, Ordering::Relaxed) + 1;
        if alive > WARN_AT && !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                budget = %name,
                alive,
                "more than {WARN_AT} Redis retry budgets are alive in this process, each with \
                 its own Redis connection and flusher task: share one budget between layers \
                 (clones share it), and give layers built while the process runs \
                 RetryLayer::release_on_drop() so that their budget is closed with them"
            );
        }
        Alive(())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::Relaxed);
    }
}
