//! A hyper-util client with `RetryLayer::new_for_http` and a per-attempt `TimeoutLayer`,
//! against a local hyper server that fails its first calls: a 503 with `Retry-After: 1`
//! (waited in full), then a hang (cut by the per-attempt timeout). The client's body type is
//! inferred: no annotation.
//!
//! Run: `cargo run -p tower-retrier-integration --example hyper_client`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tower::{BoxError, ServiceBuilder};
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{RetryConfig, RetryLayer};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (addr, calls) = flaky_server().await?;
    println!(
        "server listening on {addr}: call 1 -> 503 (Retry-After: 1), call 2 -> hangs 2 s, then 200"
    );

    let config = RetryConfig::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_secs(2)) // Retry-After above this would end the retries
        .deadline(Duration::from_secs(5))
        .build()?;
    let started = Instant::now();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new_for_http(config)
                .service_name("users")
                .on_retry(move |e: &RetryEvent<'_, http::Response<Incoming>, _>| {
                    let what = match e.result() {
                        Ok(res) => format!("status {}", res.status()),
                        Err(err) => format!("error: {err}"),
                    };
                    println!(
                        "  attempt {} failed ({what}); retry #{} in {:?} (reason {}, delay from {})",
                        e.attempt(),
                        e.attempt(),
                        e.delay(),
                        e.reason(),
                        e.delay_source().as_str(),
                    );
                }),
        )
        // Per attempt: a hung attempt is cut after 200 ms and retried.
        .timeout(Duration::from_millis(200))
        .service(client);

    let req = http::Request::get(format!("http://{addr}/users/42")).body(Full::default())?;
    let res = svc.oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "final: {status} {:?} after {} server calls in {:?}",
        body,
        calls.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert_eq!(status, 200);
    Ok(())
}

/// A hyper server on 127.0.0.1:0 that fails its first two calls.
async fn flaky_server() -> std::io::Result<(std::net::SocketAddr, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            let svc = hyper::service::service_fn(move |_req: http::Request<Incoming>| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let res = match n {
                        1 => http::Response::builder()
                            .status(503)
                            .header("retry-after", "1")
                            .body(Full::new(Bytes::from("warming up"))),
                        2 => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            http::Response::builder().body(Full::new(Bytes::from("too late")))
                        }
                        _ => http::Response::builder().body(Full::new(Bytes::from("user 42"))),
                    };
                    Ok::<_, Infallible>(res.expect("valid response"))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    Ok((addr, calls))
}
