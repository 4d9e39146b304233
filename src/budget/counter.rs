//! A deposit counter that costs no locked instruction and no shared cache line per deposit,
//! yet is read exactly.
//!
//! Each thread that deposits gets a small process-wide index, and each counter one
//! cache-line-sized shard per index: the shard's count is written by that thread alone, so a
//! deposit is a plain load and store (no `lock` prefix) on a line no other thread writes.
//! [`take`](DepositCounter::take) sums what every shard gained since the previous take.
//! Counts only grow and each shard remembers how much of it was taken (`fetch_max`, so
//! concurrent takes never count a deposit twice), which makes the total exact. Threads beyond
//! the shards, and a thread whose index was already handed back at its exit, share one
//! ordinary atomic counter.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

// The shards' atomics are loom's in a loom model (`RUSTFLAGS="--cfg loom"`, see the
// `loom_models` tests below); the thread-index bookkeeping stays std (it is behind a mutex).
#[cfg(loom)]
use loom::sync::atomic::AtomicU64;
#[cfg(not(loom))]
use std::sync::atomic::AtomicU64;

/// One thread's count, alone on its cache line.
#[derive(Debug)]
#[repr(align(64))]
struct Shard {
    /// Deposits ever made here; written only by the thread owning this index.
    count: AtomicU64,
    /// How much of `count` has been taken.
    taken: AtomicU64,
    /// For [`add_one_stamped`](DepositCounter::add_one_stamped): the time slot of the oldest
    /// deposit not yet taken (read by the owning thread before it counts that deposit, so
    /// never later than the deposit).
    stamp: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct DepositCounter {
    shards: Box<[Shard]>,
    /// Threads without a shard of their own.
    shared: Shard,
}

impl Shard {
    fn new() -> Self {
        Shard {
            count: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            stamp: AtomicU64::new(0),
        }
    }

    /// One deposit by the thread that owns this shard (the only writer of `count`): no
    /// read-modify-write needed. Returns the running count.
    #[inline]
    fn add_owned(&self) -> u64 {
        let n = self.count.load(Ordering::Relaxed) + 1;
        self.count.store(n, Ordering::Relaxed);
        n
    }

    /// `n` deposits by any thread.
    #[inline]
    fn add_shared(&self, n: u64) -> u64 {
        self.count.fetch_add(n, Ordering::Relaxed) + n
    }

    /// What was added since the previous take, exactly once even when takes race
    /// (`fetch_max`: a concurrent take that already moved `taken` past a count gets 0 of it).
    #[cfg(any(test, loom, feature = "redis"))]
    fn take(&self) -> u64 {
        let count = self.count.load(Ordering::Relaxed);
        if count <= self.taken.load(Ordering::Relaxed) {
            return 0; // unchanged: no locked instruction
        }
        count.saturating_sub(self.taken.fetch_max(count, Ordering::Relaxed))
    }

    /// [`take`](Self::take) for callers that never take concurrently.
    fn take_serialized(&self) -> u64 {
        let count = self.count.load(Ordering::Relaxed);
        let taken = self.taken.load(Ordering::Relaxed);
        if count <= taken {
            return 0;
        }
        self.taken.store(count, Ordering::Relaxed);
        count - taken
    }

    /// One deposit by the owning thread, stamped (see
    /// [`DepositCounter::add_one_stamped`]). The common case (a batch under way, no clock
    /// check due) is two loads, a comparison and a store; the rest is out of line.
    #[inline]
    fn add_owned_stamped(&self, slot_now: impl Fn() -> u64) -> Stamped {
        let count = self.count.load(Ordering::Relaxed);
        let taken = self.taken.load(Ordering::Relaxed);
        let n = count + 1;
        if count != taken && !n.is_multiple_of(STAMP_CHECK_EVERY) {
            // Release: a take that sees this count sees the stamp stored before it.
            self.count.store(n, Ordering::Release);
            return Stamped::Counted;
        }
        self.add_owned_stamped_slow(count, taken, slot_now)
    }

    #[cold]
    #[inline(never)]
    fn add_owned_stamped_slow(
        &self,
        count: u64,
        taken: u64,
        slot_now: impl Fn() -> u64,
    ) -> Stamped {
        // Only a take writes `taken`: equal means everything this thread counted was taken,
        // so this deposit starts a new batch. A stale (smaller) `taken` only keeps the older
        // stamp, which is safe.
        let first = count == taken;
        if first {
            self.stamp.store(slot_now(), Ordering::Relaxed);
        }
        let n = count + 1;
        self.count.store(n, Ordering::Release);
        if !first && slot_now() > self.stamp.load(Ordering::Relaxed) {
            Stamped::SlotMoved
        } else {
            Stamped::Counted
        }
    }

    /// The batch added by [`add_owned_stamped`](Self::add_owned_stamped) since the previous
    /// take, with its stamp; for callers that never take concurrently.
    fn take_stamped_serialized(&self) -> Option<(u64, u64)> {
        let count = self.count.load(Ordering::Acquire);
        let taken = self.taken.load(Ordering::Relaxed);
        if count <= taken {
            return None;
        }
        // The owner restamps only after it sees `taken == count`, which needs the store
        // below: the stamp read here is the one of the batch that `count` belongs to.
        let stamp = self.stamp.load(Ordering::Relaxed);
        self.taken.store(count, Ordering::Relaxed);
        Some((stamp, count - taken))
    }
}

impl Default for DepositCounter {
    fn default() -> Self {
        DepositCounter {
            shards: (0..shard_count()).map(|_| Shard::new()).collect(),
            shared: Shard::new(),
        }
    }
}

impl DepositCounter {
    /// Counts one deposit; returns this thread's running count (to space out housekeeping).
    #[inline]
    pub(crate) fn add_one(&self) -> u64 {
        match self.shards.get(thread_index()) {
            Some(own) => own.add_owned(),
            None => self.shared.add_shared(1),
        }
    }

    /// Counts one deposit for a budget that needs to know when deposits were made, still
    /// without a clock read per deposit: `slot_now` (the current time slot) is called for the
    /// first deposit after this thread's deposits were all taken (its stamp), and once every
    /// [`STAMP_CHECK_EVERY`] deposits to see whether the slot moved on.
    ///
    /// Every deposit is taken with a stamp no later than its own slot, so a window that
    /// expires deposits by stamp never counts one longer than it should. A deposit may count
    /// as older than it is: by at most `STAMP_CHECK_EVERY - 1` deposits of a thread per slot
    /// boundary (fewer retries, never more).
    #[inline]
    pub(crate) fn add_one_stamped(&self, slot_now: impl Fn() -> u64) -> Stamped {
        match self.shards.get(thread_index()) {
            Some(own) => own.add_owned_stamped(slot_now),
            None => Stamped::NoShard,
        }
    }

    /// Takes what [`add_one_stamped`](Self::add_one_stamped) counted since the previous take:
    /// `each(stamp, deposits)` per shard that gained some. For callers that never take
    /// concurrently (they hold a lock around every take).
    pub(crate) fn take_stamped_serialized(&self, mut each: impl FnMut(u64, u64)) {
        let used = NEXT.load(Ordering::Relaxed).min(self.shards.len());
        for s in &self.shards[..used] {
            if let Some((stamp, n)) = s.take_stamped_serialized() {
                each(stamp, n);
            }
        }
    }

    /// Counts `n` deposits at once (rare: from a background task).
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn add(&self, n: u64) {
        self.shared.add_shared(n);
    }

    /// Counts one deposit of a thread without a shard (see [`Stamped::NoShard`]), in the
    /// counter all such threads share; taken with
    /// [`take_unsharded_serialized`](Self::take_unsharded_serialized).
    pub(crate) fn add_unsharded(&self) {
        self.shared.add_shared(1);
    }

    /// What [`add_unsharded`](Self::add_unsharded) counted since the previous take; for
    /// callers that never take concurrently.
    pub(crate) fn take_unsharded_serialized(&self) -> u64 {
        self.shared.take_serialized()
    }

    /// Deposits counted since the previous `take`, exactly once each.
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn take(&self) -> u64 {
        self.in_use().map(Shard::take).sum()
    }

    /// [`take`](Self::take) for callers that never take concurrently (they hold a lock around
    /// every take): a changed shard costs a plain store instead of a locked `fetch_max`.
    pub(crate) fn take_serialized(&self) -> u64 {
        self.in_use().map(Shard::take_serialized).sum()
    }

    /// The shards any thread may have written, and the shared one. Shards past the highest
    /// index ever handed out were never written.
    fn in_use(&self) -> impl Iterator<Item = &Shard> {
        let used = NEXT.load(Ordering::Relaxed).min(self.shards.len());
        self.shards[..used]
            .iter()
            .chain(std::iter::once(&self.shared))
    }
}

/// How often [`DepositCounter::add_one_stamped`] reads the clock after a batch's first
/// deposit: once per this many deposits of a thread.
pub(crate) const STAMP_CHECK_EVERY: u64 = 32;

/// What [`DepositCounter::add_one_stamped`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stamped {
    /// Counted, stamped.
    Counted,
    /// Counted, and this thread's batch began in an earlier slot: take it soon, so that later
    /// deposits get a later stamp.
    SlotMoved,
    /// Not counted: this thread has no shard (more threads than shards, or it is exiting).
    /// The caller records the deposit itself (for instance with
    /// [`DepositCounter::add_unsharded`]).
    NoShard,
}

/// Shards per counter: enough for every thread a runtime sizes by the core count, twice over.
pub(crate) fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        (cores * 2).clamp(8, 256)
    })
}

/// Indexes handed back by threads that exited, for reuse.
/// The smallest first, so that indexes (and the shards they use) stay dense.
static FREE: Mutex<BinaryHeap<Reverse<usize>>> = Mutex::new(BinaryHeap::new());
/// The next index never handed out.
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// This thread has not asked for an index yet.
const UNASSIGNED: usize = usize::MAX;
/// This thread has no shard (it is exiting): it counts in the shared counter.
const NONE: usize = usize::MAX - 1;

thread_local! {
    /// This thread's index. No destructor, so it stays readable while the thread's other
    /// locals are torn down.
    static INDEX: Cell<usize> = const { Cell::new(UNASSIGNED) };
    /// Hands the index back when the thread exits.
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let index = INDEX.with(|i| i.replace(NONE));
        if index < NONE {
            // The mutex orders this thread's last store before the next owner's first load.
            FREE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Reverse(index));
        }
    }
}

#[inline]
fn thread_index() -> usize {
    match INDEX.with(Cell::get) {
        UNASSIGNED => assign_index(),
        index => index,
    }
}

#[cold]
fn assign_index() -> usize {
    // Touching `RELEASE` registers its destructor; a thread already tearing its locals down
    // cannot, and never takes an index.
    let index = match RELEASE.try_with(|_| ()) {
        Ok(()) => {
            let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
            reused.map_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed).min(NONE), |r| r.0)
        }
        Err(_) => NONE,
    };
    INDEX.with(|i| i.set(index));
    index
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn takes_every_deposit_exactly_once_across_threads_and_reused_indexes() {
        let counter = Arc::new(DepositCounter::default());
        let mut total = 0;
        // Three waves of more threads than shards: indexes are handed back and reused.
        for _ in 0..3 {
            let threads: Vec<_> = (0..shard_count() + 3)
                .map(|_| {
                    let c = Arc::clone(&counter);
                    std::thread::spawn(move || {
                        (0..1000).for_each(|_| {
                            c.add_one();
                        })
                    })
                })
                .collect();
            // Concurrent takes while the threads run.
            for _ in 0..50 {
                total += counter.take();
            }
            threads.into_iter().for_each(|t| t.join().unwrap());
        }
        counter.add(7);
        total += counter.take();
        assert_eq!(total, 3 * (shard_count() as u64 + 3) * 1000 + 7);
        assert_eq!(counter.take(), 0);
    }
}

/// Loom models of the shard protocol (every interleaving and every memory-ordering outcome
/// loom explores): takes never lose or double-count a deposit, racing or serialized, and a
/// stamped batch is never stamped later than its first deposit. Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p tower-retrier --lib --release loom_models`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn racing_takes_count_every_deposit_exactly_once() {
        loom::model(|| {
            let owned = Arc::new(Shard::new());
            let shared = Arc::new(Shard::new());
            let owner = {
                let (o, s) = (owned.clone(), shared.clone());
                thread::spawn(move || {
                    o.add_owned();
                    s.add_shared(1);
                    o.add_owned();
                })
            };
            let taker = {
                let (o, s) = (owned.clone(), shared.clone());
                thread::spawn(move || o.take() + s.take())
            };
            let mut total = owned.take() + shared.take();
            owner.join().unwrap();
            total += taker.join().unwrap();
            total += owned.take() + shared.take();
            assert_eq!(total, 3);
        });
    }

    #[test]
    fn a_serialized_take_racing_the_owner_counts_every_deposit_once() {
        loom::model(|| {
            let shard = Arc::new(Shard::new());
            let owner = {
                let s = shard.clone();
                thread::spawn(move || {
                    for _ in 0..3 {
                        s.add_owned();
                    }
                })
            };
            let taker = {
                let s = shard.clone();
                thread::spawn(move || s.take_serialized())
            };
            owner.join().unwrap();
            let first = taker.join().unwrap();
            assert_eq!(first + shard.take_serialized(), 3);
        });
    }

    #[test]
    fn a_stamped_batch_is_never_stamped_later_than_its_deposits() {
        loom::model(|| {
            let shard = Arc::new(Shard::new());
            // Deposit i is made in slot i + 1 (the clock moves between deposits).
            let owner = {
                let s = shard.clone();
                thread::spawn(move || {
                    for slot in 1..=3u64 {
                        s.add_owned_stamped(|| slot);
                    }
                })
            };
            let taker = {
                let s = shard.clone();
                thread::spawn(move || {
                    let mut batches = Vec::new();
                    batches.extend(s.take_stamped_serialized());
                    batches.extend(s.take_stamped_serialized());
                    batches
                })
            };
            owner.join().unwrap();
            let mut batches = taker.join().unwrap();
            batches.extend(shard.take_stamped_serialized());
            let mut first_deposit = 0u64;
            for (stamp, n) in batches {
                // The batch holds deposits first_deposit .. first_deposit + n, made in slots
                // first_deposit + 1 and later.
                assert!(
                    stamp <= first_deposit + 1,
                    "stamp {stamp} for deposit {first_deposit}"
                );
                first_deposit += n;
            }
            assert_eq!(first_deposit, 3);
        });
    }
}
