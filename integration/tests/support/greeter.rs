//! A hand-written tonic greeter (the code `tonic-build` would generate for
//! `helloworld.Greeter/SayHello`), so no `protoc` is needed, plus a flaky server for it.
//! Shared by `tests/grpc_tonic.rs` and `examples/tonic_client.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tonic::codegen::http;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

pub const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

/// The generated client, by hand.
#[derive(Clone, Debug)]
pub struct GreeterClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> GreeterClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    pub fn new(inner: T) -> Self {
        GreeterClient {
            inner: tonic::client::Grpc::new(inner),
        }
    }

    pub async fn say_hello(
        &mut self,
        request: impl tonic::IntoRequest<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("service was not ready: {}", e.into())))?;
        let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
        let path = http::uri::PathAndQuery::from_static(SAY_HELLO);
        self.inner.unary(request.into_request(), path, codec).await
    }
}

/// What the server does on one call.
#[derive(Clone, Debug)]
pub enum Step {
    /// Fail with this code, optionally with `grpc-retry-pushback-ms`, in a trailers-only
    /// response (how tonic and most servers send errors).
    Fail(Code, Option<&'static str>),
    /// Send a `200` head without status, then fail with this code in the trailers (as a
    /// proxy, or a server failing after its head, may do).
    FailInTrailers(Code),
    /// Answer after this long (a slow attempt, for hedging); counted in
    /// [`FlakyGreeter::cancelled`] if the client gives up on it first.
    Slow(std::time::Duration),
    /// Answer.
    Ok,
}

#[derive(Debug, Default)]
struct State {
    calls: AtomicUsize,
    script: Vec<Step>,
    previous_attempts: Mutex<Vec<Option<String>>>,
    timeouts: Mutex<Vec<Option<String>>>,
    cancelled: Arc<AtomicUsize>,
}

/// A greeter that follows a script, then answers; the generated server, by hand.
#[derive(Clone, Debug)]
pub struct FlakyGreeter {
    state: Arc<State>,
}

impl FlakyGreeter {
    pub fn new(script: Vec<Step>) -> Self {
        FlakyGreeter {
            state: Arc::new(State {
                script,
                ..State::default()
            }),
        }
    }

    /// Calls received so far.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Slow calls whose handler was dropped before answering (the client cancelled them).
    pub fn cancelled(&self) -> usize {
        self.state.cancelled.load(Ordering::SeqCst)
    }

    /// The `grpc-previous-rpc-attempts` header of each call received.
    pub fn previous_attempts(&self) -> Vec<Option<String>> {
        self.state.previous_attempts.lock().unwrap().clone()
    }

    /// The `grpc-timeout` header of each call received.
    pub fn grpc_timeouts(&self) -> Vec<Option<String>> {
        self.state.timeouts.lock().unwrap().clone()
    }

    /// Serves on 127.0.0.1:0 in a background task; returns the address.
    pub async fn serve(self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(self)
                .serve_with_incoming(incoming),
        );
        addr
    }
}

impl tonic::server::NamedService for FlakyGreeter {
    const NAME: &'static str = "helloworld.Greeter";
}

impl tower::Service<http::Request<tonic::body::Body>> for FlakyGreeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            if req.uri().path() != SAY_HELLO {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let previous = req
                .headers()
                .get("grpc-previous-rpc-attempts")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            state.previous_attempts.lock().unwrap().push(previous);
            let timeout = req
                .headers()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            state.timeouts.lock().unwrap().push(timeout);
            let n = state.calls.fetch_add(1, Ordering::SeqCst);
            let step = state.script.get(n).cloned().unwrap_or(Step::Ok);
            if let Step::FailInTrailers(code) = step {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", (code as i32).into());
                trailers.insert(
                    "grpc-message",
                    http::HeaderValue::from_static("failed late"),
                );
                let frames = futures_util::stream::iter([Ok::<_, Status>(
                    http_body::Frame::trailers(trailers),
                )]);
                let body = tonic::body::Body::new(http_body_util::StreamBody::new(frames));
                let res = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(body)
                    .unwrap();
                return Ok(res);
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                HelloReply,
                HelloRequest,
            >::default());
            Ok(grpc
                .unary(SayHello(step, state.cancelled.clone()), req)
                .await)
        })
    }
}

struct SayHello(Step, Arc<AtomicUsize>);

/// Counts a handler dropped before it answered.
struct CountDrop(Arc<AtomicUsize>, bool);

impl Drop for CountDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<tonic::Response<HelloReply>, Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let step = self.0.clone();
        let cancelled = self.1.clone();
        Box::pin(async move {
            match step {
                Step::Slow(delay) => {
                    let mut guard = CountDrop(cancelled, false);
                    tokio::time::sleep(delay).await;
                    guard.1 = true;
                    Ok(tonic::Response::new(HelloReply {
                        message: format!("Hello {}, slowly!", request.into_inner().name),
                    }))
                }
                Step::Fail(code, pushback) => {
                    let mut md = MetadataMap::new();
                    if let Some(p) = pushback {
                        md.insert("grpc-retry-pushback-ms", p.parse().unwrap());
                    }
                    Err(Status::with_metadata(code, "not now", md))
                }
                Step::FailInTrailers(_) => unreachable!("answered at the HTTP level"),
                Step::Ok => Ok(tonic::Response::new(HelloReply {
                    message: format!("Hello {}!", request.into_inner().name),
                })),
            }
        })
    }
}
