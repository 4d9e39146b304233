//! The Grafana dashboard only queries series that a real Prometheus exporter serves: start the
//! example's workload (a shared adaptive budget on a real `redis-server`, HTTP bodies replayed,
//! a budget that runs dry), scrape the loopback endpoint over a plain TCP socket, and check
//! every metric name and grouping label of every PromQL query in
//! `dashboards/tower-retrier.json`.

mod support;

#[path = "../examples/common/prometheus_workload.rs"]
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::redis::RedisServer;
use tower_retrier::budget::RedisBudget;

/// Labels Prometheus adds to every scraped series itself (target labels).
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Series names and the label keys seen on each, from the text exposition format.
fn served(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_owned()).or_default();
        if let Some(body) = line[name_end..]
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
        {
            for pair in body.0.split(',').filter(|p| !p.is_empty()) {
                labels.insert(pair.split('=').next().unwrap_or("").trim().to_owned());
            }
        }
    }
    out
}

/// Identifiers in a PromQL expression that name our series.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("retrier_"))
        .map(str::to_owned)
        .collect()
}

/// Label names in every `by (...)` clause of a PromQL expression.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("by (") {
        let after = &rest[i + 4..];
        let close = after.find(')').expect("a closing parenthesis");
        out.extend(after[..close].split(',').map(|l| l.trim().to_owned()));
        rest = &after[close..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_names_a_served_series() {
    let addr = workload::serve_metrics().await.expect("exporter listening");
    let mut redis = RedisServer::start();
    let budget = RedisBudget::adaptive("checkout")
        .flush_interval(Duration::from_millis(20))
        .build_from_url(&redis.url())
        .await
        .expect("budget built");
    workload::traffic(budget.clone(), 200, Duration::from_millis(2))
        .await
        .expect("traffic");
    // Redis goes away: the shared budget falls back (and says so in the metrics).
    redis.kill();
    workload::traffic(budget, 50, Duration::from_millis(2))
        .await
        .expect("traffic without Redis");

    let text = workload::scrape(addr).await.expect("scrape");
    let served = served(&text);
    println!(
        "served: {:?}",
        served
            .keys()
            .filter(|k| k.starts_with("retrier_"))
            .collect::<Vec<_>>()
    );

    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../dashboards/tower-retrier.json"))
            .expect("the dashboard is valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut checked = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title:?}: {expr} names no series");
            let mut labels_seen = BTreeSet::new();
            for name in &names {
                let labels = served.get(name).unwrap_or_else(|| {
                    panic!("panel {title:?} queries {name}, which the exporter does not serve")
                });
                labels_seen.extend(labels.iter().cloned());
                checked += 1;
            }
            for label in grouping_labels(expr) {
                assert!(
                    labels_seen.contains(&label) || TARGET_LABELS.contains(&label.as_str()),
                    "panel {title:?} groups by {label:?}, a label none of {names:?} carries"
                );
            }
        }
    }
    assert!(checked >= 10, "{checked} series checked");

    // The values the panels show are the ones the workload produced.
    let value = |series: &str| -> f64 {
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(!values.is_empty(), "{series} not served");
        values.iter().sum()
    };
    assert!(value("retrier_budget_denied_total{service=\"search\"") > 0.0);
    assert!(value("retrier_budget_fallbacks_total{budget=\"checkout\"}") > 0.0);
    assert!(value("retrier_retries_total{service=\"checkout\"") > 0.0);
    // Every call finished: nobody waits, no body is held any more.
    assert_eq!(value("retrier_retries_waiting{service=\"checkout\""), 0.0);
    assert_eq!(value("retrier_replay_bytes_held"), 0.0);
}
