//! An axum gateway proxying to a flaky upstream through a retrying hyper-util client, all
//! over real loopback sockets; callers send streaming bodies.

mod support;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use support::flaky_http::{FlakyServer, Reply, dead_addr};
use tower::Layer;
use tower_retrier::admission::NoAdmission;
use tower_retrier::backoff::Exponential;
use tower_retrier::budget::AdaptiveBudget;
use tower_retrier::classify::HttpClassifier;
use tower_retrier::replay::{ReplayBody, ReplayHttp};
use tower_retrier::telemetry::NoHook;
use tower_retrier::{RetryConfig, RetryLayer, RetryService};

type Upstream = RetryService<
    Client<HttpConnector, ReplayBody<Body>>,
    Exponential,
    HttpClassifier,
    AdaptiveBudget,
    ReplayHttp,
    NoHook,
    NoAdmission,
>;

#[derive(Clone)]
struct Gateway {
    upstream: SocketAddr,
    client: Upstream,
}

async fn proxy(State(gw): State<Gateway>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{}{}", gw.upstream, path).parse().unwrap();
    match gw
        .client
        .oneshot(http::Request::from_parts(parts, body))
        .await
    {
        Ok(res) => res.map(Body::new).into_response(),
        Err(e) => (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Starts the gateway on 127.0.0.1:0 in front of `upstream`.
async fn gateway(upstream: SocketAddr, replay: ReplayHttp) -> SocketAddr {
    let config = RetryConfig::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let client = RetryLayer::new(config)
        .with_classifier(HttpClassifier::new().retry_with_idempotency_key())
        .with_replay(replay)
        // hyper-util's client error cannot carry a refusal (no per-attempt timeout here).
        .without_admission()
        .layer(Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Body>>());
    let app = Router::new()
        .fallback(proxy)
        .with_state(Gateway { upstream, client });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Sends a request with a streaming body to the gateway; returns status and body.
async fn call(
    gateway: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    chunks: Vec<Bytes>,
) -> (http::StatusCode, Bytes) {
    let caller = Client::builder(TokioExecutor::new()).build_http::<Chunks>();
    let frames: Vec<_> = chunks.into_iter().map(|c| Ok(Frame::data(c))).collect();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{gateway}{path}"));
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let req = req
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let res = caller.request(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn get_through_the_gateway_is_retried() {
    let upstream = FlakyServer::start(vec![Reply::status(502)]).await;
    let gw = gateway(upstream.addr, ReplayHttp::new()).await;
    let (status, body) = call(gw, "GET", "/items/7", None, vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "ok 0");
    assert_eq!(upstream.hits(), 2);
    assert!(upstream.seen().iter().all(|s| s.path == "/items/7"));
}

#[tokio::test]
async fn streaming_post_is_buffered_and_replayed_to_the_upstream() {
    let upstream = FlakyServer::start(vec![Reply::status(503), Reply::status(503)]).await;
    let replay =
        ReplayHttp::new().attempt_count_header(http::HeaderName::from_static("x-retry-attempt"));
    let gw = gateway(upstream.addr, replay.clone()).await;
    // 40 KiB in 10 chunks: under the 64 KiB default.
    let chunks: Vec<Bytes> = (0..10u8)
        .map(|i| Bytes::from(vec![b'a' + i; 4096]))
        .collect();
    let whole: Bytes = chunks.concat().into();
    let (status, body) = call(gw, "POST", "/orders", Some("k-1"), chunks).await;
    assert_eq!(status, 200);
    assert_eq!(body, format!("ok {}", whole.len()));
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.body, whole, "attempt {} carried the whole body", i + 1);
        assert_eq!(s.headers["x-retry-attempt"], (i + 1).to_string());
        assert_eq!(s.headers["idempotency-key"], "k-1");
    }
    assert_eq!(replay.stats().replayed, 2);
}

#[tokio::test]
async fn post_over_the_buffer_limit_is_sent_once() {
    let upstream = FlakyServer::start(vec![Reply::status(503)]).await;
    let replay = ReplayHttp::new();
    let gw = gateway(upstream.addr, replay.clone()).await;
    let chunks: Vec<Bytes> = (0..20).map(|_| Bytes::from(vec![b'x'; 4096])).collect(); // 80 KiB
    let (status, _) = call(gw, "POST", "/upload", Some("k-2"), chunks).await;
    assert_eq!(status, 503);
    assert_eq!(upstream.hits(), 1);
    assert_eq!(upstream.seen()[0].body.len(), 80 * 1024);
    assert_eq!(replay.stats().too_large, 1);
    assert_eq!(replay.stats().replayed, 0);
}

#[tokio::test]
async fn post_without_idempotency_key_is_not_retried() {
    let upstream = FlakyServer::start(vec![Reply::status(503)]).await;
    let gw = gateway(upstream.addr, ReplayHttp::new()).await;
    let (status, _) = call(gw, "POST", "/orders", None, vec![Bytes::from("x")]).await;
    assert_eq!(status, 503);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn unreachable_upstream_gives_bad_gateway_after_retries() {
    let replay = ReplayHttp::new();
    let gw = gateway(dead_addr().await, replay.clone()).await;
    let (status, body) = call(gw, "GET", "/", None, vec![]).await;
    assert_eq!(status, 502);
    assert!(!body.is_empty());
    // Three attempts: the two retries each sent the (empty) body again.
    assert_eq!(replay.stats().replayed, 2, "the refused GET was retried");
}
