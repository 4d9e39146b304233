//! How long a layer's shared parts live, and how a call reaches them.
//!
//! A response future must reach the layer's budget, backoff, classifier and telemetry long
//! after `call` returned, so it needs a `'static` way to them. A reference count is the usual
//! one, but its locked increment and decrement cost more per call than all the rest of the
//! layer's success path. So by default a layer's parts are kept for the life of the process
//! (stored once, the first time the layer wraps a service) and every call holds a plain
//! reference. Layers that are built and dropped while the process runs opt out with
//! [`RetryLayer::release_on_drop`](crate::RetryLayer::release_on_drop) and are
//! reference-counted. A process keeps at most [`PROCESS_LIFETIME_LAYERS`] layers for its life:
//! past that, layers are reference-counted (and a warning says so once), so a program that
//! builds layers in a loop never grows without bound.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

/// How many layers a process keeps for its life before later ones are reference-counted.
///
/// Far more than a process normally builds (one layer per downstream and operation, at
/// start-up); reaching it means layers are built as the process runs, which is what
/// [`RetryLayer::release_on_drop`](crate::RetryLayer::release_on_drop) is for.
///
/// ```
/// assert_eq!(tower_retrier::PROCESS_LIFETIME_LAYERS, 1024);
/// ```
pub const PROCESS_LIFETIME_LAYERS: usize = 1024;

/// A call's way to its layer's parts: a plain reference to parts kept for the process, or a
/// reference count.
pub(crate) enum SharedRef<T: 'static> {
    /// Kept for the life of the process: cloning and dropping cost nothing.
    Process(&'static T),
    /// Freed with the last service and call that use it.
    Counted(Arc<T>),
}

impl<T> SharedRef<T> {
    /// Keeps `parts` for the life of the process, unless the process already keeps
    /// [`PROCESS_LIFETIME_LAYERS`] layers: then they are reference-counted.
    pub(crate) fn for_process(parts: T) -> Self {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= PROCESS_LIFETIME_LAYERS {
            drop(kept);
            warn_once();
            return SharedRef::Counted(Arc::new(parts));
        }
        let parts: &'static T = Box::leak(Box::new(parts));
        // Remember the address so that leak checkers see the parts as still reachable.
        kept.push(std::ptr::from_ref(parts).addr());
        SharedRef::Process(parts)
    }

    /// Reference-counted parts, freed when the last holder drops them.
    pub(crate) fn counted(parts: T) -> Self {
        SharedRef::Counted(Arc::new(parts))
    }
}

/// Addresses of the parts kept for the process (only their number matters to the code).
static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());

#[cold]
fn warn_once() {
    static WARNED: OnceLock<()> = OnceLock::new();
    WARNED.get_or_init(|| {
        tracing::warn!(
            limit = PROCESS_LIFETIME_LAYERS,
            "this process built more retry layers than it keeps for its life; later layers are \
             reference-counted (a few nanoseconds more per call). Layers built while the \
             process runs should use RetryLayer::release_on_drop()"
        );
    });
}

impl<T> Deref for SharedRef<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            SharedRef::Process(parts) => parts,
            SharedRef::Counted(parts) => parts,
        }
    }
}

impl<T> Clone for SharedRef<T> {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            SharedRef::Process(parts) => SharedRef::Process(parts),
            SharedRef::Counted(parts) => SharedRef::Counted(Arc::clone(parts)),
        }
    }
}

impl<T> fmt::Debug for SharedRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SharedRef::Process(_) => "SharedRef::Process",
            SharedRef::Counted(_) => "SharedRef::Counted",
        })
    }
}

/// The parts one layer value (and its clones) stored, once it first wrapped a service: every
/// service it builds shares them. A layer whose parts change gets a new, empty one. Untyped,
/// so that the layer's type carries no `'static` bound of its own.
#[derive(Clone, Default)]
pub(crate) struct Stored(Arc<OnceLock<Box<dyn Any + Send + Sync>>>);

impl Stored {
    /// The parts a layer hands a new service: reference-counted and built for it when the
    /// layer says `release_on_drop`, otherwise the stored ones.
    pub(crate) fn parts_for_service<T>(
        &self,
        release_on_drop: bool,
        parts: impl Fn() -> T,
    ) -> SharedRef<T>
    where
        T: Send + Sync + 'static,
    {
        if release_on_drop {
            SharedRef::counted(parts())
        } else {
            self.get_or_store(parts)
        }
    }

    /// The stored parts, storing what `parts` builds the first time.
    fn get_or_store<T>(&self, parts: impl Fn() -> T) -> SharedRef<T>
    where
        T: Send + Sync + 'static,
    {
        let stored = self
            .0
            .get_or_init(|| Box::new(SharedRef::for_process(parts())));
        match stored.downcast_ref::<SharedRef<T>>() {
            Some(kept) => kept.clone(),
            // Every change of a part's type starts a new `Stored`, so this does not happen;
            // if it did, the layer would still work, with counted parts.
            None => SharedRef::counted(parts()),
        }
    }
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Stored(yes)"
        } else {
            "Stored(no)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_parts_are_shared_without_a_count_and_counted_ones_are_freed() {
        let kept = SharedRef::for_process(7u32);
        let again = kept.clone();
        assert!(matches!(again, SharedRef::Process(_)));
        assert!(std::ptr::eq(&*kept, &*again));

        let counted = SharedRef::counted(Arc::new(()));
        let SharedRef::Counted(inner) = &counted else {
            panic!("counted parts are reference-counted")
        };
        let watch = Arc::downgrade(inner);
        let copy = counted.clone();
        drop(counted);
        assert!(watch.upgrade().is_some());
        drop(copy);
        assert!(
            watch.upgrade().is_none(),
            "the last holder frees counted parts"
        );
    }

    #[test]
    fn a_stored_layer_builds_its_parts_once_for_all_clones() {
        let stored = Stored::default();
        let clone = stored.clone();
        let a = stored.get_or_store(|| 1u64);
        let b = clone.get_or_store(|| -> u64 { panic!("built once") });
        assert!(std::ptr::eq(&*a, &*b));
        let fresh = Stored::default().get_or_store(|| 2u64);
        assert_eq!((*a, *fresh), (1, 2));
    }
}
