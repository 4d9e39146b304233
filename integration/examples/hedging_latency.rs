//! The hedging latency benchmark, in paused tokio time (exact, deterministic, seeded).
//!
//! An inner service whose latency is 10 ms for 98 % of attempts and 1 s for 2 %
//! (independent per attempt), 10,000 calls arriving one per millisecond. For each stack it
//! prints p50 / p99 / p99.9 call latency and the extra load (attempts sent beyond one per
//! call). Then a total slowdown (every attempt takes 1 s): the budget caps the hedges.
//!
//! ```text
//! cargo run --release -p tower-retrier-integration --example hedging_latency
//! ```

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_retrier::budget::{RatioBudget, Unlimited};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::{RetryConfig, RetryLayer};

const CALLS: u64 = 10_000;
const ARRIVAL: Duration = Duration::from_millis(1);
const FAST: Duration = Duration::from_millis(10);
const SLOW: Duration = Duration::from_secs(1);
const SEED: u64 = 0x5eed_2026;

/// The inner service: each attempt draws its latency from a seeded generator (splitmix64),
/// slow with probability `slow_per_mille / 1000`; `attempts` counts every attempt.
#[derive(Clone)]
struct Inner {
    state: Arc<AtomicU64>,
    attempts: Arc<AtomicU64>,
    slow_per_mille: u64,
}

impl Inner {
    fn new(slow_per_mille: u64) -> Self {
        Inner {
            state: Arc::new(AtomicU64::new(SEED)),
            attempts: Arc::default(),
            slow_per_mille,
        }
    }

    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn service(
        &self,
    ) -> impl Service<u64, Response = (), Error = Infallible, Future: Send> + Clone + Send + 'static
    {
        let me = self.clone();
        service_fn(move |_: u64| {
            me.attempts.fetch_add(1, Ordering::Relaxed);
            let slow = me.next() % 1000 < me.slow_per_mille;
            async move {
                tokio::time::sleep(if slow { SLOW } else { FAST }).await;
                Ok::<_, Infallible>(())
            }
        })
    }
}

struct Row {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    extra_load: f64,
}

/// Runs `CALLS` calls through the stack `make` builds on the inner service, one per
/// millisecond, in a fresh paused runtime.
fn run<S, E>(
    name: &'static str,
    slow_per_mille: u64,
    make: impl FnOnce(Box<dyn FnOnce() -> tower::util::BoxCloneSyncService<u64, (), Infallible>>) -> S,
) -> Row
where
    S: Service<u64, Response = (), Error = E> + Clone + Send + 'static,
    S::Future: Send,
    E: std::fmt::Debug + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let inner = Inner::new(slow_per_mille);
        let for_stack = inner.clone();
        let svc = make(Box::new(move || {
            tower::util::BoxCloneSyncService::new(for_stack.service())
        }));
        let mut calls = Vec::with_capacity(CALLS as usize);
        for i in 0..CALLS {
            let svc = svc.clone();
            calls.push(tokio::spawn(async move {
                let start = Instant::now();
                svc.oneshot(i).await.expect("no call fails");
                start.elapsed()
            }));
            tokio::time::sleep(ARRIVAL).await;
        }
        let mut latencies = Vec::with_capacity(calls.len());
        for c in calls {
            latencies.push(c.await.unwrap());
        }
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        let attempts = inner.attempts.load(Ordering::Relaxed);
        Row {
            name,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            extra_load: attempts as f64 / CALLS as f64 - 1.0,
        }
    })
}

#[derive(Clone)]
struct HedgeEverything;

impl tower::hedge::Policy<u64> for HedgeEverything {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }
    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

fn fixed() -> HedgeConfig {
    HedgeConfig::builder()
        .delay(Duration::from_millis(20))
        .max_attempts(2)
        .build()
        .unwrap()
}

fn adaptive() -> HedgeConfig {
    HedgeConfig::builder()
        .percentile(95.0, Duration::from_millis(5), Duration::from_millis(200))
        .max_attempts(2)
        .build()
        .unwrap()
}

fn tower_hedge<S>(inner: S) -> Shared<tower::hedge::Hedge<S, HedgeEverything>>
where
    S: Service<u64> + Clone,
    S::Error: Into<BoxError>,
{
    // p95 of the previous 1 s period, after 10 data points: the same percentile as ours.
    let hedge = tower::hedge::Hedge::new(inner, HedgeEverything, 10, 0.95, Duration::from_secs(1));
    Shared(Arc::new(Mutex::new(hedge)))
}

/// `tower::hedge::Hedge` is not `Clone`; the calls share one behind a lock (held only
/// while `poll_ready`/`call` run, never across an await).
struct Shared<S>(Arc<Mutex<S>>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<S: Service<u64>> Service<u64> for Shared<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.lock().unwrap().poll_ready(cx)
    }

    fn call(&mut self, req: u64) -> S::Future {
        self.0.lock().unwrap().call(req)
    }
}

fn print(title: &str, rows: &[Row]) {
    println!("\n{title}\n");
    println!("| stack | p50 | p99 | p99.9 | extra load |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} % |",
            r.name,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.p999.as_secs_f64() * 1e3,
            r.extra_load * 100.0
        );
    }
}

fn main() {
    let heavy_tail = 20; // per mille: 2 % of attempts take 1 s
    let rows = [
        run("no hedging", heavy_tail, |inner| inner()),
        run(
            "ours: hedging_delay 20 ms, 2 attempts",
            heavy_tail,
            |inner| {
                RetryLayer::new(RetryConfig::default())
                    .without_admission()
                    .hedge(fixed())
                    .layer(inner())
            },
        ),
        run(
            "ours: adaptive p95 (5-200 ms), 2 attempts",
            heavy_tail,
            |inner| {
                RetryLayer::new(RetryConfig::default())
                    .without_admission()
                    .hedge(adaptive())
                    .layer(inner())
            },
        ),
        run("tower::hedge p95, 2 attempts", heavy_tail, |inner| {
            tower_hedge(inner())
        }),
    ];
    print(
        "10,000 calls, 1/ms; latency per attempt 10 ms (98 %) or 1 s (2 %)",
        &rows,
    );

    let all_slow = 1000;
    let rows = [
        run(
            "ours, default AdaptiveBudget (100, 0.2/success, 1/s)",
            all_slow,
            |inner| {
                RetryLayer::new(RetryConfig::default())
                    .without_admission()
                    .hedge(fixed())
                    .layer(inner())
            },
        ),
        run("ours, RatioBudget (20 % + 10/s)", all_slow, |inner| {
            RetryLayer::new(RetryConfig::default())
                .without_admission()
                .with_budget(RatioBudget::default())
                .hedge(fixed())
                .layer(inner())
        }),
        run("ours, no budget (Unlimited)", all_slow, |inner| {
            RetryLayer::new(RetryConfig::default())
                .without_admission()
                .with_budget(Unlimited::new())
                .hedge(fixed())
                .layer(inner())
        }),
        run("tower::hedge p95", all_slow, |inner| tower_hedge(inner())),
    ];
    print(
        "Total slowdown: every attempt takes 1 s (hedging_delay 20 ms, 2 attempts)",
        &rows,
    );
}
