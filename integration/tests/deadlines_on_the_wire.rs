//! Deadlines on the wire: `grpc-timeout` under a tonic client (over a `Channel`) against a
//! real tonic server, the opt-in HTTP header against a hyper server, and a transparent retry
//! under tonic against a scripted HTTP/2 server.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use support::flaky_http::{FlakyServer, Reply};
use support::greeter::{FlakyGreeter, GreeterClient, HelloRequest, Step};
use support::h2_server::{Act, serve_h2};
use tonic::Code;
use tonic::transport::Channel;
use tower::{Layer, ServiceBuilder};
use tower_retrier::deadline::DeadlineHeader;
use tower_retrier::deadline::parse_grpc_timeout;
use tower_retrier::{RetryConfig, RetryLayer};

fn hello() -> HelloRequest {
    HelloRequest { name: "Ada".into() }
}

fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

fn quick() -> tower_retrier::RetryConfigBuilder {
    RetryConfig::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(5))
}

/// The gRPC preset over a per-attempt timeout (which boxes the error) over a `Channel`.
fn grpc_client(
    cfg: RetryConfig,
    addr: std::net::SocketAddr,
) -> GreeterClient<
    impl tonic::client::GrpcService<
        tonic::body::Body,
        ResponseBody = tonic::body::Body,
        Error = tower::BoxError,
    >,
> {
    GreeterClient::new(
        ServiceBuilder::new()
            .layer(RetryLayer::new_for_grpc(cfg))
            .timeout(Duration::from_secs(5))
            .service(channel(addr)),
    )
}

type HttpClient = Client<
    hyper_util::client::legacy::connect::HttpConnector,
    tower_retrier::replay::ReplayBody<Full<Bytes>>,
>;

/// `layer` over a per-attempt timeout over hyper-util's client.
fn http_client<L: Layer<tower::timeout::Timeout<HttpClient>>>(layer: L) -> L::Service {
    let client = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_secs(5))
        .service(client)
}

/// The `grpc-timeout` each call carried, parsed (panics on a malformed value).
fn timeouts(greeter: &FlakyGreeter) -> Vec<Option<Duration>> {
    greeter
        .grpc_timeouts()
        .iter()
        .map(|t| {
            t.as_ref().map(|t| {
                parse_grpc_timeout(&t.parse().unwrap())
                    .unwrap_or_else(|| panic!("malformed grpc-timeout {t:?}"))
            })
        })
        .collect()
}

#[tokio::test]
async fn every_attempt_carries_what_is_left_of_the_deadline() {
    let greeter = FlakyGreeter::new(vec![
        Step::Fail(Code::Unavailable, None),
        Step::Fail(Code::Unavailable, None),
    ]);
    let addr = greeter.clone().serve().await;
    let cfg = quick().deadline(Duration::from_secs(2)).build().unwrap();
    let reply = grpc_client(cfg, addr).say_hello(hello()).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello Ada!");
    let sent = timeouts(&greeter);
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[0],
        Some(Duration::from_secs(2)),
        "the first attempt has it all"
    );
    assert_eq!(greeter.grpc_timeouts()[0].as_deref(), Some("2000000u"));
    // Each retry starts later, after a backoff of at least 2 ms: strictly less is left.
    assert!(sent[1].unwrap() < sent[0].unwrap(), "{sent:?}");
    assert!(sent[2].unwrap() < sent[1].unwrap(), "{sent:?}");
}

#[tokio::test]
async fn a_timed_attempt_carries_its_attempt_timeout() {
    let greeter = FlakyGreeter::new(vec![Step::Fail(Code::Unavailable, None); 2]);
    let addr = greeter.clone().serve().await;
    let cfg = quick()
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let svc = RetryLayer::new_for_grpc(cfg)
        .timed_attempts()
        .layer(channel(addr));
    let reply = GreeterClient::new(svc).say_hello(hello()).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello Ada!");
    assert_eq!(
        timeouts(&greeter),
        [Some(Duration::from_millis(300)); 3],
        "no deadline: each attempt has its whole attempt timeout"
    );
}

#[tokio::test]
async fn without_a_deadline_no_grpc_timeout_is_sent() {
    let greeter = FlakyGreeter::new(vec![Step::Fail(Code::Unavailable, None)]);
    let addr = greeter.clone().serve().await;
    let cfg = quick().build().unwrap();
    grpc_client(cfg, addr).say_hello(hello()).await.unwrap();
    assert_eq!(greeter.grpc_timeouts(), [None, None]);
}

#[tokio::test]
async fn a_refused_stream_is_resent_transparently_under_tonic() {
    let (addr, seen) = serve_h2(vec![Act::Refuse, Act::Refuse]).await;
    // One attempt: the resends are not attempts.
    let cfg = RetryConfig::builder().max_attempts(1).build().unwrap();
    let reply = grpc_client(cfg, addr).say_hello(hello()).await.unwrap();
    assert_eq!(reply.into_inner().message, "");
    assert_eq!(seen.requests(), 3);
    // The refusals came before the body was read; the third stream got the whole message
    // (gRPC's 5-byte prefix, then `name: "Ada"`).
    assert_eq!(&seen.bodies()[2][..], b"\0\0\0\0\x05\n\x03Ada");
}

#[tokio::test]
async fn an_http_layer_sends_the_header_it_was_given() {
    let server = FlakyServer::start(vec![Reply::status(503), Reply::status(503)]).await;
    let cfg = quick()
        .deadline(Duration::from_millis(1500))
        .build()
        .unwrap();
    let svc =
        http_client(RetryLayer::new_for_http(cfg).propagate_deadline(DeadlineHeader::envoy()));
    let req = http::Request::get(server.url("/report"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = tower::ServiceExt::oneshot(svc, req).await.unwrap();
    assert_eq!(res.status(), 200);
    let sent: Vec<u64> = server
        .seen()
        .iter()
        .map(|s| {
            s.headers["x-envoy-expected-rq-timeout-ms"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0], 1500);
    assert!(sent[1] < sent[0] && sent[2] < sent[1], "{sent:?}");
}

#[tokio::test]
async fn the_http_preset_sends_no_deadline_unless_asked() {
    let server = FlakyServer::start(vec![]).await;
    let cfg = quick()
        .deadline(Duration::from_millis(1500))
        .build()
        .unwrap();
    let svc = http_client(RetryLayer::new_for_http(cfg));
    let req = http::Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    tower::ServiceExt::oneshot(svc, req).await.unwrap();
    let seen = server.seen();
    assert!(
        !seen[0]
            .headers
            .contains_key("x-envoy-expected-rq-timeout-ms")
    );
    assert!(!seen[0].headers.contains_key("grpc-timeout"));
}
