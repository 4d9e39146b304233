//! Admission control: whether a call's first attempt may go out at all, so that a downstream
//! that cannot serve is not handed work nobody will wait for.
//!
//! A retry budget caps what retries add to a struggling downstream; admission control caps
//! what first attempts add. Both learn from the same classifier: an attempt the downstream
//! could not serve (a retryable error, a timeout, a 503 or 429, `UNAVAILABLE`, a load-shed
//! rejection) is *not accepted*; any final answer (a success, a 404, `INVALID_ARGUMENT`) is
//! *accepted*. A call refused here fails at once with [`Rejected`] (turned into the inner
//! service's error type) and reaches no retry.
//!
//! It is on by default in every constructor of [`RetryLayer`](crate::RetryLayer) and in
//! hedging: [`Admission::default()`], a circuit breaker with an adaptive concurrency limit
//! ([`Mechanism::BreakerAndLimit`]). It never refuses while most attempts are served (it
//! opens at 80 % not accepted over the last second): a 10 % or 50 % failure rate is left to
//! retries. [`RetryLayer::without_admission`](crate::RetryLayer::without_admission) turns
//! it off; [`RetryLayer::with_admission`](crate::RetryLayer::with_admission) configures it.
//!
//! With feature `redis`, `Admission::redis(name)` (module `redis`) shares the breaker's counts,
//! its probes and its closing across every instance that names the same key, batched in the
//! background: nothing on a call's path talks to Redis.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//! use tower_retrier::admission::{Admission, AdmissionConfig, Rejected};
//! use tower_retrier::{RetryConfig, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let admission = Admission::new(AdmissionConfig::builder().min_calls(5).build().unwrap());
//! let cfg = RetryConfig::builder().max_attempts(1).build().unwrap();
//! let layer = RetryLayer::new(cfg).with_admission(admission.clone());
//! let svc = layer.layer(service_fn(|_: u32| async { Err::<u32, _>(std::io::Error::other("503")) }));
//! for _ in 0..5 {
//!     assert!(svc.clone().oneshot(1).await.is_err()); // the downstream fails five times
//! }
//! let err = svc.clone().oneshot(1).await.unwrap_err(); // refused locally, nothing sent
//! assert!(Rejected::find(&err).is_some());
//! # }
//! ```

mod config;
mod core;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod rejected;
mod window;

pub use self::core::{AdmissionState, Ticket};
pub use config::{AdmissionConfig, AdmissionConfigBuilder, Mechanism};
pub use rejected::{FromRejected, RejectReason, Rejected};

use self::core::{Core, Transition};
use crate::telemetry::Telemetry;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Learns from each attempt's verdict: the part of admission control that does not depend
/// on the service's error type. See [`AdmitFor`] for the decision itself.
///
/// The layer calls `record` after each attempt, `allows_retry` before each retry and
/// `release` when the call ends (however it ends).
///
/// ```
/// use tower_retrier::admission::{Admit, NoAdmission, Ticket};
/// use tower_retrier::telemetry::Telemetry;
///
/// NoAdmission.record(Ticket::default(), false, &Telemetry::disabled());
/// assert!(NoAdmission.allows_retry());
/// ```
pub trait Admit {
    /// The verdict on one attempt of an admitted call: `accepted` when the downstream gave
    /// a final answer. State changes are reported through `telemetry`.
    fn record(&self, ticket: Ticket, accepted: bool, telemetry: &Telemetry);

    /// Whether a retry may go out now (not while the downstream is known to be down).
    fn allows_retry(&self) -> bool {
        true
    }

    /// The call is over (answered, failed or dropped).
    fn release(&self, ticket: Ticket) {
        let _ = ticket;
    }
}

/// Decides whether a call may go out, failing it with the service's error type `E` when
/// not.
///
/// Implemented by [`Admission`] for errors that can carry a [`Rejected`] ([`FromRejected`])
/// and by [`NoAdmission`] for every error.
///
/// ```
/// use tower_retrier::admission::{AdmitFor, NoAdmission, Ticket};
/// use tower_retrier::telemetry::Telemetry;
///
/// let ticket = AdmitFor::<std::io::Error>::admit(&NoAdmission, &Telemetry::disabled()).unwrap();
/// assert_eq!(ticket, Ticket::default());
/// ```
pub trait AdmitFor<E>: Admit {
    /// Admits a call, or says why not as the service's error (reported to `telemetry`).
    fn admit(&self, telemetry: &Telemetry) -> Result<Ticket, E>;
}

/// No admission control: every call goes out (`RetryLayer::without_admission`).
///
/// See [`Admit`] for an example.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAdmission;

impl Admit for NoAdmission {
    #[inline]
    fn record(&self, _: Ticket, _: bool, _: &Telemetry) {}
}

impl<E> AdmitFor<E> for NoAdmission {
    #[inline]
    fn admit(&self, _: &Telemetry) -> Result<Ticket, E> {
        Ok(Ticket::default())
    }
}

/// Admission control for one downstream; clones share it (every service built from one
/// layer counts against the same state).
///
/// ```
/// use tower_retrier::admission::{Admission, AdmissionConfig, AdmissionState, Mechanism};
///
/// let a = Admission::new(AdmissionConfig::builder().mechanism(Mechanism::Breaker).build().unwrap());
/// assert_eq!(a.state(), AdmissionState::Closed);
/// assert_eq!(a.config().mechanism(), Mechanism::Breaker);
/// ```
#[derive(Clone)]
pub struct Admission {
    core: Arc<Core>,
    /// Where changes made outside a call (by the fleet link) are reported: the telemetry of
    /// the first layer that saw an attempt fail.
    observer: Arc<OnceLock<Telemetry>>,
    /// The fleet link's health and counters, when the state is shared ([`Admission::redis`]).
    #[cfg(feature = "redis")]
    fleet: Option<Arc<redis::Shared>>,
}

impl Default for Admission {
    /// [`AdmissionConfig::default()`]: the breaker with the adaptive concurrency limit.
    fn default() -> Self {
        Admission::new(AdmissionConfig::default())
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Admission");
        d.field("mechanism", &self.core.config().mechanism())
            .field("state", &self.state())
            .field("limit", &self.limit())
            .field("in_flight", &self.core.in_flight());
        #[cfg(feature = "redis")]
        d.field("fleet", &self.fleet);
        d.finish()
    }
}

impl Admission {
    /// Admission control with `config` (validated by its builder).
    ///
    /// See [`Admission`] for an example.
    pub fn new(config: AdmissionConfig) -> Self {
        Admission {
            core: Arc::new(Core::new(config)),
            observer: Arc::new(OnceLock::new()),
            #[cfg(feature = "redis")]
            fleet: None,
        }
    }

    /// The configuration.
    ///
    /// See [`Admission`] for an example.
    pub fn config(&self) -> &AdmissionConfig {
        self.core.config()
    }

    /// Where it stands now.
    ///
    /// See [`Admission`] for an example.
    pub fn state(&self) -> AdmissionState {
        self.core.state()
    }

    /// The concurrency limit, while one applies.
    ///
    /// ```
    /// assert_eq!(tower_retrier::admission::Admission::default().limit(), None);
    /// ```
    pub fn limit(&self) -> Option<u32> {
        self.core.limit()
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    #[cold]
    #[inline(never)]
    fn record_failure(&self, telemetry: &Telemetry) {
        if self.observer.get().is_none() {
            let _ = self.observer.set(telemetry.clone());
        }
        if let Some(t) = self.core.failed() {
            report(telemetry, t);
        }
    }

    /// Reports a change made outside a call (by the fleet link).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn report_change(&self, t: Transition) {
        if let Some(telemetry) = self.observer.get() {
            report(telemetry, t);
        }
    }
}

impl Admit for Admission {
    #[inline]
    fn record(&self, ticket: Ticket, accepted: bool, telemetry: &Telemetry) {
        if !accepted {
            return self.record_failure(telemetry);
        }
        if let Some(t) = self.core.record_accepted(ticket) {
            report(telemetry, t);
        }
    }

    #[inline]
    fn allows_retry(&self) -> bool {
        self.core.allows_retry()
    }

    #[inline]
    fn release(&self, ticket: Ticket) {
        self.core.release(ticket)
    }
}

impl<E: FromRejected> AdmitFor<E> for Admission {
    #[inline]
    fn admit(&self, telemetry: &Telemetry) -> Result<Ticket, E> {
        match self.core.admit() {
            Ok(ticket) => Ok(ticket),
            Err(reason) => {
                #[cfg(feature = "redis")]
                if let Some(fleet) = &self.fleet {
                    fleet.refused();
                }
                Err(rejected(telemetry, reason))
            }
        }
    }
}

#[cold]
#[inline(never)]
fn report(telemetry: &Telemetry, t: Transition) {
    telemetry.admission_state(t.state, t.limit);
}

#[cold]
#[inline(never)]
fn rejected<E: FromRejected>(telemetry: &Telemetry, reason: RejectReason) -> E {
    telemetry.admission_rejected(reason);
    E::from_rejected(Rejected::new(reason))
}
