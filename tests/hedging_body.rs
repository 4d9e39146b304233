//! A streamed body is hedged only once it has been recorded in full, so a hedge never
//! carries a truncated body (paused time, `ReplayHttp`).
#![cfg(feature = "http")]

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer, service_fn};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::replay::ReplayBody;
use tower_retrier::{RetryConfig, RetryLayer};

type Chunks = StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, Infallible>>>,
>;

fn streamed() -> Chunks {
    let frames: Vec<Result<http_body::Frame<Bytes>, Infallible>> = ["he", "dg", "ed"]
        .into_iter()
        .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn hedging() -> HedgeConfig {
    HedgeConfig::builder()
        .delay(Duration::from_millis(20))
        .max_attempts(2)
        .build()
        .unwrap()
}

/// The first attempt waits `read_after` before reading its body, then hangs; later attempts
/// read theirs and answer. Every body read is logged.
type Bodies = Arc<Mutex<Vec<Bytes>>>;

fn server(
    read_after: Duration,
) -> (
    Bodies,
    impl tower::Service<
        http::Request<ReplayBody<Chunks>>,
        Response = http::Response<()>,
        Error = Infallible,
        Future: Send,
    > + Clone,
) {
    let bodies: Bodies = Arc::default();
    let log = bodies.clone();
    let svc = service_fn(move |req: http::Request<ReplayBody<Chunks>>| {
        let log = log.clone();
        async move {
            let first = log.lock().unwrap().is_empty();
            if first {
                tokio::time::sleep(read_after).await;
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            log.lock().unwrap().push(body);
            if first {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, Infallible>(http::Response::new(()))
        }
    });
    (bodies, svc)
}

#[tokio::test(start_paused = true)]
async fn a_body_still_being_sent_is_not_hedged_until_it_is_recorded() {
    // The first attempt reads its body only at 50 ms: the hedges due at 20 and 40 ms wait,
    // the one at 60 ms goes with the whole body.
    let (bodies, svc) = server(Duration::from_millis(50));
    let svc = RetryLayer::new_for_http(RetryConfig::default())
        .without_admission() // the mock never fails (`Infallible`): nothing to refuse with
        .hedge(hedging())
        .layer(svc);
    let req = http::Request::get("/report").body(streamed()).unwrap();
    let t0 = tokio::time::Instant::now();
    svc.oneshot(req).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(60));
    assert_eq!(*bodies.lock().unwrap(), ["hedged", "hedged"]);
}

#[tokio::test(start_paused = true)]
async fn a_body_recorded_in_full_is_hedged_on_time() {
    let (bodies, svc) = server(Duration::ZERO);
    let svc = RetryLayer::new_for_http(RetryConfig::default())
        .without_admission()
        .hedge(hedging())
        .layer(svc);
    let req = http::Request::get("/report").body(streamed()).unwrap();
    let t0 = tokio::time::Instant::now();
    svc.oneshot(req).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(20));
    assert_eq!(*bodies.lock().unwrap(), ["hedged", "hedged"]);
}
