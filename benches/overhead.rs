//! Success-path overhead of the retry layer, side by side with the bare service and
//! `tower::retry`, in one run.
//!
//! ```text
//! cargo bench --bench overhead            # criterion statistics, then the summary table
//! cargo bench --bench overhead -- --quick # faster, noisier
//! ```
//!
//! Every case wraps the same inner service (a `Ready` future: the floor) and is polled by hand
//! with a no-op waker, so no runtime cost is mixed in. The summary table at the end gives
//! ns/call (median of several batches), the overhead over the bare service, and allocations
//! per call (counted by a global allocator wrapper).

use criterion::Criterion;
use std::alloc::{GlobalAlloc, Layout, System};
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::util::rng::HasherRng;
use tower::{Layer, Service};
use tower_retrier::budget::Unlimited;
use tower_retrier::{RetryConfig, RetryLayer};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The inner service: answers at once, allocates nothing.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// A `tower::retry` policy equivalent to our defaults: 3 attempts in total, exponential
/// backoff with jitter, and optionally `TpsBudget` (deposit per successful call, as tower's
/// docs suggest; withdraw per retry).
#[derive(Clone)]
struct TowerPolicy {
    retries_left: usize,
    backoff: ExponentialBackoff<HasherRng>,
    budget: Option<Arc<TpsBudget>>,
}

impl TowerPolicy {
    fn new(with_budget: bool) -> Self {
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_millis(100),
            Duration::from_secs(10),
            0.1,
            HasherRng::default(),
        )
        .expect("valid backoff");
        TowerPolicy {
            retries_left: 2,
            backoff: maker.make_backoff(),
            budget: with_budget.then(|| Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2))),
        }
    }
}

impl<E> tower::retry::Policy<u64, u64, E> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                if let Some(b) = &self.budget {
                    b.deposit();
                }
                None
            }
            Err(_) => {
                if self.retries_left == 0 || self.budget.as_ref().is_some_and(|b| !b.withdraw()) {
                    return None;
                }
                self.retries_left -= 1;
                Some(self.backoff.next_backoff())
            }
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// One call through `svc`, polled to completion by hand.
#[inline]
fn call_once<S>(svc: &mut S, req: u64) -> u64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(())) = svc.poll_ready(&mut cx) else {
        unreachable!("always ready")
    };
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(v)) => v,
        _ => unreachable!("ready inner service"),
    }
}

type Case = (&'static str, Box<dyn FnMut(u64) -> u64>);

fn boxed<S>(mut svc: S) -> Box<dyn FnMut(u64) -> u64>
where
    S: Service<u64, Response = u64> + 'static,
    S::Error: std::fmt::Debug,
{
    Box::new(move |i| call_once(&mut svc, i))
}

fn cases() -> Vec<Case> {
    let ours = RetryLayer::new(RetryConfig::default());
    vec![
        ("bare service", boxed(Echo)),
        (
            "tower::retry + TpsBudget",
            boxed(tower::retry::RetryLayer::new(TowerPolicy::new(true)).layer(Echo)),
        ),
        (
            "tower::retry, no budget",
            boxed(tower::retry::RetryLayer::new(TowerPolicy::new(false)).layer(Echo)),
        ),
        (
            "tower-retrier defaults (RatioBudget)",
            boxed(ours.layer(Echo)),
        ),
        (
            "tower-retrier, no budget",
            boxed(
                RetryLayer::new(RetryConfig::default())
                    .with_budget(Unlimited::new())
                    .layer(Echo),
            ),
        ),
    ]
}

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("success_path");
    for (name, mut f) in cases() {
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(f(black_box(i)))
            })
        });
    }
    group.finish();
}

/// Median ns/call over `batches` batches of `n` calls, and allocations per call.
fn measure(f: &mut dyn FnMut(u64) -> u64, n: u64, batches: usize) -> (f64, f64) {
    for i in 0..n / 10 {
        black_box(f(i));
    }
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            for i in 0..n {
                black_box(f(black_box(i)));
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..n {
        black_box(f(i));
    }
    let allocs = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / n as f64;
    (samples[batches / 2], allocs)
}

fn summary(quick: bool) {
    let (n, batches) = if quick { (200_000, 5) } else { (2_000_000, 9) };
    let rows: Vec<(&str, f64, f64)> = cases()
        .into_iter()
        .map(|(name, mut f)| {
            let (ns, allocs) = measure(&mut *f, n, batches);
            (name, ns, allocs)
        })
        .collect();
    let bare = rows[0].1;
    let tower_budget_overhead = rows[1].1 - bare;
    println!("\nsuccess-path overhead (median of {batches} × {n} calls)");
    println!(
        "{:<40} {:>9} {:>14} {:>22} {:>12}",
        "case", "ns/call", "over bare", "vs tower+budget ovh", "allocs/call"
    );
    for (name, ns, allocs) in &rows {
        let overhead = ns - bare;
        println!(
            "{name:<40} {ns:>9.1} {overhead:>11.1} ns {:>21.2}x {allocs:>12.2}",
            overhead / tower_budget_overhead
        );
    }
    let ours = rows[3].1 - bare;
    println!(
        "\ntarget: our overhead with the local budget ≤ 1/4 of tower's budgeted overhead: {:.1} ns vs {:.1} ns → {}",
        ours,
        tower_budget_overhead / 4.0,
        if ours <= tower_budget_overhead / 4.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    summary(quick);
}
