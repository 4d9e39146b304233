//! Telemetry in action: 1,000 calls to a flaky service through a retry layer, with the
//! `metrics` back-end reporting to an in-process recorder, then a summary read back from the
//! recorded metrics (what a Prometheus dashboard would show).
//!
//! Run: `cargo run --example telemetry --features metrics`
//! (add `RUST_LOG=tower_retrier=debug` to also see the retry events).

use metrics_util::debugging::DebuggingRecorder;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::{Layer, service_fn};
use tower_retrier::classify::{Decision, RetryReason, classify_fn};
use tower_retrier::telemetry::Telemetry;
use tower_retrier::{RetryConfig, RetryLayer};
use tracing_subscriber::EnvFilter;

#[path = "common/metrics_summary.rs"]
mod metrics_summary;
use metrics_summary::summary;

/// A downstream that fails in bursts: every call in a "bad" stretch errors, and 1 call in 10
/// is throttled with a server-given delay.
fn flaky() -> impl tower::Service<u64, Response = &'static str, Error = std::io::Error> + Clone {
    let sent = Arc::new(AtomicU64::new(0));
    service_fn(move |_req: u64| {
        let n = sent.fetch_add(1, Ordering::Relaxed);
        async move {
            match n % 10 {
                0..=2 => Err(std::io::Error::other(format!(
                    "connection reset (attempt {n})"
                ))),
                3 => Ok("429 slow down"),
                _ => Ok("200 OK"),
            }
        }
    })
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("no other recorder installed");

    let classifier = classify_fn(
        |_req: &u64, res: &Result<&'static str, std::io::Error>| match res {
            Err(_) => Decision::retry(RetryReason::Error),
            Ok(s) if s.starts_with("429") => {
                Decision::retry_after(RetryReason::Throttled, Duration::from_millis(250))
            }
            Ok(_) => Decision::Success,
        },
    );
    let svc = RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier)
        .with_telemetry(Telemetry::new("inventory", "get_item"))
        .layer(flaky());

    let start = tokio::time::Instant::now();
    for i in 0..1_000 {
        let _ = svc.clone().oneshot(i).await;
    }
    let took = start.elapsed().as_secs_f64();

    print!("{}", summary(snapshotter.snapshot()));
    // Why the extra load can exceed the budget's 20 %: the default budget is 20 % of calls
    // *plus* a floor of 10 retries per second (Finagle's), and this run spans minutes of
    // (paused, virtual) time spent backing off.
    println!(
        "  budget: 20 % of 1000 calls (200) + 10 retries/s × {took:.0} s of virtual time \
         ({:.0}) + the first window's 100 ≈ {:.0} retries allowed, so none was denied",
        10.0 * took,
        200.0 + 10.0 * took + 100.0
    );
}
