//! The Finagle/Linkerd retry budget: retries may add at most `ratio` extra load, plus a small
//! floor so that low-traffic services can still retry.

use super::Budget;
use crate::ConfigError;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Slots the `ttl` window is divided into.
const SLOTS: u64 = 10;
/// One retry, in the fixed-point units used for exact fractional ratios.
const UNIT: u128 = 1_000_000;
/// The hot path folds its counter into the window once per this many deposits, so the clock
/// is read once per batch, not per request.
const FOLD_EVERY: u64 = 1024;

/// A local retry budget with Finagle/Linkerd semantics.
///
/// In any window of `ttl`, at most `min_per_sec × ttl + ratio × requests` retries are granted,
/// where `requests` counts the original requests deposited in that window. The default
/// (10 s, 10 retries/s, 20 %) is the one Finagle, Linkerd and `tower` use. Fractional ratios
/// are exact (fixed-point arithmetic), unlike `tower`'s `TpsBudget` (tower#857).
///
/// `deposit` is one relaxed atomic increment: no lock, no clock read. Deposits are folded
/// into the time window when a retry asks for budget (and every 1,024 deposits), spread
/// evenly over the time since the previous fold.
///
/// Clones share one budget.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::budget::{Budget, RatioBudget};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_retrier::ConfigError> {
/// let budget = RatioBudget::new(Duration::from_secs(10), 0, 0.5)?;
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// let granted = (0..10).filter(|_| budget.withdraw().into_inner()).count();
/// assert_eq!(granted, 5);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RatioBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ttl: Duration,
    min_per_sec: u32,
    ratio: f64,
    ratio_units: u128,
    reserve_units: u128,
    slot_nanos: u128,
    origin: Instant,
    pending: AtomicU64,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    slots: [Slot; SLOTS as usize],
    last_fold: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    index: u64,
    deposits: u64,
    withdrawals: u64,
}

impl Default for RatioBudget {
    /// 10 s window, 10 retries per second, 20 % of requests.
    fn default() -> Self {
        RatioBudget::new(Duration::from_secs(10), 10, 0.2).expect("default parameters are valid")
    }
}

impl RatioBudget {
    /// A budget over a `ttl` window (1 s to 60 s) granting `min_per_sec × ttl` retries plus
    /// `ratio` (0 to 1000, e.g. 0.2 = 20 %) retries per deposited request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::budget::RatioBudget;
    ///
    /// let err = RatioBudget::new(Duration::from_secs(10), 10, -0.1).unwrap_err();
    /// assert_eq!(err.field(), "ratio");
    /// ```
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f64) -> Result<Self, ConfigError> {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(60) {
            return Err(
                ConfigError::new("ttl", format!("{ttl:?}"), "must be between 1s and 60s")
                    .subject("retry budget"),
            );
        }
        if !ratio.is_finite() || !(0.0..=1000.0).contains(&ratio) {
            return Err(ConfigError::new(
                "ratio",
                ratio.to_string(),
                "must be a number in [0, 1000] (0.2 = 20% extra load)",
            )
            .subject("retry budget"));
        }
        let unit = UNIT as f64;
        let reserve = f64::from(min_per_sec) * ttl.as_secs_f64() * unit;
        Ok(RatioBudget {
            inner: Arc::new(Inner {
                ttl,
                min_per_sec,
                ratio,
                ratio_units: (ratio * unit).round() as u128,
                reserve_units: reserve.round() as u128,
                slot_nanos: (ttl.as_nanos() / u128::from(SLOTS)).max(1),
                origin: Instant::now(),
                pending: AtomicU64::new(0),
                window: Mutex::new(Window {
                    slots: [Slot::default(); SLOTS as usize],
                    last_fold: 0,
                }),
            }),
        })
    }

    /// The window length.
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::RatioBudget::default().ttl(), std::time::Duration::from_secs(10));
    /// ```
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The floor, in retries per second.
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::RatioBudget::default().min_per_sec(), 10);
    /// ```
    pub fn min_per_sec(&self) -> u32 {
        self.inner.min_per_sec
    }

    /// Retries granted per deposited request.
    ///
    /// ```
    /// assert_eq!(tower_retrier::budget::RatioBudget::default().ratio(), 0.2);
    /// ```
    pub fn ratio(&self) -> f64 {
        self.inner.ratio
    }

    /// Retries that would be granted right now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let b = tower_retrier::budget::RatioBudget::default();
    /// assert_eq!(b.remaining(), 100); // 10/s × 10 s floor, no traffic yet
    /// # }
    /// ```
    pub fn remaining(&self) -> u64 {
        let mut w = self.inner.lock();
        let now = self.inner.slot_now();
        self.inner.fold(&mut w, now);
        let (deposits, withdrawals) = w.totals(now);
        let allowed = self.inner.allowed_units(deposits) / UNIT;
        u64::try_from(allowed)
            .unwrap_or(u64::MAX)
            .saturating_sub(withdrawals)
    }
}

impl RatioBudget {
    /// Records `n` deposits at once (used by the Redis budget to keep its fallback warm from
    /// its background task, off the request path).
    #[cfg(feature = "redis")]
    pub(crate) fn deposit_n(&self, n: u64) {
        let before = self.inner.pending.fetch_add(n, Ordering::Relaxed);
        if before % FOLD_EVERY + n >= FOLD_EVERY
            && let Ok(mut w) = self.inner.window.try_lock()
        {
            let now = self.inner.slot_now();
            self.inner.fold(&mut w, now);
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // The window holds plain counters; a panic elsewhere cannot leave it inconsistent.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot_now(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos();
        u64::try_from(nanos / self.slot_nanos).unwrap_or(u64::MAX)
    }

    fn allowed_units(&self, deposits: u64) -> u128 {
        self.reserve_units + self.ratio_units * u128::from(deposits)
    }

    /// Moves pending deposits into the window, spread evenly over the slots since the last
    /// fold (older shares fall outside the window and are dropped).
    fn fold(&self, w: &mut Window, now: u64) {
        let pending = self.pending.swap(0, Ordering::Relaxed);
        let since = w.last_fold.min(now);
        w.last_fold = now;
        if pending == 0 {
            return;
        }
        let span = now - since + 1;
        let per_slot = pending / span;
        let remainder = pending % span;
        if per_slot > 0 {
            for index in now.saturating_sub(span.min(SLOTS) - 1)..now {
                w.slot(index).deposits += per_slot;
            }
        }
        w.slot(now).deposits += per_slot + remainder;
    }
}

impl Window {
    fn slot(&mut self, index: u64) -> &mut Slot {
        let s = &mut self.slots[(index % SLOTS) as usize];
        if s.index != index {
            *s = Slot {
                index,
                ..Slot::default()
            };
        }
        s
    }

    fn totals(&self, now: u64) -> (u64, u64) {
        let oldest = now.saturating_sub(SLOTS - 1);
        self.slots
            .iter()
            .filter(|s| s.index >= oldest && s.index <= now)
            .fold((0, 0), |(d, w), s| (d + s.deposits, w + s.withdrawals))
    }
}

impl Budget for RatioBudget {
    type Withdraw = Ready<bool>;

    #[inline]
    fn deposit(&self) {
        let before = self.inner.pending.fetch_add(1, Ordering::Relaxed);
        if before % FOLD_EVERY == FOLD_EVERY - 1 {
            // Bound how far deposits can be smeared; skip if a withdrawal holds the lock.
            if let Ok(mut w) = self.inner.window.try_lock() {
                let now = self.inner.slot_now();
                self.inner.fold(&mut w, now);
            }
        }
    }

    fn withdraw(&self) -> Ready<bool> {
        let inner = &*self.inner;
        let mut w = inner.lock();
        let now = inner.slot_now();
        inner.fold(&mut w, now);
        let (deposits, withdrawals) = w.totals(now);
        let granted = u128::from(withdrawals + 1) * UNIT <= inner.allowed_units(deposits);
        if granted {
            w.slot(now).withdrawals += 1;
        }
        ready(granted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &RatioBudget) -> usize {
        (0..100_000)
            .take_while(|_| b.withdraw().into_inner())
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_ratios_are_exact() {
        // tower#857: TpsBudget over-grants for 0.6. Here 100 requests at 60% give exactly 60.
        for (ratio, expected) in [(0.6, 60), (0.1, 10), (0.33, 33), (1.5, 150), (0.0, 0)] {
            let b = RatioBudget::new(Duration::from_secs(10), 0, ratio).unwrap();
            for _ in 0..100 {
                b.deposit();
            }
            assert_eq!(drain(&b), expected, "ratio {ratio}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn floor_is_min_per_sec_times_ttl() {
        let b = RatioBudget::new(Duration::from_secs(5), 3, 0.2).unwrap();
        assert_eq!(b.remaining(), 15);
        assert_eq!(drain(&b), 15);
        assert_eq!(b.remaining(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_and_withdrawals_expire_after_ttl() {
        let b = RatioBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
        for _ in 0..100 {
            b.deposit();
        }
        assert_eq!(drain(&b), 50);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(drain(&b), 0, "still inside the window");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(
            b.remaining(),
            0,
            "old deposits expired with old withdrawals"
        );
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!(drain(&b), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn spread_over_idle_time_keeps_only_the_window_share() {
        // 1,000 deposits folded 100 s after the previous fold: only the last ~10 s count.
        let b = RatioBudget::new(Duration::from_secs(10), 0, 1.0).unwrap();
        assert!(!b.withdraw().into_inner(), "no floor, no deposits yet");
        for _ in 0..1000 {
            b.deposit();
        }
        // The 1,024-deposit fold did not trigger (1000 < 1024), so all are pending.
        tokio::time::advance(Duration::from_secs(99)).await;
        let granted = drain(&b);
        assert!((90..=110).contains(&granted), "{granted}");
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_budget() {
        let a = RatioBudget::new(Duration::from_secs(10), 1, 0.0).unwrap();
        let b = a.clone();
        assert_eq!(drain(&a), 10);
        assert!(!b.withdraw().into_inner());
    }
}
