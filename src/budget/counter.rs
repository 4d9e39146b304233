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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// One thread's count, alone on its cache line.
#[derive(Debug, Default)]
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

impl Default for DepositCounter {
    fn default() -> Self {
        DepositCounter {
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
            shared: Shard::default(),
        }
    }
}

impl DepositCounter {
    /// Counts one deposit; returns this thread's running count (to space out housekeeping).
    #[inline]
    pub(crate) fn add_one(&self) -> u64 {
        match self.shards.get(thread_index()) {
            Some(own) => {
                // Only this thread writes `own.count`: no read-modify-write needed.
                let n = own.count.load(Ordering::Relaxed) + 1;
                own.count.store(n, Ordering::Relaxed);
                n
            }
            None => self.shared.count.fetch_add(1, Ordering::Relaxed) + 1,
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
        let Some(own) = self.shards.get(thread_index()) else {
            return Stamped::NoShard;
        };
        let count = own.count.load(Ordering::Relaxed);
        // Only a take writes `taken`: equal means everything this thread counted was taken,
        // so this deposit starts a new batch. A stale (smaller) `taken` only keeps the older
        // stamp, which is safe.
        let first = count == own.taken.load(Ordering::Relaxed);
        if first {
            own.stamp.store(slot_now(), Ordering::Relaxed);
        }
        let n = count + 1;
        // Release: a take that sees this count sees the stamp stored before it.
        own.count.store(n, Ordering::Release);
        if !first
            && n.is_multiple_of(STAMP_CHECK_EVERY)
            && slot_now() > own.stamp.load(Ordering::Relaxed)
        {
            Stamped::SlotMoved
        } else {
            Stamped::Counted
        }
    }

    /// Takes what [`add_one_stamped`](Self::add_one_stamped) counted since the previous take:
    /// `each(stamp, deposits)` per shard that gained some. For callers that never take
    /// concurrently (they hold a lock around every take).
    pub(crate) fn take_stamped_serialized(&self, mut each: impl FnMut(u64, u64)) {
        let used = NEXT.load(Ordering::Relaxed).min(self.shards.len());
        for s in &self.shards[..used] {
            let count = s.count.load(Ordering::Acquire);
            let taken = s.taken.load(Ordering::Relaxed);
            if count <= taken {
                continue;
            }
            // The owner restamps only after it sees `taken == count`, which needs the store
            // below: the stamp read here is the one of the batch that `count` belongs to.
            let stamp = s.stamp.load(Ordering::Relaxed);
            s.taken.store(count, Ordering::Relaxed);
            each(stamp, count - taken);
        }
    }

    /// Counts `n` deposits at once (rare: from a background task).
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn add(&self, n: u64) {
        self.shared.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Deposits counted since the previous `take`, exactly once each.
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn take(&self) -> u64 {
        self.in_use()
            .map(|s| {
                let count = s.count.load(Ordering::Relaxed);
                if count <= s.taken.load(Ordering::Relaxed) {
                    return 0; // unchanged: no locked instruction
                }
                count.saturating_sub(s.taken.fetch_max(count, Ordering::Relaxed))
            })
            .sum()
    }

    /// [`take`](Self::take) for callers that never take concurrently (they hold a lock around
    /// every take): a changed shard costs a plain store instead of a locked `fetch_max`.
    pub(crate) fn take_serialized(&self) -> u64 {
        self.in_use()
            .map(|s| {
                let count = s.count.load(Ordering::Relaxed);
                let taken = s.taken.load(Ordering::Relaxed);
                if count <= taken {
                    return 0;
                }
                s.taken.store(count, Ordering::Relaxed);
                count - taken
            })
            .sum()
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
pub(crate) const STAMP_CHECK_EVERY: u64 = 16;

/// What [`DepositCounter::add_one_stamped`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stamped {
    /// Counted, stamped.
    Counted,
    /// Counted, and this thread's batch began in an earlier slot: take it soon, so that later
    /// deposits get a later stamp.
    SlotMoved,
    /// Not counted: this thread has no shard (more threads than shards, or it is exiting).
    /// The caller records the deposit itself.
    NoShard,
}

/// Shards per counter: enough for every thread a runtime sizes by the core count, twice over.
fn shard_count() -> usize {
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

#[cfg(test)]
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
