//! Transparent retries over a real HTTP/2 client (hyper-util's) against servers on loopback:
//! what the server says it did not process is resent at once, whatever the method, without
//! the budget or `max_attempts`; what it may have processed is never resent without opt-in.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::h2_server::{Act, Seen, serve_frames, serve_h2};
use tower::{Layer, ServiceBuilder};
use tower_retrier::budget::{Budget, RatioBudget};
use tower_retrier::classify::RetryReason;
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{RetryConfig, RetryLayer};

type Reasons = Arc<Mutex<Vec<RetryReason>>>;

/// An HTTP/2 (prior knowledge) client, as a user builds it.
fn client() -> H2Client {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

fn post(addr: SocketAddr, body: &'static [u8]) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}/charge"))
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// `max_attempts` 1: a resend that goes out is not counted as an attempt.
fn one_attempt() -> RetryConfig {
    RetryConfig::builder().max_attempts(1).build().unwrap()
}

fn quick(attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(2))
        .build()
        .unwrap()
}

type H2Client = Client<HttpConnector, tower_retrier::replay::ReplayBody<Full<Bytes>>>;

/// The set-up users write: the HTTP preset over a per-attempt timeout (which boxes
/// the error) over hyper-util's client.
fn stack<L>(layer: L) -> L::Service
where
    L: Layer<tower::timeout::Timeout<H2Client>>,
{
    ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_secs(5))
        .service(client())
}

type Event<'a> = RetryEvent<'a, http::Response<hyper::body::Incoming>, tower::BoxError>;

fn hook(reasons: &Reasons) -> impl Fn(&Event<'_>) + Clone + use<> {
    let reasons = reasons.clone();
    move |e| reasons.lock().unwrap().push(e.reason())
}

const BODY: &[u8] = b"amount=100&currency=EUR";

#[tokio::test]
async fn a_refused_stream_is_resent_at_once_whatever_the_method() {
    let (addr, seen) = serve_h2(vec![Act::Refuse]).await;
    let reasons = Reasons::default();
    let budget = RatioBudget::default();
    let before = budget.remaining();
    let res = stack(
        RetryLayer::new_for_http(one_attempt())
            .with_budget(budget.clone())
            .on_retry(hook(&reasons)),
    )
    .oneshot(post(addr, BODY))
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.requests(), 2, "refused once, then resent");
    assert_eq!(seen.bodies()[1], BODY, "the body is replayed byte for byte");
    assert_eq!(*reasons.lock().unwrap(), [RetryReason::Transparent]);
    // Not charged: the one deposit of the call is all that changed.
    assert!(
        budget.remaining() >= before,
        "{} < {before}",
        budget.remaining()
    );
}

#[tokio::test]
async fn a_stream_above_the_goaway_is_resent_on_a_new_connection() {
    let (addr, seen) = serve_frames(vec![Act::GoAwayBelow]).await;
    let reasons = Reasons::default();
    let res = stack(RetryLayer::new_for_http(one_attempt()).on_retry(hook(&reasons)))
        .oneshot(post(addr, BODY))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.requests(), 2);
    assert_eq!(
        seen.connections(),
        2,
        "the GOAWAY's connection takes no new stream"
    );
    assert_eq!(seen.bodies()[1], BODY);
    assert_eq!(*reasons.lock().unwrap(), [RetryReason::Transparent]);
}

#[tokio::test]
async fn two_refusals_in_a_row_are_both_resent() {
    let (addr, seen) = serve_h2(vec![Act::Refuse, Act::Refuse]).await;
    // The timeout is the one that boxes: the refusal is found inside its error.
    let res = stack(RetryLayer::new_for_http(one_attempt()))
        .oneshot(post(addr, BODY))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.requests(), 3);
}

#[tokio::test]
async fn a_server_that_refuses_everything_ends_the_call_with_its_error() {
    let (addr, seen) = serve_h2(vec![Act::Refuse; 100]).await;
    let reasons = Reasons::default();
    let err = stack(RetryLayer::new_for_http(quick(3)).on_retry(hook(&reasons)))
        .oneshot(post(addr, BODY))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("REFUSED_STREAM"), "{err:?}");
    // Three transparent resends, then the two retries `max_attempts` 3 allows (a refused
    // stream was not processed, so a POST may be retried; those are counted and charged).
    use RetryReason::{NotSent, Transparent};
    assert_eq!(
        *reasons.lock().unwrap(),
        [Transparent, Transparent, Transparent, NotSent, NotSent]
    );
    assert_eq!(seen.requests(), 6);
}

/// A budget that grants no retry at all.
#[derive(Clone, Debug)]
struct Empty;
impl Budget for Empty {
    type Withdraw = std::future::Ready<bool>;
    fn deposit(&self) {}
    fn withdraw(&self) -> Self::Withdraw {
        std::future::ready(false)
    }
    fn withdraw_now(&self) -> Option<bool> {
        Some(false)
    }
}

#[tokio::test]
async fn transparent_resends_do_not_need_the_budget() {
    let (addr, seen) = serve_h2(vec![Act::Refuse; 100]).await;
    let err = stack(RetryLayer::new_for_http(quick(3)).with_budget(Empty))
        .oneshot(post(addr, BODY))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("REFUSED_STREAM"), "{err:?}");
    assert_eq!(
        seen.requests(),
        4,
        "the first attempt and three resends; no retry"
    );

    let (addr, seen) = serve_h2(vec![Act::Refuse, Act::Refuse, Act::Refuse]).await;
    let res = stack(RetryLayer::new_for_http(quick(3)).with_budget(Empty))
        .oneshot(post(addr, BODY))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.requests(), 4);
}

/// Answers that mean the server may have processed the POST: it is sent once.
#[tokio::test]
async fn what_may_have_been_processed_is_not_resent() {
    for (act, frames) in [
        (Act::ResetInternal, false),
        (Act::Cancel, false),
        (Act::ResetInternal, true),
        (Act::GoAwayCovering, true),
    ] {
        let (addr, seen): (SocketAddr, Seen) = if frames {
            serve_frames(vec![act; 10]).await
        } else {
            serve_h2(vec![act; 10]).await
        };
        let err = stack(RetryLayer::new_for_http(quick(3)))
            .oneshot(post(addr, BODY))
            .await;
        assert!(err.is_err(), "{act:?}");
        assert_eq!(seen.requests(), 1, "{act:?}: a POST was resent");
        assert_eq!(seen.bodies()[0], BODY, "{act:?}");
    }
}

/// The same refusals, for a request that may be retried anyway: resent, with backoff.
#[tokio::test]
async fn an_idempotent_request_reset_after_processing_is_retried_normally() {
    let (addr, seen) = serve_h2(vec![Act::ResetInternal]).await;
    let reasons = Reasons::default();
    let svc = stack(RetryLayer::new_for_http(quick(3)).on_retry(hook(&reasons)));
    let req = http::Request::put(format!("http://{addr}/doc"))
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.requests(), 2);
    assert_eq!(*reasons.lock().unwrap(), [RetryReason::Error]);
}

type Streamed = http_body_util::StreamBody<
    std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>,
                > + Send,
        >,
    >,
>;

/// A body of three chunks, 5 ms apart: still streaming when the refusal comes.
fn streamed() -> Streamed {
    let chunks = futures_util::stream::unfold(0u8, |i| async move {
        if i == 3 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let chunk = Bytes::from(vec![b'a' + i; 1000]);
        Some((Ok(http_body::Frame::data(chunk)), i + 1))
    });
    http_body_util::StreamBody::new(Box::pin(chunks))
}

#[tokio::test]
async fn a_streamed_body_refused_before_it_was_read_is_resent_whole() {
    let (addr, seen) = serve_h2(vec![Act::Refuse]).await;
    let client: Client<HttpConnector, tower_retrier::replay::ReplayBody<Streamed>> =
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new_for_http(one_attempt()))
        .timeout(Duration::from_secs(5))
        .service(client);
    let req = http::Request::post(format!("http://{addr}/upload"))
        .body(streamed())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.requests(), 2);
    let want: Vec<u8> = (0..3u8).flat_map(|i| vec![b'a' + i; 1000]).collect();
    assert_eq!(
        seen.bodies()[1],
        want,
        "the whole body, recorded part and rest"
    );
}
