//! The overload simulation of `examples/overload.rs` (and `tests/overload_scenarios.rs`): a
//! fleet of client instances, each through its own client stack, against one downstream, in
//! paused tokio time (virtual, exact, deterministic: seeded, one thread, no wall clock).
//!
//! **Client.** `instances` × `rate` original requests per second, open loop, evenly spaced,
//! instances staggered across one period. Each instance has its own stack,
//! `set-up's layer → tower::timeout::Timeout(attempt_timeout) → downstream`, built by a
//! [`Setup`]; every original call is spawned, so a slow call never holds the loop back.
//!
//! **Downstreams.**
//! - [`Downstream::Queued`]: `workers` concurrent workers, a bounded FIFO queue; a request
//!   arriving to a full queue is rejected at once ([`Shed`], 503-like). The service time is
//!   taken when a worker starts a job (× `slowdown` during the event). Work is **not**
//!   cancelled when the client gives up: a timed-out request stays queued and still costs a
//!   worker its full service time.
//!   With the server half ([`Scenario::with_server_half`], `overload_server_half.rs`) each
//!   attempt carries its timeout as its deadline and the crate's `DropExpiredLayer` drops at
//!   the front of the queue what has outlived it; the queue is rebuilt from semaphores for
//!   the layer to wait on ([`Front`]), with the same counts when the layer is left out.
//! - [`Downstream::Immediate`]: answers at once; during the event every attempt fails
//!   ([`Fault::Outage`]) or each fails independently ([`Fault::Failing`]), with
//!   [`Unavailable`]. With `blips`, outside the event the first attempt of one call in a
//!   hundred fails (a blip a retry always repairs), as in `budget_scenarios.rs`.
//!
//! **Counted** in [`BUCKET`]s: originals, good calls (succeeded end to end) and local
//! rejections (failed without reaching the downstream, as the set-up's
//! [`Setup::is_local_rejection`] says) by **send time**; attempts reaching the downstream and
//! sheds by **arrival time** at the downstream. Every call sent is awaited before a run ends.
//!
//! **Adding a row** (an admission-control variant): one [`Setup`], e.g.
//! `Setup::per_instance("ours, admission X", |i, inner| boxed(layer_x(i).layer(inner)))
//! .with_local_rejection(|e| e.is::<Rejected>())`; [`Setup::fleet`] when the instances must
//! share state (built fresh for every run). Then call the scenario functions
//! ([`capacity_drop`], [`total_outage`], [`failure_rate`], [`low_traffic_fleet`],
//! [`one_bad_instance`]) with it, or [`simulate`] for the raw [`Run`].
//!
//! Fleet-wide state through Redis needs the real clock (a Redis window cannot follow tokio's
//! paused clock): [`simulate_in`] runs a scenario on a runtime the caller provides (for
//! example a multi-thread runtime in real time), with the same set-up and counts.

#![allow(dead_code)]

#[path = "tower_policy.rs"]
mod tower_policy;

#[path = "overload_server_half.rs"]
mod server_half;

pub use server_half::ServerHalf;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::util::rng::Rng;
use tower::{Layer, Service, ServiceExt};
use tower_retrier::admission::{Admission, AdmissionConfig, Mechanism, Rejected};
use tower_retrier::budget::{Budget, RatioBudget, TokenBucket};
use tower_retrier::{RetryConfig, RetryLayer};

pub use tower::BoxError;

/// One instance's client (and the per-attempt stack it is built around).
pub type Client = BoxCloneService<u64, u64, BoxError>;

/// Width of a counting bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Whether a call's error is admission control's refusal.
pub fn is_rejected(e: &BoxError) -> bool {
    Rejected::find(&**e).is_some()
}

/// Boxes any suitable service into a [`Client`].
pub fn boxed<S>(svc: S) -> Client
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneService::new(svc.map_err(Into::into))
}

// ---------------------------------------------------------------------------------------------
// Errors of the downstream
// ---------------------------------------------------------------------------------------------

/// The queued downstream's rejection of a request arriving to a full queue (a 503).
#[derive(Debug, Clone, Copy)]
pub struct Shed;

impl fmt::Display for Shed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("503 service unavailable: queue full")
    }
}

impl std::error::Error for Shed {}

/// The immediate downstream's failure (a 503).
#[derive(Debug, Clone, Copy)]
pub struct Unavailable;

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("503 service unavailable")
    }
}

impl std::error::Error for Unavailable {}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// How the immediate downstream fails during the event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Every attempt fails.
    Outage,
    /// Each attempt fails independently with this probability.
    Failing(f64),
}

/// The downstream of a scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Downstream {
    /// Workers behind a bounded FIFO queue; the service time is multiplied by `slowdown`
    /// for jobs started during the event.
    Queued {
        workers: usize,
        service: Duration,
        slowdown: u32,
        queue: usize,
    },
    /// Answers at once, failing during the event as `fault` says.
    Immediate { fault: Fault, blips: bool },
}

/// A scenario: fleet, load, timeline, downstream.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub instances: usize,
    /// Original requests per second per instance.
    pub rate: u32,
    /// Before the event.
    pub healthy: Duration,
    /// The event (trigger, outage, failures).
    pub event: Duration,
    /// After the event.
    pub after: Duration,
    /// Per-attempt timeout of the client stack.
    pub attempt_timeout: Duration,
    pub downstream: Downstream,
    /// The event hits the calls of instances `0..affected` only (all of them by default).
    pub affected: usize,
    /// Seed of the downstream's faults and of the set-ups' jitter.
    pub seed: u64,
    /// How a queued downstream's queue is built, and whether the server half is in place.
    pub front: Front,
}

/// The queued downstream's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// [`Server`]: a `VecDeque` its worker tasks pop.
    Plain,
    /// [`ServerHalf`] without the layer: the same queue rebuilt from semaphores (a check that
    /// the rebuild changes nothing).
    Semaphores,
    /// [`ServerHalf`]: the rebuilt queue with `DropExpiredLayer` in front of it, dropping what
    /// reaches the front with no more than this left (`min_time_left`; zero: what has expired).
    DropExpired(Duration),
}

impl Scenario {
    /// The capacity drop: 16 × 50/s, 10 workers × 10 ms (1,000/s) behind a `queue`-deep
    /// FIFO queue; 20 s healthy, 10 s of service time × 3 (333/s), then 60 s.
    pub fn capacity_drop(queue: usize) -> Scenario {
        Scenario {
            name: "capacity drop",
            instances: 16,
            rate: 50,
            healthy: Duration::from_secs(20),
            event: Duration::from_secs(10),
            after: Duration::from_secs(60),
            attempt_timeout: Duration::from_millis(100),
            downstream: Downstream::Queued {
                workers: 10,
                service: Duration::from_millis(10),
                slowdown: 3,
                queue,
            },
            affected: usize::MAX,
            seed: 1,
            front: Front::Plain,
        }
    }

    /// The same scenario with the server half in place (a queued downstream only).
    pub fn with_server_half(self) -> Scenario {
        self.with_front(Front::DropExpired(Duration::ZERO))
    }

    /// The same scenario with its queue built as `front` says (a queued downstream only).
    pub fn with_front(self, front: Front) -> Scenario {
        assert!(
            matches!(self.downstream, Downstream::Queued { .. }),
            "only a queued downstream has a queue"
        );
        Scenario { front, ..self }
    }

    /// The retry storm's fleet: 16 × 100/s against a downstream answering at once, 10 s
    /// healthy, 30 s of `fault`, then 10 s healthy; background blips outside the event.
    pub fn storm(name: &'static str, fault: Fault) -> Scenario {
        Scenario {
            name,
            instances: 16,
            rate: 100,
            healthy: Duration::from_secs(10),
            event: Duration::from_secs(30),
            after: Duration::from_secs(10),
            attempt_timeout: Duration::from_millis(100),
            downstream: Downstream::Immediate { fault, blips: true },
            affected: usize::MAX,
            seed: 1,
            front: Front::Plain,
        }
    }

    /// (a) Total outage: [`Scenario::storm`] with every attempt failing.
    pub fn total_outage() -> Scenario {
        Scenario::storm("total outage", Fault::Outage)
    }

    /// (b), (c) Each attempt failing independently with probability `p` during the event.
    pub fn failure_rate(p: f64) -> Scenario {
        Scenario::storm("independent failures", Fault::Failing(p))
    }

    /// (d) Low-traffic fleet: 64 instances × 2/s in a total outage.
    pub fn low_traffic_fleet() -> Scenario {
        Scenario {
            name: "low-traffic fleet",
            instances: 64,
            rate: 2,
            ..Scenario::total_outage()
        }
    }

    /// (e) One instance's calls failing 100 % (its network is broken) among 15 healthy ones.
    pub fn one_bad_instance() -> Scenario {
        Scenario {
            name: "one bad instance",
            affected: 1,
            ..Scenario::total_outage()
        }
    }

    /// The same scenario with other phase lengths.
    pub fn phases(self, healthy: Duration, event: Duration, after: Duration) -> Scenario {
        Scenario {
            healthy,
            event,
            after,
            ..self
        }
    }

    /// Shorter phases for a smoke run (each scenario keeps what its figures need).
    pub fn quick(self) -> Scenario {
        let s = Duration::from_secs;
        match self.downstream {
            // The 2,000-deep queue needs ~4.3 s of trigger to fill and ~10 s to drain.
            Downstream::Queued { .. } => self.phases(s(5), s(5), s(20)),
            Downstream::Immediate { .. } => self.phases(s(5), s(10), s(5)),
        }
    }

    pub fn total(&self) -> Duration {
        self.healthy + self.event + self.after
    }

    pub fn event_end(&self) -> Duration {
        self.healthy + self.event
    }

    pub fn buckets(&self) -> usize {
        self.total().as_nanos().div_ceil(BUCKET.as_nanos()) as usize
    }

    /// The bucket of a time since the start (late answers land in the last bucket).
    pub fn bucket_of(&self, t: Duration) -> usize {
        ((t.as_nanos() / BUCKET.as_nanos()) as usize).min(self.buckets() - 1)
    }

    fn in_event(&self, t: Duration) -> bool {
        t >= self.healthy && t < self.event_end()
    }

    /// Offered load: original requests per second of the whole fleet.
    pub fn offered(&self) -> f64 {
        self.instances as f64 * self.rate as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Set-ups
// ---------------------------------------------------------------------------------------------

/// Builds one instance's client around its per-attempt stack.
pub type InstanceFactory = Box<dyn Fn(usize, Client) -> Client>;

/// One row of the tables: how every instance's client is built.
pub struct Setup {
    pub name: String,
    /// Called once per run; the factory it returns is called once per instance.
    fleet: Rc<dyn Fn() -> InstanceFactory>,
    /// Whether a call's error is a local rejection (failed without reaching the downstream).
    pub is_local_rejection: fn(&BoxError) -> bool,
}

impl Setup {
    /// A set-up whose instances share nothing: `client(instance, per_attempt_stack)`.
    pub fn per_instance(
        name: impl Into<String>,
        client: impl Fn(usize, Client) -> Client + 'static,
    ) -> Setup {
        let client = Rc::new(client);
        Setup {
            name: name.into(),
            fleet: Rc::new(move || {
                let client = client.clone();
                Box::new(move |i, inner| client(i, inner)) as InstanceFactory
            }),
            is_local_rejection: never_local,
        }
    }

    /// A set-up whose instances share state: `fleet()` is called at the start of every run
    /// (fresh shared state) and returns the per-instance factory.
    pub fn fleet<F>(name: impl Into<String>, fleet: impl Fn() -> F + 'static) -> Setup
    where
        F: Fn(usize, Client) -> Client + 'static,
    {
        Setup {
            name: name.into(),
            fleet: Rc::new(move || Box::new(fleet()) as InstanceFactory),
            is_local_rejection: never_local,
        }
    }

    /// How to tell a local rejection from the error a call ends with.
    pub fn with_local_rejection(mut self, is_local_rejection: fn(&BoxError) -> bool) -> Setup {
        self.is_local_rejection = is_local_rejection;
        self
    }

    /// Plain client: no retry layer.
    pub fn plain() -> Setup {
        Setup::per_instance("plain client, no retry layer", |_, inner| inner)
    }

    /// `tower::retry`, 3 attempts (100 ms exponential backoff, jitter 0.1, one
    /// `ExponentialBackoffMaker` per instance), with or without `TpsBudget::default()` (one
    /// per instance).
    pub fn tower_retry(with_budget: bool) -> Setup {
        let name = if with_budget {
            "tower::retry + TpsBudget::default()"
        } else {
            "tower::retry, 3 attempts, no budget"
        };
        Setup::per_instance(name, move |i, inner| {
            let policy = tower_policy(with_budget, (i as u64 + 1) * 0x9E37_79B9);
            boxed(tower::retry::RetryLayer::new(policy).layer(inner))
        })
    }

    /// Ours, `RetryConfig::default()` with `budget()` (one per instance).
    pub fn ours_with<B>(name: impl Into<String>, budget: impl Fn() -> B + 'static) -> Setup
    where
        B: Budget + Clone + Send + Sync + 'static,
        B::Withdraw: Send,
    {
        Setup::per_instance(name, move |i, inner| {
            let layer = RetryLayer::new(RetryConfig::default())
                .with_budget(budget())
                .without_admission()
                .seed(i as u64 + 1)
                .release_on_drop();
            boxed(layer.layer(inner))
        })
    }

    /// Ours with the defaults: `RetryLayer::new(RetryConfig::default())`.
    /// Ours, `RetryConfig::default()` and the default `AdaptiveBudget`, admission control
    /// off: the layer as it was before admission control.
    pub fn ours_default() -> Setup {
        Setup::per_instance("ours, AdaptiveBudget, admission off", |i, inner| {
            let layer = RetryLayer::new(RetryConfig::default())
                .without_admission()
                .seed(i as u64 + 1)
                .release_on_drop();
            boxed(layer.layer(inner))
        })
    }

    /// Ours, `RetryConfig::default()` and the default budget, with `admission()` (one per
    /// instance).
    pub fn ours_admission(
        name: impl Into<String>,
        admission: impl Fn() -> Admission + 'static,
    ) -> Setup {
        Setup::per_instance(name, move |i, inner| {
            let layer = RetryLayer::new(RetryConfig::default())
                .with_admission(admission())
                .seed(i as u64 + 1)
                .release_on_drop();
            boxed(layer.layer(inner))
        })
        .with_local_rejection(is_rejected)
    }

    /// The defaults as they ship (admission control on), and each admission mechanism.
    pub fn admission_rows() -> Vec<Setup> {
        let with = |m: Mechanism| {
            move || {
                let cfg = AdmissionConfig::builder().mechanism(m);
                // The limits alone start where Netflix's concurrency-limits starts.
                let cfg = if matches!(m, Mechanism::ConcurrencyLimit | Mechanism::LatencyLimit) {
                    cfg.initial_limit(20)
                } else {
                    cfg
                };
                Admission::new(cfg.build().expect("valid"))
            }
        };
        vec![
            Setup::ours_admission("ours, SRE throttle (k = 2)", with(Mechanism::Throttle)),
            Setup::ours_admission("ours, breaker", with(Mechanism::Breaker)),
            Setup::ours_admission(
                "ours, concurrency limit (AIMD from 20)",
                with(Mechanism::ConcurrencyLimit),
            ),
            Setup::ours_admission(
                "ours, latency limit (Gradient2 from 20)",
                with(Mechanism::LatencyLimit),
            ),
            Setup::ours_admission("**ours, defaults (breaker + limit)**", Admission::default),
        ]
    }

    /// The six baseline rows.
    pub fn baseline() -> Vec<Setup> {
        vec![
            Setup::plain(),
            Setup::tower_retry(false),
            Setup::tower_retry(true),
            Setup::ours_with("ours, RatioBudget::default()", RatioBudget::default),
            Setup::ours_with("ours, TokenBucket::new(10, 0.1)", || {
                TokenBucket::new(10, 0.1).expect("valid")
            }),
            Setup::ours_default(),
        ]
    }

    /// The rows run again with the server half in place: a plain client, ours with admission
    /// control off, ours as it ships.
    pub fn server_half_rows() -> Vec<Setup> {
        vec![
            Setup::plain(),
            Setup::ours_default(),
            Setup::ours_admission("**ours, defaults (breaker + limit)**", Admission::default),
        ]
    }

    /// The baseline rows, then the admission rows.
    pub fn all() -> Vec<Setup> {
        let mut all = Setup::baseline();
        all.extend(Setup::admission_rows());
        all
    }
}

fn never_local(_: &BoxError) -> bool {
    false
}

/// xorshift64*: deterministic (one thread, fixed order).
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn uniform(&mut self) -> f64 {
        self.next_f64()
    }
}

impl Rng for XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `tower::retry`'s policy as users write it (shared with `benches/overhead.rs`), its jitter
/// seeded for determinism.
pub fn tower_policy(with_budget: bool, seed: u64) -> tower_policy::TowerPolicy<XorShift> {
    tower_policy::TowerPolicy::with_rng(with_budget, XorShift::new(seed))
}

// ---------------------------------------------------------------------------------------------
// Counts
// ---------------------------------------------------------------------------------------------

/// Per-bucket counts of one run.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Original calls sent (send time).
    pub originals: Vec<u64>,
    /// Calls that succeeded end to end (send time).
    pub good: Vec<u64>,
    /// The same calls by the time their answer came back.
    pub good_answered: Vec<u64>,
    /// Calls rejected locally (send time).
    pub local_rejections: Vec<u64>,
    /// Attempts reaching the downstream, sheds included (arrival time).
    pub attempts: Vec<u64>,
    /// Attempts the queued downstream shed (arrival time).
    pub shed: Vec<u64>,
    /// Local rejections per instance (whole run).
    pub rejections_by_instance: Vec<u64>,
    /// Longest and total latency of a locally rejected call (virtual time).
    pub rejection_latency_max: Duration,
    pub rejection_latency_sum: Duration,
    /// Most jobs the queued downstream ever ran at once.
    pub max_busy: usize,
    /// Jobs the queued downstream served, and those among them whose caller had gone.
    pub served: u64,
    pub served_abandoned: u64,
    /// Requests the server half dropped at the front of the queue (or on arrival).
    pub expired_dropped: u64,
}

impl Counts {
    fn new(buckets: usize, instances: usize) -> Self {
        Counts {
            originals: vec![0; buckets],
            good: vec![0; buckets],
            good_answered: vec![0; buckets],
            local_rejections: vec![0; buckets],
            attempts: vec![0; buckets],
            shed: vec![0; buckets],
            rejections_by_instance: vec![0; instances],
            ..Counts::default()
        }
    }
}

struct Shared {
    start: Instant,
    scenario: Scenario,
    counts: Mutex<Counts>,
}

impl Shared {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

// ---------------------------------------------------------------------------------------------
// The queued downstream
// ---------------------------------------------------------------------------------------------

/// The queued downstream's configuration.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    pub workers: usize,
    pub service: Duration,
    pub queue: usize,
    /// Jobs started in `[from, to)` since the server's start take `service × factor`.
    pub slow: Option<(Duration, Duration, u32)>,
}

struct Job {
    req: u64,
    reply: oneshot::Sender<u64>,
}

struct ServerState {
    queue: VecDeque<Job>,
    busy: usize,
    max_busy: usize,
    served: u64,
    served_abandoned: u64,
}

struct ServerInner {
    config: ServerConfig,
    start: Instant,
    state: Mutex<ServerState>,
    work: Notify,
    /// Counts attempts and sheds per bucket when part of a run.
    shared: Option<Arc<Shared>>,
}

/// A downstream with `workers` workers behind a bounded FIFO queue; a handle (cheap clone).
/// Work is never cancelled: a job whose caller has gone still takes a worker its full
/// service time. The workers stop when the [`Workers`] guard is dropped.
#[derive(Clone)]
pub struct Server(Arc<ServerInner>);

/// The server's worker tasks (aborted on drop).
pub struct Workers(JoinSet<()>);

/// Figures of a server's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerStats {
    pub queued: usize,
    pub busy: usize,
    pub max_busy: usize,
    pub served: u64,
    pub served_abandoned: u64,
}

impl Server {
    /// Starts the workers on the current runtime.
    pub fn start(config: ServerConfig) -> (Server, Workers) {
        Server::start_counted(config, Instant::now(), None)
    }

    fn start_counted(
        config: ServerConfig,
        start: Instant,
        shared: Option<Arc<Shared>>,
    ) -> (Server, Workers) {
        assert!(config.workers > 0, "a server needs a worker");
        let inner = Arc::new(ServerInner {
            config,
            start,
            state: Mutex::new(ServerState {
                queue: VecDeque::with_capacity(config.queue),
                busy: 0,
                max_busy: 0,
                served: 0,
                served_abandoned: 0,
            }),
            work: Notify::new(),
            shared,
        });
        let mut workers = JoinSet::new();
        for _ in 0..config.workers {
            workers.spawn(worker(inner.clone()));
        }
        (Server(inner), Workers(workers))
    }

    pub fn stats(&self) -> ServerStats {
        let s = self.0.state.lock().unwrap();
        ServerStats {
            queued: s.queue.len(),
            busy: s.busy,
            max_busy: s.max_busy,
            served: s.served,
            served_abandoned: s.served_abandoned,
        }
    }
}

async fn worker(inner: Arc<ServerInner>) {
    loop {
        let job = {
            let mut s = inner.state.lock().unwrap();
            let job = s.queue.pop_front();
            if job.is_some() {
                s.busy += 1;
                s.max_busy = s.max_busy.max(s.busy);
            }
            job
        };
        let Some(job) = job else {
            inner.work.notified().await;
            continue;
        };
        let since = inner.start.elapsed();
        let c = &inner.config;
        let service = match c.slow {
            Some((from, to, factor)) if since >= from && since < to => c.service * factor,
            _ => c.service,
        };
        tokio::time::sleep(service).await;
        let abandoned = job.reply.send(job.req).is_err();
        let mut s = inner.state.lock().unwrap();
        s.busy -= 1;
        s.served += 1;
        s.served_abandoned += u64::from(abandoned);
    }
}

type ReplyFuture = Pin<Box<dyn Future<Output = Result<u64, BoxError>> + Send>>;

impl Service<u64> for Server {
    type Response = u64;
    type Error = BoxError;
    type Future = ReplyFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        let inner = &self.0;
        let queued = {
            let mut s = inner.state.lock().unwrap();
            (s.queue.len() < inner.config.queue).then(|| {
                let (reply, rx) = oneshot::channel();
                s.queue.push_back(Job { req, reply });
                rx
            })
        };
        if let Some(sh) = &inner.shared {
            let b = sh.scenario.bucket_of(sh.now());
            let mut c = sh.counts.lock().unwrap();
            c.attempts[b] += 1;
            c.shed[b] += u64::from(queued.is_none());
        }
        match queued {
            Some(rx) => {
                inner.work.notify_one();
                Box::pin(async move { rx.await.map_err(|_| BoxError::from("server gone")) })
            }
            None => Box::pin(std::future::ready(Err(Shed.into()))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The immediate downstream
// ---------------------------------------------------------------------------------------------

struct Faults {
    rng: XorShift,
    /// Calls whose first attempt already failed as a background blip.
    blipped: HashSet<u64>,
}

/// Answers at once; fails as the scenario says. One handle per instance.
#[derive(Clone)]
struct Immediate {
    shared: Arc<Shared>,
    faults: Arc<Mutex<Faults>>,
    instance: usize,
}

impl Service<u64> for Immediate {
    type Response = u64;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u64, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        let sh = &self.shared;
        let now = sh.now();
        sh.counts.lock().unwrap().attempts[sh.scenario.bucket_of(now)] += 1;
        let Downstream::Immediate { fault, blips } = sh.scenario.downstream else {
            unreachable!("an immediate downstream")
        };
        let mut faults = self.faults.lock().unwrap();
        let fail = if sh.scenario.in_event(now) && self.instance < sh.scenario.affected {
            match fault {
                Fault::Outage => true,
                Fault::Failing(p) => faults.rng.uniform() < p,
            }
        } else {
            blips && req.is_multiple_of(100) && faults.blipped.insert(req)
        };
        std::future::ready(if fail {
            Err(Unavailable.into())
        } else {
            Ok(req)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/// One set-up through one scenario.
#[derive(Clone, Debug)]
pub struct Run {
    pub setup: String,
    pub scenario: Scenario,
    pub counts: Counts,
}

/// A current-thread runtime with the clock paused.
pub fn virtual_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// Runs `scenario` with `setup` in virtual time (a fresh paused runtime).
pub fn simulate(setup: &Setup, scenario: &Scenario) -> Run {
    simulate_in(&virtual_runtime(), setup, scenario)
}

/// Runs `scenario` with `setup` on `rt` (paused or real time, as `rt` is built).
pub fn simulate_in(rt: &tokio::runtime::Runtime, setup: &Setup, scenario: &Scenario) -> Run {
    let counts = rt.block_on(run(setup, *scenario));
    Run {
        setup: setup.name.clone(),
        scenario: *scenario,
        counts,
    }
}

/// One downstream handle per instance.
type DownstreamFactory = Box<dyn Fn(usize) -> Client>;

async fn run(setup: &Setup, scenario: Scenario) -> Counts {
    let shared = Arc::new(Shared {
        start: Instant::now(),
        scenario,
        counts: Mutex::new(Counts::new(scenario.buckets(), scenario.instances)),
    });
    let start = shared.start;
    // The downstream: one handle per instance.
    let mut server_half = None;
    let (downstream, server): (DownstreamFactory, Option<(Server, Workers)>) =
        match scenario.downstream {
            Downstream::Queued {
                workers,
                service,
                slowdown,
                queue,
            } if scenario.front != Front::Plain => {
                let server = ServerHalf::start(
                    ServerConfig {
                        workers,
                        service,
                        queue,
                        slow: Some((scenario.healthy, scenario.event_end(), slowdown)),
                    },
                    start,
                    scenario.attempt_timeout,
                    match scenario.front {
                        Front::DropExpired(min_time_left) => Some(min_time_left),
                        _ => None,
                    },
                    shared.clone(),
                );
                server_half = Some(server.clone());
                (Box::new(move |_| boxed(server.clone())), None)
            }
            Downstream::Queued {
                workers,
                service,
                slowdown,
                queue,
            } => {
                let (server, workers) = Server::start_counted(
                    ServerConfig {
                        workers,
                        service,
                        queue,
                        slow: Some((scenario.healthy, scenario.event_end(), slowdown)),
                    },
                    start,
                    Some(shared.clone()),
                );
                let handle = server.clone();
                (
                    Box::new(move |_| boxed(handle.clone())),
                    Some((server, workers)),
                )
            }
            Downstream::Immediate { .. } => {
                let faults = Arc::new(Mutex::new(Faults {
                    rng: XorShift::new(scenario.seed),
                    blipped: HashSet::new(),
                }));
                let shared = shared.clone();
                (
                    Box::new(move |instance| {
                        boxed(Immediate {
                            shared: shared.clone(),
                            faults: faults.clone(),
                            instance,
                        })
                    }),
                    None,
                )
            }
        };
    let factory = (setup.fleet)();
    let is_local = setup.is_local_rejection;
    let n = scenario.instances as u32;
    let period = Duration::from_secs(1) / scenario.rate;
    let mut instances = JoinSet::new();
    for i in 0..scenario.instances {
        let per_attempt = boxed(tower::timeout::Timeout::new(
            downstream(i),
            scenario.attempt_timeout,
        ));
        let client = factory(i, per_attempt);
        let shared = shared.clone();
        instances.spawn(async move {
            let mut tick = tokio::time::interval_at(start + period * i as u32 / n, period);
            let mut calls = JoinSet::new();
            for seq in 0u64.. {
                let sent = tick.tick().await;
                let at = sent.duration_since(start);
                if at >= scenario.total() {
                    break;
                }
                let b = scenario.bucket_of(at);
                shared.counts.lock().unwrap().originals[b] += 1;
                let call = client.clone().oneshot(((i as u64) << 32) | seq);
                let shared = shared.clone();
                // The tick's deadline is `sent`; tokio's timer fires it on the next whole
                // millisecond, when the call is actually issued.
                let issued = Instant::now();
                calls.spawn(async move {
                    let res = call.await;
                    let answered = scenario.bucket_of(shared.now());
                    let mut c = shared.counts.lock().unwrap();
                    match res {
                        Ok(_) => {
                            c.good[b] += 1;
                            c.good_answered[answered] += 1;
                        }
                        Err(e) if is_local(&e) => {
                            let latency = issued.elapsed();
                            c.local_rejections[b] += 1;
                            c.rejections_by_instance[i] += 1;
                            c.rejection_latency_max = c.rejection_latency_max.max(latency);
                            c.rejection_latency_sum += latency;
                        }
                        Err(_) => {}
                    }
                });
                // Reap finished calls now and then, so the set stays small.
                while calls.try_join_next().is_some() {}
            }
            while calls.join_next().await.is_some() {}
        });
    }
    while instances.join_next().await.is_some() {}
    let mut counts = shared.counts.lock().unwrap().clone();
    if let Some((server, workers)) = server {
        drop(workers);
        let stats = server.stats();
        counts.max_busy = stats.max_busy;
        counts.served = stats.served;
        counts.served_abandoned = stats.served_abandoned;
    }
    if let Some(server) = server_half {
        let (stats, dropped) = server.stats();
        counts.max_busy = stats.max_busy;
        counts.served = stats.served;
        counts.served_abandoned = stats.served_abandoned;
        counts.expired_dropped = dropped;
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/// Consecutive time at ≥ [`RECOVERED_SHARE`] of the offered load that counts as recovered.
pub const RECOVERED_HOLD: Duration = Duration::from_secs(5);
/// Share of the offered load that must succeed, bucket by bucket, to count as recovered.
pub const RECOVERED_SHARE: f64 = 0.95;

impl Run {
    fn range(&self, from: Duration, to: Duration) -> std::ops::Range<usize> {
        let s = &self.scenario;
        let to_b = if to >= s.total() {
            s.buckets()
        } else {
            s.bucket_of(to)
        };
        s.bucket_of(from)..to_b
    }

    fn sum(&self, v: &[u64], from: Duration, to: Duration) -> u64 {
        v[self.range(from, to)].iter().sum()
    }

    /// Good calls per second among the calls sent in `[from, to)`.
    pub fn good_per_sec(&self, from: Duration, to: Duration) -> f64 {
        self.sum(&self.counts.good, from, to) as f64 / (to - from).as_secs_f64()
    }

    /// Successful answers per second received in `[from, to)` (whatever the send time).
    pub fn good_answers_per_sec(&self, from: Duration, to: Duration) -> f64 {
        self.sum(&self.counts.good_answered, from, to) as f64 / (to - from).as_secs_f64()
    }

    /// Share of the calls sent in `[from, to)` that succeeded.
    pub fn success(&self, from: Duration, to: Duration) -> f64 {
        ratio(
            self.sum(&self.counts.good, from, to),
            self.sum(&self.counts.originals, from, to),
        )
    }

    /// Calls sent in `[from, to)` and rejected locally.
    pub fn local_rejections(&self, from: Duration, to: Duration) -> u64 {
        self.sum(&self.counts.local_rejections, from, to)
    }

    /// Share of the calls sent in `[from, to)` that were rejected locally.
    pub fn shed_share(&self, from: Duration, to: Duration) -> f64 {
        ratio(
            self.local_rejections(from, to),
            self.sum(&self.counts.originals, from, to),
        )
    }

    /// Attempts reaching the downstream per original call in `[from, to)`.
    pub fn attempts_per_original(&self, from: Duration, to: Duration) -> f64 {
        ratio(
            self.sum(&self.counts.attempts, from, to),
            self.sum(&self.counts.originals, from, to),
        )
    }

    /// From the event's end until, bucket by bucket, at least [`RECOVERED_SHARE`] of the
    /// calls sent succeed for [`RECOVERED_HOLD`] in a row (`None`: not within the run).
    pub fn recovery(&self) -> Option<Duration> {
        let s = &self.scenario;
        let c = &self.counts;
        let e = s.bucket_of(s.event_end());
        let hold = (RECOVERED_HOLD.as_nanos() / BUCKET.as_nanos()) as usize;
        let ok = |b: usize| c.good[b] as f64 >= RECOVERED_SHARE * c.originals[b] as f64;
        let mut run = 0;
        for b in e..s.buckets() {
            run = if ok(b) { run + 1 } else { 0 };
            if run == hold {
                return Some(BUCKET * (b + 1 - hold - e) as u32);
            }
        }
        None
    }

    /// From the event's end until every call sent succeeds (`None`: some calls of the run's
    /// last second still fail).
    pub fn full_success_after(&self) -> Option<Duration> {
        let s = &self.scenario;
        let c = &self.counts;
        let e = s.bucket_of(s.event_end());
        let last = s.buckets();
        match (e..last).rev().find(|&b| c.good[b] < c.originals[b]) {
            None => Some(Duration::ZERO),
            Some(b) if BUCKET * (last - b - 1) as u32 >= Duration::from_secs(1) => {
                Some(BUCKET * (b + 1 - e) as u32)
            }
            Some(_) => None,
        }
    }

    /// Longest latency of a locally rejected call (`None`: no local rejection).
    pub fn rejection_latency(&self) -> Option<Duration> {
        self.counts
            .local_rejections
            .iter()
            .any(|&n| n > 0)
            .then_some(self.counts.rejection_latency_max)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The capacity drop's figures for one set-up and queue depth.
#[derive(Clone, Debug)]
pub struct CapacityDropReport {
    pub setup: String,
    pub queue: usize,
    /// Good calls per second among the calls sent during the trigger.
    pub good_per_sec_trigger: f64,
    /// Successful answers per second received during the trigger (sent then or just before).
    pub good_answers_per_sec_trigger: f64,
    /// From the trigger's end to full goodput ([`Run::recovery`]); `None` = never.
    pub recovery: Option<Duration>,
    /// Local rejections of calls sent in the healthy phase.
    pub healthy_local_rejections: u64,
    /// Local rejections of calls sent during the trigger.
    pub trigger_local_rejections: u64,
    /// Attempts reaching the downstream per original, during the trigger and after it.
    pub attempts_per_original_trigger: f64,
    pub attempts_per_original_after: f64,
    pub run: Run,
}

/// Runs a capacity drop ([`Scenario::capacity_drop`], maybe shortened) with `setup`.
pub fn capacity_drop(setup: &Setup, scenario: &Scenario) -> CapacityDropReport {
    let run = simulate(setup, scenario);
    let s = run.scenario;
    let Downstream::Queued { queue, .. } = s.downstream else {
        panic!("a capacity drop needs a queued downstream")
    };
    CapacityDropReport {
        setup: setup.name.clone(),
        queue,
        good_per_sec_trigger: run.good_per_sec(s.healthy, s.event_end()),
        good_answers_per_sec_trigger: run.good_answers_per_sec(s.healthy, s.event_end()),
        recovery: run.recovery(),
        healthy_local_rejections: run.local_rejections(Duration::ZERO, s.healthy),
        trigger_local_rejections: run.local_rejections(s.healthy, s.event_end()),
        attempts_per_original_trigger: run.attempts_per_original(s.healthy, s.event_end()),
        attempts_per_original_after: run.attempts_per_original(s.event_end(), s.total()),
        run,
    }
}

/// How long the first part of an outage is left out of its steady-state figures.
pub const OUTAGE_WARMUP: Duration = Duration::from_secs(2);

/// The figures of an outage: (a) total outage, (d) low-traffic fleet, (e) one bad instance.
#[derive(Clone, Debug)]
pub struct OutageReport {
    pub setup: String,
    /// Attempts reaching the downstream per original, after the outage's first 2 s.
    pub attempts_per_original_after_warmup: f64,
    /// Share of the originals rejected locally (never sent), after the outage's first 2 s.
    pub shed_after_warmup: f64,
    /// Longest latency of a locally rejected call (virtual time); `None`: none rejected.
    pub rejection_latency: Option<Duration>,
    /// From the downstream's return until every call succeeds; `None` = not within the run.
    pub full_success_after: Option<Duration>,
    /// Local rejections of calls sent in the healthy phase.
    pub healthy_local_rejections: u64,
    /// Local rejections on the instances the event does not hit (whole run).
    pub unaffected_local_rejections: u64,
    /// Local rejections on the instances the event hits (whole run).
    pub affected_local_rejections: u64,
    pub run: Run,
}

/// Runs an outage scenario ([`Scenario::total_outage`], [`Scenario::low_traffic_fleet`],
/// [`Scenario::one_bad_instance`]) with `setup`.
pub fn outage(setup: &Setup, scenario: &Scenario) -> OutageReport {
    let run = simulate(setup, scenario);
    let s = run.scenario;
    let from = s.healthy + OUTAGE_WARMUP.min(s.event);
    let by_instance = &run.counts.rejections_by_instance;
    let affected = s.affected.min(s.instances);
    OutageReport {
        setup: setup.name.clone(),
        attempts_per_original_after_warmup: run.attempts_per_original(from, s.event_end()),
        shed_after_warmup: run.shed_share(from, s.event_end()),
        rejection_latency: run.rejection_latency(),
        full_success_after: run.full_success_after(),
        healthy_local_rejections: run.local_rejections(Duration::ZERO, s.healthy),
        unaffected_local_rejections: by_instance[affected..].iter().sum(),
        affected_local_rejections: by_instance[..affected].iter().sum(),
        run,
    }
}

/// (a) Total outage.
pub fn total_outage(setup: &Setup, scenario: &Scenario) -> OutageReport {
    outage(setup, scenario)
}

/// (d) Low-traffic fleet in a total outage (local state; a fleet-wide variant plugs in as a
/// [`Setup::fleet`] set-up, run with [`simulate_in`] on a real-time runtime if it needs Redis).
pub fn low_traffic_fleet(setup: &Setup, scenario: &Scenario) -> OutageReport {
    outage(setup, scenario)
}

/// (e) One instance failing 100 % among healthy ones.
pub fn one_bad_instance(setup: &Setup, scenario: &Scenario) -> OutageReport {
    outage(setup, scenario)
}

/// The figures of independent failures during the event: (b) 10 %, (c) 50 %.
#[derive(Clone, Debug)]
pub struct FailureReport {
    pub setup: String,
    pub failure_rate: f64,
    /// Share of the calls sent during the event that succeeded.
    pub success: f64,
    /// Local rejections of calls sent during the event, and in the healthy phase.
    pub event_local_rejections: u64,
    pub healthy_local_rejections: u64,
    /// Load: attempts reaching the downstream per original during the event.
    pub attempts_per_original: f64,
    pub run: Run,
}

/// Runs [`Scenario::failure_rate`] with `setup`.
pub fn failure_rate(setup: &Setup, scenario: &Scenario) -> FailureReport {
    let run = simulate(setup, scenario);
    let s = run.scenario;
    let Downstream::Immediate {
        fault: Fault::Failing(p),
        ..
    } = s.downstream
    else {
        panic!("independent failures need Fault::Failing")
    };
    FailureReport {
        setup: setup.name.clone(),
        failure_rate: p,
        success: run.success(s.healthy, s.event_end()),
        event_local_rejections: run.local_rejections(s.healthy, s.event_end()),
        healthy_local_rejections: run.local_rejections(Duration::ZERO, s.healthy),
        attempts_per_original: run.attempts_per_original(s.healthy, s.event_end()),
        run,
    }
}

/// `Some(d)` as "2.1 s", `None` as "never".
pub fn secs(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.1} s", d.as_secs_f64()),
        None => "never".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The goals, as checks (each returns the goals a report misses; empty = all met)
// ---------------------------------------------------------------------------------------------

/// Capacity drop: ≥ 50 % of the degraded capacity (≥ 167 good calls/s for the reference
/// figures) during the trigger, full goodput within 1 s of its end with both queues, no local
/// rejection in the healthy phase.
pub fn capacity_drop_goals(reports: &[&CapacityDropReport]) -> Vec<String> {
    let mut missed = Vec::new();
    for r in reports {
        let s = &r.run.scenario;
        let Downstream::Queued {
            workers,
            service,
            slowdown,
            ..
        } = s.downstream
        else {
            unreachable!("capacity drop")
        };
        let degraded = workers as f64 / (service * slowdown).as_secs_f64();
        if r.good_per_sec_trigger < 0.5 * degraded {
            missed.push(format!(
                "queue {}: {:.1} good calls/s during the trigger < {:.1} (50 % of {degraded:.0}/s)",
                r.queue,
                r.good_per_sec_trigger,
                0.5 * degraded
            ));
        }
        if r.recovery.is_none_or(|d| d > Duration::from_secs(1)) {
            missed.push(format!(
                "queue {}: recovery {} > 1 s",
                r.queue,
                secs(r.recovery)
            ));
        }
        if r.healthy_local_rejections > 0 {
            missed.push(format!(
                "queue {}: {} local rejections in the healthy phase",
                r.queue, r.healthy_local_rejections
            ));
        }
    }
    missed
}

/// Total outage: ≤ 0.05 attempts per original after the first 2 s, a rejected call returns
/// in under 1 ms, 100 % success within 1 s of the downstream's return.
pub fn total_outage_goals(r: &OutageReport) -> Vec<String> {
    let mut missed = Vec::new();
    if r.attempts_per_original_after_warmup > 0.05 {
        missed.push(format!(
            "{:.3} attempts per original after the first 2 s > 0.05",
            r.attempts_per_original_after_warmup
        ));
    }
    if r.rejection_latency
        .is_some_and(|d| d >= Duration::from_millis(1))
    {
        missed.push(format!(
            "a rejected call took {:?} (≥ 1 ms)",
            r.rejection_latency.unwrap_or_default()
        ));
    }
    if r.full_success_after
        .is_none_or(|d| d > Duration::from_secs(1))
    {
        missed.push(format!(
            "100 % success {} after the return (> 1 s)",
            secs(r.full_success_after)
        ));
    }
    if r.healthy_local_rejections > 0 {
        missed.push(format!(
            "{} local rejections in the healthy phase",
            r.healthy_local_rejections
        ));
    }
    missed
}

/// 10 % independent failures: no local rejection, ≥ 99.8 % of the calls succeed.
pub fn partial_failure_goals(r: &FailureReport) -> Vec<String> {
    let mut missed = Vec::new();
    let rejected = r.event_local_rejections + r.healthy_local_rejections;
    if rejected > 0 {
        missed.push(format!("{rejected} local rejections"));
    }
    if r.success < 0.998 {
        missed.push(format!("{:.2} % success < 99.8 %", r.success * 100.0));
    }
    missed
}

/// Low-traffic fleet (fleet-wide mode): ≥ 90 % of the originals shed after the first 2 s.
pub fn low_traffic_fleet_goals(r: &OutageReport) -> Vec<String> {
    if r.shed_after_warmup < 0.9 {
        vec![format!(
            "{:.1} % of the originals shed after the first 2 s < 90 %",
            r.shed_after_warmup * 100.0
        )]
    } else {
        Vec::new()
    }
}

/// One bad instance among healthy ones: no local rejection on the healthy ones.
pub fn one_bad_instance_goals(r: &OutageReport) -> Vec<String> {
    if r.unaffected_local_rejections > 0 {
        vec![format!(
            "{} local rejections on the healthy instances",
            r.unaffected_local_rejections
        )]
    } else {
        Vec::new()
    }
}
