//! Success-path overhead and retry-path cost of the retry layer, side by side with the bare
//! service, `tower::retry` and `tower-resilience-retry`, in one run.
//!
//! ```text
//! cargo bench -p tower-retrier-integration --bench overhead       # criterion, then the summary tables
//! BENCH_SUMMARY_ONLY=1 cargo bench -p tower-retrier-integration --bench overhead -- --quick  # fast
//! ```
//!
//! Every case wraps the same inner service (a `Ready` future: the floor) and runs under two
//! harnesses: polled by hand with a no-op waker (no runtime cost mixed in), and driven the way
//! most users drive a service, `svc.ready().await?.call(req).await` in a current-thread tokio
//! runtime (one `block_on` per batch of calls). The summary tables give ns/call (median of
//! interleaved rounds), the overhead over the bare service under the same harness, its ratio
//! to `tower::retry` + `TpsBudget`'s, and allocations per call (counted by a global allocator
//! wrapper).
//!
//! `BENCH_INSTRUCTIONS=<case number>:<calls>` runs only that many calls of one case and
//! nothing else, for `valgrind --tool=callgrind` instruction counts (see
//! scripts/instructions.sh, which scripts/bench.sh runs).
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
use tower::{Layer, Service, ServiceExt};
use tower_resilience_retry::{ExponentialRandomBackoff, RetryBudgetBuilder};
use tower_retrier::backoff::Constant;
use tower_retrier::budget::{AdaptiveBudget, RatioBudget, Unlimited};
use tower_retrier::telemetry::Telemetry;
use tower_retrier::{RetryConfig, RetryLayer};

#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "../tests/support/redis.rs"]
mod redis_server;

#[path = "../tests/support/hand_driven.rs"]
mod hand_driven;
use hand_driven::{
    Echo, allocations as allocated_so_far, drive as call_once, drive_result as call_once_result,
};

/// `tower::retry`'s policy as users write it. The overload simulation's copy
/// (`examples/common/tower_policy.rs`) is generic over its RNG; this one stays as measured in
/// every run of BENCHMARKS.md: moved into that shared module, the peer's runtime-driven path
/// compiled to 286 instructions a call instead of 348, which would shift every ratio.
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

/// One named case: a closure making `calls` calls (request ids from `first`) and returning a
/// value that depends on every response (so nothing is optimised away).
struct Case {
    name: &'static str,
    run: Box<dyn FnMut(u64, u64) -> u64>,
    /// Size of the service's response future: the runtime-driven harness moves it into the
    /// `async` block's state, so a larger future costs a larger copy per call.
    future_bytes: usize,
}

/// How a case's service is driven.
trait Harness {
    fn case<S>(&self, name: &'static str, svc: S) -> Case
    where
        S: Service<u64, Response = u64> + 'static,
        S::Error: std::fmt::Debug;
}

/// Polled by hand with a no-op waker: no runtime cost mixed in.
struct HandPolled;

impl Harness for HandPolled {
    fn case<S>(&self, name: &'static str, mut svc: S) -> Case
    where
        S: Service<u64, Response = u64> + 'static,
        S::Error: std::fmt::Debug,
    {
        Case {
            name,
            run: Box::new(move |first, calls| {
                let mut acc = 0u64;
                for i in first..first + calls {
                    acc = acc.wrapping_add(call_once(&mut svc, black_box(i)));
                }
                acc
            }),
            future_bytes: std::mem::size_of::<S::Future>(),
        }
    }
}

/// The way most users drive a service: `svc.ready().await?.call(req).await` inside a
/// current-thread tokio runtime, all calls of a batch in one `block_on`.
struct RuntimeDriven(Rc<tokio::runtime::Runtime>);

impl RuntimeDriven {
    fn new() -> Self {
        RuntimeDriven(Rc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        ))
    }
}

impl Harness for RuntimeDriven {
    fn case<S>(&self, name: &'static str, mut svc: S) -> Case
    where
        S: Service<u64, Response = u64> + 'static,
        S::Error: std::fmt::Debug,
    {
        let rt = self.0.clone();
        Case {
            name,
            run: Box::new(move |first, calls| {
                rt.block_on(async {
                    let mut acc = 0u64;
                    for i in first..first + calls {
                        let ready = svc.ready().await.expect("always ready");
                        let res = ready.call(black_box(i)).await.expect("success");
                        acc = acc.wrapping_add(res);
                    }
                    acc
                })
            }),
            future_bytes: std::mem::size_of::<S::Future>(),
        }
    }
}

const BARE: &str = "bare service (floor)";
const TOWER_BUDGET: &str = "tower::retry + TpsBudget";
const OURS_LOCAL: &str = "tower-retrier defaults (local AdaptiveBudget, tracing)";
const OURS_REDIS: &str = "tower-retrier + RedisBudget";
const TOWER_PLAIN: &str = "tower::retry, no budget";
const OURS_UNLIMITED: &str = "tower-retrier, no budget (Unlimited)";
const TOWER_RETRY: &str = "tower::retry + TpsBudget, zero delay";
const OURS_RETRY: &str = "tower-retrier RatioBudget, zero delay";
const OURS_RETRY_ADAPTIVE: &str = "tower-retrier AdaptiveBudget, zero delay";

/// State some cases need to stay alive while they run (the Redis server and the runtime of
/// the budget's background flusher), shared by both harnesses.
#[derive(Default)]
struct Keep {
    #[cfg(feature = "redis")]
    redis: Option<(redis_server::RedisServer, tokio::runtime::Runtime)>,
}

/// The success-path cases, in table order, driven by `h`.
fn success_cases(h: &impl Harness, keep: &mut Keep) -> Vec<Case> {
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
        h.case(BARE, Echo),
        h.case(
            TOWER_BUDGET,
            tower::retry::RetryLayer::new(TowerPolicy::new(true)).layer(Echo),
        ),
        h.case(
            TOWER_PLAIN,
            tower::retry::RetryLayer::new(TowerPolicy::new(false)).layer(Echo),
        ),
        h.case("tower-resilience-retry", resilience.layer(Echo)),
        h.case(
            "tower-resilience-retry + token bucket",
            resilience_budget.layer(Echo),
        ),
        h.case(
            "tower-retrier, telemetry off",
            RetryLayer::new(RetryConfig::default())
                .with_telemetry(Telemetry::disabled())
                .layer(Echo),
        ),
        // What a default user runs: the local AdaptiveBudget and `tracing` on, with no
        // subscriber installed ("tracing, no subscriber").
        h.case(OURS_LOCAL, ours().layer(Echo)),
        // The same without admission control: what admission control costs a success.
        h.case(
            "tower-retrier defaults, admission off",
            ours().without_admission().layer(Echo),
        ),
        h.case(
            "tower-retrier + local RatioBudget",
            ours().with_budget(RatioBudget::default()).layer(Echo),
        ),
        h.case(
            OURS_UNLIMITED,
            ours().with_budget(Unlimited::new()).layer(Echo),
        ),
    ];
    // Metrics to a no-op recorder (installed in `main`), on top of tracing.
    #[cfg(feature = "metrics")]
    cases.push(
        h.case(
            "tower-retrier + metrics (no-op recorder)",
            ours()
                .with_telemetry(tracing_only().with_metrics(true))
                .layer(Echo),
        ),
    );
    #[cfg(feature = "redis")]
    cases.push(redis_case(h, keep));
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

/// Our layer with its defaults (local `AdaptiveBudget`), named, `tracing` only.
fn ours() -> RetryLayer {
    RetryLayer::new(RetryConfig::default()).with_telemetry(tracing_only())
}

/// Ours with the fleet-wide budget against a real `redis-server` started here. The success
/// path only deposits (batched, flushed by a background task on `rt`).
#[cfg(feature = "redis")]
fn redis_case(h: &impl Harness, keep: &mut Keep) -> Case {
    let (server, rt) = keep.redis.get_or_insert_with(|| {
        let server = redis_server::RedisServer::start();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        (server, rt)
    });
    let budget = rt
        .block_on(
            tower_retrier::budget::RedisBudget::ratio("bench-overhead")
                .build_from_url(&server.url()),
        )
        .expect("connect to the local redis-server");
    h.case(OURS_REDIS, ours().with_budget(budget).layer(Echo))
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

/// The same for the adaptive budget: each success gives back the retry it cost.
fn generous_adaptive_budget() -> AdaptiveBudget {
    AdaptiveBudget::new(1_000_000, 1.0, 1_000_000).expect("valid budget")
}

/// The retry-path cases: each request fails once and succeeds on the retry, zero delay (the
/// sleep is excluded; everything else — classification, budget withdraw, backoff context,
/// re-polling the service clone ready, the second dispatch — is included).
fn retry_cases() -> Vec<Case> {
    let h = HandPolled;
    let mut floor_svc = Alternating::default();
    vec![
        Case {
            name: "bare: two inner calls (floor)",
            run: Box::new(move |first, calls| {
                let mut acc = 0u64;
                for i in first..first + calls {
                    let _ = call_once_result(&mut floor_svc, black_box(i));
                    acc = acc.wrapping_add(call_once(&mut floor_svc, i));
                }
                acc
            }),
            future_bytes: 0,
        },
        h.case(
            TOWER_RETRY,
            tower::retry::RetryLayer::new(TowerRetryOnce(Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                1_000_000,
                1.0,
            ))))
            .layer(Alternating::default()),
        ),
        h.case(
            OURS_RETRY_ADAPTIVE,
            ours()
                .with_backoff(Constant::new(Duration::ZERO))
                .with_budget(generous_adaptive_budget())
                .layer(Alternating::default()),
        ),
        h.case(
            OURS_RETRY,
            ours()
                .with_backoff(Constant::new(Duration::ZERO))
                .with_budget(generous_ratio_budget())
                .layer(Alternating::default()),
        ),
        h.case(
            "tower-retrier no budget, zero delay",
            ours()
                .with_backoff(Constant::new(Duration::ZERO))
                .with_budget(Unlimited::new())
                .layer(Alternating::default()),
        ),
    ]
}

/// Every case of one run: the success path under both harnesses and the retry path.
struct Cases {
    hand: Vec<Case>,
    runtime: Vec<Case>,
    retry: Vec<Case>,
}

impl Cases {
    /// In `BENCH_INSTRUCTIONS` order, with the harness in the name.
    fn all(&mut self) -> Vec<(String, &mut Case)> {
        let hand = self.hand.iter_mut().map(|c| (c.name.to_string(), c));
        let retry = self
            .retry
            .iter_mut()
            .map(|c| (format!("retry path: {}", c.name), c));
        let runtime = self
            .runtime
            .iter_mut()
            .map(|c| (format!("runtime-driven: {}", c.name), c));
        hand.chain(retry).chain(runtime).collect()
    }
}

fn criterion_benches(c: &mut Criterion, cases: &mut Cases) {
    let groups = [
        ("success_path", &mut cases.hand),
        ("success_path_runtime", &mut cases.runtime),
        ("retry_path", &mut cases.retry),
    ];
    for (group_name, cases) in groups {
        let mut group = c.benchmark_group(group_name);
        for Case { name, run, .. } in cases.iter_mut() {
            let mut first = 0u64;
            // One timed batch of `iters` calls: the runtime harness enters its runtime once
            // per batch, as a server loop would.
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    black_box(run(first, iters));
                    first = first.wrapping_add(iters);
                    start.elapsed()
                })
            });
        }
        group.finish();
    }
}

/// ns/call of one batch of `n` calls.
fn batch(run: &mut dyn FnMut(u64, u64) -> u64, n: u64) -> f64 {
    let start = Instant::now();
    black_box(run(0, n));
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Allocations per call over `n` calls.
fn allocations(run: &mut dyn FnMut(u64, u64) -> u64, n: u64) -> f64 {
    let before = allocated_so_far();
    black_box(run(0, n));
    (allocated_so_far() - before) as f64 / n as f64
}

struct Row {
    name: &'static str,
    /// Median over the rounds.
    ns: f64,
    /// Fastest round.
    min: f64,
    allocs: f64,
    future_bytes: usize,
}

/// `rounds` rounds of one `n`-call batch per case, every table's cases interleaved so that a
/// burst of load on a shared machine hits every case alike; per case the median and the
/// fastest round.
fn tables(tables: &mut [&mut Vec<Case>], n: u64, rounds: usize) -> Vec<Vec<Row>> {
    for cases in tables.iter_mut() {
        for c in cases.iter_mut() {
            batch(&mut *c.run, n / 10); // warm-up
        }
    }
    let mut samples: Vec<Vec<Vec<f64>>> = tables
        .iter()
        .map(|cases| vec![Vec::with_capacity(rounds); cases.len()])
        .collect();
    for _ in 0..rounds {
        for (cases, samples) in tables.iter_mut().zip(&mut samples) {
            for (c, s) in cases.iter_mut().zip(samples) {
                s.push(batch(&mut *c.run, n));
            }
        }
    }
    tables
        .iter_mut()
        .zip(samples)
        .map(|(cases, samples)| {
            cases
                .iter_mut()
                .zip(samples)
                .map(|(c, mut s)| {
                    s.sort_by(f64::total_cmp);
                    Row {
                        name: c.name,
                        ns: s[rounds / 2],
                        min: s[0],
                        allocs: allocations(&mut *c.run, n),
                        future_bytes: c.future_bytes,
                    }
                })
                .collect()
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

/// Overheads over the bare service and their ratios to the two `tower::retry` cases.
struct Overheads<'a> {
    rows: &'a [Row],
    bare: f64,
    tower_budget: f64,
    tower_plain: f64,
}

impl<'a> Overheads<'a> {
    fn new(rows: &'a [Row]) -> Self {
        let bare = rows[0].ns;
        Overheads {
            rows,
            bare,
            tower_budget: ns_of(rows, TOWER_BUDGET).expect("tower case") - bare,
            tower_plain: ns_of(rows, TOWER_PLAIN).expect("tower case") - bare,
        }
    }

    fn of(&self, name: &str) -> Option<f64> {
        ns_of(self.rows, name).map(|ns| ns - self.bare)
    }
}

fn summary(mode: Mode, cases: &mut Cases) {
    let (n, batches) = match mode {
        Mode::Smoke => (2_000, 3),
        Mode::Quick => (200_000, 7),
        Mode::Full => (1_000_000, 21),
    };
    let mut all = tables(
        &mut [&mut cases.hand, &mut cases.runtime, &mut cases.retry],
        n,
        batches,
    );
    let rrows = all.pop().expect("retry table");
    let runtime = all.pop().expect("runtime table");
    let hand = all.pop().expect("hand table");
    let (h, r) = (Overheads::new(&hand), Overheads::new(&runtime));
    println!(
        "\n## Success path, both harnesses (median of {batches} interleaved rounds × {n} calls; fastest round in brackets)\n"
    );
    println!(
        "| case | hand-polled ns/call | over bare | ÷ tower+TpsBudget | runtime-driven ns/call | over bare | ÷ tower+TpsBudget | allocations/call (hand, runtime) | future bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (a, b) in hand.iter().zip(&runtime) {
        let (oa, ob) = (a.ns - h.bare, b.ns - r.bare);
        println!(
            "| {} | {:.1} ({:.1}) | {:.1} ns | {:.2}× | {:.1} ({:.1}) | {:.1} ns | {:.2}× | {}, {} | {} |",
            a.name,
            a.ns,
            a.min,
            oa,
            oa / h.tower_budget,
            b.ns,
            b.min,
            ob,
            ob / r.tower_budget,
            a.allocs,
            b.allocs,
            a.future_bytes
        );
    }
    for (harness, o) in [("hand-polled", &h), ("runtime-driven", &r)] {
        let local = o.of(OURS_LOCAL).expect("local case");
        let unlimited = o.of(OURS_UNLIMITED).expect("unlimited case");
        println!(
            "\n{harness}: defaults ≤ 0.4× tower+TpsBudget's overhead: {local:.1} vs {:.1} ns = {:.2}× → {}",
            o.tower_budget,
            local / o.tower_budget,
            verdict(local <= 0.4 * o.tower_budget)
        );
        println!(
            "{harness}: Unlimited ≤ 3× tower's unbudgeted overhead: {unlimited:.1} vs {:.1} ns = {:.2}× → {}",
            o.tower_plain,
            unlimited / o.tower_plain,
            verdict(unlimited <= 3.0 * o.tower_plain)
        );
        if let Some(redis) = o.of(OURS_REDIS) {
            println!(
                "{harness}: RedisBudget within 10% of the local budget: {redis:.1} vs {local:.1} ns ({:+.0}%) → {}",
                (redis / local - 1.0) * 100.0,
                verdict(redis <= local * 1.1)
            );
        }
    }
    let ours_allocs: f64 = hand
        .iter()
        .chain(&runtime)
        .filter(|r| r.name.starts_with("tower-retrier"))
        .map(|r| r.allocs)
        .sum();
    println!(
        "0 allocations per call on our success path (both harnesses) → {}",
        verdict(ours_allocs == 0.0)
    );

    let floor = rrows[0].ns;
    println!(
        "\n## Retry path: one failed attempt + one retry, zero delay, hand-polled (median of {batches} interleaved rounds × {n} calls; fastest in brackets)\n"
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
    let tower = ns_of(&rrows, TOWER_RETRY).expect("tower retry case") - floor;
    for name in [OURS_RETRY_ADAPTIVE, OURS_RETRY] {
        let ours = ns_of(&rrows, name).expect("our retry case") - floor;
        println!(
            "\nretry decision ({name}) ≤ tower+TpsBudget's: {ours:.1} vs {tower:.1} ns → {}",
            verdict(ours <= tower)
        );
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// `BENCH_INSTRUCTIONS=<index>:<calls>`: run one case only (for callgrind), numbered as in
/// [`Cases::all`]: hand-polled success cases, then the retry path, then the runtime-driven
/// success cases.
fn instructions_mode(spec: &str, cases: &mut Cases) {
    let (index, calls) = spec
        .split_once(':')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<u64>().ok()?)))
        .expect("BENCH_INSTRUCTIONS=<case index>:<calls>");
    let all = cases.all();
    let count = all.len();
    let (name, case) = all
        .into_iter()
        .nth(index)
        .unwrap_or_else(|| panic!("case index {index} out of range (0..{count})"));
    // Warm up lazily initialised state (thread locals, budget windows) outside the count.
    black_box((case.run)(0, 1000));
    counted_calls(&mut *case.run, calls);
    eprintln!("{name}");
}

/// The only code callgrind counts (`--toggle-collect=*counted_calls*`).
#[inline(never)]
fn counted_calls(run: &mut dyn FnMut(u64, u64) -> u64, calls: u64) {
    black_box(run(1000, calls));
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
    let mut cases = Cases {
        hand: success_cases(&HandPolled, &mut keep),
        runtime: success_cases(&RuntimeDriven::new(), &mut keep),
        retry: retry_cases(),
    };
    if let Ok(spec) = std::env::var("BENCH_INSTRUCTIONS") {
        instructions_mode(&spec, &mut cases);
        return;
    }
    if std::env::var_os("BENCH_SUMMARY_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &mut cases);
        c.final_summary();
    }
    summary(mode, &mut cases);
    // `cases` go before `keep` (the Redis server and runtime they use).
    drop(cases);
}
