//! A retry budget paid for by successes: retries are plentiful while the downstream mostly
//! answers, and stop almost at once when it stops answering.

use super::Budget;
use super::counter::DepositCounter;
use crate::ConfigError;
use std::borrow::Cow;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One retry, in the fixed-point units used for exact fractional ratios.
pub(crate) const UNIT: u64 = 1_000_000;
/// A named budget sets its gauge once per this many successes of a thread while it refills.
const REPORT_EVERY: u64 = 128;

/// A success-weighted retry quota, in the spirit of the AWS SDKs' retry quota.
///
/// A stock of at most `max_retries` retries (full at start). Every retry takes one; every
/// successful attempt puts back `per_success` (0.2 by default: five successes pay for one
/// retry); and the stock refills by `min_per_sec` per second on its own, so retries never
/// stop for good. Denied retries cost nothing.
///
/// The parameters mean the same in `RedisBudget::adaptive` (feature `redis`). `min_per_sec`
/// means what it means in a [`RatioBudget`](super::RatioBudget) (retries per second granted
/// without any traffic), while a ratio budget's `ratio` is retries per *request*, not per
/// success.
///
/// Why successes and not requests: under a partial failure most calls still succeed, so the
/// stock stays full and every retry is granted (10 % of attempts failing asks for 0.11 retries
/// per call and earns 0.2); in a total outage nothing succeeds, so the stock runs dry after
/// `max_retries` retries and the downstream sees almost no extra load. A ratio budget
/// ([`RatioBudget`](super::RatioBudget)) cannot tell the two apart: it grants 20 % extra load
/// in both.
///
/// `record_success` (every successful call) is one relaxed atomic load while the stock is full
/// and an increment of this thread's own counter otherwise (no locked instruction); the credit
/// is folded in, exactly, when a retry asks. Fractional
/// ratios are exact (fixed-point arithmetic). Clones share one budget.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::budget::{AdaptiveBudget, Budget};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), tower_retrier::ConfigError> {
/// let budget = AdaptiveBudget::new(10, 0.5, 0)?;
/// let granted = (0..20).filter(|_| budget.withdraw().into_inner()).count();
/// assert_eq!(granted, 10); // the stock, then nothing: no successes pay for more
/// for _ in 0..4 {
///     budget.record_success();
/// }
/// assert_eq!(budget.remaining(), 2); // 4 successes × 0.5
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AdaptiveBudget {
    inner: Arc<Inner>,
    /// The `budget` label of the level gauge; none: no gauge.
    name: Option<Cow<'static, str>>,
}

#[derive(Debug)]
struct Inner {
    max_retries: u32,
    per_success: f64,
    min_per_sec: u32,
    per_success_units: u64,
    cap_units: u64,
    refill_units_per_sec: u64,
    /// Successes not yet credited: the only thing the success path writes (a per-thread
    /// count, so a success costs no locked instruction). Taken only under `stock`'s lock.
    pending: DepositCounter,
    /// The stock was full when last looked at: successes need not be counted.
    full: AtomicBool,
    stock: Mutex<Stock>,
}

#[derive(Debug)]
struct Stock {
    units: u64,
    /// When the time-based refill was last applied.
    refilled: Instant,
}

impl Default for AdaptiveBudget {
    /// 100 retries of stock, 0.2 retries per success, 1 retry per second.
    fn default() -> Self {
        AdaptiveBudget::new(100, 0.2, 1).expect("default parameters are valid")
    }
}

impl AdaptiveBudget {
    /// A stock of `max_retries` (1 to 1,000,000, full at start), refilled by `per_success`
    /// (0 to 1000) retries per successful attempt and by `min_per_sec` (at most
    /// `max_retries`) per second.
    ///
    /// ```
    /// use tower_retrier::budget::AdaptiveBudget;
    ///
    /// assert_eq!(AdaptiveBudget::new(0, 0.2, 1).unwrap_err().field(), "max_retries");
    /// assert_eq!(AdaptiveBudget::new(100, f64::NAN, 1).unwrap_err().field(), "per_success");
    /// ```
    pub fn new(max_retries: u32, per_success: f64, min_per_sec: u32) -> Result<Self, ConfigError> {
        let p = Params::new(max_retries, per_success, min_per_sec)?;
        Ok(AdaptiveBudget {
            inner: Arc::new(Inner {
                max_retries,
                per_success,
                min_per_sec,
                per_success_units: p.per_success_units,
                cap_units: p.cap_units,
                refill_units_per_sec: p.refill_units_per_sec,
                pending: DepositCounter::default(),
                full: AtomicBool::new(true),
                stock: Mutex::new(Stock {
                    units: p.cap_units,
                    refilled: Instant::now(),
                }),
            }),
            name: None,
        })
    }

    /// Exports the stock as the gauge `retrier_budget_remaining{budget = name}` (feature
    /// `metrics`), set whenever a retry asks, whenever [`remaining`](Self::remaining) is read,
    /// and while successes refill the stock once per 128 successes of a thread (the last
    /// time when the stock is full again), so the gauge follows the recovery without a gauge
    /// write per success. With no traffic at all, the time-based refill shows at the next
    /// call. Name the budget before cloning it: clones
    /// made earlier keep their own (absent) name. The name is a label: keep it a constant.
    ///
    /// ```
    /// let budget = tower_retrier::budget::AdaptiveBudget::default().named("inventory");
    /// assert_eq!(budget.name(), Some("inventory"));
    /// ```
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name given with [`named`](Self::named).
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::AdaptiveBudget::default().name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Folds the pending successes and sets the gauge (if a withdrawal holds the lock, it
    /// sets the gauge itself).
    #[cold]
    fn refresh(&self) {
        if let Ok(mut s) = self.inner.stock.try_lock() {
            self.inner.fold(&mut s);
            #[cfg(feature = "metrics")]
            self.report(s.units);
        }
    }

    #[cfg(feature = "metrics")]
    fn report(&self, units: u64) {
        if let Some(name) = &self.name {
            metrics::gauge!(
                crate::telemetry::names::BUDGET_REMAINING,
                crate::telemetry::names::LABEL_BUDGET => name.clone()
            )
            .set(units as f64 / UNIT as f64);
        }
    }

    /// The largest stock, in retries.
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::AdaptiveBudget::default().max_retries(), 100);
    /// ```
    pub fn max_retries(&self) -> u32 {
        self.inner.max_retries
    }

    /// Retries earned per successful attempt.
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::AdaptiveBudget::default().per_success(), 0.2);
    /// ```
    pub fn per_success(&self) -> f64 {
        self.inner.per_success
    }

    /// Retries earned per successful attempt: the old name of
    /// [`per_success`](Self::per_success), which says what it counts (a
    /// [`RatioBudget`](super::RatioBudget)'s `ratio` is retries per request).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// assert_eq!(tower_retrier::budget::AdaptiveBudget::default().ratio(), 0.2);
    /// ```
    #[deprecated(note = "renamed `per_success`: retries earned per successful attempt")]
    pub fn ratio(&self) -> f64 {
        self.per_success()
    }

    /// Retries added per second regardless of traffic.
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::AdaptiveBudget::default().min_per_sec(), 1);
    /// ```
    pub fn min_per_sec(&self) -> u32 {
        self.inner.min_per_sec
    }

    /// Whole retries that would be granted right now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// assert_eq!(tower_retrier::budget::AdaptiveBudget::default().remaining(), 100);
    /// # }
    /// ```
    pub fn remaining(&self) -> u64 {
        let mut s = self.inner.lock();
        self.inner.fold(&mut s);
        #[cfg(feature = "metrics")]
        self.report(s.units);
        s.units / UNIT
    }

    /// Credits `n` successes at once (the Redis budget keeps its fallback warm this way, from
    /// its background task).
    #[cfg(feature = "redis")]
    pub(crate) fn record_successes(&self, n: u64) {
        if n > 0 && !self.inner.full.load(Ordering::Relaxed) {
            self.inner.pending.add(n);
            if self.name.is_some() {
                self.refresh();
            }
        }
    }
}

/// Validated parameters in fixed-point units, shared with the Redis variant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub(crate) per_success_units: u64,
    pub(crate) cap_units: u64,
    pub(crate) refill_units_per_sec: u64,
}

impl Params {
    pub(crate) fn new(
        max_retries: u32,
        per_success: f64,
        min_per_sec: u32,
    ) -> Result<Self, ConfigError> {
        if !(1..=1_000_000).contains(&max_retries) {
            return Err(ConfigError::new(
                "max_retries",
                max_retries.to_string(),
                "must be between 1 and 1000000",
            ));
        }
        if !per_success.is_finite() || !(0.0..=1000.0).contains(&per_success) {
            return Err(ConfigError::new(
                "per_success",
                per_success.to_string(),
                "must be a number in [0, 1000] (0.2 = one retry earned per five successes)",
            ));
        }
        if min_per_sec > max_retries {
            return Err(ConfigError::new(
                "min_per_sec",
                min_per_sec.to_string(),
                "must not exceed max_retries",
            ));
        }
        Ok(Params {
            per_success_units: (per_success * UNIT as f64).round() as u64,
            cap_units: u64::from(max_retries) * UNIT,
            refill_units_per_sec: u64::from(min_per_sec) * UNIT,
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Stock> {
        // The stock is a plain number; a panic elsewhere cannot leave it inconsistent.
        self.stock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds pending successes and the time-based refill, up to the cap.
    fn fold(&self, s: &mut Stock) {
        let successes = self.pending.take_serialized();
        // Without a floor the time refill is always zero: no clock read.
        let by_time = if self.refill_units_per_sec == 0 {
            0
        } else {
            let now = Instant::now();
            let by_time = refill(
                now.saturating_duration_since(s.refilled),
                self.refill_units_per_sec,
            );
            // Keep the sub-unit remainder of the time refill by only moving the mark when it
            // paid.
            if by_time > 0 {
                s.refilled = now;
            }
            by_time
        };
        let credit = successes
            .saturating_mul(self.per_success_units)
            .saturating_add(by_time);
        s.units = s.units.saturating_add(credit).min(self.cap_units);
        if s.units == self.cap_units {
            self.full.store(true, Ordering::Relaxed);
        }
    }
}

/// Units earned by `elapsed` at `units_per_sec`: 64-bit arithmetic (a multiplication and a
/// division by a constant) unless the product overflows, after hours at the highest rates.
fn refill(elapsed: Duration, units_per_sec: u64) -> u64 {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    match nanos.checked_mul(units_per_sec) {
        Some(product) => product / 1_000_000_000,
        None => {
            let units = u128::from(nanos) * u128::from(units_per_sec) / 1_000_000_000;
            u64::try_from(units).unwrap_or(u64::MAX)
        }
    }
}

impl Budget for AdaptiveBudget {
    type Withdraw = Ready<bool>;

    /// Original requests do not matter to this budget: only successes do.
    #[inline]
    fn deposit(&self) {}

    fn withdraw_now(&self) -> Option<bool> {
        Some(self.withdraw().into_inner())
    }

    fn withdraw(&self) -> Ready<bool> {
        let inner = &*self.inner;
        let mut s = inner.lock();
        inner.fold(&mut s);
        let granted = s.units >= UNIT;
        if granted {
            s.units -= UNIT;
            inner.full.store(false, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        self.report(s.units);
        ready(granted)
    }

    #[inline]
    fn record_success(&self) {
        // A full stock (the healthy steady state) cannot grow: one load, no write.
        if !self.inner.full.load(Ordering::Relaxed) {
            let counted = self.inner.pending.add_one();
            // A named budget's gauge follows the refill: every `REPORT_EVERY` successes of a
            // thread fold the stock and set the gauge once (the last time when it is full
            // again), instead of a gauge write per success.
            if counted.is_multiple_of(REPORT_EVERY) && self.name.is_some() {
                self.refresh();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &AdaptiveBudget) -> usize {
        (0..10_000_000)
            .take_while(|_| b.withdraw().into_inner())
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn starts_full_and_drains_without_successes() {
        let b = AdaptiveBudget::new(100, 0.2, 0).unwrap();
        assert_eq!(b.remaining(), 100);
        assert_eq!(drain(&b), 100);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(drain(&b), 0, "no floor, no successes: nothing comes back");
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_ratios_are_exact() {
        for (per_success, successes, expected) in [
            (0.2, 100, 20),
            (0.6, 100, 60),
            (0.33, 100, 33),
            (0.001, 999, 0),
            (0.001, 1000, 1),
            (1.5, 10, 15),
            (0.0, 1000, 0),
        ] {
            let b = AdaptiveBudget::new(1000, per_success, 0).unwrap();
            drain(&b);
            for _ in 0..successes {
                b.record_success();
            }
            assert_eq!(
                drain(&b),
                expected,
                "per_success {per_success}, {successes} successes"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stock_is_capped() {
        let b = AdaptiveBudget::new(10, 1.0, 0).unwrap();
        assert!(b.withdraw().into_inner());
        for _ in 0..1000 {
            b.record_success();
        }
        assert_eq!(b.remaining(), 10);
        assert_eq!(drain(&b), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn floor_refills_with_time_up_to_the_cap() {
        let b = AdaptiveBudget::new(20, 0.2, 4).unwrap();
        assert_eq!(drain(&b), 20);
        tokio::time::advance(Duration::from_millis(2500)).await;
        assert_eq!(drain(&b), 10, "2.5 s × 4/s");
        // Sub-retry remainders are not lost to frequent asks.
        for _ in 0..8 {
            tokio::time::advance(Duration::from_millis(125)).await;
            drain(&b);
        }
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(b.remaining(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn partial_failure_never_drains_a_total_outage_does() {
        let b = AdaptiveBudget::new(100, 0.2, 1).unwrap();
        // 10 % of attempts fail, every failure retried: 1,000 calls, 110 retries, 990+ successes.
        let mut denied = 0;
        for call in 0..1000 {
            if call % 10 == 0 {
                if b.withdraw().into_inner() {
                    b.record_success();
                } else {
                    denied += 1;
                }
            } else {
                b.record_success();
            }
        }
        assert_eq!(denied, 0);
        assert_eq!(b.remaining(), 100);
        // Total outage for 30 s at 100 calls/s, two retries wanted per call.
        let mut granted = 0;
        for _ in 0..30 {
            for _ in 0..200 {
                granted += usize::from(b.withdraw().into_inner());
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(granted, 100 + 29, "the stock, then the floor");
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_budget() {
        let a = AdaptiveBudget::new(5, 0.2, 0).unwrap();
        let b = a.clone();
        assert_eq!(drain(&a), 5);
        assert!(!b.withdraw().into_inner());
        for _ in 0..5 {
            b.record_success();
        }
        assert!(a.withdraw().into_inner());
    }

    #[test]
    fn rejects_bad_parameters_by_name() {
        let field = |r: Result<AdaptiveBudget, ConfigError>| r.unwrap_err().field();
        assert_eq!(field(AdaptiveBudget::new(0, 0.2, 0)), "max_retries");
        assert_eq!(field(AdaptiveBudget::new(2_000_000, 0.2, 0)), "max_retries");
        assert_eq!(field(AdaptiveBudget::new(10, -0.1, 0)), "per_success");
        assert_eq!(
            field(AdaptiveBudget::new(10, f64::INFINITY, 0)),
            "per_success"
        );
        assert_eq!(field(AdaptiveBudget::new(10, 0.2, 11)), "min_per_sec");
    }
}
