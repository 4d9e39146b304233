//! Success-path overhead and retry-path cost of the retry layer, side by side with the bare
//! service, `tower::retry` and `tower-resilience-retry`, in one run.
//!
//! ```text
//! cargo bench -p tower-retrier-integration --bench overhead       # criterion, then the summary tables
//! BENCH_SUMMARY_ONLY=1 cargo bench -p tower-retrier-integration --bench overhead -- --quick  # fast
//! ```
//!
//! Every case wraps the same inner service (a `Ready` future: the floor) and is polled by hand
//! with a no-op waker, so no runtime cost is mixed in. The summary tables give ns/call (median
//! of several batches), the overhead over the bare service, and allocations per call (counted
//! by a global allocator wrapper).
//!
//! `BENCH_INSTRUCTIONS=<case number>:<calls>` runs only that many calls of one case and
//! nothing else, for `valgrind --tool=callgrind` instruction counts (see scripts/bench.sh).
//!
//! Adding a case: push one more entry in [`success_cases`]; the tables pick it up. The
//! Redis-budget case needs feature `redis`, the metrics case feature `metrics`.

use criterion::Criterion;
use std::cell::Cell;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::util::rng::HasherRng;
use tower::{Layer, Service};
use tower_resilience_retry::{ExponentialRandomBackoff, RetryBudgetBuilder};
use tower_retrier::backoff::Constant;
use tower_retrier::budget::{RatioBudget, Unlimited};
use tower_retrier::telemetry::Telemetry;
use tower_retrier::{RetryConfig, RetryLayer};

#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "../../tests/support/redis.rs"]
mod redis_server;

#[path = "../../tests/support/hand_driven.rs"]
mod hand_driven;
use hand_driven::{
    Echo, allocations as allocated_so_far, drive as call_once, drive_result as call_once_result,
};

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

/// One named case: a closure making one call.
struct Case {
    name: &'static str,
    call: Box<dyn FnMut(u64) -> u64>,
}

fn case<S>(name: &'static str, mut svc: S) -> Case
where
    S: Service<u64, Response = u64> + 'static,
    S::Error: std::fmt::Debug,
{
    Case {
        name,
        call: Box::new(move |i| call_once(&mut svc, i)),
    }
}

const BARE: &str = "bare service (floor)";
const TOWER_BUDGET: &str = "tower::retry + TpsBudget";
const OURS_LOCAL: &str = "tower-retrier defaults (local RatioBudget, tracing)";
const OURS_REDIS: &str = "tower-retrier + RedisBudget";

/// State some cases need to stay alive while they run (the Redis server and the runtime of
/// the budget's background flusher).
#[derive(Default)]
struct Keep {
    #[cfg(feature = "redis")]
    redis: Option<(redis_server::RedisServer, tokio::runtime::Runtime)>,
}

/// The success-path cases, in table order.
fn success_cases(keep: &mut Keep) -> Vec<Case> {
    let resilience = tower_resilience_retry::RetryLayer::<u64, u64, std::io::Error>::builder()
        .max_attempts(3)
        .backoff(
            ExponentialRandomBackoff::new(Duration::from_millis(100), 0.1)
                .expect("valid backoff")
                .max_interval(Duration::from_secs(10)),
        )
        .build();
    let resilience_budget =
        tower_resilience_retry::RetryLayer::<u64, u64, std::io::Error>::builder()
            .max_attempts(3)
            .backoff(
                ExponentialRandomBackoff::new(Duration::from_millis(100), 0.1)
                    .expect("valid backoff")
                    .max_interval(Duration::from_secs(10)),
            )
            .budget(
                RetryBudgetBuilder::new()
                    .token_bucket()
                    .tokens_per_second(10.0)
                    .max_tokens(100)
                    .build()
                    .expect("valid budget"),
            )
            .build();
    #[allow(unused_mut)] // more cases are pushed with features `metrics` and `redis`
    let mut cases = vec![
        case(BARE, Echo),
        case(
            TOWER_BUDGET,
            tower::retry::RetryLayer::new(TowerPolicy::new(true)).layer(Echo),
        ),
        case(
            "tower::retry, no budget",
            tower::retry::RetryLayer::new(TowerPolicy::new(false)).layer(Echo),
        ),
        case("tower-resilience-retry", resilience.layer(Echo)),
        case(
            "tower-resilience-retry + token bucket",
            resilience_budget.layer(Echo),
        ),
        case(
            "tower-retrier, telemetry off",
            RetryLayer::new(RetryConfig::default())
                .with_telemetry(Telemetry::disabled())
                .layer(Echo),
        ),
        // What a default user runs: the local RatioBudget and `tracing` on, with no
        // subscriber installed ("tracing, no subscriber").
        case(OURS_LOCAL, ours().layer(Echo)),
        case(
            "tower-retrier, no budget (Unlimited)",
            ours().with_budget(Unlimited::new()).layer(Echo),
        ),
    ];
    // Metrics to a no-op recorder (installed in `main`), on top of tracing.
    #[cfg(feature = "metrics")]
    cases.push(case(
        "tower-retrier + metrics (no-op recorder)",
        ours()
            .with_telemetry(tracing_only().with_metrics(true))
            .layer(Echo),
    ));
    #[cfg(feature = "redis")]
    cases.push(redis_case(keep));
    #[cfg(not(feature = "redis"))]
    let _ = keep;
    cases
}

/// Telemetry as a default user has it with no back-end feature compiled in: `tracing` only,
/// whatever features this bench is built with.
fn tracing_only() -> Telemetry {
    let t = Telemetry::new("users", "get");
    #[cfg(feature = "metrics")]
    let t = t.with_metrics(false);
    #[cfg(feature = "opentelemetry")]
    let t = t.with_opentelemetry(false);
    t
}

/// Our layer with its defaults (local `RatioBudget`), named, `tracing` only.
fn ours() -> RetryLayer {
    RetryLayer::new(RetryConfig::default()).with_telemetry(tracing_only())
}

/// Ours with the fleet-wide budget against a real `redis-server` started here. The success
/// path only deposits (batched, flushed by a background task on `rt`).
#[cfg(feature = "redis")]
fn redis_case(keep: &mut Keep) -> Case {
    let server = redis_server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let budget = rt
        .block_on(
            tower_retrier::budget::RedisBudget::builder("bench-overhead")
                .build_from_url(&server.url()),
        )
        .expect("connect to the local redis-server");
    let svc = ours().with_budget(budget).layer(Echo);
    keep.redis = Some((server, rt));
    case(OURS_REDIS, svc)
}

/// The inner service of the retry path: every other call fails (shared by clones), so each
/// request is one failed attempt, one retry decision and one successful re-dispatch.
#[derive(Clone, Default)]
struct Alternating(Rc<Cell<bool>>);

impl Service<u64> for Alternating {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        let fail = !self.0.get();
        self.0.set(fail);
        ready(if fail {
            // A simple-kind error: no allocation, so only the layer's own show up.
            Err(std::io::ErrorKind::ConnectionReset.into())
        } else {
            Ok(req)
        })
    }
}

/// `tower::retry` on the retry path: `TpsBudget` withdraw per retry, no sleep (a ready delay
/// future), like ours with a zero backoff.
#[derive(Clone)]
struct TowerRetryOnce(Arc<TpsBudget>);

impl<E> tower::retry::Policy<u64, u64, E> for TowerRetryOnce {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.0.deposit();
                None
            }
            Err(_) => self.0.withdraw().then(|| ready(())),
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// A budget that never runs dry on this path (every request retries once).
fn generous_ratio_budget() -> RatioBudget {
    RatioBudget::new(Duration::from_secs(10), 1_000_000, 1.0).expect("valid budget")
}

/// The retry-path cases: each request fails once and succeeds on the retry, zero delay (the
/// sleep is excluded; everything else — classification, budget withdraw, backoff context,
/// re-polling the service clone ready, the second dispatch — is included).
fn retry_cases() -> Vec<Case> {
    let floor = Alternating::default();
    let mut floor_svc = floor.clone();
    vec![
        Case {
            name: "bare: two inner calls (floor)",
            call: Box::new(move |i| {
                let _ = call_once_result(&mut floor_svc, i);
                call_once(&mut floor_svc, i)
            }),
        },
        case(
            "tower::retry + TpsBudget, zero delay",
            tower::retry::RetryLayer::new(TowerRetryOnce(Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                1_000_000,
                1.0,
            ))))
            .layer(Alternating::default()),
        ),
        case(
            "tower-retrier RatioBudget, zero delay",
            ours()
                .with_backoff(Constant::new(Duration::ZERO))
                .with_budget(generous_ratio_budget())
                .layer(Alternating::default()),
        ),
        case(
            "tower-retrier no budget, zero delay",
            ours()
                .with_backoff(Constant::new(Duration::ZERO))
                .with_budget(Unlimited::new())
                .layer(Alternating::default()),
        ),
    ]
}

fn criterion_benches(c: &mut Criterion, success: &mut [Case], retry: &mut [Case]) {
    for (group_name, cases) in [("success_path", success), ("retry_path", retry)] {
        let mut group = c.benchmark_group(group_name);
        for Case { name, call } in cases.iter_mut() {
            let mut i = 0u64;
            group.bench_function(*name, |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    black_box(call(black_box(i)))
                })
            });
        }
        group.finish();
    }
}

/// ns/call of one batch of `n` calls.
fn batch(f: &mut dyn FnMut(u64) -> u64, n: u64) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        black_box(f(black_box(i)));
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Allocations per call over `n` calls.
fn allocations(f: &mut dyn FnMut(u64) -> u64, n: u64) -> f64 {
    let before = allocated_so_far();
    for i in 0..n {
        black_box(f(i));
    }
    (allocated_so_far() - before) as f64 / n as f64
}

struct Row {
    name: &'static str,
    /// Median over the rounds.
    ns: f64,
    /// Fastest round.
    min: f64,
    allocs: f64,
}

/// `rounds` rounds of one `n`-call batch per case, interleaved so that a burst of load on a
/// shared machine hits every case alike; per case the median and the fastest round.
fn table(cases: &mut [Case], n: u64, rounds: usize) -> Vec<Row> {
    for c in cases.iter_mut() {
        batch(&mut *c.call, n / 10); // warm-up
    }
    let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
    for _ in 0..rounds {
        for (c, s) in cases.iter_mut().zip(&mut samples) {
            s.push(batch(&mut *c.call, n));
        }
    }
    cases
        .iter_mut()
        .zip(samples)
        .map(|(c, mut s)| {
            s.sort_by(f64::total_cmp);
            Row {
                name: c.name,
                ns: s[rounds / 2],
                min: s[0],
                allocs: allocations(&mut *c.call, n),
            }
        })
        .collect()
}

fn ns_of(rows: &[Row], name: &str) -> Option<f64> {
    rows.iter().find(|r| r.name == name).map(|r| r.ns)
}

/// How many calls the tables time.
#[derive(Clone, Copy)]
enum Mode {
    /// `cargo test --all-targets` runs benches without `--bench`: a smoke run only.
    Smoke,
    Quick,
    Full,
}

fn summary(mode: Mode, success: &mut [Case], retry: &mut [Case]) {
    let (n, batches) = match mode {
        Mode::Smoke => (2_000, 3),
        Mode::Quick => (200_000, 7),
        Mode::Full => (1_000_000, 21),
    };
    let rows = table(success, n, batches);
    let bare = rows[0].ns;
    let tower_ovh = ns_of(&rows, TOWER_BUDGET).expect("tower case") - bare;
    println!(
        "\n## Success path (median of {batches} interleaved rounds × {n} calls; fastest round in brackets)\n"
    );
    println!(
        "| case | ns/call | overhead over bare | overhead / tower+TpsBudget overhead | allocations/call |"
    );
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let ovh = r.ns - bare;
        println!(
            "| {} | {:.1} ({:.1}) | {:.1} ns | {:.2}× | {} |",
            r.name,
            r.ns,
            r.min,
            ovh,
            ovh / tower_ovh,
            r.allocs
        );
    }
    let local = ns_of(&rows, OURS_LOCAL).expect("local case") - bare;
    println!(
        "\ntarget 1: overhead with the local budget ≤ 1/4 of tower+TpsBudget's: {local:.1} ns vs limit {:.1} ns → {}",
        tower_ovh / 4.0,
        verdict(local <= tower_ovh / 4.0)
    );
    if let Some(redis) = ns_of(&rows, OURS_REDIS) {
        let redis = redis - bare;
        println!(
            "target 2: overhead with the Redis budget within 10% of the local budget's: {redis:.1} ns vs {local:.1} ns ({:+.0}%) → {}",
            (redis / local - 1.0) * 100.0,
            verdict(redis <= local * 1.1)
        );
    }
    let ours_allocs: f64 = rows
        .iter()
        .filter(|r| r.name.starts_with("tower-retrier"))
        .map(|r| r.allocs)
        .sum();
    println!(
        "target 3: 0 allocations per call on our success path → {}",
        verdict(ours_allocs == 0.0)
    );

    let rrows = table(retry, n / 2, batches);
    let floor = rrows[0].ns;
    println!(
        "\n## Retry path: one failed attempt + one retry, zero delay (median of {batches} interleaved rounds × {} calls; fastest in brackets)\n",
        n / 2
    );
    println!(
        "| case | ns/request | over the floor (retry decision + re-dispatch) | allocations/request |"
    );
    println!("|---|---:|---:|---:|");
    for r in &rrows {
        println!(
            "| {} | {:.1} ({:.1}) | {:.1} ns | {} |",
            r.name,
            r.ns,
            r.min,
            r.ns - floor,
            r.allocs
        );
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// `BENCH_INSTRUCTIONS=<index>:<calls>`: run one case only (for callgrind). Success cases are
/// numbered from 0, retry cases continue after them.
fn instructions_mode(spec: &str, success: &mut [Case], retry: &mut [Case]) {
    let (index, calls) = spec
        .split_once(':')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<u64>().ok()?)))
        .expect("BENCH_INSTRUCTIONS=<case index>:<calls>");
    let all: Vec<&mut Case> = success.iter_mut().chain(retry.iter_mut()).collect();
    let count = all.len();
    let case = all
        .into_iter()
        .nth(index)
        .unwrap_or_else(|| panic!("case index {index} out of range (0..{count})"));
    // Warm up lazily initialised state (thread locals, budget windows) outside the count.
    for i in 0..1000 {
        black_box((case.call)(i));
    }
    counted_calls(&mut *case.call, calls);
    eprintln!("{}", case.name);
}

/// The only code callgrind counts (`--toggle-collect=*counted_calls*`).
#[inline(never)]
fn counted_calls(f: &mut dyn FnMut(u64) -> u64, calls: u64) {
    for i in 0..calls {
        black_box(f(black_box(i)));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = if !args.iter().any(|a| a == "--bench") {
        Mode::Smoke
    } else if args.iter().any(|a| a == "--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    // The "metrics to a no-op recorder" case; no tracing subscriber is installed anywhere.
    #[cfg(feature = "metrics")]
    metrics::set_global_recorder(metrics::NoopRecorder).expect("first recorder");
    let mut keep = Keep::default();
    let mut success = success_cases(&mut keep);
    let mut retry = retry_cases();
    if let Ok(spec) = std::env::var("BENCH_INSTRUCTIONS") {
        instructions_mode(&spec, &mut success, &mut retry);
        return;
    }
    if std::env::var_os("BENCH_SUMMARY_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &mut success, &mut retry);
        c.final_summary();
    }
    summary(mode, &mut success, &mut retry);
    // `keep` (the Redis server and runtime) is dropped last, after the cases using it.
}
