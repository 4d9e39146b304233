//! An axum gateway that proxies to a flaky upstream through a retrying hyper-util client,
//! including POSTs with streaming bodies (buffered for replay, up to 64 KiB).
//!
//! Run: `cargo run -p tower-retrier-integration --example axum_gateway`

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::{BoxError, Layer};
use tower_retrier::admission::NoAdmission;
use tower_retrier::replay::{ReplayBody, ReplayHttp};
use tower_retrier::{HttpRetryService, RetryConfig, RetryLayer};

/// The retrying client the gateway forwards through (`RetryLayer::new_for_http` over
/// hyper-util's client, admission control off), named by the preset's alias because it is
/// stored in the router's state.
type Upstream = HttpRetryService<Client<HttpConnector, ReplayBody<Body>>, NoAdmission>;

#[derive(Clone)]
struct Gateway {
    upstream: SocketAddr,
    client: Upstream,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstream_calls = Arc::new(AtomicUsize::new(0));
    let upstream = flaky_upstream(upstream_calls.clone()).await?;
    println!("upstream on {upstream}: every odd call answers 503");

    let replay =
        ReplayHttp::new().attempt_count_header(http::HeaderName::from_static("x-retry-attempt"));
    let config = RetryConfig::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(20))
        .build()?;
    // The HTTP preset (idempotent methods or an Idempotency-Key; bodies recorded for replay),
    // with an attempt header added to its replay.
    let client = RetryLayer::new_for_http(config)
        .with_replay(replay.clone())
        .service_name("upstream")
        // hyper-util's error cannot carry admission control's refusal; with a per-attempt
        // `.timeout(..)` below (errors become `BoxError`) it could stay on.
        .without_admission()
        .layer(Client::builder(TokioExecutor::new()).build_http());
    let app = Router::new()
        .fallback(proxy)
        .with_state(Gateway { upstream, client });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("gateway on {gateway}");

    // Callers of the gateway.
    let caller = Client::builder(TokioExecutor::new()).build_http::<StreamBody<ChunkStream>>();
    let send = |method: &str, path: &str, key: Option<&str>, chunks: Vec<&'static str>| {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{gateway}{path}"));
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let req = req.body(stream(chunks)).expect("valid request");
        let caller = caller.clone();
        async move {
            let res = caller.request(req).await?;
            let status = res.status();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, body))
        }
    };

    let (status, body) = send("GET", "/items/7", None, vec![]).await?;
    println!("GET  /items/7                  -> {status} {body:?}");
    assert_eq!(status, 200);
    let (status, body) = send(
        "POST",
        "/orders",
        Some("order-1"),
        vec!["{\"item\":", "7,", "\"qty\":2}"],
    )
    .await?;
    println!("POST /orders (idempotency-key) -> {status} {body:?}");
    assert_eq!(status, 200);
    let (status, body) = send("POST", "/orders", None, vec!["{\"item\":", "8}"]).await?;
    println!("POST /orders (no key)          -> {status} {body:?} (not retried: not idempotent)");
    assert_eq!(status, 503);

    let stats = replay.stats();
    println!(
        "upstream calls: {}, bodies replayed: {}, too large: {}, incomplete: {}",
        upstream_calls.load(Ordering::SeqCst),
        stats.replayed,
        stats.too_large,
        stats.incomplete
    );
    Ok(())
}

/// The gateway's only handler: forward to the upstream, retrying through `client`.
async fn proxy(State(gw): State<Gateway>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{}{}", gw.upstream, path).parse() {
        Ok(uri) => uri,
        Err(_) => return http::StatusCode::BAD_REQUEST.into_response(),
    };
    match gw
        .client
        .oneshot(http::Request::from_parts(parts, body))
        .await
    {
        Ok(res) => res.map(Body::new).into_response(),
        Err(e) => (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

type ChunkStream = futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>;

fn stream(chunks: Vec<&'static str>) -> StreamBody<ChunkStream> {
    let frames: Vec<_> = chunks
        .into_iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

/// An upstream that answers 503 to every odd call; it reads bodies and reports what it got.
async fn flaky_upstream(calls: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls = calls.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let attempt = req
                        .headers()
                        .get("x-retry-attempt")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    let line = format!("{} {}", req.method(), req.uri().path());
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    println!("  upstream call {n}: {line} attempt {attempt}, body {body:?}");
                    let res = if n % 2 == 1 {
                        http::Response::builder()
                            .status(503)
                            .body(Full::new(Bytes::from("busy")))
                    } else {
                        http::Response::builder()
                            .body(Full::new(Bytes::from(format!("got {} bytes", body.len()))))
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
    Ok(addr)
}
