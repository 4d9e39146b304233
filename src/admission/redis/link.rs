//! The background task that links one [`Admission`] to its fleet: once per flush interval it
//! runs the flush script and hands what the fleet said to the local state. Nothing on a
//! call's path waits for it; when Redis does not answer, the local state decides alone.

use super::RedisAdmissionStats;
use super::script::{FLUSH_LUA, Reply, keys};
use crate::admission::Admission;
use crate::admission::core::{AdmissionState, Core};
use crate::admission::window::Counts;
use crate::budget::redis::backend::Backend;
use crate::budget::redis::health::Reachability;
use crate::budget::redis::scripts::Script;
use crate::telemetry::Telemetry;
#[cfg(feature = "metrics")]
use crate::telemetry::names;
use fred::prelude::Options;
use fred::types::Value;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// What the link and the `Admission` handles share: health and counters.
pub(crate) struct Shared {
    pub(super) name: String,
    pub(super) reach: Reachability,
    flushes: AtomicU64,
    backend_errors: AtomicU64,
    outages: AtomicU64,
    probes_granted: AtomicU64,
    /// Calls refused since the last flush: while open, probes are asked for only when some
    /// call was waiting for one, so the fleet's quota goes to instances that use it.
    demand: AtomicU64,
    /// The fleet's totals at the last flush, and the instances counted.
    fleet_accepted: AtomicU64,
    fleet_failed: AtomicU64,
    fleet_instances: AtomicU64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLink")
            .field("name", &self.name)
            .field("redis_up", &!self.reach.is_down())
            .finish()
    }
}

impl Shared {
    pub(super) fn new(name: String, down: bool) -> Self {
        #[cfg(feature = "metrics")]
        metrics::counter!(names::ADMISSION_FLEET_LOST_TOTAL, names::LABEL_ADMISSION => name.clone())
            .increment(0);
        Shared {
            reach: Reachability::new(
                &name,
                crate::budget::redis::connect::Subject::Admission,
                down,
            ),
            name,
            flushes: AtomicU64::new(0),
            backend_errors: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            probes_granted: AtomicU64::new(0),
            demand: AtomicU64::new(0),
            fleet_accepted: AtomicU64::new(0),
            fleet_failed: AtomicU64::new(0),
            fleet_instances: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> RedisAdmissionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisAdmissionStats {
            flushes: get(&self.flushes),
            backend_errors: get(&self.backend_errors),
            outages: get(&self.outages),
            probes_granted: get(&self.probes_granted),
            redis_up: !self.reach.is_down(),
            fleet_accepted: get(&self.fleet_accepted),
            fleet_failed: get(&self.fleet_failed),
            fleet_instances: get(&self.fleet_instances),
        }
    }

    /// A call was refused (the cold path of `admit`).
    pub(crate) fn refused(&self) {
        self.demand.fetch_add(1, Ordering::Relaxed);
    }

    /// A flush failed: the local state decides alone until one succeeds again.
    fn lost(&self, core: &Core, what: &str, error: &dyn fmt::Display) {
        core.fleet_lost();
        self.backend_errors.fetch_add(1, Ordering::Relaxed);
        if self.reach.failed(what, error, &"local state") {
            self.outages.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            metrics::counter!(names::ADMISSION_FLEET_LOST_TOTAL, names::LABEL_ADMISSION => self.name.clone())
                .increment(1);
        }
    }
}

/// The link's fixed parameters.
pub(super) struct Params {
    pub(super) flush_interval: Duration,
    pub(super) command_timeout: Duration,
    pub(super) options: Options,
    pub(super) slot: u16,
}

/// The flush script.
pub(super) fn script() -> Script {
    Script::new(FLUSH_LUA)
}

/// This instance's id in the fleet's hash: random, so that restarts and several
/// `Admission`s in one process never share an entry.
fn instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What the link remembers between flushes.
struct State {
    id: String,
    /// The close token seen last (`None` before the first answer).
    token: Option<i64>,
    /// `closes_made` already announced (or given up on).
    closes_seen: u64,
    /// Until when the probes last granted may still be used: one window (at least one probe
    /// interval), so that an instance with a call a second still gets to use one, while at
    /// most `window / probe_interval` grants are ever outstanding.
    grant_until: Instant,
}

/// Starts the link of `core`; it ends at the first tick after every handle is dropped, and
/// then closes `owned` (a client the builder made from a URL).
pub(super) fn spawn(
    core: &Arc<Core>,
    observer: Arc<OnceLock<Telemetry>>,
    shared: Arc<Shared>,
    backend: Backend,
    owned: bool,
    params: Params,
) {
    let weak: Weak<Core> = Arc::downgrade(core);
    let mut state = State {
        id: instance_id(),
        token: None,
        closes_seen: core.fleet().closes_made.load(Ordering::Acquire),
        grant_until: Instant::now(),
    };
    let [counts_key, state_key] = keys(&shared.name);
    let script = script();
    let cfg = core.config().clone();
    let stale_ms = millis(params.flush_interval.saturating_mul(3)).max(1);
    let expire_ms = millis(cfg.window().saturating_mul(10)).max(60_000);
    let probe_ms = millis(cfg.probe_interval()).max(1);
    tokio::spawn(async move {
        let keys = [counts_key.as_str(), state_key.as_str()];
        loop {
            tokio::time::sleep(params.flush_interval).await;
            // Hold the state only while working, never while sleeping, so dropping the
            // last handle ends this task at its next tick.
            let Some(core) = weak.upgrade() else { break };
            let now = Instant::now();
            let counts = core.window_counts(now);
            let closes = core.fleet().closes_made.load(Ordering::Acquire);
            let new_closes = closes.wrapping_sub(state.closes_seen);
            // An announcement is made at once or not at all: a close learnt after an outage
            // would close instances that have since seen the downstream fail.
            state.closes_seen = closes;
            // Probes for an open instance that refused calls since the last flush and holds
            // none: one without calls would let the fleet's quota expire unused.
            let waiting = shared.demand.swap(0, Ordering::Relaxed) > 0;
            let holding =
                now < state.grant_until && core.fleet().probes.load(Ordering::Acquire) > 0;
            let want = if waiting && !holding && core.state() == AdmissionState::Open {
                cfg.probes()
            } else {
                0
            };
            let args = vec![
                Value::from(state.id.as_str()),
                int(counts.accepted),
                int(counts.failed),
                Value::Integer(state.token.unwrap_or(-1)),
                int(new_closes),
                Value::Integer(i64::from(want)),
                Value::Integer(i64::from(cfg.probes())),
                Value::Integer(probe_ms),
                Value::Integer(stale_ms),
                Value::Integer(expire_ms),
            ];
            let call = script.eval(backend.client(), &params.options, params.slot, &keys, args);
            let reply = match tokio::time::timeout(params.command_timeout, call).await {
                Ok(Ok(value)) => match Reply::parse(&value) {
                    Some(reply) => reply,
                    None => {
                        shared.lost(&core, "flush", &format_args!("unexpected reply {value:?}"));
                        continue;
                    }
                },
                Ok(Err(e)) => {
                    shared.lost(&core, "flush", &e);
                    continue;
                }
                Err(_) => {
                    shared.lost(&core, "flush", &"no answer within the command timeout");
                    continue;
                }
            };
            // Another instance's probe was accepted since the last answer (this instance's
            // own close changed the token too; it is closed already). A close only ever
            // raises the token; a smaller one means Redis lost the key (a restart, an
            // expiry), which closes nothing.
            let closed = new_closes == 0 && state.token.is_some_and(|t| reply.token > t);
            state.token = Some(reply.token);
            let totals = Counts {
                accepted: reply.accepted,
                failed: reply.failed,
                requests: 0,
            };
            shared.reach.succeeded();
            shared.flushes.fetch_add(1, Ordering::Relaxed);
            shared
                .probes_granted
                .fetch_add(u64::from(reply.granted), Ordering::Relaxed);
            shared
                .fleet_accepted
                .store(reply.accepted, Ordering::Relaxed);
            shared.fleet_failed.store(reply.failed, Ordering::Relaxed);
            shared
                .fleet_instances
                .store(reply.instances, Ordering::Relaxed);
            // Take the probes still held (a call meanwhile finds none: nothing is handed out
            // twice), keep them if their interval is not over, add the new grant.
            let now = Instant::now();
            let held = core.fleet().probes.swap(0, Ordering::AcqRel);
            let held = if now < state.grant_until { held } else { 0 };
            if reply.granted > 0 {
                state.grant_until = now + cfg.window().max(cfg.probe_interval());
            }
            let probes = held.saturating_add(reply.granted);
            if let Some(t) = core.fleet_update(now, totals, closed, probes) {
                let handle = Admission {
                    core,
                    observer: Arc::clone(&observer),
                    fleet: Some(Arc::clone(&shared)),
                };
                handle.report_change(t);
            }
        }
        if owned {
            backend.quit(Duration::from_millis(100)).await;
        }
    });
}

fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
