//! The retry layer in a hyper-util client stack, against a real HTTP/1.1 server on loopback.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::flaky_http::{FlakyServer, Reply, dead_addr};
use tower::{BoxError, Layer, ServiceBuilder};
use tower_retrier::classify::HttpClassifier;
use tower_retrier::replay::ReplayHttp;
use tower_retrier::telemetry::{DelaySource, RetryEvent};
use tower_retrier::{RetryConfig, RetryLayer};

fn config() -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(20))
        .build()
        .unwrap()
}

type Delays = Arc<Mutex<Vec<(Duration, DelaySource)>>>;

fn recorder() -> (
    Delays,
    impl Fn(&RetryEvent<'_, http::Response<hyper::body::Incoming>, BoxError>) + Clone,
) {
    let delays: Delays = Arc::default();
    let d = delays.clone();
    (delays, move |e: &RetryEvent<'_, _, _>| {
        d.lock().unwrap().push((e.delay(), e.delay_source()))
    })
}

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn streaming(parts: &[&'static str]) -> Chunks {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = parts
        .iter()
        .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test]
async fn get_is_retried_through_gateway_errors_with_per_attempt_timeout() {
    let server = FlakyServer::start(vec![Reply::status(503), Reply::status(502)]).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(config()).with_classifier(HttpClassifier::new()))
        .timeout(Duration::from_secs(5))
        .service(client);
    let req = http::Request::get(server.url("/users/1"))
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn attempts_run_out_and_the_last_response_is_returned() {
    let server = FlakyServer::start(vec![Reply::status(503); 5]).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = RetryLayer::new(config())
        .without_admission()
        .with_classifier(HttpClassifier::new().typed_errors())
        .layer(client);
    let req = http::Request::get(server.url("/"))
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn streaming_post_with_idempotency_key_is_replayed_with_attempt_header() {
    let server = FlakyServer::start(vec![Reply::status(503)]).await;
    let client = Client::builder(TokioExecutor::new())
        .build_http::<tower_retrier::replay::ReplayBody<Chunks>>();
    let replay =
        ReplayHttp::new().attempt_count_header(http::HeaderName::from_static("x-retry-attempt"));
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new(config())
                .without_admission()
                .with_classifier(HttpClassifier::new().retry_with_idempotency_key())
                .with_replay(replay.clone()),
        )
        .service(client);
    let req = http::Request::post(server.url("/orders"))
        .header("idempotency-key", "order-42")
        .body(streaming(&["{\"item\":", "\"book\"", "}"]))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok 15");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.method, "POST");
        assert_eq!(s.body, "{\"item\":\"book\"}");
        assert_eq!(s.headers["x-retry-attempt"], (i + 1).to_string());
    }
    assert_eq!(replay.stats().replayed, 1);
}

#[tokio::test]
async fn post_without_opt_in_is_sent_once() {
    let server = FlakyServer::start(vec![Reply::status(503)]).await;
    let client = Client::builder(TokioExecutor::new())
        .build_http::<tower_retrier::replay::ReplayBody<Chunks>>();
    let svc = RetryLayer::new(config())
        .without_admission()
        .with_classifier(HttpClassifier::new())
        .with_replay(ReplayHttp::new())
        .layer(client);
    let req = http::Request::post(server.url("/orders"))
        .body(streaming(&["x"]))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn body_over_the_limit_is_sent_once_and_counted() {
    let server = FlakyServer::start(vec![Reply::status(503)]).await;
    let client = Client::builder(TokioExecutor::new())
        .build_http::<tower_retrier::replay::ReplayBody<Chunks>>();
    let replay = ReplayHttp::new().max_buffer(8);
    let svc = RetryLayer::new(config())
        .without_admission()
        .with_classifier(HttpClassifier::new())
        .with_replay(replay.clone())
        .layer(client);
    let req = http::Request::put(server.url("/blob"))
        .body(streaming(&["0123456", "789abcdef"]))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(server.hits(), 1);
    assert_eq!(server.seen()[0].body, "0123456789abcdef");
    assert_eq!(replay.stats().too_large, 1);
    assert_eq!(replay.stats().replayed, 0);
}

#[tokio::test]
async fn refused_connection_is_retried_even_for_post() {
    let addr = dead_addr().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let (delays, hook) = recorder();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new(config())
                .with_classifier(HttpClassifier::new())
                .on_retry(hook),
        )
        .map_err(BoxError::from)
        .service(client);
    let req = http::Request::post(format!("http://{addr}/"))
        .body(Full::default())
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert!(format!("{err:?}").contains("ConnectionRefused"), "{err:?}");
    assert_eq!(delays.lock().unwrap().len(), 2, "3 attempts in all");
}

type Trickle = StreamBody<
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>,
>;

#[tokio::test]
async fn early_answer_never_leads_to_a_truncated_or_hung_retry() {
    // The server answers 503 without reading the body while the client is still sending it.
    // Whether the retry can go ahead depends on whether hyper has let go of the body by then:
    // if it has, the retry replays what was sent and carries on with the rest; if not, the
    // request is not retried. Either way, no attempt carries a partial body, and nothing hangs.
    let server = FlakyServer::start(vec![Reply::status(503).early()]).await;
    let client = Client::builder(TokioExecutor::new())
        .build_http::<tower_retrier::replay::ReplayBody<Trickle>>();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    tx.send(Bytes::from_static(b"first part, ")).unwrap();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let finish = tx.clone();
    let replay = ReplayHttp::new();
    let svc = RetryLayer::new(config())
        .without_admission()
        .with_classifier(HttpClassifier::new())
        .with_replay(replay.clone())
        .on_retry(
            move |_: &RetryEvent<'_, http::Response<hyper::body::Incoming>, _>| {
                // The rest of the body arrives (and ends) while the client backs off.
                if let Some(tx) = finish.lock().unwrap().take() {
                    tx.send(Bytes::from_static(b"second part")).unwrap();
                }
            },
        )
        .layer(client);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    });
    let body: Trickle = StreamBody::new(Box::pin(stream));
    let req = http::Request::put(server.url("/slow")).body(body).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), svc.oneshot(req))
        .await
        .expect("no hang")
        .unwrap();
    let stats = replay.stats();
    if res.status() == 200 {
        assert_eq!(stats.replayed, 1);
        assert_eq!(server.hits(), 2);
        assert_eq!(server.seen()[1].body, "first part, second part");
    } else {
        assert_eq!(res.status(), 503);
        assert_eq!(stats.incomplete, 1);
        assert_eq!(server.hits(), 1);
    }
    drop(tx);
}

#[tokio::test]
async fn refused_streaming_post_is_replayed_whole_once_the_server_is_up() {
    // Nothing listens on the port for the first attempt; the server comes up during the backoff.
    let addr = dead_addr().await;
    let server: Arc<Mutex<Option<FlakyServer>>> = Arc::default();
    let slot = server.clone();
    let client = Client::builder(TokioExecutor::new())
        .build_http::<tower_retrier::replay::ReplayBody<Chunks>>();
    let replay = ReplayHttp::new();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new(config())
                .without_admission()
                .with_classifier(HttpClassifier::new().typed_errors())
                .with_replay(replay.clone())
                .on_retry(
                    move |_: &RetryEvent<'_, http::Response<hyper::body::Incoming>, _>| {
                        let mut slot = slot.lock().unwrap();
                        if slot.is_none() {
                            *slot = Some(FlakyServer::start_now(addr, vec![]));
                        }
                    },
                ),
        )
        .service(client);
    // POST, no idempotency key: retried only because nothing was sent.
    let req = http::Request::post(format!("http://{addr}/events"))
        .body(streaming(&["event-", "1"]))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let server = server.lock().unwrap().take().unwrap();
    assert_eq!(server.hits(), 1);
    assert_eq!(server.seen()[0].body, "event-1");
    assert_eq!(replay.stats().replayed, 1);
}
