//! The local budgets under contention: 8 tasks on 8 worker threads depositing, withdrawing
//! and refunding at once must give exactly the counts a single thread would. (Deposits and
//! successes are counted per thread, without a locked instruction, and summed when a retry
//! asks: these tests are what proves the sums exact.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower_retrier::budget::{AdaptiveBudget, Budget, RatioBudget, TokenBucket};

const THREADS: u64 = 8;

/// Runs `work(thread)` on `THREADS` tasks at once, released together by a barrier so that
/// they really overlap, and waits for all of them.
async fn on_every_thread<F>(work: F)
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let start = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let tasks: Vec<_> = (0..THREADS)
        .map(|t| {
            let (work, start) = (work.clone(), start.clone());
            // Blocking tasks: each gets its own thread, and the barrier needs them all.
            tokio::task::spawn_blocking(move || {
                start.wait();
                work(t);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Each of the 8 threads `earn`s `per_thread` times and asks for a retry after every third,
/// then what is left is drained from 8 threads at once: the retries granted are exactly
/// `allowed`, never one more, and nothing earned is lost on the way (`remaining`).
async fn earn_racing_withdrawals_then_drain<B>(
    budget: B,
    remaining: fn(&B) -> u64,
    earn: fn(&B),
    per_thread: u64,
    allowed: u64,
) where
    B: Budget<Withdraw = std::future::Ready<bool>> + Clone + Send + Sync + 'static,
{
    let granted = Arc::new(AtomicU64::new(0));
    let (b, g) = (budget.clone(), granted.clone());
    on_every_thread(move |_| {
        for i in 0..per_thread {
            earn(&b);
            if i % 3 == 0 && b.withdraw().into_inner() {
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    let during = granted.load(Ordering::Relaxed);
    assert!(during <= allowed, "{during} granted for {allowed} earned");
    assert_eq!(remaining(&budget), allowed - during, "nothing earned lost");
    let (b, g) = (budget.clone(), granted.clone());
    on_every_thread(move |_| {
        while b.withdraw().into_inner() {
            g.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
    assert_eq!(
        granted.load(Ordering::Relaxed),
        allowed,
        "exactly what was earned"
    );
    assert_eq!(remaining(&budget), 0);
}

/// Deposits racing withdrawals (and the fold every 1,024 deposits racing both): every deposit
/// counts once, and the retries granted are exactly `ratio × deposits`, never one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ratio_budget_is_exact_under_eight_threads() {
    // A 60 s window: the test runs well inside it, so nothing expires while it runs.
    let budget = RatioBudget::new(Duration::from_secs(60), 0, 0.25).unwrap();
    const DEPOSITS_PER_THREAD: u64 = 50_000;
    let allowed = THREADS * DEPOSITS_PER_THREAD / 4; // ratio 0.25, no floor
    earn_racing_withdrawals_then_drain(
        budget,
        RatioBudget::remaining,
        RatioBudget::deposit,
        DEPOSITS_PER_THREAD,
        allowed,
    )
    .await;
}

/// Withdrawals racing refunds: the bucket ends exactly where a single thread would leave it,
/// retries stop exactly at half, and refunds cap exactly at the maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn token_bucket_is_exact_under_eight_threads() {
    let bucket = TokenBucket::new(1000, 0.5).unwrap();

    // Each retry followed by two successes (2 × 0.5 = 1 token back): a wash, under contention.
    let b = bucket.clone();
    on_every_thread(move |_| {
        for _ in 0..10_000 {
            assert!(b.withdraw().into_inner(), "far above half");
            b.record_success();
            b.record_success();
        }
    })
    .await;
    assert_eq!(bucket.tokens(), 1000.0);

    // 8 × 100 withdrawals from 1000: granted while the bucket stays above 500 after the
    // withdrawal, i.e. exactly 499 grants (1000 → 501); the bucket ends at 200.
    let granted = Arc::new(AtomicU64::new(0));
    let (b, g) = (bucket.clone(), granted.clone());
    on_every_thread(move |_| {
        for _ in 0..100 {
            if b.withdraw().into_inner() {
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    assert_eq!(granted.load(Ordering::Relaxed), 499);
    assert_eq!(bucket.tokens(), 200.0);

    // 8 × 300 successes × 0.5 = 1200 tokens offered to a bucket missing 800: capped at 1000.
    let b = bucket.clone();
    on_every_thread(move |_| {
        for _ in 0..300 {
            b.record_success();
        }
    })
    .await;
    assert_eq!(bucket.tokens(), 1000.0);
}

/// Successes racing withdrawals: each thread counts its successes in its own counter, summed
/// under the stock's lock when a retry asks. 8 threads × 100,000 successes at ratio 0.25 pay
/// for exactly 200,000 retries, never one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn adaptive_budget_is_exact_under_eight_threads() {
    // No floor (no time refill) and a cap above every credit, so the count is all there is.
    let budget = AdaptiveBudget::new(1_000_000, 0.25, 0).unwrap();
    while budget.withdraw().into_inner() {}
    const SUCCESSES_PER_THREAD: u64 = 100_000;
    let allowed = THREADS * SUCCESSES_PER_THREAD / 4;
    earn_racing_withdrawals_then_drain(
        budget,
        AdaptiveBudget::remaining,
        AdaptiveBudget::record_success,
        SUCCESSES_PER_THREAD,
        allowed,
    )
    .await;
}
