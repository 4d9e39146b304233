//! Real-stack overhead: `RetryLayer::new_for_http(RetryConfig::default())` over a hyper-util
//! legacy `Client`, and `RetryLayer::new_for_grpc(RetryConfig::default())` over a tonic
//! `Channel`, each against the same client bare, to servers on loopback, in one run.
//!
//! ```text
//! cargo bench -p tower-retrier-integration --bench real_stack              # full (about 2 minutes)
//! cargo bench -p tower-retrier-integration --bench real_stack -- --quick   # about 10 seconds
//! ```
//!
//! Options (after `--`): `--quick`; `--rounds N` and `--batch N` (requests per side per round);
//! `--only NAME` (that case only; `--only 'HTTP/2*'`: the cases whose name starts so);
//! `--variants` (adds the elimination variants of the retry layer: admission off, budget off,
//! replay off, telemetry off); `--side 0|1` (runs only the bare, or only the retried, side of
//! each case, for a profiler or a syscall count: `perf record`, `strace -c -f`, callgrind;
//! `scripts/bench.sh` counts instructions this way).
//!
//! Every case is a pair, bare client and the same client under the retry layer, each with its
//! own connection (kept alive), sending requests one after another. The two run in alternating
//! batches (bare first on even rounds, retried first on odd ones), so drift and the noise of a
//! shared machine hit both alike. Reported per side: latency p50 and p99 over every request
//! (each request timed from the call to the end of the response body), and CPU time per
//! request, of the whole process (client and server) and of the client thread alone (where
//! the retry layer runs); then the ratios retried / bare with 95 % bootstrap intervals
//! (resampling rounds, paired). The "A/A" row measures a bare client against another bare
//! client: its ratios show what noise alone produces.
//!
//! Layout: the client runs in a current-thread tokio runtime on the main thread (hyper's and
//! tonic's connection tasks included, so the client thread's CPU is all the client's work);
//! the servers run in a one-worker multi-thread runtime. HTTP: POST with an `Idempotency-Key`
//! (so `new_for_http` records the body for replay, as a user's retryable POST), bodies of
//! 0 B, 4 KiB and 64 KiB (the replay buffer's limit, still recorded), to a hyper server that
//! reads the body and answers `200 ok`; HTTP/1.1, and HTTP/2 with prior knowledge (h2c).
//! gRPC: a unary call carrying a `bytes` field of 0 B, 4 KiB or 60 KiB (a 64 KiB message is
//! 9 bytes of framing over the replay buffer, so it would be sent unrecorded) to a tonic
//! server answering an empty message. The retried side is the preset over
//! `client.map_err(BoxError::from)`: with no per-attempt `.timeout(..)` below it, the layer
//! needs an error type that can carry admission control's refusal; the `map_err` is counted
//! in the retried side.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_retrier::budget::Unlimited;
use tower_retrier::replay::ReplayHttp;
use tower_retrier::telemetry::Telemetry;
use tower_retrier::{RetryConfig, RetryLayer};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

// ---------------------------------------------------------------------------------------------
// CPU clocks

/// CPU time of the process (every thread: client, servers) or of the calling thread, in ns.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[allow(unsafe_code)]
mod cpu {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }

    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }

    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

    fn read(clock: i32) -> u64 {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `struct timespec` (64-bit Linux layout).
        let rc = unsafe { clock_gettime(clock, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime");
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    pub fn process() -> u64 {
        read(CLOCK_PROCESS_CPUTIME_ID)
    }

    pub fn thread() -> u64 {
        read(CLOCK_THREAD_CPUTIME_ID)
    }
}

/// Elsewhere the CPU columns read 0.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod cpu {
    pub fn process() -> u64 {
        0
    }
    pub fn thread() -> u64 {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

/// Reads the request body to its end and answers `200 ok`.
async fn sink(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = req.into_body();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("request body").into_data() {
            read += data.len();
        }
    }
    black_box(read);
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// A hyper server on 127.0.0.1 (a free port), HTTP/1.1 or HTTP/2 (prior knowledge).
async fn serve_http(h2: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            let io = TokioIo::new(stream);
            tokio::spawn(async move {
                let svc = service_fn(sink);
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await
                };
            });
        }
    });
    addr
}

/// The gRPC request: one `bytes` field (cloning it shares the buffer).
#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
}

/// The gRPC reply: empty.
#[derive(Clone, PartialEq, prost::Message)]
struct Ack {}

const PUT_PATH: &str = "/bench.Sink/Put";

/// The tonic server, as `tonic-build` would generate it for `bench.Sink/Put`.
#[derive(Clone)]
struct SinkServer;

impl tonic::server::NamedService for SinkServer {
    const NAME: &'static str = "bench.Sink";
}

impl Service<http::Request<tonic::body::Body>> for SinkServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if req.uri().path() != PUT_PATH {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Ack, Payload>::default());
            Ok(grpc.unary(Put, req).await)
        })
    }
}

struct Put;

impl tonic::server::UnaryService<Payload> for Put {
    type Response = Ack;
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<Ack>, tonic::Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<Payload>) -> Self::Future {
        black_box(request.into_inner().data.len());
        Box::pin(async { Ok(tonic::Response::new(Ack {})) })
    }
}

async fn serve_grpc() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SinkServer)
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    addr
}

// ---------------------------------------------------------------------------------------------
// Clients

/// Sends `n` requests one after another, pushing each one's latency in ns.
trait Driver {
    fn batch<'a>(&'a mut self, n: usize, out: &'a mut Vec<u64>) -> BoxFuture<'a, ()>;
    /// Size of the service's response future (moved on every call) and of the service (the
    /// retry layer keeps a clone of the inner one per call, for the retries).
    fn sizes(&self) -> (usize, usize);
}

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// An HTTP client (bare or layered) taking `Request<Full<Bytes>>`.
struct HttpDriver<S> {
    svc: S,
    uri: Uri,
    body: Bytes,
}

impl<S> Driver for HttpDriver<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>>,
    S::Error: Debug,
{
    fn batch<'a>(&'a mut self, n: usize, out: &'a mut Vec<u64>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for _ in 0..n {
                let req = Request::post(self.uri.clone())
                    .header(IDEMPOTENCY_KEY, HeaderValue::from_static("bench-0001"))
                    .body(Full::new(self.body.clone()))
                    .expect("request");
                let start = Instant::now();
                let svc = self.svc.ready().await.expect("ready");
                let res = svc.call(req).await.expect("response");
                assert_eq!(res.status(), 200);
                let body = res.into_body().collect().await.expect("response body");
                black_box(body);
                out.push(start.elapsed().as_nanos() as u64);
            }
        })
    }

    fn sizes(&self) -> (usize, usize) {
        (size_of::<S::Future>(), size_of::<S>())
    }
}

fn hyper_client<B>(h2: bool) -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build(connector)
}

/// A gRPC client (bare channel or layered) making unary calls.
struct GrpcDriver<T> {
    grpc: tonic::client::Grpc<T>,
    payload: Bytes,
}

impl<T> Driver for GrpcDriver<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    fn batch<'a>(&'a mut self, n: usize, out: &'a mut Vec<u64>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for _ in 0..n {
                let req = tonic::Request::new(Payload {
                    data: self.payload.clone(),
                });
                let start = Instant::now();
                self.grpc
                    .ready()
                    .await
                    .map_err(Into::<BoxError>::into)
                    .expect("ready");
                let res = self
                    .grpc
                    .unary(
                        req,
                        PathAndQuery::from_static(PUT_PATH),
                        ProstCodec::<Payload, Ack>::default(),
                    )
                    .await
                    .expect("unary call");
                black_box(res);
                out.push(start.elapsed().as_nanos() as u64);
            }
        })
    }

    fn sizes(&self) -> (usize, usize) {
        (size_of::<T::Future>(), size_of::<T>())
    }
}

/// What goes on top of the bare client: the preset as a user writes it, or a variant with one
/// part switched off (to find where an overhead comes from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// `new_for_http(RetryConfig::default())` / `new_for_grpc(RetryConfig::default())`.
    Preset,
    AdmissionOff,
    BudgetOff,
    /// Replay buffer of 0 bytes: a non-empty body passes through unrecorded (sent once).
    ReplayOff,
    TelemetryOff,
    /// No layer: a second bare client (the A/A control).
    Bare,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Preset => "",
            Variant::AdmissionOff => ", admission off",
            Variant::BudgetOff => ", budget off (Unlimited)",
            Variant::ReplayOff => ", replay buffer 0",
            Variant::TelemetryOff => ", telemetry off",
            Variant::Bare => "",
        }
    }
}

/// Applies `v` to a preset layer (same code for HTTP and gRPC); `$mk`, a closure literal, is
/// pasted in each arm, so each arm's closure takes that arm's service type.
macro_rules! layered {
    ($layer:expr, $replay:expr, $v:expr, $inner:expr, $mk:expr) => {{
        let layer = $layer;
        match $v {
            Variant::Preset => ($mk)(layer.layer($inner)),
            Variant::AdmissionOff => ($mk)(layer.without_admission().layer($inner)),
            Variant::BudgetOff => ($mk)(layer.with_budget(Unlimited::new()).layer($inner)),
            Variant::ReplayOff => ($mk)(layer.with_replay($replay.max_buffer(0)).layer($inner)),
            Variant::TelemetryOff => {
                ($mk)(layer.with_telemetry(Telemetry::disabled()).layer($inner))
            }
            Variant::Bare => unreachable!("handled by the caller"),
        }
    }};
}

fn http_pair(
    rt: &Runtime,
    addr: SocketAddr,
    h2: bool,
    size: usize,
    v: Variant,
) -> (Box<dyn Driver>, Box<dyn Driver>) {
    let _guard = rt.enter();
    let uri: Uri = format!("http://{addr}/put").parse().expect("uri");
    let body = Bytes::from(vec![b'x'; size]);
    let bare: Box<dyn Driver> = Box::new(HttpDriver {
        svc: hyper_client::<Full<Bytes>>(h2),
        uri: uri.clone(),
        body: body.clone(),
    });
    let other: Box<dyn Driver> = if v == Variant::Bare {
        Box::new(HttpDriver {
            svc: hyper_client::<Full<Bytes>>(h2),
            uri,
            body,
        })
    } else {
        layered!(
            RetryLayer::new_for_http(RetryConfig::default()),
            ReplayHttp::new(),
            v,
            hyper_client(h2).map_err(BoxError::from),
            |svc| -> Box<dyn Driver> { Box::new(HttpDriver { svc, uri, body }) }
        )
    };
    (bare, other)
}

fn grpc_pair(
    rt: &Runtime,
    addr: SocketAddr,
    size: usize,
    v: Variant,
) -> (Box<dyn Driver>, Box<dyn Driver>) {
    let channel = || -> Channel {
        rt.block_on(
            Endpoint::from_shared(format!("http://{addr}"))
                .expect("endpoint")
                .connect(),
        )
        .expect("connect")
    };
    let payload = Bytes::from(vec![b'x'; size]);
    let bare: Box<dyn Driver> = Box::new(GrpcDriver {
        grpc: tonic::client::Grpc::new(channel()),
        payload: payload.clone(),
    });
    let other: Box<dyn Driver> = if v == Variant::Bare {
        Box::new(GrpcDriver {
            grpc: tonic::client::Grpc::new(channel()),
            payload,
        })
    } else {
        layered!(
            RetryLayer::new_for_grpc(RetryConfig::default()),
            ReplayHttp::grpc().wrap_body(tower_retrier::replay::AsTonicBody),
            v,
            channel().map_err(BoxError::from),
            |svc| -> Box<dyn Driver> {
                Box::new(GrpcDriver {
                    grpc: tonic::client::Grpc::new(svc),
                    payload,
                })
            }
        )
    };
    (bare, other)
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// One side of a case: per round, the latencies and the CPU time of its batch.
#[derive(Default)]
struct Side {
    latencies: Vec<Vec<u64>>,
    process_cpu: Vec<u64>,
    thread_cpu: Vec<u64>,
}

impl Side {
    fn run(&mut self, rt: &Runtime, driver: &mut dyn Driver, n: usize) {
        let mut lat = Vec::with_capacity(n);
        let (p0, t0) = (cpu::process(), cpu::thread());
        rt.block_on(driver.batch(n, &mut lat));
        let (p1, t1) = (cpu::process(), cpu::thread());
        self.latencies.push(lat);
        self.process_cpu.push(p1 - p0);
        self.thread_cpu.push(t1 - t0);
    }
}

/// Nearest-rank percentile of `v` (reordered).
fn percentile(v: &mut [u64], p: f64) -> u64 {
    let k = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    *v.select_nth_unstable(k).1
}

/// The statistics of a case, over the rounds `idx` (all of them, or a bootstrap resample).
struct Stats {
    p50: [f64; 2],
    p99: [f64; 2],
    /// ns per request, [bare, retried]
    process_cpu: [f64; 2],
    thread_cpu: [f64; 2],
}

fn stats(sides: &[Side; 2], idx: &[usize], scratch: &mut Vec<u64>) -> Stats {
    let mut s = Stats {
        p50: [0.0; 2],
        p99: [0.0; 2],
        process_cpu: [0.0; 2],
        thread_cpu: [0.0; 2],
    };
    for (i, side) in sides.iter().enumerate() {
        scratch.clear();
        let mut requests = 0usize;
        let (mut pc, mut tc) = (0u64, 0u64);
        for &r in idx {
            scratch.extend_from_slice(&side.latencies[r]);
            requests += side.latencies[r].len();
            pc += side.process_cpu[r];
            tc += side.thread_cpu[r];
        }
        s.p50[i] = percentile(scratch, 0.50) as f64;
        s.p99[i] = percentile(scratch, 0.99) as f64;
        s.process_cpu[i] = pc as f64 / requests as f64;
        s.thread_cpu[i] = tc as f64 / requests as f64;
    }
    s
}

/// A small deterministic generator for the bootstrap.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Point ratio (retried / bare) and its 95 % bootstrap interval, for the four measures.
struct Ratios {
    point: [f64; 4],
    low: [f64; 4],
    high: [f64; 4],
}

fn ratios(sides: &[Side; 2], resamples: usize) -> (Stats, Ratios) {
    let rounds = sides[0].latencies.len();
    let all: Vec<usize> = (0..rounds).collect();
    let mut scratch = Vec::new();
    let point = stats(sides, &all, &mut scratch);
    let of = |s: &Stats| {
        [
            s.p50[1] / s.p50[0],
            s.p99[1] / s.p99[0],
            s.process_cpu[1] / s.process_cpu[0],
            s.thread_cpu[1] / s.thread_cpu[0],
        ]
    };
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut boot: [Vec<f64>; 4] = Default::default();
    let mut idx = vec![0; rounds];
    for _ in 0..resamples {
        for i in idx.iter_mut() {
            *i = rng.below(rounds);
        }
        let r = of(&stats(sides, &idx, &mut scratch));
        for (b, x) in boot.iter_mut().zip(r) {
            b.push(x);
        }
    }
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((p * v.len() as f64) as usize).min(v.len() - 1)]
    };
    let mut low = [0.0; 4];
    let mut high = [0.0; 4];
    for (k, b) in boot.iter_mut().enumerate() {
        low[k] = q(b, 0.025);
        high[k] = q(b, 0.975);
    }
    let r = Ratios {
        point: of(&point),
        low,
        high,
    };
    (point, r)
}

struct Opts {
    quick: bool,
    rounds: usize,
    batch: usize,
    warmup: usize,
    resamples: usize,
    only: Option<String>,
    variants: bool,
    /// Runs only this side (0 bare, 1 retried), for a profiler or a syscall count.
    side: Option<usize>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `cargo test --all-targets` runs benches without `--bench`: a smoke run only (every case
    // sends a few requests through both sides), so the test suite stays quick.
    let smoke = !args.iter().any(|a| a == "--bench");
    // A setting's value in the smoke, quick and full modes.
    let pick = |smoke_v: usize, quick_v: usize, full_v: usize| match (smoke, quick) {
        (true, _) => smoke_v,
        (false, true) => quick_v,
        (false, false) => full_v,
    };
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number =
        |name: &str, default: usize| value(name).map_or(default, |v| v.parse().expect("a number"));
    Opts {
        quick: quick || smoke,
        rounds: number("--rounds", pick(2, 20, 80)),
        batch: number("--batch", pick(5, 200, 500)),
        warmup: pick(5, 100, 500),
        resamples: pick(10, 300, 1000),
        only: value("--only"),
        variants: args.iter().any(|a| a == "--variants"),
        side: value("--side").map(|v| v.parse().expect("0 or 1")),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn us(ns: f64) -> String {
    format!("{:.1}", ns / 1000.0)
}

fn main() {
    let o = opts();
    // Servers: their own runtime, one worker thread.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let (h1_addr, h2_addr, grpc_addr) = server_rt.block_on(async {
        (
            serve_http(false).await,
            serve_http(true).await,
            serve_grpc().await,
        )
    });
    // Clients: a current-thread runtime on this thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    type Maker<'a> = Box<dyn Fn(Variant) -> (Box<dyn Driver>, Box<dyn Driver>) + 'a>;
    let mut cases: Vec<(String, Maker<'_>)> = Vec::new();
    for (proto, h2, addr) in [("HTTP/1.1", false, h1_addr), ("HTTP/2", true, h2_addr)] {
        for (label, size) in [("0 B", 0), ("4 KiB", 4096), ("64 KiB", 65536)] {
            let rt = &rt;
            cases.push((
                format!("{proto} POST {label}"),
                Box::new(move |v| http_pair(rt, addr, h2, size, v)),
            ));
        }
    }
    for (label, size) in [("0 B", 0), ("4 KiB", 4096), ("60 KiB", 60 * 1024)] {
        let rt = &rt;
        cases.push((
            format!("gRPC unary {label}"),
            Box::new(move |v| grpc_pair(rt, grpc_addr, size, v)),
        ));
    }
    let mut plan: Vec<(String, &Maker<'_>, Variant)> = Vec::new();
    for (name, make) in &cases {
        plan.push((name.clone(), make, Variant::Preset));
        if o.variants {
            for v in [
                Variant::AdmissionOff,
                Variant::BudgetOff,
                Variant::ReplayOff,
                Variant::TelemetryOff,
            ] {
                plan.push((format!("{name}{}", v.label()), make, v));
            }
        }
    }
    // The A/A control: a bare client against another bare client.
    plan.push((
        "A/A: bare vs bare, HTTP/1.1 POST 4 KiB".into(),
        &cases[1].1,
        Variant::Bare,
    ));
    if let Some(only) = &o.only {
        plan.retain(|(name, _, _)| match only.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == only,
        });
    }

    println!(
        "real_stack: {} mode, {} rounds x {} requests per side per case (warm-up {}), \
         {} bootstrap resamples",
        if o.quick { "quick" } else { "full" },
        o.rounds,
        o.batch,
        o.warmup,
        o.resamples
    );
    println!(
        "machine: {} cores; load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!();

    let started = Instant::now();
    let mut rows = Vec::new();
    for (name, make, v) in plan {
        let (mut bare, mut retried) = make(v);
        let mut sink = Vec::new();
        rt.block_on(bare.batch(o.warmup, &mut sink));
        rt.block_on(retried.batch(o.warmup, &mut sink));
        let mut sides: [Side; 2] = Default::default();
        if let Some(only) = o.side {
            let driver = if only == 0 { &mut bare } else { &mut retried };
            let mut side = Side::default();
            for _ in 0..o.rounds {
                side.run(&rt, &mut **driver, o.batch);
            }
            let mut all: Vec<u64> = side.latencies.concat();
            let n = all.len() as f64;
            println!(
                "{name}, side {only} alone: p50 {} µs, p99 {} µs, CPU/req {} µs, client CPU/req {} µs",
                us(percentile(&mut all, 0.5) as f64),
                us(percentile(&mut all, 0.99) as f64),
                us(side.process_cpu.iter().sum::<u64>() as f64 / n),
                us(side.thread_cpu.iter().sum::<u64>() as f64 / n),
            );
            continue;
        }
        for round in 0..o.rounds {
            if round % 2 == 0 {
                sides[0].run(&rt, &mut *bare, o.batch);
                sides[1].run(&rt, &mut *retried, o.batch);
            } else {
                sides[1].run(&rt, &mut *retried, o.batch);
                sides[0].run(&rt, &mut *bare, o.batch);
            }
        }
        let (s, r) = ratios(&sides, o.resamples);
        let sizes = (bare.sizes(), retried.sizes());
        eprintln!(
            "  {name}: p50 {:.4} p99 {:.4} cpu {:.4} client cpu {:.4} ({:.1} s so far)",
            r.point[0],
            r.point[1],
            r.point[2],
            r.point[3],
            started.elapsed().as_secs_f64()
        );
        rows.push((name, s, r, sizes));
    }

    let ratio =
        |r: &Ratios, k: usize| format!("{:.3} [{:.3}, {:.3}]", r.point[k], r.low[k], r.high[k]);
    println!(
        "Latency in µs (bare → retried), CPU in µs per request (process: client + server; \
         client: the client thread); ratios retried / bare [95 % bootstrap interval]; \
         size in bytes of the response future and of the service (bare → retried)."
    );
    println!();
    println!(
        "| case | p50 | p50 ratio | p99 | p99 ratio | CPU/req | CPU ratio | client CPU/req | client CPU ratio | future B | service B |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, s, r, ((bf, bs), (rf, rs))) in &rows {
        println!(
            "| {name} | {} → {} | {} | {} → {} | {} | {} → {} | {} | {} → {} | {} | {bf} → {rf} | {bs} → {rs} |",
            us(s.p50[0]),
            us(s.p50[1]),
            ratio(r, 0),
            us(s.p99[0]),
            us(s.p99[1]),
            ratio(r, 1),
            us(s.process_cpu[0]),
            us(s.process_cpu[1]),
            ratio(r, 2),
            us(s.thread_cpu[0]),
            us(s.thread_cpu[1]),
            ratio(r, 3),
        );
    }
    println!();
    println!(
        "load average at end {}; measured in {:.0} s",
        loadavg(),
        started.elapsed().as_secs_f64()
    );
}
