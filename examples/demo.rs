//! The tower-retrier demo: an in-process service that fails a share of its calls, called by a
//! burst of requests with and without the retry layer; then a full outage, with requests
//! spread over two seconds, which admission control stops sending after the first second.
//!
//! ```text
//! cargo run --example demo                      # 30% failures, then a full outage
//! cargo run --example demo -- --failure-rate 0.5 --requests 2000
//! ```
//!
//! No external server is needed. With `--features metrics`, the demo also records the layer's
//! metrics in an in-process recorder and prints the summary a dashboard would show.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use tower_retrier::admission::Rejected;
use tower_retrier::budget::{Budget, RatioBudget};
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{RetryConfig, RetryLayer};

/// Fails a deterministic pseudo-random share of calls.
#[derive(Clone)]
struct FlakyService {
    failure_rate: Arc<Mutex<f64>>,
    calls: Arc<AtomicU64>,
    attempts: Arc<Mutex<HashMap<u64, u32>>>,
}

impl Service<u64> for FlakyService {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        *self.attempts.lock().unwrap().entry(req).or_default() += 1;
        // A cheap hash of the call number: uniform enough for a demo, and reproducible.
        let roll = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let rate = *self.failure_rate.lock().unwrap();
        ready(if roll < rate {
            Err(std::io::Error::other("upstream reset the connection"))
        } else {
            Ok(req)
        })
    }
}

/// Wraps a budget to count its decisions: the `Budget` trait is small enough for this.
#[derive(Clone)]
struct CountingBudget {
    inner: RatioBudget,
    granted: Arc<AtomicU64>,
    denied: Arc<AtomicU64>,
}

impl Budget for CountingBudget {
    type Withdraw = Ready<bool>;
    fn deposit(&self) {
        self.inner.deposit()
    }
    fn withdraw(&self) -> Ready<bool> {
        let ok = self.inner.withdraw().into_inner();
        let counter = if ok { &self.granted } else { &self.denied };
        counter.fetch_add(1, Ordering::Relaxed);
        ready(ok)
    }
}

struct Args {
    failure_rate: f64,
    requests: u64,
}

const USAGE: &str = "\
usage: cargo run --example demo [-- [--failure-rate R] [--requests N]]

Sends N requests (default 1000) through a retry layer to an in-process service that fails
a share R of its calls (default 0.3), then N more during a full outage, and prints what the
retries and the budget did.

  --failure-rate R   share of calls that fail in the first phase, in [0, 1]
  --requests N       requests per phase, a positive integer
  -h, --help         this text";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        failure_rate: 0.3,
        requests: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag != "--failure-rate" && flag != "--requests" {
            return Err(format!("unknown flag {flag}\n\n{USAGE}"));
        }
        let value = it
            .next()
            .ok_or(format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag.as_str() {
            "--failure-rate" => {
                args.failure_rate = value
                    .parse()
                    .ok()
                    .filter(|r: &f64| (0.0..=1.0).contains(r))
                    .ok_or("--failure-rate must be a number in [0, 1]")?
            }
            "--requests" => {
                args.requests = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--requests must be a positive integer")?
            }
            _ => {
                return Err(format!("unknown flag {flag}\n\n{USAGE}"));
            }
        }
    }
    Ok(args)
}

#[derive(Default)]
struct Report {
    ok: u64,
    /// Requests refused at once by admission control (nothing sent).
    refused: u64,
    /// Requests that took 1, 2, 3, ... attempts.
    attempts_hist: Vec<u64>,
    delays_ms: Vec<f64>,
}

#[cfg(feature = "metrics")]
#[path = "common/metrics_summary.rs"]
mod metrics_summary;

#[tokio::main]
async fn main() {
    #[cfg(feature = "metrics")]
    let snapshotter = {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other recorder installed");
        snapshotter
    };
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    let inner = FlakyService {
        failure_rate: Arc::new(Mutex::new(args.failure_rate)),
        calls: Arc::default(),
        attempts: Arc::default(),
    };
    let config = RetryConfig::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_secs(1))
        .build()
        .expect("valid config");
    let budget = CountingBudget {
        inner: RatioBudget::default(),
        granted: Arc::default(),
        denied: Arc::default(),
    };
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = delays.clone();
    let layer = RetryLayer::new(config.clone())
        .service_name("demo-upstream")
        .operation_name("get")
        .with_budget(budget.clone())
        .on_retry(move |e: &RetryEvent<'_, u64, std::io::Error>| {
            seen.lock().unwrap().push(e.delay().as_secs_f64() * 1e3);
        });

    println!("tower-retrier demo");
    println!(
        "config: {} attempts, {:?} initial delay, x{} growth, jitter ±{}%, budget 20% + 10/s over 10 s\n",
        config.max_attempts(),
        config.initial_delay(),
        config.exponential_base(),
        config.jitter_factor() * 100.0
    );

    for (phase, rate) in [("flaky upstream", args.failure_rate), ("full outage", 1.0)] {
        // The outage lasts two seconds: long enough for admission control to see it.
        let spacing = if rate >= 1.0 {
            Duration::from_secs(2) / args.requests.max(1) as u32
        } else {
            Duration::ZERO
        };
        *inner.failure_rate.lock().unwrap() = rate;

        // Without the layer: one call each.
        let mut bare_ok = 0;
        for i in 0..args.requests {
            if inner.clone().oneshot(i).await.is_ok() {
                bare_ok += 1;
            }
        }

        // With the layer: the same burst, concurrently.
        inner.attempts.lock().unwrap().clear();
        let calls_before = inner.calls.load(Ordering::Relaxed);
        let (granted0, denied0) = (
            budget.granted.load(Ordering::Relaxed),
            budget.denied.load(Ordering::Relaxed),
        );
        delays.lock().unwrap().clear();
        let svc = layer.layer(inner.clone());
        let mut tasks = Vec::new();
        for i in 0..args.requests {
            tasks.push(tokio::spawn(svc.clone().oneshot(i)));
            if !spacing.is_zero() {
                tokio::time::sleep(spacing).await;
            }
        }
        let mut report = Report::default();
        for t in tasks {
            match t.await {
                Ok(Ok(_)) => report.ok += 1,
                Ok(Err(e)) if Rejected::find(&e).is_some() => report.refused += 1,
                _ => {}
            }
        }
        let calls = inner.calls.load(Ordering::Relaxed) - calls_before;
        report.delays_ms = std::mem::take(&mut *delays.lock().unwrap());
        let granted = budget.granted.load(Ordering::Relaxed) - granted0;
        let denied = budget.denied.load(Ordering::Relaxed) - denied0;
        report.attempts_hist = vec![0; config.max_attempts() as usize];
        for n in inner.attempts.lock().unwrap().values() {
            report.attempts_hist[*n as usize - 1] += 1;
        }
        print_phase(
            phase,
            rate,
            args.requests,
            bare_ok,
            &report,
            calls,
            granted,
            denied,
        );
    }
    #[cfg(feature = "metrics")]
    print!("{}", metrics_summary::summary(snapshotter.snapshot()));
}

#[allow(clippy::too_many_arguments)]
fn print_phase(
    phase: &str,
    rate: f64,
    requests: u64,
    bare_ok: u64,
    report: &Report,
    calls: u64,
    granted: u64,
    denied: u64,
) {
    let pct = |n: u64| 100.0 * n as f64 / requests as f64;
    let mut d = report.delays_ms.clone();
    d.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if d.is_empty() {
            0.0
        } else {
            d[((d.len() - 1) as f64 * p) as usize]
        }
    };
    println!(
        "== {phase}: {:.0}% of calls fail, {requests} requests",
        rate * 100.0
    );
    println!("  success without retries : {:>6.1}%", pct(bare_ok));
    println!("  success with the layer  : {:>6.1}%", pct(report.ok));
    println!(
        "  refused, nothing sent   : {:>6.1}% (admission control: the upstream is not serving)",
        pct(report.refused)
    );
    println!(
        "  attempts per request    : {:>6.2} ({calls} calls for {requests} requests)",
        calls as f64 / requests as f64
    );
    let hist: Vec<String> = report
        .attempts_hist
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}×{n}", i + 1))
        .collect();
    println!("  requests by attempts    : {}", hist.join(", "));
    println!("  retries granted         : {granted:>6}");
    println!("  retries denied (budget) : {denied:>6}");
    println!(
        "  backoff delays chosen   : min {:.1} ms, p50 {:.1} ms, max {:.1} ms ({} delays)",
        q(0.0),
        q(0.5),
        q(1.0),
        d.len()
    );
    println!();
}
