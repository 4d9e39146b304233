//! A back-end (metric handles, instruments) created at a layer's first call and switched off
//! for good if it ever panics, so a broken recorder or exporter never fails a request.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A lazily initialised back-end of one layer, switched off for good if it ever panics.
pub(crate) struct Lazy<T> {
    value: OnceLock<T>,
    broken: AtomicBool,
}

impl<T> Lazy<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Lazy {
            value: OnceLock::new(),
            broken: AtomicBool::new(false),
        })
    }

    /// Runs `f` on the back-end if it has been initialised and is not switched off, catching
    /// panics (for guards that undo what `with` did, e.g. when they are dropped).
    pub(crate) fn if_ready(&self, backend: &'static str, f: impl FnOnce(&T)) {
        if let Some(value) = self.value.get() {
            self.with(backend, || unreachable!("initialised"), |_| f(value));
        }
    }

    /// Runs `f` on the back-end (initialising it with `init` first), catching panics so that a
    /// broken recorder or exporter never fails a request.
    #[inline]
    pub(crate) fn with(&self, backend: &'static str, init: impl FnOnce() -> T, f: impl FnOnce(&T)) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let run = AssertUnwindSafe(|| f(self.value.get_or_init(init)));
        if std::panic::catch_unwind(run).is_err() && !self.broken.swap(true, Ordering::Relaxed) {
            tracing::error!(
                backend,
                "telemetry back-end panicked; it is switched off for this retry layer \
                 (requests are not affected)"
            );
        }
    }
}
