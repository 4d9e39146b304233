//! Hedging over real loopback sockets (hyper server, hyper-util client): the loser's
//! connection is closed and the server drops its handler; a POST without opt-in is never
//! hedged; a streamed body reaches every hedge byte for byte.
//!
//! Real time is needed for sockets: the hedging delays are short (20-50 ms) and every wait
//! on the server is bounded by a generous 10 s, so a slow machine cannot make them flaky.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::Layer;
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::replay::{ReplayBody, ReplayHttp};
use tower_retrier::{RetryConfig, RetryLayer};

const GENEROUS: Duration = Duration::from_secs(10);

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// Sends the request's index when its handler is dropped before answering.
struct Cancelled {
    index: usize,
    answered: bool,
    tx: mpsc::UnboundedSender<usize>,
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.tx.send(self.index);
        }
    }
}

/// A server whose first request hangs for `slow_first`, and every other answers at once.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    cancelled: mpsc::UnboundedReceiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(slow_first: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (tx, cancelled) = mpsc::unbounded_channel();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, tx) = (log.clone(), tx.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                        let (log, tx) = (log.clone(), tx.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let index = {
                                let mut log = log.lock().unwrap();
                                log.push(Seen {
                                    method: parts.method.to_string(),
                                    headers: parts.headers,
                                    body,
                                });
                                log.len() - 1
                            };
                            let mut guard = Cancelled {
                                index,
                                answered: false,
                                tx,
                            };
                            if index == 0 {
                                tokio::time::sleep(slow_first).await;
                            }
                            guard.answered = true;
                            let text = format!("attempt {index}");
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server {
            addr,
            seen,
            cancelled,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn hedging(delay_ms: u64) -> HedgeConfig {
    HedgeConfig::builder()
        .delay(Duration::from_millis(delay_ms))
        .max_attempts(2)
        .build()
        .unwrap()
}

async fn body_text(res: http::Response<Incoming>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_hedge_wins_and_the_server_sees_the_loser_cancelled() {
    let mut server = Server::start(Duration::from_secs(60)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc = RetryLayer::new_for_http(RetryConfig::default())
        .without_admission()
        .hedge(hedging(50))
        .layer(client);
    let req = http::Request::get(server.url("/users/1"))
        .body(Full::default())
        .unwrap();
    let res = tokio::time::timeout(GENEROUS, svc.oneshot(req))
        .await
        .expect("the hedge answers long before the slow first attempt")
        .unwrap();
    assert_eq!(body_text(res).await, "attempt 1");
    // The first attempt's connection was closed when it lost: hyper dropped its handler.
    let cancelled = tokio::time::timeout(GENEROUS, server.cancelled.recv())
        .await
        .expect("the server sees the loser cancelled");
    assert_eq!(cancelled, Some(0));
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_post_without_opt_in_is_never_hedged() {
    let server = Server::start(Duration::from_millis(300)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc = RetryLayer::new_for_http(RetryConfig::default())
        .without_admission()
        .hedge(hedging(20))
        .layer(client.clone());
    let req = http::Request::post(server.url("/orders"))
        .body(Full::new(Bytes::from_static(b"{\"item\":1}")))
        .unwrap();
    let res = tokio::time::timeout(GENEROUS, svc.oneshot(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        body_text(res).await,
        "attempt 0",
        "waited for the only attempt"
    );
    assert_eq!(server.seen().len(), 1);

    // With an Idempotency-Key the same POST is hedged.
    let server = Server::start(Duration::from_secs(60)).await;
    let svc = RetryLayer::new_for_http(RetryConfig::default())
        .without_admission()
        .hedge(hedging(20))
        .layer(client);
    let req = http::Request::post(server.url("/orders"))
        .header("idempotency-key", "order-7")
        .body(Full::new(Bytes::from_static(b"{\"item\":1}")))
        .unwrap();
    let res = tokio::time::timeout(GENEROUS, svc.oneshot(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body_text(res).await, "attempt 1");
    assert_eq!(server.seen().len(), 2);
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
async fn a_streamed_body_reaches_every_hedge_byte_for_byte() {
    let server = Server::start(Duration::from_secs(60)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Chunks>>();
    let replay = ReplayHttp::new().attempt_count_header(http::HeaderName::from_static("x-attempt"));
    let svc = RetryLayer::new_for_http(RetryConfig::default())
        .without_admission()
        .with_replay(replay.clone())
        .hedge(hedging(30))
        .layer(client);
    let parts = ["{\"name\":", "\"a", "b\u{e9}c\",", "\"n\":", "42}"];
    let req = http::Request::put(server.url("/docs/1"))
        .body(streaming(&parts))
        .unwrap();
    let res = tokio::time::timeout(GENEROUS, svc.oneshot(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body_text(res).await, "attempt 1");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let expected: Vec<u8> = parts.concat().into_bytes();
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.method, "PUT");
        assert_eq!(s.body, expected, "attempt {i}");
        assert_eq!(s.headers["x-attempt"], (i + 1).to_string());
    }
    assert_eq!(replay.stats().replayed, 1);
}
