//! A Prometheus scrape endpoint (metrics-exporter-prometheus, loopback) and traffic that makes
//! every metric of the Grafana dashboard move: retries with backoff, replayed HTTP bodies,
//! budget denials, a Redis-shared adaptive budget and its fallbacks.
//!
//! Shared by `examples/prometheus.rs` and `tests/prometheus_dashboard.rs`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::{BoxError, Layer, service_fn};
use tower_retrier::budget::{AdaptiveBudget, RedisBudget};
use tower_retrier::classify::HttpClassifier;
use tower_retrier::replay::{ReplayBody, ReplayHttp};
use tower_retrier::telemetry::names;
use tower_retrier::{RetryConfig, RetryLayer};

/// Installs the Prometheus recorder globally and serves it on a free loopback port.
///
/// The exporter binds the address it is given; a free port is found by binding port 0 first
/// (and releasing it just before the exporter takes it).
pub async fn serve_metrics() -> Result<SocketAddr, BoxError> {
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        // Real histograms (not summaries), so dashboards can aggregate across instances.
        .set_buckets_for_metric(
            Matcher::Full(names::ATTEMPTS_PER_CALL.to_owned()),
            &[1.0, 2.0, 3.0, 4.0, 5.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::BACKOFF_DELAY_SECONDS.to_owned()),
            &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .build()?;
    metrics::set_global_recorder(recorder)?;
    tokio::spawn(async move {
        if let Err(e) = exporter.await {
            eprintln!("Prometheus exporter stopped: {e:?}");
        }
    });
    tower_retrier::telemetry::describe_metrics();
    Ok(addr)
}

/// Sends `calls` requests, one every `every`, through two layers:
///
/// - `checkout/charge`: HTTP requests with a body (replayed on retry) through a `RedisBudget`
///   shared under the name `checkout`; the downstream answers 503 to one attempt in four;
/// - `search/query`: a local `AdaptiveBudget` of 5 retries in front of a downstream that is
///   down, so the budget runs dry and denies.
pub async fn traffic(budget: RedisBudget, calls: u64, every: Duration) -> Result<(), BoxError> {
    let attempts = Arc::new(AtomicU64::new(0));
    let config = RetryConfig::builder()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
        .build()?;
    let flaky = service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
        let n = attempts.fetch_add(1, Ordering::Relaxed);
        async move {
            // Read the body, as a real client sends it: this is what ReplayHttp records.
            let body = req.into_body().collect().await?.to_bytes();
            let status = if n.is_multiple_of(4) { 503 } else { 200 };
            Ok::<_, BoxError>(
                http::Response::builder()
                    .status(status)
                    .body(Full::new(body))?,
            )
        }
    });
    let checkout = RetryLayer::new(config.clone())
        .with_classifier(HttpClassifier::new())
        .with_replay(ReplayHttp::new())
        .with_budget(budget)
        .service_name("checkout")
        .operation_name("charge")
        .layer(flaky);
    let down = service_fn(|_: u64| async { Err::<u64, _>(std::io::Error::other("down")) });
    let search = RetryLayer::new(config)
        .with_budget(AdaptiveBudget::new(5, 0.2, 1)?)
        .service_name("search")
        .operation_name("query")
        .layer(down);
    let mut tick = tokio::time::interval(every);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..calls {
        tick.tick().await;
        let req = http::Request::put("http://checkout.internal/charge")
            .header("idempotency-key", i.to_string())
            .body(Full::new(Bytes::from(vec![b'x'; 512])))?;
        tasks.spawn(checkout.clone().oneshot(req));
        let search = search.clone();
        tasks.spawn(async move {
            let _ = search.oneshot(i).await;
            Ok(http::Response::new(Full::new(Bytes::new())))
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Fetches `http://addr/metrics` with a plain HTTP/1.0 request over a loopback socket.
pub async fn scrape(addr: SocketAddr) -> Result<String, BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("no end of headers in the scrape response")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("scrape answered {head:?}").into());
    }
    Ok(body.to_owned())
}
