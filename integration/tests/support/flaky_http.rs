//! A real HTTP/1.1 server on 127.0.0.1:0 that answers from a script, then 200, and records
//! what it received.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpSocket};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Answer before reading the request body (as some proxies do).
    pub early: bool,
    /// Wait this long (after recording the request) before answering: a slow or hung server.
    pub delay: Option<std::time::Duration>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            early: false,
            delay: None,
        }
    }

    /// Answers `200` only after `delay`: long enough for any per-attempt timeout to cut it.
    pub fn hang(delay: std::time::Duration) -> Self {
        Reply {
            delay: Some(delay),
            ..Reply::status(200)
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn early(mut self) -> Self {
        self.early = true;
        self
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

pub struct FlakyServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FlakyServer {
    /// Starts a server answering the scripted replies in order, then `200 ok`.
    pub async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::serve(listener, script)
    }

    /// Starts the server on `addr` at once, from synchronous code inside a runtime (for
    /// example a retry hook: "the server comes up while the client backs off").
    ///
    /// An address from [`dead_addr`] is still held by this process, so listening there
    /// cannot lose a race with another socket.
    pub fn start_now(addr: SocketAddr, script: Vec<Reply>) -> Self {
        let reserved = {
            let mut reserved = RESERVED.lock().unwrap();
            let i = reserved.iter().position(|(a, _)| *a == addr);
            i.map(|i| reserved.swap_remove(i).1)
        };
        let listener = match reserved {
            Some(socket) => socket.listen(1024).expect("listen on the reserved port"),
            None => {
                let std = std::net::TcpListener::bind(addr).expect("bind the loopback port");
                std.set_nonblocking(true).unwrap();
                TcpListener::from_std(std).unwrap()
            }
        };
        Self::serve(listener, script)
    }

    fn serve(listener: TcpListener, script: Vec<Reply>) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (log, script) = (log.clone(), script.clone());
                        async move { Ok::<_, Infallible>(answer(req, &log, &script).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FlakyServer { addr, seen, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for FlakyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    log: &Mutex<Vec<Seen>>,
    script: &[Reply],
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let index = log.lock().unwrap().len();
    let reply = script
        .get(index)
        .cloned()
        .unwrap_or_else(|| Reply::status(200));
    let body = if reply.early {
        Bytes::new()
    } else {
        body.collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default()
    };
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body: body.clone(),
    });
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut res = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        res = res.header(*k, v);
    }
    let text = if reply.status == 200 {
        format!("ok {}", body.len())
    } else {
        format!("status {}", reply.status)
    };
    res.body(Full::new(Bytes::from(text))).unwrap()
}

/// Loopback sockets bound but not listening, with their addresses: connections to them are
/// refused, and no other socket can take the port (the kernel hands bound ports to neither
/// `bind(0)` nor `connect`), until [`FlakyServer::start_now`] turns one into a listener.
/// Releasing a port and binding it again later could lose it to another test in between.
static RESERVED: Mutex<Vec<(SocketAddr, TcpSocket)>> = Mutex::new(Vec::new());

/// A loopback address on which nothing listens (connections are refused), reserved for this
/// test process: [`FlakyServer::start_now`] can later listen there.
pub async fn dead_addr() -> SocketAddr {
    let socket = TcpSocket::new_v4().expect("create a socket");
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind loopback");
    let addr = socket.local_addr().unwrap();
    RESERVED.lock().unwrap().push((addr, socket));
    addr
}
