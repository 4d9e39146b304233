//! The server half of a propagated deadline (`DropExpiredLayer`) in real servers on loopback:
//! an axum app (hyper) and a tonic server, each with the layer outside a concurrency limit of
//! one. A handler holds the only slot until the test opens its gate, so a request queues
//! behind it for as long as the test says, without racing the clock. Last, our client and our
//! server together: the deadline one sends is the one the other reads.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use support::greeter::{GreeterClient, HelloReply, HelloRequest, SAY_HELLO};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceBuilder};
use tower_retrier::deadline::{Deadline, DeadlineHeader, DropExpiredLayer};

const ENVOY: http::HeaderName = http::HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

// ---------------------------------------------------------------------------------------------
// The queue, held and observed by the test
// ---------------------------------------------------------------------------------------------

/// The handler's side: counts the calls that ran; a call whose request has `hold` waits for
/// the test to open the gate (and says it has started).
#[derive(Clone)]
struct Handler {
    calls: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
    started: Arc<Notify>,
}

impl Default for Handler {
    fn default() -> Self {
        Handler {
            calls: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
            started: Arc::default(),
        }
    }
}

impl Handler {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn run(&self, hold: bool) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if hold {
            self.started.notify_one();
            let _permit = self.gate.acquire().await.expect("gate open");
        }
    }

    fn open(&self) {
        self.gate.add_permits(1);
    }
}

/// Reports each request the moment the layer inside it has taken it (stamped its arrival).
#[derive(Clone)]
struct Arrivals<S> {
    inner: S,
    tx: mpsc::UnboundedSender<Instant>,
}

impl<S: Service<R>, R> Service<R> for Arrivals<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        let future = self.inner.call(req);
        let _ = self.tx.send(Instant::now());
        future
    }
}

/// Waits until a request with `left` of its deadline, stamped by the layer at `arrived` or
/// before ([`Arrivals`] reads the clock after the layer), has certainly run out of it. A lower
/// bound, not a race: the sleep never ends early.
async fn outlive(arrived: Instant, left: Duration) {
    tokio::time::sleep_until(arrived + left + Duration::from_millis(1)).await;
}

// ---------------------------------------------------------------------------------------------
// axum
// ---------------------------------------------------------------------------------------------

/// An axum app on 127.0.0.1:0: `GET /work` answers with the deadline the handler saw;
/// `hold: 1` makes it wait for the gate. The layer is outside a concurrency limit of one
/// (shared by every connection).
async fn axum_app(
    drop_expired: DropExpiredLayer,
    handler: Handler,
) -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let work = move |req: axum::extract::Request| {
        let handler = handler.clone();
        async move {
            handler.run(req.headers().contains_key("hold")).await;
            let left = Deadline::of(&req).map(|d| d.remaining().as_millis());
            format!("{left:?}")
        }
    };
    let app = Router::new().route("/work", get(work)).layer(
        ServiceBuilder::new()
            .layer(tower::layer::layer_fn(move |inner| Arrivals {
                inner,
                tx: tx.clone(),
            }))
            .layer(drop_expired)
            // One limit for every connection: axum builds a route's layers per connection.
            .layer(GlobalConcurrencyLimitLayer::new(1)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get_work(
    client: &HttpClient,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (http::StatusCode, http::HeaderMap, String) {
    let mut req = http::Request::get(format!("http://{addr}/work"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn axum_answers_an_expired_request_503_without_running_the_handler() {
    let handler = Handler::default();
    let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
    let (addr, _arrivals) = axum_app(layer.clone(), handler.clone()).await;
    let (status, headers, body) = get_work(&http_client(), addr, &[(ENVOY.as_str(), "0")]).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body, "");
    assert_eq!(handler.calls(), 0);
    assert_eq!(layer.stats().expired_on_arrival, 1);
}

#[tokio::test]
async fn axum_serves_a_request_with_time_left_no_deadline_or_a_malformed_one() {
    let handler = Handler::default();
    let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
    let (addr, _arrivals) = axum_app(layer.clone(), handler.clone()).await;
    let client = http_client();
    // Time left: served, and the handler sees what is left of it.
    let (status, _, body) = get_work(&client, addr, &[(ENVOY.as_str(), "60000")]).await;
    assert_eq!(status, 200);
    let left: u128 = body
        .strip_prefix("Some(")
        .and_then(|b| b.strip_suffix(')'))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("{body}"));
    assert!((1..=60_000).contains(&left), "{left}");
    // No deadline, or one that cannot be read: served as if there were none.
    for headers in [
        &[][..],
        &[(ENVOY.as_str(), "soon")][..],
        &[(ENVOY.as_str(), "-1")][..],
        &[(ENVOY.as_str(), "1e3")][..],
        &[(ENVOY.as_str(), "")][..],
    ] {
        let (status, _, body) = get_work(&client, addr, headers).await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "None"),
            "{headers:?}"
        );
    }
    assert_eq!(handler.calls(), 6);
    assert_eq!(layer.stats().expired_on_arrival, 0);
}

#[tokio::test]
async fn axum_drops_a_request_whose_deadline_passed_in_the_queue_at_the_front() {
    let handler = Handler::default();
    let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
    let (addr, mut arrivals) = axum_app(layer.clone(), handler.clone()).await;
    let client = http_client();
    // The first request takes the only slot and holds it.
    let busy = tokio::spawn({
        let client = client.clone();
        async move { get_work(&client, addr, &[("hold", "1")]).await }
    });
    handler.started.notified().await;
    arrivals.recv().await.unwrap();
    // Two more queue behind it: one whose caller waits 5 ms, one whose caller waits a minute.
    let late = tokio::spawn({
        let client = client.clone();
        async move { get_work(&client, addr, &[(ENVOY.as_str(), "5")]).await }
    });
    let arrived = arrivals.recv().await.unwrap();
    let patient = tokio::spawn({
        let client = client.clone();
        async move { get_work(&client, addr, &[(ENVOY.as_str(), "60000")]).await }
    });
    arrivals.recv().await.unwrap();
    outlive(arrived, Duration::from_millis(5)).await;
    handler.open();
    assert_eq!(busy.await.unwrap().0, 200);
    let (status, headers, _) = late.await.unwrap();
    assert_eq!(status, 503, "dropped when it reached the front");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(patient.await.unwrap().0, 200);
    assert_eq!(handler.calls(), 2, "the late request's handler never ran");
    let s = layer.stats();
    assert_eq!((s.expired_on_arrival, s.expired_in_queue), (0, 1));
}

// ---------------------------------------------------------------------------------------------
// tonic
// ---------------------------------------------------------------------------------------------

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The greeter's server side, by hand (as `tests/support/greeter.rs`): a call whose name is
/// "hold" waits for the gate.
#[derive(Clone)]
struct GatedGreeter(Handler);

impl tonic::server::NamedService for GatedGreeter {
    const NAME: &'static str = "helloworld.Greeter";
}

impl Service<http::Request<tonic::body::Body>> for GatedGreeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move {
            assert_eq!(req.uri().path(), SAY_HELLO);
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                HelloReply,
                HelloRequest,
            >::default());
            Ok(grpc.unary(SayHello(handler), req).await)
        })
    }
}

struct SayHello(Handler);

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<tonic::Response<HelloReply>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move {
            let left = request
                .extensions()
                .get::<Deadline>()
                .map(|d| d.remaining().as_millis());
            let name = request.into_inner().name;
            handler.run(name == "hold").await;
            Ok(tonic::Response::new(HelloReply {
                message: format!("Hello {name}! {left:?}"),
            }))
        })
    }
}

/// A tonic server on 127.0.0.1:0 with the layer outside a concurrency limit of one.
async fn tonic_server(
    drop_expired: DropExpiredLayer,
    handler: Handler,
) -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let limit = Arc::new(Semaphore::new(1));
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(
                ServiceBuilder::new()
                    .layer(tower::layer::layer_fn(move |inner| Arrivals {
                        inner,
                        tx: tx.clone(),
                    }))
                    .layer(drop_expired)
                    .layer(GlobalConcurrencyLimitLayer::with_semaphore(limit)),
            )
            .add_service(GatedGreeter(handler))
            .serve_with_incoming(incoming),
    );
    (addr, rx)
}

fn greeter(addr: SocketAddr) -> GreeterClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    GreeterClient::new(channel)
}

fn hello(name: &str, grpc_timeout: Option<&'static str>) -> tonic::Request<HelloRequest> {
    let mut req = tonic::Request::new(HelloRequest { name: name.into() });
    if let Some(t) = grpc_timeout {
        req.metadata_mut()
            .insert("grpc-timeout", t.parse().unwrap());
    }
    req
}

/// tonic's own client gives up at once on a `grpc-timeout` of zero (it enforces the header
/// itself), so this call is sent as raw HTTP/2, to read the server's answer on the wire.
#[tokio::test]
async fn tonic_answers_an_expired_call_deadline_exceeded_without_running_the_handler() {
    let handler = Handler::default();
    let layer = DropExpiredLayer::grpc();
    let (addr, _arrivals) = tonic_server(layer.clone(), handler.clone()).await;
    let message = prost::Message::encode_to_vec(&HelloRequest { name: "Ada".into() });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("http://{addr}{SAY_HELLO}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "0n")
        .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
        .unwrap();
    let res = client.request(req).await.unwrap();
    // Trailers-only: the status in the head, an empty body.
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "4");
    assert_eq!(res.headers()["grpc-retry-pushback-ms"], "1000");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    let body = res.into_body().collect().await.unwrap();
    assert!(body.trailers().is_none());
    assert!(body.to_bytes().is_empty());
    assert_eq!(handler.calls(), 0);
    assert_eq!(layer.stats().expired_on_arrival, 1);
}

#[tokio::test]
async fn tonic_serves_a_call_with_time_left_no_deadline_or_a_malformed_one() {
    let handler = Handler::default();
    let layer = DropExpiredLayer::grpc();
    let (addr, _arrivals) = tonic_server(layer.clone(), handler.clone()).await;
    let mut client = greeter(addr);
    let reply = client.say_hello(hello("Ada", Some("60S"))).await.unwrap();
    let message = reply.into_inner().message;
    let left: u128 = message
        .strip_prefix("Hello Ada! Some(")
        .and_then(|m| m.strip_suffix(')'))
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!((1..=60_000).contains(&left), "{left}");
    for timeout in [
        None,
        Some("soon"),
        Some("-1S"),
        Some("123456789m"),
        Some("5"),
    ] {
        let reply = client.say_hello(hello("Ada", timeout)).await.unwrap();
        assert_eq!(reply.into_inner().message, "Hello Ada! None", "{timeout:?}");
    }
    assert_eq!(handler.calls(), 6);
}

/// tonic cancels a call itself once its `grpc-timeout` has passed (`CANCELLED`, "Timeout
/// expired"), wherever it waits; so the layer is shown dropping, at the front, a call left
/// with less than `min_time_left`: work that could not finish before its caller gives up.
#[tokio::test]
async fn tonic_drops_a_call_that_reaches_the_front_with_too_little_time_left() {
    let handler = Handler::default();
    let layer = DropExpiredLayer::grpc().min_time_left(Duration::from_millis(59_990));
    let (addr, mut arrivals) = tonic_server(layer.clone(), handler.clone()).await;
    let client = greeter(addr);
    let busy = tokio::spawn({
        let mut client = client.clone();
        async move { client.say_hello(hello("hold", None)).await }
    });
    handler.started.notified().await;
    arrivals.recv().await.unwrap();
    // 60 s on arrival: more than the 59.99 s floor. 10 ms in the queue: less.
    let late = tokio::spawn({
        let mut client = client.clone();
        async move { client.say_hello(hello("Ada", Some("60S"))).await }
    });
    let arrived = arrivals.recv().await.unwrap();
    outlive(arrived, Duration::from_millis(10)).await;
    handler.open();
    assert!(busy.await.unwrap().is_ok());
    let status = late.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(handler.calls(), 1, "the late call's handler never ran");
    let s = layer.stats();
    assert_eq!((s.expired_on_arrival, s.expired_in_queue), (0, 1));
}

// ---------------------------------------------------------------------------------------------
// Both halves
// ---------------------------------------------------------------------------------------------

/// Our client sends what is left of its deadline in the header our server reads it from.
#[tokio::test]
async fn the_server_reads_the_deadline_our_client_sends() {
    let handler = Handler::default();
    let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
    let (addr, _arrivals) = axum_app(layer.clone(), handler.clone()).await;
    let config = tower_retrier::RetryConfig::builder()
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let client = tower_retrier::RetryLayer::new_for_http(config)
        .with_replay(
            tower_retrier::replay::ReplayHttp::new().propagate_deadline(DeadlineHeader::envoy()),
        )
        // hyper-util's client error cannot carry a refusal (no per-attempt timeout here).
        .without_admission()
        .layer(Client::builder(TokioExecutor::new()).build_http());
    let req = http::Request::get(format!("http://{addr}/work"))
        .body(Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(client, req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let left: u128 = body
        .strip_prefix("Some(")
        .and_then(|b| b.strip_suffix(')'))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("{body}"));
    assert!((1..=2000).contains(&left), "{left}");
    assert_eq!(handler.calls(), 1);
}
