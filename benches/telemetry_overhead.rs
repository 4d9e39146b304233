//! What telemetry costs on the success path.
//!
//! Compares, per call: the bare inner service; the retry layer with telemetry off
//! (`Telemetry::disabled()`); with `tracing` on but no subscriber installed; and with
//! `tracing` plus `metrics` reporting to a no-op recorder. The target: telemetry with no
//! subscriber or recorder costs at most 10 % over telemetry off.
//!
//! Run: `cargo bench -p tower-retrier-integration --bench telemetry_overhead`
//! (criterion's report, then a summary with ns/call and the ratio to "telemetry off"); with
//! the `opentelemetry` feature (on by default) it also measures OpenTelemetry with the no-op global
//! meter provider.

use criterion::{Criterion, criterion_group};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tower::{Layer, Service};
use tower_retrier::telemetry::Telemetry;
use tower_retrier::{RetryConfig, RetryLayer};

#[path = "../tests/support/hand_driven.rs"]
mod hand_driven;
use hand_driven::{Echo, drive};

fn layer(telemetry: Telemetry) -> RetryLayer {
    RetryLayer::new(RetryConfig::default())
        .service_name("bench")
        .operation_name("echo")
        .with_telemetry(telemetry)
}

/// The variants, by name; `None` is the bare service.
fn variants() -> Vec<(&'static str, Option<Telemetry>)> {
    // Only the back-ends a variant names are on, whatever features are compiled in.
    let only_tracing = Telemetry::new("bench", "echo").with_metrics(false);
    #[cfg(feature = "opentelemetry")]
    let only_tracing = only_tracing.with_opentelemetry(false);
    let with_metrics = only_tracing.clone().with_metrics(true);
    #[allow(unused_mut)]
    let mut v = vec![
        ("bare service", None),
        ("telemetry off", Some(Telemetry::disabled())),
        ("tracing, no subscriber", Some(only_tracing.clone())),
        ("tracing + metrics, no-op recorder", Some(with_metrics)),
    ];
    #[cfg(feature = "opentelemetry")]
    v.push((
        "tracing + OpenTelemetry, no-op provider",
        Some(only_tracing.with_opentelemetry(true)),
    ));
    v
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("telemetry_overhead");
    for (name, telemetry) in variants() {
        match telemetry {
            None => {
                let mut svc = Echo;
                group.bench_function(name, |b| b.iter(|| drive(&mut svc, black_box(1))));
            }
            Some(t) => {
                let mut svc = layer(t).layer(Echo);
                group.bench_function(name, |b| b.iter(|| drive(&mut svc, black_box(1))));
            }
        }
    }
    group.finish();
}

/// ns/call of one round of `CALLS` calls.
fn round<S: Service<u64, Response = u64>>(svc: &mut S) -> f64 {
    const CALLS: u64 = 1_000_000;
    let start = Instant::now();
    for i in 0..CALLS {
        black_box(drive(svc, black_box(i)));
    }
    start.elapsed().as_secs_f64() * 1e9 / CALLS as f64
}

/// Best-of-rounds ns/call per variant, rounds interleaved so that a burst of load on this
/// (shared) machine hits every variant alike.
fn summary() {
    const ROUNDS: usize = 31;
    let variants = variants();
    let mut bare = Echo;
    let mut services: Vec<_> = variants
        .iter()
        .map(|(_, t)| t.clone().map(|t| layer(t).layer(Echo)))
        .collect();
    let mut best = vec![f64::INFINITY; variants.len()];
    for _ in 0..ROUNDS {
        for (best, svc) in best.iter_mut().zip(&mut services) {
            let ns = match svc {
                None => round(&mut bare),
                Some(svc) => round(svc),
            };
            *best = best.min(ns);
        }
    }
    println!("\nsummary (best of {ROUNDS} interleaved rounds of 1M calls, ns per call):");
    let off = best[1];
    for ((name, _), ns) in variants.iter().zip(best) {
        if *name == "bare service" || *name == "telemetry off" {
            println!("  {name:<40} {ns:6.2} ns");
        } else {
            let pct = (ns / off - 1.0) * 100.0;
            println!("  {name:<40} {ns:6.2} ns  ({pct:+.1} % vs telemetry off)");
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}

fn main() {
    // A no-op recorder, installed explicitly: the "metrics to a no-op recorder" case. No
    // tracing subscriber is installed anywhere in this process.
    metrics::set_global_recorder(metrics::NoopRecorder).expect("first recorder");
    benches();
    // `cargo test --all-targets` runs benches once as smoke tests; only `cargo bench` passes
    // `--bench` and gets the summary.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
    Criterion::default().configure_from_args().final_summary();
}
