//! The state admission control keeps for one downstream: what its attempts lately got, and
//! whether calls go out freely, within a concurrency limit, only as probes, or throttled.
//!
//! While nothing fails, the success path reads one atomic (the state) to admit and one to
//! record its verdict: an accept is only worth counting against failures. From the first
//! failure until a window without one, accepted attempts are counted on their own thread's
//! counter (no locked instruction); everything else (a failure, a state other than closed,
//! one accepted attempt in [`HOUSEKEEPING`] per thread) takes a mutex and reads the clock.

use super::config::{AdmissionConfig, Mechanism};
use super::rejected::RejectReason;
use super::window::{Counts, Window};
use crate::budget::counter::DepositCounter;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Everything goes out, and nothing failed lately: accepted attempts are not even counted.
pub(crate) const CLOSED: u8 = 0;
/// Everything goes out; an attempt failed within the last window, so verdicts are counted.
pub(crate) const WATCHING: u8 = 1;
/// Calls go out within the concurrency limit.
pub(crate) const LIMITED: u8 = 2;
/// Only probes go out.
pub(crate) const OPEN: u8 = 3;
/// Calls are refused with the throttle's probability.
pub(crate) const THROTTLING: u8 = 4;

/// One accepted attempt in this many (per thread) folds the counts into the window, so a
/// window never holds more than this many accepts per thread that happened earlier.
const HOUSEKEEPING: u64 = 16;
/// Fixed-point unit of the concurrency limit (1/256 of a call).
const LIMIT_UNIT: u64 = 256;
/// The limit grows by one call per this many limits' worth of accepted attempts (about one
/// call per four round trips): a fleet of clients grows together, and one call more each
/// overshoots a small downstream (measured: 1 here served 183 calls/s of 333 in the
/// overload benchmark's capacity drop, 4 served 232).
const GROWTH: u64 = 4;
/// Fixed-point unit of the throttle's probability.
const P_UNIT: u32 = 1 << 16;

/// What an admitted call holds: a concurrency slot, and whether it is a probe.
///
/// Made by [`AdmitFor::admit`](super::AdmitFor::admit) and handed back with each verdict and
/// when the call ends; `Ticket::default()` holds nothing (for `Admit` implementations that
/// track nothing).
///
/// ```
/// let t = tower_retrier::admission::Ticket::default();
/// assert!(!t.is_probe());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ticket(
    /// Two flags in the top bits; below them, for a limit that learns from latency, when
    /// the call was admitted (microseconds since the state was made, wrapping every 17
    /// minutes: only round trips are taken from it). One word, so the response future does
    /// not grow.
    u32,
);

impl Ticket {
    const TRACKED: u32 = 1 << 31;
    const PROBE: u32 = 1 << 30;
    const MICROS: u32 = Self::PROBE - 1;

    pub(crate) fn tracked() -> Self {
        Ticket(Self::TRACKED)
    }

    pub(crate) fn probe() -> Self {
        Ticket(Self::PROBE)
    }

    fn is_tracked(self) -> bool {
        self.0 & Self::TRACKED != 0
    }

    /// Whether the call was let through as a probe of a downstream found unable to serve.
    ///
    /// See [`Ticket`] for an example.
    pub fn is_probe(self) -> bool {
        self.0 & Self::PROBE != 0
    }

    fn admitted_us(self) -> u32 {
        self.0 & Self::MICROS
    }

    fn admitted_at(self, micros: u32) -> Self {
        Ticket(self.0 & !Self::MICROS | micros & Self::MICROS)
    }
}

/// Where admission control stands.
///
/// ```
/// use tower_retrier::admission::{Admission, AdmissionState};
/// assert_eq!(Admission::default().state(), AdmissionState::Closed);
/// assert_eq!(AdmissionState::Open.as_str(), "open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AdmissionState {
    /// Every call goes out.
    Closed,
    /// Calls go out within an adaptive concurrency limit.
    Limited,
    /// Only probes go out.
    Open,
    /// Calls are refused with a probability (the throttle).
    Throttling,
}

impl AdmissionState {
    /// A stable, lower-case name.
    ///
    /// See [`AdmissionState`] for an example.
    pub fn as_str(&self) -> &'static str {
        match self {
            AdmissionState::Closed => "closed",
            AdmissionState::Limited => "limited",
            AdmissionState::Open => "open",
            AdmissionState::Throttling => "throttling",
        }
    }

    /// The gauge's value: 0 closed, 1 limited, 2 open, 3 throttling.
    ///
    /// ```
    /// assert_eq!(tower_retrier::admission::AdmissionState::Open.level(), 2);
    /// ```
    pub fn level(&self) -> u8 {
        match self {
            AdmissionState::Closed => 0,
            AdmissionState::Limited => 1,
            AdmissionState::Open => 2,
            AdmissionState::Throttling => 3,
        }
    }

    pub(crate) fn from_state(state: u8) -> Self {
        match state {
            LIMITED => AdmissionState::Limited,
            OPEN => AdmissionState::Open,
            THROTTLING => AdmissionState::Throttling,
            _ => AdmissionState::Closed,
        }
    }
}

/// What changed, for the gauges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) state: AdmissionState,
    pub(crate) limit: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct Core {
    config: AdmissionConfig,
    state: AtomicU8,
    /// Accepted attempts not yet in the window: the only thing the success path writes.
    accepted: DepositCounter,
    /// Calls asked for, not yet in the window (the throttle only).
    requests: Option<DepositCounter>,
    slow: Mutex<Slow>,
    epoch: Instant,
    /// While open: when the next probe interval starts (nanoseconds since `epoch`), and the
    /// probes left in the current one.
    next_probe: AtomicU64,
    probes_left: AtomicU32,
    /// The concurrency limit in 1/256 of a call, and the calls holding a slot.
    limit: AtomicU64,
    in_flight: AtomicU32,
    /// Calls the limit refused, ever: the limit lets go only once it has refused nothing
    /// for a window.
    limit_refusals: AtomicU64,
    /// The throttle's refusal probability (in 1/65536) and its error-diffusion sum, which
    /// refuses exactly that share of calls in a deterministic order.
    reject_p: AtomicU32,
    reject_sum: AtomicU32,
    /// The fleet's view, when the state is shared (feature `redis`).
    fleet: OnceLock<FleetView>,
}

/// What a fleet-wide link (a background task) tells this instance, and what it reads back.
/// Nothing here is ever waited on: a stale or missing view leaves the local state in charge.
#[derive(Debug, Default)]
pub(crate) struct FleetView {
    /// The fleet answered lately: probes come from its quota, not from the local clock.
    pub(crate) fresh: AtomicBool,
    /// Probes the fleet-wide quota granted to this instance and not yet used.
    pub(crate) probes: AtomicU32,
    /// Closes this instance caused (an accepted probe), for the link to announce.
    pub(crate) closes_made: AtomicU64,
}

#[derive(Debug)]
struct Slow {
    window: Window,
    /// Verdicts since the concurrency limit was last cut: AIMD cuts at most once per
    /// `limit` verdicts (about once per round trip).
    since_cut: u64,
    /// When an attempt last went unserved: the limit lets go after a calm window.
    last_failure: Instant,
    /// The limit's refusals as last seen, and when they last grew.
    limit_refusals: u64,
    last_refusal: Instant,
    /// Round trips (µs) of the latency limit: recent and long-run averages.
    short_rtt: f64,
    long_rtt: f64,
}

impl Core {
    pub(crate) fn new(config: AdmissionConfig) -> Self {
        let now = Instant::now();
        // Only the throttle counts requests (its formula weighs them against accepts).
        let throttle = config.mechanism == Mechanism::Throttle;
        let state = match config.mechanism {
            Mechanism::BreakerAndLimit | Mechanism::Breaker => CLOSED,
            Mechanism::Throttle => THROTTLING,
            Mechanism::ConcurrencyLimit | Mechanism::LatencyLimit => LIMITED,
        };
        Core {
            slow: Mutex::new(Slow {
                window: Window::new(config.window, now),
                since_cut: 0,
                last_failure: now,
                limit_refusals: 0,
                last_refusal: now,
                short_rtt: 0.0,
                long_rtt: 0.0,
            }),
            limit: AtomicU64::new(u64::from(config.initial_limit) * LIMIT_UNIT),
            config,
            state: AtomicU8::new(state),
            accepted: DepositCounter::default(),
            requests: throttle.then(DepositCounter::default),
            epoch: now,
            next_probe: AtomicU64::new(0),
            probes_left: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            limit_refusals: AtomicU64::new(0),
            reject_p: AtomicU32::new(0),
            reject_sum: AtomicU32::new(0),
            fleet: OnceLock::new(),
        }
    }

    pub(crate) fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    pub(crate) fn state(&self) -> AdmissionState {
        AdmissionState::from_state(self.state.load(Ordering::Relaxed))
    }

    pub(crate) fn limit(&self) -> Option<u32> {
        (self.state.load(Ordering::Relaxed) == LIMITED).then(|| self.limit_calls())
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn limit_calls(&self) -> u32 {
        u32::try_from(self.limit.load(Ordering::Relaxed) / LIMIT_UNIT)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Whether a call may go out now.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Ticket, RejectReason> {
        match self.state.load(Ordering::Relaxed) {
            CLOSED | WATCHING => Ok(Ticket::default()),
            state => self.admit_slow(state),
        }
    }

    #[inline(never)]
    fn admit_slow(&self, state: u8) -> Result<Ticket, RejectReason> {
        match state {
            LIMITED => {
                if self.in_flight.fetch_add(1, Ordering::AcqRel) < self.limit_calls() {
                    let ticket = Ticket::tracked();
                    if self.config.mechanism == Mechanism::LatencyLimit {
                        return Ok(ticket.admitted_at(self.micros(Instant::now())));
                    }
                    Ok(ticket)
                } else {
                    self.in_flight.fetch_sub(1, Ordering::AcqRel);
                    self.limit_refusals.fetch_add(1, Ordering::Relaxed);
                    Err(RejectReason::ConcurrencyLimit)
                }
            }
            OPEN => self.probe(),
            THROTTLING => {
                if let Some(requests) = &self.requests {
                    requests.add_one();
                }
                let p = self.reject_p.load(Ordering::Relaxed);
                if p == 0 {
                    return Ok(Ticket::default());
                }
                // Error diffusion: refuse each time the running sum passes one whole call.
                let before = self.reject_sum.fetch_add(p, Ordering::Relaxed);
                if before % P_UNIT + p >= P_UNIT {
                    Err(RejectReason::Throttled)
                } else {
                    Ok(Ticket::default())
                }
            }
            _ => Ok(Ticket::default()),
        }
    }

    /// While open: the first call of each probe interval, and `probes - 1` more, go out;
    /// with a fresh fleet view, only the probes the fleet-wide quota granted.
    fn probe(&self) -> Result<Ticket, RejectReason> {
        if let Some(fleet) = self.fleet.get()
            && fleet.fresh.load(Ordering::Acquire)
        {
            return take_probe(&fleet.probes);
        }
        let now = self.nanos(Instant::now());
        let next = self.next_probe.load(Ordering::Acquire);
        if now >= next {
            let interval = nanos_of(self.config.probe_interval);
            if self
                .next_probe
                .compare_exchange(
                    next,
                    now.saturating_add(interval),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                self.probes_left
                    .store(self.config.probes - 1, Ordering::Release);
                return Ok(Ticket::probe());
            }
        }
        take_probe(&self.probes_left)
    }

    /// Whether a retry may go out: not while the breaker is open.
    #[inline]
    pub(crate) fn allows_retry(&self) -> bool {
        self.state.load(Ordering::Relaxed) != OPEN
    }

    /// An attempt the downstream served.
    #[inline]
    pub(crate) fn record_accepted(&self, ticket: Ticket) -> Option<Transition> {
        let state = self.state.load(Ordering::Relaxed);
        if state == CLOSED {
            return None; // nothing failed lately: nothing to weigh accepts against
        }
        let n = self.accepted.add_one();
        if state == WATCHING && !n.is_multiple_of(HOUSEKEEPING) {
            return None;
        }
        self.accepted_slow(ticket)
    }

    /// The verdict on one attempt: `accepted` when the downstream gave a final answer.
    #[cfg(test)]
    pub(crate) fn record(&self, ticket: Ticket, accepted: bool) -> Option<Transition> {
        if accepted {
            self.record_accepted(ticket)
        } else {
            self.failed()
        }
    }

    /// The call is over: its concurrency slot is free.
    #[inline]
    pub(crate) fn release(&self, ticket: Ticket) {
        if ticket.is_tracked() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    #[inline(never)]
    fn accepted_slow(&self, ticket: Ticket) -> Option<Transition> {
        let now = Instant::now();
        let mut slow = self.lock();
        self.fold(&mut slow, now, Counts::default());
        match self.state.load(Ordering::Relaxed) {
            OPEN if ticket.is_probe() => {
                if let Some(fleet) = self.fleet.get() {
                    fleet.closes_made.fetch_add(1, Ordering::AcqRel);
                }
                Some(self.close(&mut slow, now))
            }
            LIMITED if self.config.mechanism == Mechanism::LatencyLimit => {
                slow.since_cut += 1;
                if ticket.is_tracked() {
                    let rtt = self.micros(now).wrapping_sub(ticket.admitted_us()) & Ticket::MICROS;
                    let rtt = rtt.max(1);
                    self.follow_latency(&mut slow, f64::from(rtt));
                }
                None
            }
            LIMITED => {
                slow.since_cut += 1;
                let limit = self.limit.load(Ordering::Relaxed).max(LIMIT_UNIT);
                let max = u64::from(self.config.max_limit) * LIMIT_UNIT;
                // Additive increase: one call per `GROWTH × limit` accepted attempts.
                let grown = (limit + LIMIT_UNIT * LIMIT_UNIT / (limit * GROWTH)).min(max);
                self.limit.store(grown, Ordering::Relaxed);
                let refusals = self.limit_refusals.load(Ordering::Relaxed);
                if refusals != slow.limit_refusals {
                    slow.limit_refusals = refusals;
                    slow.last_refusal = now;
                }
                // Calm: a window without an unserved attempt, and without a call the limit
                // had to refuse (while it still refuses, the downstream still needs it).
                let window = self.config.window;
                let calm = now.saturating_duration_since(slow.last_failure) >= window
                    && now.saturating_duration_since(slow.last_refusal) >= window;
                if self.config.mechanism == Mechanism::BreakerAndLimit && calm {
                    slow.window.clear();
                    self.state.store(self.resting(), Ordering::Relaxed);
                    return Some(self.transition());
                }
                (grown / LIMIT_UNIT != limit / LIMIT_UNIT).then(|| self.transition())
            }
            THROTTLING => self.rethrottle(&mut slow, now),
            WATCHING
                if self.fleet.get().is_none()
                    && now.saturating_duration_since(slow.last_failure) >= self.config.window =>
            {
                // A window without failures: stop counting.
                slow.window.clear();
                self.accepted.take_serialized();
                self.state.store(CLOSED, Ordering::Relaxed);
                None
            }
            _ => None,
        }
    }

    /// An attempt the downstream could not serve.
    #[cold]
    #[inline(never)]
    pub(crate) fn failed(&self) -> Option<Transition> {
        let now = Instant::now();
        let mut slow = self.lock();
        let one = Counts {
            failed: 1,
            ..Counts::default()
        };
        self.fold(&mut slow, now, one);
        slow.last_failure = now;
        let mut state = self.state.load(Ordering::Relaxed);
        if state == CLOSED {
            // From now on accepts are counted, until a window passes without a failure.
            state = WATCHING;
            self.state.store(WATCHING, Ordering::Relaxed);
        }
        if self.config.mechanism.has_breaker()
            && (state == WATCHING || state == LIMITED)
            && self.trips(slow.window.sums(now))
        {
            return Some(self.open(now));
        }
        match state {
            LIMITED => {
                slow.since_cut += 1;
                let limit = self.limit.load(Ordering::Relaxed);
                if slow.since_cut >= limit / LIMIT_UNIT {
                    // Multiplicative decrease, at most once per `limit` verdicts.
                    slow.since_cut = 0;
                    self.limit
                        .store((limit / 2).max(LIMIT_UNIT), Ordering::Relaxed);
                    return Some(self.transition());
                }
                None
            }
            THROTTLING => self.rethrottle(&mut slow, now),
            _ => None,
        }
    }

    /// Gradient2: the limit follows the ratio of the long-run round trip to the recent one
    /// (at most 1: a queue forming shrinks it), plus a queue allowance of √limit, smoothed.
    fn follow_latency(&self, slow: &mut Slow, rtt_us: f64) {
        slow.short_rtt = if slow.short_rtt == 0.0 {
            rtt_us
        } else {
            0.5 * slow.short_rtt + 0.5 * rtt_us
        };
        slow.long_rtt = if slow.long_rtt == 0.0 {
            rtt_us
        } else {
            0.99 * slow.long_rtt + 0.01 * rtt_us
        };
        // A long average far above the recent one (after a slow spell) is pulled down, so
        // the limit grows back.
        if slow.long_rtt / slow.short_rtt > 2.0 {
            slow.long_rtt *= 0.95;
        }
        let gradient = (1.5 * slow.long_rtt / slow.short_rtt).clamp(0.5, 1.0);
        let limit = self.limit.load(Ordering::Relaxed) as f64 / LIMIT_UNIT as f64;
        let target = limit * gradient + limit.sqrt();
        let next = (0.8 * limit + 0.2 * target).clamp(1.0, f64::from(self.config.max_limit));
        self.limit
            .store((next * LIMIT_UNIT as f64) as u64, Ordering::Relaxed);
    }

    fn micros(&self, t: Instant) -> u32 {
        // Wrapping: only differences under 71 minutes are ever taken.
        t.saturating_duration_since(self.epoch).as_micros() as u32
    }

    /// Whether attempts counted over a window open the breaker: enough of them, and enough of
    /// those not accepted (the same rule for this instance's counts and the fleet's).
    fn trips(&self, sums: Counts) -> bool {
        let attempts = sums.attempts();
        attempts >= u64::from(self.config.min_calls)
            && sums.failed as f64 >= self.config.failure_ratio * attempts as f64
    }

    /// Moves what the success path counted into the window, with `more`.
    fn fold(&self, slow: &mut Slow, now: Instant, more: Counts) {
        let counts = Counts {
            accepted: more.accepted + self.accepted.take_serialized(),
            failed: more.failed,
            requests: more.requests
                + self
                    .requests
                    .as_ref()
                    .map_or(0, DepositCounter::take_serialized),
        };
        slow.window.add(now, counts);
    }

    fn open(&self, now: Instant) -> Transition {
        self.next_probe.store(
            self.nanos(now)
                .saturating_add(nanos_of(self.config.probe_interval)),
            Ordering::Release,
        );
        self.probes_left.store(0, Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
        self.transition()
    }

    fn close(&self, slow: &mut Slow, now: Instant) -> Transition {
        slow.window.clear();
        slow.since_cut = 0;
        slow.last_failure = now;
        slow.last_refusal = now;
        if self.config.mechanism == Mechanism::BreakerAndLimit {
            self.limit.store(
                u64::from(self.config.initial_limit) * LIMIT_UNIT,
                Ordering::Relaxed,
            );
            self.state.store(LIMITED, Ordering::Release);
        } else {
            self.state.store(self.resting(), Ordering::Release);
        }
        self.transition()
    }

    /// Closed, counting accepts only if someone weighs them: failures seen lately, or a
    /// fleet that adds every instance's counts (a healthy instance must report its accepts).
    fn resting(&self) -> u8 {
        if self.fleet.get().is_some() {
            WATCHING
        } else {
            CLOSED
        }
    }

    /// The throttle's probability from the window (Google SRE, "Handling Overload").
    fn rethrottle(&self, slow: &mut Slow, now: Instant) -> Option<Transition> {
        let sums = slow.window.sums(now);
        let requests = sums.requests.max(sums.attempts()) as f64;
        let p = ((requests - self.config.k * sums.accepted as f64) / (requests + 1.0)).max(0.0);
        let p = (p * f64::from(P_UNIT)).min(f64::from(P_UNIT - 1)) as u32;
        let before = self.reject_p.swap(p, Ordering::Relaxed);
        ((before == 0) != (p == 0)).then(|| self.transition())
    }

    fn transition(&self) -> Transition {
        Transition {
            state: self.state(),
            limit: self.limit(),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        nanos_of(t.saturating_duration_since(self.epoch))
    }

    fn lock(&self) -> MutexGuard<'_, Slow> {
        // Counts are plain numbers: a panic elsewhere cannot leave them inconsistent.
        self.slow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepted attempts counted in the window at `now` and not yet in it, and failures:
    /// what this instance tells the fleet.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn window_counts(&self, now: Instant) -> Counts {
        let mut slow = self.lock();
        self.fold(&mut slow, now, Counts::default());
        slow.window.sums(now)
    }

    /// The fleet-wide link of this instance (made on first use).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn fleet(&self) -> &FleetView {
        let fleet = self.fleet.get_or_init(FleetView::default);
        // The fleet weighs this instance's accepts too: count them from now on.
        let _ = self
            .state
            .compare_exchange(CLOSED, WATCHING, Ordering::AcqRel, Ordering::Relaxed);
        fleet
    }

    /// What the fleet said: its attempts over the window (`totals`, traffic-weighted: every
    /// instance's counts added), whether another instance's probe was accepted since this
    /// one last asked (`closed`), and the probes granted to this instance. Opens on the
    /// fleet's failure ratio as on the local one; an accepted probe anywhere closes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn fleet_update(
        &self,
        now: Instant,
        totals: Counts,
        closed: bool,
        probes: u32,
    ) -> Option<Transition> {
        let fleet = self.fleet();
        fleet.fresh.store(true, Ordering::Release);
        let mut slow = self.lock();
        let state = self.state.load(Ordering::Relaxed);
        if state == OPEN {
            if closed {
                return Some(self.close(&mut slow, now));
            }
            fleet.probes.store(probes, Ordering::Release);
            return None;
        }
        if self.config.mechanism.has_breaker()
            && (state == CLOSED || state == WATCHING || state == LIMITED)
            && self.trips(totals)
        {
            fleet.probes.store(0, Ordering::Release);
            return Some(self.open(now));
        }
        None
    }

    /// The fleet stopped answering: the local state decides alone again.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn fleet_lost(&self) {
        if let Some(fleet) = self.fleet.get() {
            fleet.fresh.store(false, Ordering::Release);
        }
    }
}

/// One probe from a quota (this instance's, or what the fleet granted it), if any is left.
fn take_probe(quota: &AtomicU32) -> Result<Ticket, RejectReason> {
    match quota.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)) {
        Ok(_) => Ok(Ticket::probe()),
        Err(_) => Err(RejectReason::Open),
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(mechanism: Mechanism) -> Core {
        Core::new(
            AdmissionConfig::builder()
                .mechanism(mechanism)
                .build()
                .unwrap(),
        )
    }

    /// One call: admitted or not, and if admitted its verdict.
    fn call(c: &Core, accepted: bool) -> Result<(), RejectReason> {
        let t = c.admit()?;
        c.record(t, accepted);
        c.release(t);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn ten_percent_failures_never_refuse_a_call() {
        let c = core(Mechanism::BreakerAndLimit);
        for i in 0..10_000 {
            assert_eq!(call(&c, i % 10 != 0), Ok(()), "call {i}");
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(c.state(), AdmissionState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_a_dead_downstream_probes_and_closes_into_a_limit_that_lets_go() {
        let c = core(Mechanism::BreakerAndLimit);
        let ms = Duration::from_millis;
        // 19 failures: too few to judge.
        (0..19).for_each(|_| call(&c, false).unwrap());
        assert_eq!(c.state(), AdmissionState::Closed);
        call(&c, false).unwrap();
        assert_eq!(c.state(), AdmissionState::Open);
        assert_eq!(call(&c, false), Err(RejectReason::Open));
        // One probe per 250 ms: a failed one keeps it open.
        tokio::time::advance(ms(250)).await;
        let probe = c.admit().unwrap();
        assert!(probe.is_probe());
        assert_eq!(c.admit(), Err(RejectReason::Open));
        c.record(probe, false);
        c.release(probe);
        assert_eq!(c.state(), AdmissionState::Open);
        // An accepted probe closes it, into a concurrency limit of one call.
        tokio::time::advance(ms(250)).await;
        let probe = c.admit().unwrap();
        c.record(probe, true);
        c.release(probe);
        assert_eq!(c.state(), AdmissionState::Limited);
        assert_eq!(c.limit(), Some(1));
        let held = c.admit().unwrap();
        assert_eq!(c.admit(), Err(RejectReason::ConcurrencyLimit));
        c.record(held, true);
        c.release(held);
        // Additive increase: about one call per four limits' worth of accepts.
        let mut accepts = 1;
        while c.limit() == Some(1) {
            call(&c, true).unwrap();
            accepts += 1;
        }
        assert_eq!((c.limit(), accepts), (Some(2), 6));
        // A window without failures or refusals later, the limit lets go.
        tokio::time::advance(ms(1000)).await;
        call(&c, true).unwrap();
        assert_eq!(c.state(), AdmissionState::Closed);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_halves_at_most_once_per_limit_verdicts() {
        let cfg = AdmissionConfig::builder()
            .mechanism(Mechanism::ConcurrencyLimit)
            .initial_limit(16)
            .build()
            .unwrap();
        let c = Core::new(cfg);
        let tickets: Vec<_> = (0..16).map(|_| c.admit().unwrap()).collect();
        assert_eq!(c.admit(), Err(RejectReason::ConcurrencyLimit));
        for t in &tickets[..15] {
            c.record(*t, false);
        }
        assert_eq!(c.limit(), Some(16)); // 15 verdicts since the start: not yet
        c.record(tickets[15], false);
        assert_eq!(c.limit(), Some(8));
        tickets.into_iter().for_each(|t| c.release(t));
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_throttle_refuses_the_sre_share_of_calls() {
        let c = core(Mechanism::Throttle);
        // Every attempt fails for a while: the throttle climbs towards refusing all.
        let mut refused = 0;
        for _ in 0..1000 {
            if call(&c, false).is_err() {
                refused += 1;
            }
            tokio::time::advance(Duration::from_micros(500)).await;
        }
        assert!(refused > 900, "refused {refused} of 1000");
        // A healthy downstream: refusals fall as accepts come back (slowly: the admitted
        // share at most doubles per window), and stop.
        let mut refused_per_second = Vec::new();
        for _ in 0..20 {
            let mut refused = 0;
            for _ in 0..2000 {
                refused += usize::from(call(&c, true).is_err());
                tokio::time::advance(Duration::from_micros(500)).await;
            }
            refused_per_second.push(refused);
        }
        assert!(refused_per_second[0] > 1000, "{refused_per_second:?}");
        assert_eq!(refused_per_second[19], 0, "{refused_per_second:?}");
    }
}
