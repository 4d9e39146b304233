//! Counting executions, so that a run can report how many inputs it tried.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// Executions of one target; printed when dropped (at the end of the test).
pub struct Runs(pub &'static str, pub AtomicU64);

impl Runs {
    pub const fn new(name: &'static str) -> Self {
        Runs(name, AtomicU64::new(0))
    }

    pub fn one(&self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report(&self) {
        eprintln!(
            "fuzz target {}: {} executions, 0 crashes",
            self.0,
            self.1.load(Ordering::Relaxed)
        );
    }
}
