//! A retried and a hedged hyper-util client kept in axum's `State`, named with the crate's
//! type aliases (`HttpRetryService`, `HttpHedgeService`) instead of their six parts.
//!
//! The upstream answers 503 to every other call of `/flaky`, and holds the first call of
//! `/slow` for 10 s: the retried client turns the 503 into a 200, the hedged one sends a
//! second copy after 50 ms and returns its answer.
//!
//! Run: `cargo run -p tower-retrier-integration --example axum_state`
//! (`integration/tests/axum_state.rs` runs it too.)

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
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
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::replay::ReplayBody;
use tower_retrier::{HttpHedgeService, HttpRetryService, RetryConfig, RetryLayer};

/// hyper-util's client, as the HTTP preset calls it (bodies wrapped for replay).
type HyperClient = Client<HttpConnector, ReplayBody<Body>>;

/// The router's state: both clients by name. Admission control is off because hyper-util's
/// error cannot carry a refusal (`NoAdmission`; the aliases default to `Admission`).
#[derive(Clone)]
struct AppState {
    upstream: SocketAddr,
    retried: HttpRetryService<HyperClient, NoAdmission>,
    hedged: HttpHedgeService<HyperClient, NoAdmission>,
}

/// What the two calls through the app returned.
#[derive(Debug)]
pub struct Outcome {
    /// `GET /retried` (the upstream's `/flaky`): status and body.
    pub retried: (u16, String),
    /// `GET /hedged` (the upstream's `/slow`): status and body.
    pub hedged: (u16, String),
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run().await?;
    println!(
        "GET /retried -> {} {:?}",
        outcome.retried.0, outcome.retried.1
    );
    println!(
        "GET /hedged  -> {} {:?}",
        outcome.hedged.0, outcome.hedged.1
    );
    Ok(())
}

/// Starts the upstream and the app on loopback, calls both routes once, and says what came
/// back.
pub async fn run() -> Result<Outcome, BoxError> {
    let upstream = upstream().await?;
    let config = RetryConfig::builder()
        .initial_delay(Duration::from_millis(10))
        .build()?;
    let hedging = HedgeConfig::builder()
        .delay(Duration::from_millis(50))
        .max_attempts(2)
        .build()?;
    let client = || Client::builder(TokioExecutor::new()).build_http();
    let state = AppState {
        upstream,
        retried: RetryLayer::new_for_http(config.clone())
            .service_name("upstream")
            .without_admission()
            .layer(client()),
        hedged: RetryLayer::new_for_http(config)
            .hedge(hedging)
            .service_name("upstream")
            .without_admission()
            .layer(client()),
    };
    let app = Router::new()
        .route("/retried", get(retried))
        .route("/hedged", get(hedged))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let caller = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |path: &str| {
        let req = http::Request::get(format!("http://{addr}{path}")).body(Full::default());
        let caller = caller.clone();
        async move {
            let res = caller.request(req?).await?;
            let status = res.status().as_u16();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, String::from_utf8_lossy(&body).into_owned()))
        }
    };
    let outcome = Outcome {
        retried: get("/retried").await?,
        hedged: get("/hedged").await?,
    };
    server.abort();
    Ok(outcome)
}

async fn retried(State(app): State<AppState>) -> Response {
    let req = upstream_request(app.upstream, "/flaky");
    answer(app.retried.oneshot(req).await)
}

async fn hedged(State(app): State<AppState>) -> Response {
    let req = upstream_request(app.upstream, "/slow");
    answer(app.hedged.oneshot(req).await)
}

fn upstream_request(upstream: SocketAddr, path: &str) -> http::Request<Body> {
    http::Request::get(format!("http://{upstream}{path}"))
        .body(Body::empty())
        .expect("a valid request")
}

fn answer(result: Result<http::Response<Incoming>, hyper_util::client::legacy::Error>) -> Response {
    match result {
        Ok(res) => res.map(Body::new).into_response(),
        Err(e) => (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// `/flaky` answers 503 to its odd calls; `/slow` holds its first call for 10 s. Each answer
/// says which call of its path it was.
async fn upstream() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let flaky = Arc::new(AtomicUsize::new(0));
    let slow = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (flaky, slow) = (flaky.clone(), slow.clone());
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let (flaky, slow) = (flaky.clone(), slow.clone());
                async move {
                    let (status, call) = if req.uri().path() == "/slow" {
                        let n = slow.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == 1 {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                        }
                        (200, n)
                    } else {
                        let n = flaky.fetch_add(1, Ordering::SeqCst) + 1;
                        (if n % 2 == 1 { 503 } else { 200 }, n)
                    };
                    let res = http::Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from(format!("call {call}"))))
                        .expect("a valid response");
                    Ok::<_, Infallible>(res)
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
