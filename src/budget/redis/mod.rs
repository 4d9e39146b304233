//! A retry budget shared by every instance of a service through Redis (feature `redis`).
//!
//! [`RedisBudget`] applies one budget to every instance that uses the same budget name, so a
//! fleet of N instances cannot multiply an outage by N. Two [`Mode`]s, each with its own
//! constructor whose builder has only that mode's settings:
//!
//! - [`RedisBudget::adaptive`] ([`Mode::Adaptive`], the recommended one) has the semantics of
//!   the local [`AdaptiveBudget`](crate::budget::AdaptiveBudget): one stock of at most
//!   `max_retries` retries, refilled by `per_success` per successful attempt anywhere in the
//!   fleet (plus `min_per_sec` per second). A total outage drains it after `max_retries`
//!   retries; a partial failure never does.
//! - [`RedisBudget::ratio`] ([`Mode::Ratio`]) has the semantics of the local
//!   [`RatioBudget`](crate::budget::RatioBudget): in any `ttl` window, at most
//!   `min_per_sec × ttl + ratio × requests` retries.
//!
//! Both share the mechanics:
//!
//! - The success path never waits on Redis: [`deposit`](Budget::deposit) (ratio) or
//!   [`record_success`](Budget::record_success) (adaptive) is one local atomic increment,
//!   flushed in batches by a background task (one script call per flush interval).
//! - A retry takes a token from a small local lease; only an empty lease costs a round trip,
//!   which then fetches up to `lease_size` tokens. When Redis answers that the budget is
//!   spent, retries are denied locally until the next flush interval. The round trip runs
//!   in its own task: a retry that stops waiting (its request was dropped, or Redis is
//!   slower than the command timeout) does not lose what Redis grants; it goes to the lease.
//! - Each operation is one Lua script reading the server's `TIME`; all keys of a budget share
//!   one hash tag (Redis Cluster works), and expire when the budget goes idle.
//! - Redis trouble never breaks requests: every command has a timeout; while Redis is down the
//!   [`Unavailable`] policy decides (by default a local budget of the same mode with the same
//!   parameters) without touching the network, and a probe returns to Redis within about a
//!   second after it recovers.
//!
//! What it leaves in Redis: one hash per budget, `{rb:NAME}:q` (adaptive: the stock and the
//! time of its last refill; expires after 20 s without traffic) or `{rb:NAME}:w` (ratio: a
//! field per window slot, at most a few dozen; expires after `2 × ttl` without traffic). What it sends: one `EVALSHA` per
//! flush interval per instance while there is traffic, one per lease refill on the retry
//! path, and a `PING` every 250 ms per instance only while Redis is down.

// `backend`, `connect`, `health`, `name` and `scripts` are shared with fleet-wide admission
// control (`crate::admission::redis`).
mod alive;
pub(crate) mod backend;
mod builder;
pub(crate) mod connect;
mod flusher;
pub(crate) mod health;
mod lease;
mod mode;
pub(crate) mod name;
pub(crate) mod scripts;
mod stats;
mod tls_error;

pub use builder::{AdaptiveMode, AnyMode, RatioMode, RedisBudgetBuilder, RedisBudgetError};
pub use health::Unavailable;
pub use mode::Mode;
pub use stats::RedisBudgetStats;
pub use tls_error::TlsRejection;

use super::Budget;
use super::counter::DepositCounter;
use backend::Backend;
use fred::prelude::{ClientLike, Options};
use health::Health;
use lease::Lease;
use mode::Semantics;
use scripts::Scripts;
use stats::bump;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Slots per window, as in the local ratio budget.
const SLOTS: u64 = 10;
/// Fixed-point unit for exact fractional ratios, as in the local budgets.
const UNIT: i64 = 1_000_000;
const _: () = assert!(UNIT as u64 == crate::budget::adaptive::UNIT);

/// A fleet-wide retry budget kept in Redis.
///
/// Build one with [`RedisBudget::adaptive`] or [`RedisBudget::ratio`]. Clones share one budget (one lease, one
/// background task); the background task ends when the last clone is dropped. Successes (or
/// deposits) not yet flushed when the budget is dropped (at most one flush interval's worth)
/// are not sent.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_retrier::budget::{Budget, RedisBudget};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The adaptive budget, shared.
/// let budget = RedisBudget::adaptive("checkout-api")
///     .max_retries(100)
///     .per_success(0.2)
///     .min_per_sec(1)
///     .build_from_url("redis://127.0.0.1:6379")
///     .await?;
/// budget.record_success();
/// let may_retry: bool = budget.withdraw().await;
///
/// // The Finagle ratio budget, shared.
/// let ratio = RedisBudget::ratio("search-api")
///     .ttl(Duration::from_secs(10))
///     .min_per_sec(10)
///     .ratio(0.2)
///     .build_from_url("redis://127.0.0.1:6379")
///     .await?;
/// ratio.deposit();
/// # let _ = may_retry; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBudget {
    inner: Arc<Inner>,
}

/// Validated parameters.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    pub(crate) semantics: Semantics,
    pub(crate) flush_interval: Duration,
    pub(crate) lease_size: u32,
    pub(crate) command_timeout: Duration,
}

pub(crate) struct Inner {
    name: String,
    /// `params.semantics` is adaptive, kept next to `pending` for the hot path.
    adaptive: bool,
    key: String,
    slot: u16,
    backend: Backend,
    options: Options,
    pub(crate) params: Params,
    /// Script arguments that do not change: slot_ms and reserve (ratio mode); cap and refill
    /// per second (adaptive mode); the retries one event earns (a request in ratio mode, a
    /// success in adaptive mode) and the idle expiry (both).
    slot_ms: i64,
    reserve_units: i64,
    per_event_units: i64,
    expire_ms: i64,
    cap_units: i64,
    refill_units: i64,
    /// [`scripts::fingerprint`] of the parameters above, stored beside the shared state.
    pub(crate) fingerprint: i64,
    /// Counts this budget among the process's live Redis budgets (warns past a few dozen);
    /// held only for its `Drop`.
    #[allow(dead_code)]
    pub(crate) alive: alive::Alive,
    /// Corrupted state and mismatched parameters are logged once per instance.
    pub(crate) warned_repair: AtomicBool,
    pub(crate) warned_mismatch: AtomicBool,
    /// The last stock Redis reported (adaptive mode), in units; -1 before the first answer.
    stock_units: std::sync::atomic::AtomicI64,
    scripts: Scripts,
    /// Deposits (ratio) or successes (adaptive) not yet flushed: the only thing the success
    /// path touches (per-thread shards, no locked instruction).
    pending: DepositCounter,
    /// Deposits taken from `pending` whose flush failed once; retried at the next flush.
    carry: AtomicU64,
    lease: Lease,
    /// One lease refill at a time: a burst of retries costs one round trip, not one each.
    refill: tokio::sync::Mutex<()>,
    pub(crate) health: Health,
}

impl fmt::Debug for RedisBudget {
    /// Parameters and state only: never the client, its configuration or credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("RedisBudget")
            .field("name", &i.name)
            .field("parameters", &i.params.semantics)
            .field("lease_size", &i.params.lease_size)
            .field("flush_interval", &i.params.flush_interval)
            .field("command_timeout", &i.params.command_timeout)
            .field("health", &i.health)
            .finish()
    }
}

impl RedisBudget {
    /// Starts building the [`AdaptiveBudget`](crate::budget::AdaptiveBudget) shared by every
    /// instance that uses the same `name` (1 to 128 characters from `[A-Za-z0-9._:-]`;
    /// checked when the budget is built): `max_retries`, `per_success`, `min_per_sec`.
    ///
    /// ```
    /// use tower_retrier::budget::RedisBudget;
    /// let builder = RedisBudget::adaptive("payments").max_retries(100).per_success(0.2);
    /// # let _ = builder;
    /// ```
    pub fn adaptive(name: impl Into<String>) -> RedisBudgetBuilder<AdaptiveMode> {
        RedisBudgetBuilder::new(name.into(), Some(Mode::Adaptive))
    }

    /// Starts building the [`RatioBudget`](crate::budget::RatioBudget) shared by every
    /// instance that uses the same `name` (as for [`adaptive`](Self::adaptive)): `ttl`,
    /// `ratio`, `min_per_sec`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::budget::RedisBudget;
    /// let builder = RedisBudget::ratio("search").ttl(Duration::from_secs(10)).ratio(0.2);
    /// # let _ = builder;
    /// ```
    pub fn ratio(name: impl Into<String>) -> RedisBudgetBuilder<RatioMode> {
        RedisBudgetBuilder::new(name.into(), Some(Mode::Ratio))
    }

    /// Starts building a budget whose mode is chosen with
    /// [`mode`](RedisBudgetBuilder::mode) (adaptive by default), taking both modes' settings.
    ///
    /// Deprecated: its `ratio`, `min_per_sec` and `ttl` meant a ratio budget before the
    /// adaptive one became the default. Settings that do not belong to the mode, or whose
    /// meaning depends on a mode that was not chosen, are refused when building
    /// ([`RedisBudgetError::Config`] naming the setting):
    ///
    /// - no `mode`: adaptive. `ratio`, `ttl` or `min_per_sec` without `max_retries` (which
    ///   only adaptive mode has) is ambiguous, and refused;
    /// - adaptive mode: `ttl` is refused (there is no window); `ratio` is `per_success`;
    /// - ratio mode: `max_retries` is refused (there is no stock).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use tower_retrier::budget::RedisBudget;
    /// use tower_retrier::budget::redis::RedisBudgetError;
    ///
    /// let err = RedisBudget::builder("search")
    ///     .ttl(Duration::from_secs(10))
    ///     .min_per_sec(10)
    ///     .ratio(0.2)
    ///     .build_from_url("redis://127.0.0.1:1")
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, RedisBudgetError::Config(ref c) if c.field() == "ratio"));
    /// # }
    /// ```
    #[deprecated(
        note = "use RedisBudget::adaptive(name) (max_retries, per_success, min_per_sec) or \
                RedisBudget::ratio(name) (ttl, ratio, min_per_sec): each builder has only its \
                mode's settings"
    )]
    pub fn builder(name: impl Into<String>) -> RedisBudgetBuilder {
        RedisBudgetBuilder::new(name.into(), None)
    }

    /// The budget's name (shared by the fleet).
    ///
    /// ```no_run
    /// # async fn f(b: tower_retrier::budget::RedisBudget) { assert_eq!(b.name(), "payments"); }
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Counters about this instance's work so far.
    ///
    /// ```no_run
    /// # async fn f(b: tower_retrier::budget::RedisBudget) {
    /// let stats = b.stats();
    /// println!("{} round trips, Redis up: {}", stats.round_trips, stats.redis_up);
    /// # }
    /// ```
    pub fn stats(&self) -> RedisBudgetStats {
        let stock = self.inner.stock_units.load(Ordering::Relaxed);
        let mut stats = self
            .inner
            .health
            .counters
            .snapshot(!self.inner.health.is_down());
        stats.shared_stock = u64::try_from(stock).ok().map(|u| u / UNIT as u64);
        stats
    }

    /// The semantics this budget applies.
    ///
    /// ```no_run
    /// # async fn f(b: tower_retrier::budget::RedisBudget) {
    /// use tower_retrier::budget::redis::Mode;
    /// assert_eq!(b.mode(), Mode::Adaptive);
    /// # }
    /// ```
    pub fn mode(&self) -> Mode {
        self.inner.params.semantics.mode()
    }

    /// Retries this instance holds in its local lease (granted by Redis, not yet used).
    ///
    /// ```no_run
    /// # async fn f(b: tower_retrier::budget::RedisBudget) { assert!(b.lease_outstanding() <= 100); }
    /// ```
    pub fn lease_outstanding(&self) -> u64 {
        self.inner.lease.outstanding()
    }

    /// Sends the deposits (or successes) batched so far now instead of at the next flush
    /// interval (for example before shutting down). Bounded by the command timeout.
    ///
    /// ```no_run
    /// # async fn f(b: tower_retrier::budget::RedisBudget) {
    /// if let Err(e) = b.flush().await {
    ///     eprintln!("deposits not flushed: {e}");
    /// }
    /// # }
    /// ```
    pub async fn flush(&self) -> Result<(), RedisBudgetError> {
        self.inner.flush_pending().await
    }
}

impl Inner {
    /// The withdraw script's arguments for `want` tokens, the parameters' fingerprint last:
    /// 6 in adaptive mode, 8 in ratio mode.
    fn args_withdraw(&self, want: u32) -> ([i64; 8], usize) {
        let want = i64::from(want);
        match self.params.semantics {
            Semantics::Adaptive { .. } => (
                [
                    want,
                    self.cap_units,
                    self.refill_units,
                    self.expire_ms,
                    UNIT,
                    self.fingerprint,
                    0,
                    0,
                ],
                6,
            ),
            Semantics::Ratio { .. } => (
                [
                    want,
                    self.slot_ms,
                    SLOTS as i64,
                    self.reserve_units,
                    self.per_event_units,
                    UNIT,
                    self.expire_ms,
                    self.fingerprint,
                ],
                8,
            ),
        }
    }

    /// Counts (and logs once) what a script found: corrupted state it reset, or state kept
    /// for other parameters than this instance's.
    fn saw_flags(&self, flags: i64) {
        if flags & scripts::REPAIRED != 0 {
            bump(&self.health.counters.corrupt_state_repaired, 1);
            if !self.warned_repair.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    budget = %self.name,
                    key = %self.key,
                    "Redis retry budget state was out of range (corrupted) and was reset; \
                     further repairs are counted in RedisBudgetStats::corrupt_state_repaired"
                );
            }
        }
        if flags & scripts::MISMATCH != 0 {
            bump(&self.health.counters.parameter_mismatches, 1);
            if !self.warned_mismatch.swap(true, Ordering::Relaxed) {
                let p = &self.params;
                tracing::warn!(
                    budget = %self.name,
                    key = %self.key,
                    parameters = ?p.semantics,
                    "Redis retry budget shared with instances built with other parameters: \
                     every instance sharing a budget name must use the same ones; further \
                     calls are counted in RedisBudgetStats::parameter_mismatches"
                );
            }
        }
    }

    /// Remembers the stock Redis reported and exports it as a gauge.
    fn saw_stock(&self, units: i64) {
        self.stock_units.store(units, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::gauge!(
            crate::telemetry::names::BUDGET_REMAINING,
            crate::telemetry::names::LABEL_BUDGET => self.name.clone()
        )
        .set(units as f64 / UNIT as f64);
    }

    /// Moves pending deposits (or successes) into the fallback budget, which always sees this
    /// instance's traffic so that it is warm when Redis goes away. Returns them.
    fn take_pending_for_fallback(&self) -> u64 {
        let n = self.pending.take();
        if n > 0 {
            self.health.fallback.feed(n);
        }
        n
    }

    /// Drops a batch whose flush failed: once Redis is known down, sending it after the
    /// outage would stamp old deposits into the current slot and over-credit the fleet.
    fn forget_unsent(&self) {
        self.carry.store(0, Ordering::Relaxed);
    }

    async fn flush_pending(&self) -> Result<(), RedisBudgetError> {
        let n = self.take_pending_for_fallback() + self.carry.swap(0, Ordering::Relaxed);
        if n == 0 {
            return Ok(());
        }
        if self.health.is_down() {
            self.forget_unsent();
            return Err(RedisBudgetError::unavailable("Redis is down"));
        }
        let count = i64::try_from(n).unwrap_or(i64::MAX);
        let client = self.backend.client();
        // Adaptive mode credits the stock (and learns its level); ratio mode counts requests.
        let [first, second, third] = if self.adaptive {
            let credit = count.saturating_mul(self.per_event_units);
            [credit, self.cap_units, self.refill_units]
        } else {
            [count, self.slot_ms, SLOTS as i64]
        };
        let args = [first, second, third, self.expire_ms, self.fingerprint];
        let call = async {
            let reply = self
                .scripts
                .deposit
                .call(client, &self.options, self.slot, &self.key, &args)
                .await?;
            self.saw_flags(reply.flags);
            Ok::<_, fred::error::Error>(self.adaptive.then_some(reply.second))
        };
        let result = tokio::time::timeout(self.params.command_timeout, call).await;
        match result {
            Ok(Ok(stock)) => {
                if let Some(stock) = stock {
                    self.saw_stock(stock);
                }
                self.health.succeeded();
                self.lease.clear_empty();
                bump(&self.health.counters.flushes, 1);
                bump(&self.health.counters.deposits_flushed, n);
                Ok(())
            }
            Ok(Err(e)) => {
                // Kept for one more attempt; dropped if Redis is still down by then.
                self.carry.fetch_add(n, Ordering::Relaxed);
                self.health.failed("flush", &e);
                Err(RedisBudgetError::backend(e))
            }
            Err(_) => {
                self.carry.fetch_add(n, Ordering::Relaxed);
                self.health.failed("flush", &"timed out");
                Err(RedisBudgetError::unavailable("flush timed out"))
            }
        }
    }

    /// One cheap round trip while down; on success reloads the scripts (a restarted server
    /// has none) and marks Redis up.
    async fn probe(&self) {
        self.probe_within(self.params.command_timeout).await;
    }

    /// [`probe`](Self::probe) with each command bounded by `within`: the first probe, while
    /// the budget is built, may take the connect timeout (a busy server or machine should not
    /// fail construction because loading a script took longer than one retry may wait).
    async fn probe_within(&self, within: Duration) {
        bump(&self.health.counters.probes, 1);
        let options = Options {
            timeout: Some(within),
            ..self.options.clone()
        };
        let client = self.backend.client().with_options(&options);
        let ping = tokio::time::timeout(within, client.ping::<()>(None));
        if let Ok(Ok(())) = ping.await {
            for script in [&self.scripts.deposit, &self.scripts.withdraw] {
                let load = script.load_on(&client, self.slot);
                if !matches!(tokio::time::timeout(within, load).await, Ok(Ok(()))) {
                    return;
                }
            }
            self.health.succeeded();
        }
    }

    /// The error to report when the first probe failed.
    async fn first_error(&self, within: Duration) -> RedisBudgetError {
        let options = Options {
            timeout: Some(within),
            ..self.options.clone()
        };
        let client = self.backend.client().with_options(&options);
        let ping = tokio::time::timeout(within, client.ping::<()>(None));
        match ping.await {
            Ok(Err(e)) => RedisBudgetError::backend(e),
            Ok(Ok(())) => RedisBudgetError::unavailable("the budget scripts could not be loaded"),
            Err(_) => RedisBudgetError::unavailable("no answer within the connect timeout"),
        }
    }

    /// Takes a token from the lease, refilling it from Redis if needed (one caller at a time).
    ///
    /// Runs in its own task (see [`RedisBudget::withdraw`]), so a round trip always finishes
    /// and whatever Redis granted lands in the lease, even if the caller has gone.
    async fn refill_and_take(self: Arc<Self>) -> Answer {
        let _one_at_a_time = self.refill.lock().await;
        // Whoever held the lock before us may have refilled the lease or found Redis empty.
        if self.lease.take() {
            bump(&self.health.counters.lease_hits, 1);
            return Answer::Token(Grant::new(&self));
        }
        if self.health.is_down() {
            return Answer::Unavailable;
        }
        if self.lease.known_empty() {
            bump(&self.health.counters.denied_locally, 1);
            return Answer::Denied;
        }
        bump(&self.health.counters.round_trips, 1);
        let (args, len) = self.args_withdraw(self.params.lease_size);
        // The caller waits at most the command timeout; the call itself may finish later, so
        // that what a slow Redis grants lands in the lease instead of being counted there and
        // never used.
        let late = late_bound(self.params.command_timeout);
        let options = Options {
            timeout: Some(late),
            ..self.options.clone()
        };
        let client = self.backend.client();
        let call = async {
            let reply = self
                .scripts
                .withdraw
                .call(client, &options, self.slot, &self.key, &args[..len])
                .await?;
            self.saw_flags(reply.flags);
            if self.adaptive {
                self.saw_stock(reply.second);
            }
            Ok::<_, fred::error::Error>(reply.first)
        };
        let granted = match tokio::time::timeout(late, call).await {
            Ok(Ok(granted)) => {
                self.health.succeeded();
                u64::try_from(granted)
                    .unwrap_or(0)
                    .min(u64::from(self.params.lease_size))
            }
            Ok(Err(e)) => {
                self.health.failed("withdraw", &e);
                return Answer::Unavailable;
            }
            Err(_) => {
                self.health.failed("withdraw", &"timed out");
                return Answer::Unavailable;
            }
        };
        if granted == 0 {
            self.lease.mark_empty(self.params.flush_interval);
            return Answer::Denied;
        }
        self.lease.put(granted - 1);
        Answer::Token(Grant::new(&self))
    }
}

impl Inner {
    /// [`refill_and_take`](Self::refill_and_take), answering through `tx`; a token nobody
    /// receives goes back to the lease (see [`Grant`]).
    async fn refill_and_take_for(self: Arc<Self>, tx: tokio::sync::oneshot::Sender<Answer>) {
        let answer = self.refill_and_take().await;
        let _ = tx.send(answer);
    }
}

/// How long a lease refill may take before it is abandoned: longer than any caller waits
/// (the command timeout), so that a slow answer still reaches the lease.
fn late_bound(command_timeout: Duration) -> Duration {
    command_timeout
        .saturating_mul(4)
        .max(Duration::from_millis(250))
}

/// What a refill task hands its caller.
enum Answer {
    /// A token taken from the lease for this caller.
    Token(Grant),
    /// Redis has nothing left for now.
    Denied,
    /// Redis is down or failed: the caller asks the outage policy (only a caller that is
    /// still waiting, so the fallback budget is not drawn on for nobody).
    Unavailable,
}

/// One leased token on its way to a caller. If the caller is gone before it arrives (the
/// request was dropped or timed out), dropping it puts the token back in the lease: Redis
/// has already counted it as withdrawn, so losing it would shrink the fleet's budget.
struct Grant(Option<Arc<Inner>>);

impl Grant {
    fn new(inner: &Arc<Inner>) -> Self {
        Grant(Some(Arc::clone(inner)))
    }

    fn use_it(mut self) -> bool {
        self.0 = None;
        true
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            inner.lease.give_back(1);
        }
    }
}

/// The future returned by [`RedisBudget::withdraw`]: ready at once when the lease has a token
/// or Redis is known down, otherwise one bounded round trip.
pub struct RedisWithdraw(WithdrawState);

enum WithdrawState {
    Ready(Option<bool>),
    Pending(Pin<Box<dyn Future<Output = bool> + Send>>),
}

impl fmt::Debug for RedisWithdraw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            WithdrawState::Ready(v) => format!("Ready({v:?})"),
            WithdrawState::Pending(_) => "Pending".to_owned(),
        };
        f.debug_tuple("RedisWithdraw").field(&state).finish()
    }
}

impl Future for RedisWithdraw {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        match &mut self.0 {
            // Polling again after completion returns `false` rather than panicking.
            WithdrawState::Ready(v) => Poll::Ready(v.take().unwrap_or(false)),
            WithdrawState::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

impl Budget for RedisBudget {
    type Withdraw = RedisWithdraw;

    /// Ratio mode: one increment of this thread's counter; the background task flushes the
    /// batch.
    /// Adaptive mode: nothing (only successes count).
    #[inline]
    fn deposit(&self) {
        if !self.inner.adaptive {
            self.inner.pending.add_one();
        }
    }

    /// Adaptive mode: one increment of this thread's counter; the background task flushes the
    /// batch.
    /// Ratio mode: nothing.
    #[inline]
    fn record_success(&self) {
        if self.inner.adaptive {
            self.inner.pending.add_one();
        }
    }

    /// Answers without a round trip when it can: a token of the local lease, the outage
    /// policy while Redis is down, or a stock known to be empty.
    fn withdraw_now(&self) -> Option<bool> {
        let inner = &self.inner;
        if inner.lease.take() {
            bump(&inner.health.counters.lease_hits, 1);
            return Some(true);
        }
        if inner.health.is_down() {
            return Some(inner.health.decide());
        }
        if inner.lease.known_empty() {
            bump(&inner.health.counters.denied_locally, 1);
            return Some(false);
        }
        None
    }

    fn withdraw(&self) -> RedisWithdraw {
        if let Some(granted) = self.withdraw_now() {
            return RedisWithdraw(WithdrawState::Ready(Some(granted)));
        }
        let inner = Arc::clone(&self.inner);
        RedisWithdraw(WithdrawState::Pending(Box::pin(async move {
            // The refill runs in its own task, started at the first poll: dropping this future
            // (the request was cancelled) must not cut a script call that Redis may already
            // have run, or the tokens it granted would be counted in Redis and never used.
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(Arc::clone(&inner).refill_and_take_for(tx));
            // The round trip has its own timeout; this one also bounds waiting behind another
            // caller's refill, so no retry waits longer than the command timeout.
            match tokio::time::timeout(inner.params.command_timeout, rx).await {
                Ok(Ok(Answer::Token(grant))) => grant.use_it(),
                Ok(Ok(Answer::Denied)) => false,
                // Redis failed, or the task was cancelled (the runtime is shutting down).
                Ok(Ok(Answer::Unavailable)) | Ok(Err(_)) => inner.health.decide(),
                Err(_) => {
                    // Redis is slower than a retry may wait: say so, so that the next
                    // retries go straight to the policy until a probe finds it fast again.
                    inner
                        .health
                        .failed("withdraw", &"no answer within the command timeout");
                    inner.health.decide()
                }
            }
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_future_does_not_panic_when_polled_twice() {
        let mut w = RedisWithdraw(WithdrawState::Ready(Some(true)));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(Pin::new(&mut w).poll(&mut cx), Poll::Ready(true));
        assert_eq!(Pin::new(&mut w).poll(&mut cx), Poll::Ready(false));
    }
}
