//! A retry budget that counts how many copies of it are alive, so a test can see whether a
//! layer keeps its parts or frees them.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower_retrier::budget::Budget;

/// Grants every retry; `alive()` is the number of copies not yet dropped.
#[derive(Debug)]
pub struct TrackedBudget {
    alive: Arc<AtomicUsize>,
}

impl TrackedBudget {
    pub fn new() -> Self {
        let alive = Arc::new(AtomicUsize::new(1));
        TrackedBudget { alive }
    }

    /// Copies of this budget alive right now (this one included).
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// A way to read the count after every copy was handed away.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.alive)
    }
}

impl Clone for TrackedBudget {
    fn clone(&self) -> Self {
        self.alive.fetch_add(1, Ordering::SeqCst);
        TrackedBudget {
            alive: Arc::clone(&self.alive),
        }
    }
}

impl Drop for TrackedBudget {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Budget for TrackedBudget {
    type Withdraw = Ready<bool>;

    fn deposit(&self) {}

    fn withdraw(&self) -> Ready<bool> {
        ready(true)
    }

    fn withdraw_now(&self) -> Option<bool> {
        Some(true)
    }
}
