//! The Finagle/Linkerd retry budget: retries may add at most `ratio` extra load, plus a small
//! floor so that low-traffic services can still retry.

use super::Budget;
use super::counter::{DepositCounter, Stamped};
use crate::ConfigError;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Slots the `ttl` window is divided into.
const SLOTS: u64 = 10;
/// One retry, in the fixed-point units used for exact fractional ratios.
const UNIT: u64 = 1_000_000;

/// A local retry budget with Finagle/Linkerd semantics.
///
/// The parameters mean the same in `RedisBudget::ratio` (feature `redis`). `ratio` is retries
/// granted per original *request*; an [`AdaptiveBudget`](super::AdaptiveBudget) earns
/// `per_success` per successful attempt instead. `min_per_sec` means what it means there:
/// retries per second granted without any traffic.
///
/// In any window of `ttl`, at most `min_per_sec × ttl + ratio × requests` retries are granted,
/// where `requests` counts the original requests deposited in that window. Precisely, as the
/// window is 10 slots of `ttl / 10`: whenever a retry is granted, the retries granted in the
/// last `0.9 × ttl` are at most `min_per_sec × ttl + ratio ×` the requests made in the last
/// `ttl` (checked over random traces by the property tests). The default
/// (10 s, 10 retries/s, 20 %) is the one Finagle, Linkerd and `tower` use. Fractional ratios
/// are exact (fixed-point arithmetic), unlike `tower`'s `TpsBudget` (tower#857).
///
/// `deposit` is a plain increment of a per-thread counter: no lock, no locked instruction and
/// no cache line shared with other threads; the clock is read for a thread's first deposit
/// after the window took its count, and then once per 32 deposits. Each thread's deposits
/// land in the window's slot of its oldest deposit not yet folded, never a later one, so the
/// bound holds exactly; when a thread sees the slot move on it folds, so a deposit counts as
/// older than it is by at most one slot, for at most 31 deposits of a thread (fewer retries,
/// never more). A withdrawal takes a short lock, reads the clock once and compares running
/// totals in integer arithmetic.
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
    /// `ratio` in units (≤ 10⁹).
    ratio_units: u64,
    /// `min_per_sec × ttl` in units (≤ 2.6 × 10¹⁷).
    reserve_units: u64,
    slot_nanos: u64,
    origin: Instant,
    /// Deposits not yet folded, per thread, each thread's stamped with the slot of its oldest.
    pending: DepositCounter,
    /// The slot of the latest fold: deposits of threads without a shard of their own (which
    /// share one count, so have no stamp) were all made after it, and land in it.
    last_fold: AtomicU64,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    slots: [Slot; SLOTS as usize],
    /// The newest slot seen; `deposits` and `withdrawals` total the window ending there.
    newest: u64,
    /// The slot the clock was last found in, and when that slot ends: until then, finding
    /// the current slot is one clock read and a comparison.
    cached_slot: u64,
    cached_until: Instant,
    deposits: u64,
    withdrawals: u64,
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
        let origin = Instant::now();
        let unit = UNIT as f64;
        let reserve = f64::from(min_per_sec) * ttl.as_secs_f64() * unit;
        Ok(RatioBudget {
            inner: Arc::new(Inner {
                ttl,
                min_per_sec,
                ratio,
                ratio_units: (ratio * unit).round() as u64,
                reserve_units: reserve.round() as u64,
                // `ttl` ≤ 60 s, so this fits.
                slot_nanos: (ttl.as_nanos() / u128::from(SLOTS)).max(1) as u64,
                origin,
                pending: DepositCounter::default(),
                last_fold: AtomicU64::new(0),
                window: Mutex::new(Window {
                    slots: [Slot::default(); SLOTS as usize],
                    newest: 0,
                    cached_slot: 0,
                    cached_until: origin,
                    deposits: 0,
                    withdrawals: 0,
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
        let now = self.inner.slot_now(&mut w);
        self.inner.fold(&mut w, now);
        let i = &*self.inner;
        let allowed =
            u128::from(i.reserve_units) + u128::from(i.ratio_units) * u128::from(w.deposits);
        u64::try_from(allowed / u128::from(UNIT))
            .unwrap_or(u64::MAX)
            .saturating_sub(w.withdrawals)
    }
}

impl RatioBudget {
    /// Records `n` deposits at once (used by the Redis budget to keep its fallback warm from
    /// its background task, off the request path).
    #[cfg(feature = "redis")]
    pub(crate) fn deposit_n(&self, n: u64) {
        self.inner.deposit_locked(n);
    }
}

impl Inner {
    /// Folds a thread's batch that began in an earlier slot, so its next deposits get a new
    /// stamp; skipped if a withdrawal holds the lock (the thread looks again later).
    #[cold]
    fn fold_now(&self) {
        if let Ok(mut w) = self.window.try_lock() {
            let now = self.slot_now(&mut w);
            self.fold(&mut w, now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // The window holds plain counters; a panic elsewhere cannot leave it inconsistent.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A deposit of a thread without a shard of its own (more threads than shards): counted
    /// in the count such threads share, which lands in the slot of the fold before it. The
    /// thread reads the clock (these threads are the exception) and folds when the slot has
    /// moved on since, so such a deposit counts as older than it is by at most one slot.
    #[cold]
    fn deposit_unsharded(&self) {
        self.pending.add_unsharded();
        if self.slot_at(Instant::now()) > self.last_fold.load(Ordering::Relaxed) {
            self.fold_now();
        }
    }

    /// A batch of deposits from a background task: straight into the current slot, under
    /// the lock.
    #[cfg(feature = "redis")]
    fn deposit_locked(&self, n: u64) {
        let mut w = self.lock();
        let now = self.slot_now(&mut w);
        self.fold(&mut w, now);
        w.add_deposits(now, n);
    }

    /// The slot `now` falls in.
    fn slot_at(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.origin);
        let nanos = d
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()));
        nanos / self.slot_nanos
    }

    /// The current slot: the cached one until it ends, else computed (once per slot).
    fn slot_now(&self, w: &mut Window) -> u64 {
        let now = Instant::now();
        if now < w.cached_until {
            return w.cached_slot;
        }
        let slot = self.slot_at(now);
        let end = slot.saturating_add(1).saturating_mul(self.slot_nanos);
        w.cached_slot = slot;
        w.cached_until = self
            .origin
            .checked_add(Duration::from_nanos(end))
            .unwrap_or(now);
        slot
    }

    /// Whether `retries` retries fit a window that saw `deposits` requests: exact
    /// fixed-point arithmetic, in 64 bits unless the products overflow.
    fn allows(&self, retries: u64, deposits: u64) -> bool {
        let allowed = self
            .ratio_units
            .checked_mul(deposits)
            .and_then(|r| r.checked_add(self.reserve_units));
        match (retries.checked_mul(UNIT), allowed) {
            (Some(needed), Some(allowed)) => needed <= allowed,
            _ => {
                u128::from(retries) * u128::from(UNIT)
                    <= u128::from(self.reserve_units)
                        + u128::from(self.ratio_units) * u128::from(deposits)
            }
        }
    }

    /// Moves the window to `now`, then moves pending deposits into it: each thread's batch
    /// into the slot of its oldest deposit (a batch that began before the window is dropped:
    /// those requests are older than `ttl`, or at least some of them are, and counting them
    /// later than they were made is what the bound forbids).
    fn fold(&self, w: &mut Window, now: u64) {
        let now = w.advance(now);
        self.pending
            .take_stamped_serialized(|stamp, n| w.add_deposits(stamp.min(now), n));
        let unsharded = self.pending.take_unsharded_serialized();
        let previous = self.last_fold.load(Ordering::Relaxed);
        if unsharded > 0 {
            w.add_deposits(previous.min(now), unsharded);
        }
        if now > previous {
            self.last_fold.store(now, Ordering::Relaxed);
        }
    }
}

impl Window {
    /// Makes `now` the newest slot (time never goes back: an older `now` counts as the
    /// newest) and recomputes the totals when it moved: at most once per slot.
    fn advance(&mut self, now: u64) -> u64 {
        if now > self.newest {
            self.newest = now;
            let oldest = now.saturating_sub(SLOTS - 1);
            let live = self.slots.iter().filter(|s| s.index >= oldest);
            (self.deposits, self.withdrawals) =
                live.fold((0, 0), |(d, w), s| (d + s.deposits, w + s.withdrawals));
        }
        self.newest
    }

    /// The slot for `index`, emptied first if it still holds an expired slot's counts (which
    /// the totals no longer include).
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

    /// Adds deposits to slot `index`, or drops them if that slot has left the window.
    fn add_deposits(&mut self, index: u64, n: u64) {
        if index + SLOTS <= self.newest {
            return;
        }
        self.slot(index).deposits += n;
        self.deposits += n;
    }

    fn add_withdrawal(&mut self, index: u64) {
        self.slot(index).withdrawals += 1;
        self.withdrawals += 1;
    }
}

impl Budget for RatioBudget {
    type Withdraw = Ready<bool>;

    #[inline]
    fn deposit(&self) {
        let inner = &*self.inner;
        match inner
            .pending
            .add_one_stamped(|| inner.slot_at(Instant::now()))
        {
            Stamped::Counted => {}
            Stamped::SlotMoved => inner.fold_now(),
            Stamped::NoShard => inner.deposit_unsharded(),
        }
    }

    fn withdraw_now(&self) -> Option<bool> {
        Some(self.withdraw().into_inner())
    }

    fn withdraw(&self) -> Ready<bool> {
        let inner = &*self.inner;
        let mut w = inner.lock();
        let now = inner.slot_now(&mut w);
        inner.fold(&mut w, now);
        let granted = inner.allows(w.withdrawals + 1, w.deposits);
        if granted {
            w.add_withdrawal(now);
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

    fn drain_all(b: &RatioBudget) -> usize {
        std::iter::repeat_with(|| b.withdraw().into_inner())
            .take_while(|granted| *granted)
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
    async fn requests_older_than_the_window_pay_for_nothing() {
        // 1,000 requests 15 s ago (ttl 10 s, no floor), now all failing: the bound is 0.
        // Spreading the unfolded deposits over the time since the previous fold granted 125.
        let b = RatioBudget::new(Duration::from_secs(10), 0, 0.2).unwrap();
        assert!(!b.withdraw().into_inner());
        for _ in 0..1000 {
            b.deposit();
        }
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(drain(&b), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_after_idle_time_pays_in_full() {
        // After 100 s idle, 1,000 requests in the last second: 200 retries at 20 %.
        // Spreading them over the 100 s kept only 36.
        let b = RatioBudget::new(Duration::from_secs(10), 0, 0.2).unwrap();
        assert!(!b.withdraw().into_inner());
        tokio::time::advance(Duration::from_secs(99)).await;
        for _ in 0..1000 {
            b.deposit();
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(drain(&b), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_traffic_folded_late_counts_in_its_own_slots() {
        // 100 requests a second for 20 s with no retry asking (no fold by withdrawal): only
        // the last window's requests count, within one slot's worth plus 31 (the clock is
        // read every 32 deposits), and never more than were made in the last 10 s.
        let b = RatioBudget::new(Duration::from_secs(10), 0, 1.0).unwrap();
        for _ in 0..2000 {
            b.deposit();
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        let granted = drain(&b) as u64;
        assert!((900 - 31..=1000).contains(&granted), "{granted}");
    }

    #[test]
    fn deposits_from_many_threads_are_counted_exactly() {
        // Per-thread counters folded into one window: 8 threads × 100,000 deposits at 50 %
        // must grant exactly 400,000 retries, not one more or less.
        let b = RatioBudget::new(Duration::from_secs(60), 0, 0.5).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..100_000).for_each(|_| b.deposit()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(b.remaining(), 400_000);
        assert_eq!(drain_all(&b), 400_000);
    }

    #[test]
    fn threads_beyond_the_shards_are_counted_exactly() {
        // More threads alive at once than the counter has shards: the extra ones share one
        // count (and read the clock), and every deposit is still counted once.
        let threads = crate::budget::counter::shard_count() + 4;
        let b = RatioBudget::new(Duration::from_secs(60), 0, 1.0).unwrap();
        let all_in = Arc::new(std::sync::Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (b, all_in) = (b.clone(), all_in.clone());
                std::thread::spawn(move || {
                    all_in.wait();
                    (0..1000).for_each(|_| b.deposit());
                    all_in.wait();
                })
            })
            .collect();
        handles.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(b.remaining(), threads as u64 * 1000);
    }

    #[test]
    fn the_grant_check_is_exact_past_64_bits() {
        let b = RatioBudget::new(Duration::from_secs(60), u32::MAX, 1000.0).unwrap();
        let i = &*b.inner;
        for (retries, deposits) in [(u64::MAX / 2, u64::MAX / 4), (1 << 40, 1 << 34), (5, 0)] {
            let exact = u128::from(retries) * u128::from(UNIT)
                <= u128::from(i.reserve_units) + u128::from(i.ratio_units) * u128::from(deposits);
            assert_eq!(i.allows(retries, deposits), exact, "{retries} {deposits}");
        }
        // Just at the limit and one over, in plain 64-bit range.
        let floor = u64::from(u32::MAX) * 60;
        assert!(i.allows(floor + 1000, 1));
        assert!(!i.allows(floor + 1001, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_budget() {
        let a = RatioBudget::new(Duration::from_secs(10), 1, 0.0).unwrap();
        let b = a.clone();
        assert_eq!(drain(&a), 10);
        assert!(!b.withdraw().into_inner());
    }
}
