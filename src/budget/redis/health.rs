//! Whether Redis is reachable, and what a retry gets when it is not.

use super::connect::Subject;
use super::mode::Fallback;
use super::stats::{Counters, bump};
#[cfg(feature = "metrics")]
use crate::telemetry::names;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a [`RedisBudget`](super::RedisBudget) decides while Redis is unreachable or slower
/// than the command timeout.
///
/// ```
/// use tower_retrier::budget::redis::Unavailable;
/// assert_eq!(Unavailable::default(), Unavailable::Fallback);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unavailable {
    /// Use a local budget of the same [`Mode`](super::Mode) and parameters, counting this
    /// instance's traffic only (the default): retries stay bounded per instance.
    #[default]
    Fallback,
    /// Grant every retry (fail open).
    Allow,
    /// Deny every retry (fail closed).
    Deny,
}

/// Whether Redis answers, shared by everything this crate keeps there: counts failed
/// commands (metric `retrier_budget_backend_errors_total{budget}` or
/// `retrier_admission_backend_errors_total{admission}`) and logs once per outage, on the
/// way down and on the way back.
pub(crate) struct Reachability {
    name: String,
    subject: Subject,
    down: AtomicBool,
}

impl fmt::Debug for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reachability")
            .field("subject", &self.subject)
            .field("down", &self.is_down())
            .finish_non_exhaustive()
    }
}

impl Reachability {
    pub(crate) fn new(name: &str, subject: Subject, down: bool) -> Self {
        // Registered at zero so that dashboards and alerts see the series before the first
        // incident, not only after it.
        #[cfg(feature = "metrics")]
        match subject {
            Subject::Budget => {
                metrics::counter!(names::BUDGET_BACKEND_ERRORS_TOTAL, names::LABEL_BUDGET => name.to_owned())
                    .increment(0)
            }
            Subject::Admission => metrics::counter!(
                names::ADMISSION_BACKEND_ERRORS_TOTAL,
                names::LABEL_ADMISSION => name.to_owned()
            )
            .increment(0),
        }
        Reachability {
            name: name.to_owned(),
            subject,
            down: AtomicBool::new(down),
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Records a failed command; logs once on the transition to down, and says whether this
    /// was that transition.
    pub(crate) fn failed(
        &self,
        what: &str,
        error: &dyn fmt::Display,
        policy: &dyn fmt::Debug,
    ) -> bool {
        #[cfg(feature = "metrics")]
        match self.subject {
            Subject::Budget => {
                metrics::counter!(names::BUDGET_BACKEND_ERRORS_TOTAL, names::LABEL_BUDGET => self.name.clone())
                    .increment(1)
            }
            Subject::Admission => metrics::counter!(
                names::ADMISSION_BACKEND_ERRORS_TOTAL,
                names::LABEL_ADMISSION => self.name.clone()
            )
            .increment(1),
        }
        if self.down.swap(true, Ordering::AcqRel) {
            return false;
        }
        match self.subject {
            Subject::Budget => tracing::warn!(
                budget = %self.name,
                policy = ?policy,
                error = %error,
                "Redis retry budget unavailable ({what}); using the fallback policy until it recovers"
            ),
            Subject::Admission => tracing::warn!(
                admission = %self.name,
                error = %error,
                "fleet-wide admission control: Redis unavailable ({what}); this instance's own \
                 counts decide until it recovers"
            ),
        }
        true
    }

    /// Records a successful command; logs once on recovery, and says whether this was it.
    pub(crate) fn succeeded(&self) -> bool {
        if !(self.down.load(Ordering::Acquire) && self.down.swap(false, Ordering::AcqRel)) {
            return false;
        }
        match self.subject {
            Subject::Budget => {
                tracing::info!(budget = %self.name, "Redis retry budget reachable again")
            }
            Subject::Admission => tracing::info!(
                admission = %self.name,
                "fleet-wide admission control: Redis reachable again"
            ),
        }
        true
    }
}

/// Up/down state, the fallback budget and the counters.
pub(crate) struct Health {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: String,
    reach: Reachability,
    policy: Unavailable,
    pub(crate) fallback: Fallback,
    pub(crate) counters: Counters,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("down", &self.is_down())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Health {
    pub(crate) fn new(name: &str, policy: Unavailable, fallback: Fallback, down: bool) -> Self {
        // Registered at zero so that dashboards and alerts see the series before the first
        // incident, not only after it.
        #[cfg(feature = "metrics")]
        metrics::counter!(names::BUDGET_FALLBACKS_TOTAL, names::LABEL_BUDGET => name.to_owned())
            .increment(0);
        Health {
            name: name.to_owned(),
            reach: Reachability::new(name, Subject::Budget, down),
            policy,
            fallback,
            counters: Counters::default(),
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.reach.is_down()
    }

    /// Records a failed command; logs once on the transition to down.
    pub(crate) fn failed(&self, what: &str, error: &dyn fmt::Display) {
        bump(&self.counters.backend_errors, 1);
        self.reach.failed(what, error, &self.policy);
    }

    /// Records a successful command; logs once on recovery.
    pub(crate) fn succeeded(&self) {
        self.reach.succeeded();
    }

    /// A decision without Redis, by the configured policy.
    pub(crate) fn decide(&self) -> bool {
        bump(&self.counters.fallback_decisions, 1);
        #[cfg(feature = "metrics")]
        metrics::counter!(names::BUDGET_FALLBACKS_TOTAL, names::LABEL_BUDGET => self.name.clone())
            .increment(1);
        match self.policy {
            Unavailable::Fallback => self.fallback.withdraw(),
            Unavailable::Allow => true,
            Unavailable::Deny => false,
        }
    }
}
