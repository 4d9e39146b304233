//! Shared by the examples: renders the retry metrics a `DebuggingRecorder` captured.

use metrics_util::debugging::{DebugValue, Snapshot};
use std::collections::BTreeMap;
use tower_retrier::telemetry::names;

/// Renders the retry metrics of a snapshot: calls by outcome, attempts, retries by reason,
/// budget denials, and the delay and attempts-per-call distributions.
pub fn summary(snapshot: Snapshot) -> String {
    let mut counters: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut histograms: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for (key, _unit, _description, value) in snapshot.into_vec() {
        let key = key.key();
        // The label that distinguishes series of one metric (outcome, reason, source), if any.
        let label = key
            .labels()
            .find(|l| !matches!(l.key(), "service" | "operation"))
            .map(|l| l.value().to_owned())
            .unwrap_or_default();
        let id = (key.name().to_owned(), label);
        match value {
            DebugValue::Counter(v) => *counters.entry(id).or_default() += v,
            DebugValue::Histogram(v) => histograms
                .entry(id)
                .or_default()
                .extend(v.into_iter().map(|x| x.into_inner())),
            DebugValue::Gauge(_) => {}
        }
    }
    let counter = |name: &str, label: &str| {
        counters
            .get(&(name.to_owned(), label.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::from("retry summary (from the recorded metrics)\n");
    let calls: u64 = [
        "success_without_retry",
        "success_after_retry",
        "failed_after_retry",
        "failed_without_retry",
    ]
    .iter()
    .map(|o| counter(names::CALLS_TOTAL, o))
    .sum();
    out += &format!("  calls: {calls}\n");
    for outcome in [
        "success_without_retry",
        "success_after_retry",
        "failed_after_retry",
        "failed_without_retry",
    ] {
        let n = counter(names::CALLS_TOTAL, outcome);
        let pct = 100.0 * n as f64 / calls.max(1) as f64;
        out += &format!("    {outcome:<22} {n:>6}  ({pct:.1} %)\n");
    }
    let attempts = counter(names::ATTEMPTS_TOTAL, "");
    out += &format!(
        "  attempts: {attempts} ({:.2} per call; extra load from retries {:.1} %)\n",
        attempts as f64 / calls.max(1) as f64,
        100.0 * (attempts as f64 / calls.max(1) as f64 - 1.0)
    );
    for reason in ["error", "timeout", "server_error", "throttled", "response"] {
        let n = counter(names::RETRIES_TOTAL, reason);
        if n > 0 {
            out += &format!("  retries ({reason}): {n}\n");
        }
    }
    out += &format!(
        "  retries denied by the budget: {}\n",
        counter(names::BUDGET_DENIED_TOTAL, "")
    );
    for source in ["backoff", "pushback"] {
        let key = (names::BACKOFF_DELAY_SECONDS.to_owned(), source.to_owned());
        if let Some(delays) = histograms.get_mut(&key).filter(|d| !d.is_empty()) {
            delays.sort_by(f64::total_cmp);
            let q = |p: f64| delays[((delays.len() - 1) as f64 * p).round() as usize] * 1e3;
            out += &format!(
                "  delay before retry ({source}): n={} p50={:.0} ms p99={:.0} ms max={:.0} ms\n",
                delays.len(),
                q(0.5),
                q(0.99),
                q(1.0)
            );
        }
    }
    if let Some(per_call) = histograms.get(&(names::ATTEMPTS_PER_CALL.to_owned(), String::new())) {
        let mut dist: BTreeMap<u64, u64> = BTreeMap::new();
        for a in per_call {
            *dist.entry(*a as u64).or_default() += 1;
        }
        let dist: Vec<String> = dist.iter().map(|(a, n)| format!("{a}: {n}")).collect();
        out += &format!("  attempts per call: {}\n", dist.join(", "));
    }
    out
}
