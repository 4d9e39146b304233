//! What the retry and hedge services have in common: holding the inner service and the
//! layer's parts (with the usual accessors), and the start of every call.
//!
//! Both services are thin: `call` asks admission control, deposits into the budget, takes
//! the ready inner service and hands all of it to its future. Only the future differs.

use crate::admission::{AdmitFor, Ticket};
use crate::budget::Budget;
use crate::shared::Shared;

/// For a service made of `inner: S` and `shared: SharedRef<$shared>`: its constructor,
/// `get_ref` / `get_mut` / `into_inner`, `budget` and `Clone`. `$built` is an expression of
/// a layer, for the examples. (The struct itself stays in its own file, so that compiler
/// messages about it point there.)
macro_rules! holds_inner {
    ($service:ident, $shared:ty, $built:literal) => {
        impl<S, K, C, B, R, H, A> $service<S, K, C, B, R, H, A>
        where
            (K, C, B, R, H, A): 'static,
        {
            pub(crate) fn new(inner: S, shared: $crate::lifetime::SharedRef<$shared>) -> Self {
                $service { inner, shared }
            }

            /// The inner service.
            ///
            /// ```
            /// # use tower::Layer;
            #[doc = concat!("let svc = ", $built, ".layer(5u8);")]
            /// assert_eq!(*svc.get_ref(), 5);
            /// ```
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            ///
            /// ```
            /// # use tower::Layer;
            #[doc = concat!("let mut svc = ", $built, ".layer(5u8);")]
            /// *svc.get_mut() += 1;
            /// assert_eq!(svc.into_inner(), 6);
            /// ```
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// Consumes the wrapper, returning the inner service.
            ///
            #[doc = concat!("See [`", stringify!($service), "::get_mut`] for an example.")]
            pub fn into_inner(self) -> S {
                self.inner
            }

            /// The budget retries (and hedges) are withdrawn from; clones of the layer share it.
            ///
            /// ```
            /// # use tower::Layer;
            /// # #[tokio::main(flavor = "current_thread")] async fn main() {
            #[doc = concat!("let svc = ", $built, ".layer(());")]
            /// assert_eq!(svc.budget().remaining(), 100);
            /// # }
            /// ```
            pub fn budget(&self) -> &B {
                let core: &$crate::shared::Shared<K, C, B, R, H, A> = (*self.shared).as_ref();
                &core.budget
            }
        }

        impl<S: Clone, K, C, B, R, H, A> Clone for $service<S, K, C, B, R, H, A>
        where
            (K, C, B, R, H, A): 'static,
        {
            fn clone(&self) -> Self {
                $service {
                    inner: self.inner.clone(),
                    shared: self.shared.clone(),
                }
            }
        }
    };
}
pub(crate) use holds_inner;

impl<K, C, B, R, H, A> AsRef<Shared<K, C, B, R, H, A>> for Shared<K, C, B, R, H, A> {
    fn as_ref(&self) -> &Self {
        self
    }
}

/// Asks admission control whether the call may go out and, if it may, deposits it into the
/// budget (only admitted calls earn retries).
#[inline]
pub(crate) fn admit<K, C, B, R, H, A, E>(shared: &Shared<K, C, B, R, H, A>) -> Result<Ticket, E>
where
    B: Budget,
    A: AdmitFor<E>,
{
    let admitted = shared.admission.admit(&shared.telemetry);
    if admitted.is_ok() {
        shared.budget.deposit();
    }
    admitted
}

/// The ready service makes this call; the future keeps it for retries and hedges (polling it
/// ready again), and the service continues with a fresh clone (tower's usual idiom, so a
/// `ConcurrencyLimit` permit moves with the call).
#[inline]
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
