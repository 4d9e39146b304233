//! Safe by default over real loopback sockets: the README's headline stack and the generic
//! constructor never resend a POST that may have reached the server (but do retry a GET and a
//! refused connection), and a `Retry-After` is waited in full or ends the retries.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::flaky_http::{FlakyServer, Reply, dead_addr};
use tower::ServiceBuilder;
use tower_retrier::classify::RetryReason;
use tower_retrier::telemetry::{DelaySource, RetryEvent};
use tower_retrier::{RetryConfig, RetryLayer};

/// Longer than any per-attempt timeout here: the server holds the request, the client cuts it.
const HUNG: Duration = Duration::from_secs(30);
const PER_ATTEMPT: Duration = Duration::from_millis(300);

fn quick() -> RetryConfig {
    RetryConfig::builder()
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(10))
        .build()
        .unwrap()
}

type Log = Arc<Mutex<Vec<(Duration, DelaySource, RetryReason)>>>;

fn log() -> (
    Log,
    impl Fn(&RetryEvent<'_, http::Response<hyper::body::Incoming>, tower::BoxError>) + Clone,
) {
    let log: Log = Arc::default();
    let l = log.clone();
    (log, move |e: &RetryEvent<'_, _, _>| {
        l.lock()
            .unwrap()
            .push((e.delay(), e.delay_source(), e.reason()))
    })
}

fn request(method: &str, url: String) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(b"{\"amount\":100}")))
        .unwrap()
}

/// The README's headline snippet, verbatim but for the URL: the client's body type is
/// inferred, no annotation anywhere.
#[tokio::test]
async fn the_headline_stack_sends_a_timed_out_post_once_and_retries_a_get() {
    let server = FlakyServer::start(vec![Reply::hang(HUNG)]).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new_for_http(RetryConfig::default()))
        .timeout(PER_ATTEMPT)
        .service(client);

    let err = svc
        .clone()
        .oneshot(request("POST", server.url("/charges")))
        .await
        .unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    assert_eq!(server.hits(), 1, "a timed-out POST must not be sent again");

    let server = FlakyServer::start(vec![Reply::hang(HUNG), Reply::hang(HUNG)]).await;
    let res = svc
        .oneshot(request("GET", server.url("/charges/1")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.hits(), 3, "two timed-out GETs retried");
    assert!(server.seen().iter().all(|s| s.body == "{\"amount\":100}"));
}

/// `RetryLayer::new` with its default classifier (`RetryAnyError`, which retries any error)
/// and `CloneRequest`: the idempotency guard still keeps a POST from being resent.
#[tokio::test]
async fn the_generic_constructor_never_resends_a_non_idempotent_request() {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(quick()))
        .timeout(PER_ATTEMPT)
        .service(client);

    for method in ["POST", "PATCH"] {
        let server = FlakyServer::start(vec![Reply::hang(HUNG)]).await;
        let err = svc
            .clone()
            .oneshot(request(method, server.url("/")))
            .await
            .unwrap_err();
        assert!(err.is::<tower::timeout::error::Elapsed>());
        assert_eq!(server.hits(), 1, "{method} sent once");
    }

    // Opt-in per request: an Idempotency-Key makes the server deduplicate.
    let server = FlakyServer::start(vec![Reply::hang(HUNG)]).await;
    let mut keyed = request("POST", server.url("/"));
    keyed
        .headers_mut()
        .insert("idempotency-key", "charge-7".parse().unwrap());
    assert_eq!(svc.clone().oneshot(keyed).await.unwrap().status(), 200);
    assert_eq!(server.hits(), 2);

    // An idempotent method is retried.
    let server = FlakyServer::start(vec![Reply::hang(HUNG)]).await;
    let res = svc.oneshot(request("PUT", server.url("/"))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn the_per_layer_opt_in_resends_every_request() {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(quick()).retry_non_idempotent(true))
        .timeout(PER_ATTEMPT)
        .service(client);
    let server = FlakyServer::start(vec![Reply::hang(HUNG)]).await;
    let res = svc.oneshot(request("POST", server.url("/"))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.hits(), 2);
}

/// Nothing reached the server: resending is safe for any method, under either constructor.
#[tokio::test]
async fn a_refused_connection_is_retried_even_for_a_post() {
    let addr = dead_addr().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let (retries, hook) = log();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(quick()).on_retry(hook))
        .timeout(PER_ATTEMPT)
        .service(client);
    svc.oneshot(request("POST", format!("http://{addr}/")))
        .await
        .unwrap_err();
    let reasons: Vec<_> = retries.lock().unwrap().iter().map(|r| r.2).collect();
    assert_eq!(reasons, [RetryReason::NotSent, RetryReason::NotSent]);
}

async fn one_call(
    config: RetryConfig,
    script: Vec<Reply>,
) -> (
    http::StatusCode,
    usize,
    Vec<(Duration, DelaySource, RetryReason)>,
) {
    let server = FlakyServer::start(script).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let (retries, hook) = log();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new_for_http(config).on_retry(hook))
        .timeout(Duration::from_secs(30))
        .service(client);
    let res = svc.oneshot(request("GET", server.url("/"))).await.unwrap();
    let retries = retries.lock().unwrap().clone();
    (res.status(), server.hits(), retries)
}

#[tokio::test]
async fn retry_after_longer_than_max_delay_or_past_the_deadline_returns_the_response() {
    // An hour asked (values above 300 s are no longer ignored in favour of the backoff).
    let (status, hits, retries) = one_call(
        RetryConfig::default(),
        vec![Reply::status(503).header("retry-after", "3600")],
    )
    .await;
    assert_eq!((status.as_u16(), hits), (503, 1));
    assert!(retries.is_empty());

    // 20 s asked, max_delay 10 s (the default): not retried after 10 s.
    let (status, hits, retries) = one_call(
        RetryConfig::default(),
        vec![Reply::status(429).header("retry-after", "20")],
    )
    .await;
    assert_eq!((status.as_u16(), hits), (429, 1));
    assert!(retries.is_empty());

    // 6 s asked, within max_delay but past the 5 s deadline.
    let cfg = RetryConfig::builder()
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let (status, hits, retries) =
        one_call(cfg, vec![Reply::status(503).header("retry-after", "6")]).await;
    assert_eq!((status.as_u16(), hits), (503, 1));
    assert!(retries.is_empty());
}

/// `Retry-After: 2` is waited in full (paused time: the sleep completes at once, the clock
/// says 2 s).
#[tokio::test(start_paused = true)]
async fn retry_after_within_max_delay_is_waited_in_full() {
    let start = tokio::time::Instant::now();
    let (status, hits, retries) = one_call(
        RetryConfig::default(),
        vec![Reply::status(503).header("retry-after", "2")],
    )
    .await;
    assert_eq!((status.as_u16(), hits), (200, 2));
    assert_eq!(
        retries,
        [(
            Duration::from_secs(2),
            DelaySource::Pushback,
            RetryReason::ServerError
        )]
    );
    assert!(start.elapsed() >= Duration::from_secs(2));
}

/// Malformed `Retry-After` keeps the backoff.
#[tokio::test]
async fn a_malformed_retry_after_falls_back_to_the_backoff() {
    let (status, hits, retries) = one_call(
        quick(),
        vec![Reply::status(503).header("retry-after", "soon")],
    )
    .await;
    assert_eq!((status.as_u16(), hits), (200, 2));
    assert_eq!(retries[0].1, DelaySource::Backoff);
}

/// An axum proxy forwarding `Request<axum::body::Body>` (a stream, not `Clone`) through the
/// HTTP preset with a per-attempt timeout: no type annotation anywhere; the body is replayed
/// byte for byte to the retry, and a timed-out POST without a key reaches the upstream once.
#[tokio::test]
async fn an_axum_proxy_replays_streamed_bodies_and_sends_a_timed_out_post_once() {
    use axum::body::Body;
    use axum::response::IntoResponse;

    let upstream = FlakyServer::start(vec![
        Reply::status(503),
        Reply::status(200),
        Reply::hang(HUNG),
    ])
    .await;
    let base = upstream.url("");
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new_for_http(quick()))
        .timeout(PER_ATTEMPT)
        .service(Client::builder(TokioExecutor::new()).build_http());
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (mut parts, body) = req.into_parts();
            parts.uri = format!("{base}{}", parts.uri.path()).parse().unwrap();
            match client.oneshot(http::Request::from_parts(parts, body)).await {
                Ok(res) => res.map(Body::new).into_response(),
                Err(e) => (http::StatusCode::GATEWAY_TIMEOUT, e.to_string()).into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let caller = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let put = request("PUT", format!("http://{proxy}/items/7"));
    assert_eq!(caller.request(put).await.unwrap().status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "a 503, then the retry");
    assert!(seen.iter().all(|s| s.body == "{\"amount\":100}"));

    let post = request("POST", format!("http://{proxy}/orders"));
    let res = caller.request(post).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        upstream.hits(),
        3,
        "the timed-out POST reached the upstream once"
    );
}
