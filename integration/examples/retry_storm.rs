//! Retry-storm simulation and jitter spread, driven by the real `RetryService` and budgets.
//!
//! ```text
//! cargo run --release -p tower-retrier-integration --example retry_storm -- [--quick] [--out DIR] [--only storm|jitter|budgets]
//! ```
//!
//! **Budgets.** 16 instances × 100 original requests/s, 10 s healthy, then 30 s of a total
//! outage, of 10 % of attempts failing, or of 50 % failing (`examples/common/budget_scenarios.rs`).
//! One table for every budget: none, `RatioBudget` (16 local), `TokenBucket` (16 local),
//! `AdaptiveBudget` (16 local), `RedisBudget` ratio mode and adaptive mode (shared by the 16).
//! Writes `budgets.csv`, `budgets_summary.csv` and `budgets.svg`.
//!
//! **Storm.** N instances (N = 1, 4, 16), each sending `RATE` original requests per second
//! (open loop, evenly spaced, instances staggered) through its own `RetryLayer` (the defaults:
//! 3 attempts, exponential backoff from 100 ms with ±10 % jitter) to one downstream that
//! answers at once, fails 100 % of calls during the outage phase and succeeds otherwise.
//! Three budget set-ups: no budget (`Unlimited`), one local `RatioBudget` per instance (the
//! default), and one `RedisBudget` shared by all instances (same budget name, one client per
//! instance, a real `redis-server` started here). Counted per bucket: original requests and
//! attempts reaching the downstream; amplification = attempts / originals.
//!
//! Time: the no-budget and local-budget runs use tokio's paused clock (virtual time: exact and
//! deterministic, seeded jitter). The Redis budget keeps its window on the server's `TIME`,
//! which a paused tokio clock cannot move, so the Redis runs use the same timeline in real
//! time (they take as long as the timeline) and vary slightly from run to run.
//!
//! **Jitter spread.** K requests fail at the same instant against an always-failing
//! downstream (no budget, virtual time). For the first and second retry: how many of the K
//! retries land in the busiest 10 ms window, ours (per-request RNG) against
//! `tower::retry` with one `ExponentialBackoffMaker` (its RNG is cloned into every request).
//!
//! Writes `storm.csv`, `storm_summary.csv`, `jitter.csv` and `storm.svg` into `--out`
//! (default `bench-results/`) and prints markdown tables.

use plotters::prelude::*;
use std::fmt::Write as _;
use std::future::{Ready, ready};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::retry::backoff::{
    Backoff as _, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff,
};
use tower::util::rng::HasherRng;
use tower::{Layer, Service, ServiceExt};
use tower_retrier::budget::{Budget, RatioBudget, Unlimited};
use tower_retrier::{RetryConfig, RetryLayer};

#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "../../tests/support/redis.rs"]
mod redis_server;

#[path = "common/budget_scenarios.rs"]
mod scenarios;

/// Original requests per second per instance.
const RATE: u32 = 50;
/// Fleet sizes simulated.
const FLEETS: [usize; 3] = [1, 4, 16];
/// "Back to normal": amplification at or below this in every later bucket.
const NORMAL: f64 = 1.05;

/// The phases of one run.
#[derive(Clone, Copy, Debug)]
struct Timeline {
    healthy: Duration,
    outage: Duration,
    recovery: Duration,
    bucket: Duration,
}

impl Timeline {
    fn total(&self) -> Duration {
        self.healthy + self.outage + self.recovery
    }
    fn outage_end(&self) -> Duration {
        self.healthy + self.outage
    }
    fn buckets(&self) -> usize {
        (self.total().as_nanos() / self.bucket.as_nanos()) as usize
    }
    fn bucket_of(&self, since_start: Duration) -> usize {
        ((since_start.as_nanos() / self.bucket.as_nanos()) as usize).min(self.buckets() - 1)
    }
}

/// Per-bucket counts of one run.
#[derive(Clone, Debug)]
struct Counts {
    originals: Vec<u64>,
    attempts: Vec<u64>,
}

/// The downstream: answers at once; fails every call during the outage. Counts attempts.
#[derive(Clone)]
struct Downstream {
    start: Instant,
    timeline: Timeline,
    counts: Arc<Mutex<Counts>>,
}

impl Service<u64> for Downstream {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        let now = self.start.elapsed();
        let b = self.timeline.bucket_of(now);
        self.counts.lock().unwrap().attempts[b] += 1;
        let down = now >= self.timeline.healthy && now < self.timeline.outage_end();
        ready(if down {
            Err(std::io::Error::other("503 service unavailable"))
        } else {
            Ok(req)
        })
    }
}

/// One storm run: one instance per budget, all against one downstream.
async fn storm<B>(budgets: Vec<B>, timeline: Timeline, seed: u64) -> Counts
where
    B: Budget + Clone + Send + Sync + 'static,
    B::Withdraw: Send,
{
    let n = budgets.len() as u32;
    let counts = Arc::new(Mutex::new(Counts {
        originals: vec![0; timeline.buckets()],
        attempts: vec![0; timeline.buckets()],
    }));
    let start = Instant::now();
    let downstream = Downstream {
        start,
        timeline,
        counts: counts.clone(),
    };
    let period = Duration::from_secs(1) / RATE;
    let mut instances = JoinSet::new();
    for (i, budget) in budgets.into_iter().enumerate() {
        let svc = RetryLayer::new(RetryConfig::default())
            .with_budget(budget)
            .seed(seed.wrapping_add(i as u64))
            .layer(downstream.clone());
        let counts = counts.clone();
        instances.spawn(async move {
            let mut tick = tokio::time::interval_at(start + period * i as u32 / n, period);
            let mut calls = JoinSet::new();
            for req in 0u64.. {
                let at = tick.tick().await.duration_since(start);
                if at >= timeline.total() {
                    break;
                }
                counts.lock().unwrap().originals[timeline.bucket_of(at)] += 1;
                calls.spawn(svc.clone().oneshot(req));
            }
            while calls.join_next().await.is_some() {}
        });
    }
    while instances.join_next().await.is_some() {}
    counts.lock().unwrap().clone()
}

fn virtual_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// Results of one (set-up, fleet size) run.
struct Run {
    setup: &'static str,
    n: usize,
    time: &'static str,
    counts: Counts,
}

impl Run {
    fn amplification(&self, b: usize) -> f64 {
        let o = self.counts.originals[b];
        if o == 0 {
            0.0
        } else {
            self.counts.attempts[b] as f64 / o as f64
        }
    }

    /// Attempts / originals over the buckets in `[from, to)`.
    fn amplification_over(&self, t: &Timeline, from: Duration, to: Duration) -> f64 {
        let (a, b) = (t.bucket_of(from), t.bucket_of(to));
        let o: u64 = self.counts.originals[a..b].iter().sum();
        let x: u64 = self.counts.attempts[a..b].iter().sum();
        x as f64 / o as f64
    }

    /// Time from the end of the outage until amplification stays at or below [`NORMAL`].
    fn back_to_normal(&self, t: &Timeline) -> Duration {
        let end = t.bucket_of(t.outage_end());
        let last_bad = (end..t.buckets())
            .rev()
            .find(|&b| self.amplification(b) > NORMAL);
        match last_bad {
            None => Duration::ZERO,
            Some(b) => t.bucket * (b + 1 - end) as u32,
        }
    }

    /// The highest amplification of any bucket.
    fn peak(&self, t: &Timeline) -> f64 {
        (0..t.buckets())
            .map(|b| self.amplification(b))
            .fold(0.0, f64::max)
    }

    /// Retries (attempts beyond the originals) sent after the downstream recovered.
    fn retries_after_recovery(&self, t: &Timeline) -> i64 {
        let end = t.bucket_of(t.outage_end());
        let o: u64 = self.counts.originals[end..].iter().sum();
        let x: u64 = self.counts.attempts[end..].iter().sum();
        x as i64 - o as i64
    }
}

/// K simultaneous failures: busiest 10 ms window of retry 1 and retry 2.
struct Spread {
    name: &'static str,
    retry1: (usize, usize),
    retry2: (usize, usize),
}

/// Records the time of every call per request value.
#[derive(Clone)]
struct Recorder {
    start: Instant,
    calls: Arc<Mutex<Vec<Vec<Duration>>>>,
}

impl Service<u64> for Recorder {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        self.calls.lock().unwrap()[req as usize].push(self.start.elapsed());
        ready(Err(std::io::Error::other("down")))
    }
}

/// `tower::retry` with the policy users write: 3 attempts, one `ExponentialBackoffMaker`.
#[derive(Clone)]
struct TowerPolicy {
    retries_left: usize,
    backoff: ExponentialBackoff<HasherRng>,
}

impl<E> tower::retry::Policy<u64, u64, E> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        if result.is_ok() || self.retries_left == 0 {
            return None;
        }
        self.retries_left -= 1;
        Some(self.backoff.next_backoff())
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// Sends `k` requests at t = 0 through `layer(recorder)` and returns each request's call times.
async fn simultaneous<L>(k: usize, layer: L) -> Vec<Vec<Duration>>
where
    L: Layer<Recorder>,
    L::Service: Service<u64> + Clone + Send + 'static,
    <L::Service as Service<u64>>::Future: Send,
    <L::Service as Service<u64>>::Response: Send,
    <L::Service as Service<u64>>::Error: Send,
{
    let rec = Recorder {
        start: Instant::now(),
        calls: Arc::new(Mutex::new(vec![Vec::new(); k])),
    };
    let svc = layer.layer(rec.clone());
    let mut set = JoinSet::new();
    for req in 0..k as u64 {
        set.spawn(svc.clone().oneshot(req));
    }
    while set.join_next().await.is_some() {}
    rec.calls.lock().unwrap().clone()
}

/// (busiest 10 ms window, windows used) for the `nth` call of every request.
fn windows(calls: &[Vec<Duration>], nth: usize) -> (usize, usize) {
    let mut per_window = std::collections::BTreeMap::<u128, usize>::new();
    for c in calls {
        if let Some(t) = c.get(nth) {
            *per_window.entry(t.as_millis() / 10).or_default() += 1;
        }
    }
    (
        per_window.values().copied().max().unwrap_or(0),
        per_window.len(),
    )
}

fn jitter_spread(k: usize) -> Vec<Spread> {
    let rt = virtual_runtime();
    let ours = |jitter: f64| {
        let cfg = RetryConfig::builder()
            .jitter_factor(jitter)
            .build()
            .expect("valid config");
        RetryLayer::new(cfg).with_budget(Unlimited::new()).seed(7)
    };
    let tower = |jitter: f64| {
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_millis(100),
            Duration::from_secs(10),
            jitter,
            HasherRng::default(),
        )
        .expect("valid backoff");
        tower::retry::RetryLayer::new(TowerPolicy {
            retries_left: 2,
            backoff: maker.make_backoff(),
        })
    };
    let mut out = Vec::new();
    let mut push = |name, calls: Vec<Vec<Duration>>| {
        out.push(Spread {
            name,
            retry1: windows(&calls, 1),
            retry2: windows(&calls, 2),
        })
    };
    push(
        "tower-retrier Exponential, ±10% jitter (default)",
        rt.block_on(simultaneous(k, ours(0.1))),
    );
    push(
        "tower::retry ExponentialBackoffMaker, jitter 0.1",
        rt.block_on(simultaneous(k, tower(0.1))),
    );
    push(
        "tower-retrier Exponential, ±100% jitter",
        rt.block_on(simultaneous(k, ours(1.0))),
    );
    push(
        "tower::retry ExponentialBackoffMaker, jitter 1.0",
        rt.block_on(simultaneous(k, tower(1.0))),
    );
    out
}

struct Args {
    quick: bool,
    out: PathBuf,
    only: Option<String>,
}

impl Args {
    fn wants(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == part)
    }
}

fn args() -> Args {
    let mut a = Args {
        quick: false,
        out: PathBuf::from("bench-results"),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--out" => a.out = it.next().expect("--out DIR").into(),
            "--only" => {
                let part = it.next().expect("--only storm|jitter|budgets");
                assert!(
                    ["storm", "jitter", "budgets"].contains(&part.as_str()),
                    "--only takes storm, jitter or budgets, not {part:?}"
                );
                a.only = Some(part);
            }
            other => panic!(
                "unknown argument {other:?}; use [--quick] [--out DIR] [--only storm|jitter|budgets]"
            ),
        }
    }
    a
}

/// Every budget set-up through every scenario of `scenarios`.
fn budget_runs(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use scenarios::{FLEET, Row, Scenario, run};
    use tower_retrier::budget::{AdaptiveBudget, TokenBucket};
    let all = Scenario::all(args.quick);
    let mut rows = Vec::new();
    let virtual_row = |setup: &str, make: &dyn Fn() -> Vec<Box<dyn Fn() -> RunFuture>>| Row {
        setup: setup.to_owned(),
        clock: "virtual",
        runs: make()
            .into_iter()
            .map(|f| virtual_runtime().block_on(f()))
            .collect(),
    };
    type RunFuture = std::pin::Pin<Box<dyn std::future::Future<Output = scenarios::Counts>>>;
    fn per_scenario<B, F>(all: [Scenario; 3], make: F) -> Vec<Box<dyn Fn() -> RunFuture>>
    where
        B: Budget + Clone + Send + Sync + 'static,
        B::Withdraw: Send + 'static,
        F: Fn() -> B + Clone + 'static,
    {
        all.into_iter()
            .map(|s| {
                let make = make.clone();
                Box::new(move || {
                    let budgets: Vec<B> = (0..FLEET).map(|_| make()).collect();
                    Box::pin(run(budgets, s, 1)) as RunFuture
                }) as Box<dyn Fn() -> RunFuture>
            })
            .collect()
    }
    rows.push(virtual_row("no budget", &|| {
        per_scenario(all, Unlimited::new)
    }));
    rows.push(virtual_row(
        "RatioBudget, 16 local (10 s, 10/s, 0.2)",
        &|| per_scenario(all, RatioBudget::default),
    ));
    rows.push(virtual_row("TokenBucket, 16 local (200, 0.2)", &|| {
        per_scenario(all, || TokenBucket::new(200, 0.2).expect("valid"))
    }));
    rows.push(virtual_row(
        "AdaptiveBudget, 16 local (100, 0.2, 1/s)",
        &|| per_scenario(all, AdaptiveBudget::default),
    ));
    #[cfg(feature = "redis")]
    shared_budget_rows(&all, &mut rows)?;
    #[cfg(not(feature = "redis"))]
    eprintln!("built without feature `redis`: the shared-budget rows are skipped");
    scenarios::report(&args.out, &all, &rows)
}

#[cfg(feature = "redis")]
fn shared_budget_rows(
    all: &[scenarios::Scenario; 3],
    rows: &mut Vec<scenarios::Row>,
) -> Result<(), Box<dyn std::error::Error>> {
    use tower_retrier::budget::RedisBudget;
    use tower_retrier::budget::redis::Mode;
    let server = redis_server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (mode, setup) in [
        (Mode::Ratio, "RedisBudget ratio, shared (10 s, 10/s, 0.2)"),
        (
            Mode::Adaptive,
            "RedisBudget adaptive, shared (100, 0.2, 1/s)",
        ),
    ] {
        let mut runs = Vec::new();
        for (k, s) in all.iter().enumerate() {
            eprintln!("{setup}, {}: real time, {:?}", s.name, s.total());
            let counts = rt.block_on(async {
                let mut budgets = Vec::new();
                for _ in 0..scenarios::FLEET {
                    // One client per instance, as in a fleet; the same budget name.
                    let (name, url) = (format!("scenario-{mode:?}-{k}"), server.url());
                    budgets.push(match mode {
                        Mode::Ratio => RedisBudget::ratio(name).build_from_url(&url).await?,
                        _ => RedisBudget::adaptive(name).build_from_url(&url).await?,
                    });
                }
                Ok::<_, Box<dyn std::error::Error>>(scenarios::run(budgets, *s, 1).await)
            })?;
            runs.push(counts);
        }
        rows.push(scenarios::Row {
            setup: setup.to_owned(),
            clock: "real",
            runs,
        });
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    std::fs::create_dir_all(&args.out)?;
    if args.wants("budgets") {
        budget_runs(&args)?;
    }
    if !args.wants("storm") && !args.wants("jitter") {
        return Ok(());
    }
    let timeline = if args.quick {
        Timeline {
            healthy: Duration::from_secs(1),
            outage: Duration::from_secs(3),
            recovery: Duration::from_secs(2),
            bucket: Duration::from_millis(200),
        }
    } else {
        Timeline {
            healthy: Duration::from_secs(2),
            outage: Duration::from_secs(6),
            recovery: Duration::from_secs(4),
            bucket: Duration::from_millis(200),
        }
    };
    let mut runs = Vec::new();
    for n in FLEETS.into_iter().filter(|_| args.wants("storm")) {
        let rt = virtual_runtime();
        let counts = rt.block_on(storm(vec![Unlimited::new(); n], timeline, 1));
        runs.push(Run {
            setup: "no budget",
            n,
            time: "virtual",
            counts,
        });
        let budgets = (0..n).map(|_| RatioBudget::default()).collect();
        let counts = rt.block_on(storm(budgets, timeline, 1));
        runs.push(Run {
            setup: "local RatioBudget per instance",
            n,
            time: "virtual",
            counts,
        });
    }
    if args.wants("storm") {
        #[cfg(feature = "redis")]
        redis_runs(timeline, &mut runs)?;
        #[cfg(not(feature = "redis"))]
        eprintln!("built without feature `redis`: the shared-budget runs are skipped");
        report(&args, &timeline, &runs)?;
    }
    if args.wants("jitter") {
        let k = 1000;
        let spread = jitter_spread(k);
        jitter_report(&args, k, &spread)?;
    }
    Ok(())
}

#[cfg(feature = "redis")]
fn redis_runs(timeline: Timeline, runs: &mut Vec<Run>) -> Result<(), Box<dyn std::error::Error>> {
    use tower_retrier::budget::RedisBudget;
    let server = redis_server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for n in FLEETS {
        eprintln!(
            "shared RedisBudget, {n} instance(s): real time, {:?}",
            timeline.total()
        );
        let counts = rt.block_on(async {
            let mut budgets = Vec::new();
            for _ in 0..n {
                // One client per instance, as in a fleet; the same budget name.
                budgets.push(
                    RedisBudget::ratio(format!("storm-{n}"))
                        .build_from_url(&server.url())
                        .await?,
                );
            }
            Ok::<_, Box<dyn std::error::Error>>(storm(budgets, timeline, 1).await)
        })?;
        runs.push(Run {
            setup: "shared RedisBudget",
            n,
            time: "real",
            counts,
        });
    }
    Ok(())
}

fn report(args: &Args, t: &Timeline, runs: &[Run]) -> Result<(), Box<dyn std::error::Error>> {
    let mut csv =
        String::from("setup,instances,time,bucket_start_s,originals,attempts,amplification\n");
    for r in runs {
        for b in 0..t.buckets() {
            writeln!(
                csv,
                "{},{},{},{:.3},{},{},{:.4}",
                r.setup,
                r.n,
                r.time,
                (t.bucket * b as u32).as_secs_f64(),
                r.counts.originals[b],
                r.counts.attempts[b],
                r.amplification(b)
            )?;
        }
    }
    std::fs::write(args.out.join("storm.csv"), csv)?;

    println!(
        "\n## Retry storm: {RATE} req/s per instance; healthy {:?}, downstream failing 100% for {:?}, then recovered for {:?}; buckets of {:?}\n",
        t.healthy, t.outage, t.recovery, t.bucket
    );
    println!(
        "| set-up | instances | clock | attempts / originals (whole run) | during the outage | peak ({:?} bucket) | retries after recovery | back to ≤{NORMAL} after recovery |",
        t.bucket
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    let mut summary = String::from(
        "setup,instances,time,amplification_total,amplification_outage,peak,retries_after_recovery,back_to_normal_ms\n",
    );
    for r in runs {
        let total = r.counts.attempts.iter().sum::<u64>() as f64
            / r.counts.originals.iter().sum::<u64>() as f64;
        let outage = r.amplification_over(t, t.healthy, t.outage_end());
        let after = r.retries_after_recovery(t);
        let normal = r.back_to_normal(t);
        let peak = r.peak(t);
        println!(
            "| {} | {} | {} | {total:.2} | {outage:.2} | {peak:.2} | {after} | {} ms |",
            r.setup,
            r.n,
            r.time,
            normal.as_millis()
        );
        writeln!(
            summary,
            "{},{},{},{total:.4},{outage:.4},{peak:.4},{after},{}",
            r.setup,
            r.n,
            r.time,
            normal.as_millis()
        )?;
    }
    std::fs::write(args.out.join("storm_summary.csv"), summary)?;
    chart(&args.out.join("storm.svg"), t, runs)?;
    println!(
        "\nwrote {}/storm.csv, storm_summary.csv, storm.svg",
        args.out.display()
    );
    Ok(())
}

fn chart(
    path: &std::path::Path,
    t: &Timeline,
    runs: &[Run],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1500, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.draw_text(
        "Retry amplification over time (attempts / original requests per 200 ms), downstream down in the shaded span",
        &("sans-serif", 18).into_text_style(&title),
        (20, 12),
    )?;
    let panels = body.split_evenly((1, FLEETS.len()));
    let y_max = runs
        .iter()
        .flat_map(|r| (0..t.buckets()).map(|b| r.amplification(b)))
        .fold(1.0f64, f64::max)
        .ceil()
        + 0.2;
    let x_max = t.total().as_secs_f64();
    let styles: [(&str, RGBColor); 3] = [
        ("no budget", RGBColor(214, 39, 40)),
        ("local RatioBudget per instance", RGBColor(31, 119, 180)),
        ("shared RedisBudget", RGBColor(44, 160, 44)),
    ];
    for (panel, n) in panels.iter().zip(FLEETS) {
        let mut c = ChartBuilder::on(panel)
            .caption(format!("{n} instance(s)"), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        c.configure_mesh()
            .x_desc("time (s)")
            .y_desc("attempts / originals")
            .draw()?;
        c.draw_series(std::iter::once(Rectangle::new(
            [
                (t.healthy.as_secs_f64(), 0.0),
                (t.outage_end().as_secs_f64(), y_max),
            ],
            RGBColor(0, 0, 0).mix(0.07).filled(),
        )))?;
        for (setup, color) in styles {
            let Some(r) = runs.iter().find(|r| r.n == n && r.setup == setup) else {
                continue;
            };
            let points = (0..t.buckets()).map(|b| {
                (
                    (t.bucket * b as u32 + t.bucket / 2).as_secs_f64(),
                    r.amplification(b),
                )
            });
            c.draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(setup)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn jitter_report(
    args: &Args,
    k: usize,
    spread: &[Spread],
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "\n## Jitter spread: {k} requests failing at the same instant (no budget), retries per 10 ms window\n"
    );
    println!(
        "| backoff | retry 1: busiest 10 ms window | retry 1: windows used | retry 2: busiest 10 ms window | retry 2: windows used |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut csv =
        String::from("backoff,retry1_busiest,retry1_windows,retry2_busiest,retry2_windows\n");
    for s in spread {
        println!(
            "| {} | {} | {} | {} | {} |",
            s.name, s.retry1.0, s.retry1.1, s.retry2.0, s.retry2.1
        );
        writeln!(
            csv,
            "{},{},{},{},{}",
            s.name, s.retry1.0, s.retry1.1, s.retry2.0, s.retry2.1
        )?;
    }
    std::fs::write(args.out.join("jitter.csv"), csv)?;
    Ok(())
}
