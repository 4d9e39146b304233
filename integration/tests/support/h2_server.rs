//! HTTP/2 servers on loopback that do to each request what a script says: answer it, refuse
//! its stream, reset it after reading the body, or send a GOAWAY below or covering it. Each
//! records the bodies it received, in order, so a test can tell what was sent and how often.
//!
//! [`serve_h2`] is the `h2` crate's server (real framing, real flow control). A GOAWAY whose
//! last-stream-id is *below* the request's stream cannot be asked of it (h2 counts a stream as
//! processed once its headers arrive), so [`serve_frames`] speaks the few frames these tests
//! need by hand: the client's preface and SETTINGS, HEADERS and DATA in, and SETTINGS,
//! HEADERS (`:status: 200`), RST_STREAM and GOAWAY out.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Reads the body and answers 200.
    Answer,
    /// RST_STREAM(REFUSED_STREAM) as soon as the headers arrive: not processed.
    Refuse,
    /// Reads the whole body, then RST_STREAM(INTERNAL_ERROR): may have been processed.
    ResetInternal,
    /// Reads the whole body, then RST_STREAM(CANCEL): may have been processed.
    Cancel,
    /// GOAWAY(last-stream-id below this stream, NO_ERROR) right after the headers, then the
    /// connection closes ([`serve_frames`] only): not processed.
    GoAwayBelow,
    /// Reads the whole body, then GOAWAY(last-stream-id = this stream) and closes the
    /// connection without answering ([`serve_frames`] only): may have been processed.
    GoAwayCovering,
}

/// What the server saw: the body of every request, in arrival order, and the connections.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    inner: Arc<Mutex<SeenInner>>,
}

#[derive(Debug, Default)]
struct SeenInner {
    bodies: Vec<Bytes>,
    connections: usize,
}

impl Seen {
    /// Requests received (their headers), answered or not.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().bodies.len()
    }

    /// The bodies received so far (complete for requests whose body was read).
    pub fn bodies(&self) -> Vec<Bytes> {
        self.inner.lock().unwrap().bodies.clone()
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.inner.lock().unwrap().connections
    }

    fn request(&self) -> usize {
        let mut s = self.inner.lock().unwrap();
        s.bodies.push(Bytes::new());
        s.bodies.len() - 1
    }

    fn body(&self, i: usize, data: &[u8]) {
        let mut s = self.inner.lock().unwrap();
        let mut b = BytesMut::from(&s.bodies[i][..]);
        b.extend_from_slice(data);
        s.bodies[i] = b.freeze();
    }

    fn connection(&self) {
        self.inner.lock().unwrap().connections += 1;
    }
}

/// The script: the act for the n-th request of the server's life (then [`Act::Answer`]).
#[derive(Clone, Debug)]
struct Script(Arc<Mutex<std::vec::IntoIter<Act>>>);

impl Script {
    fn new(acts: Vec<Act>) -> Self {
        Script(Arc::new(Mutex::new(acts.into_iter())))
    }
    fn next(&self) -> Act {
        self.0.lock().unwrap().next().unwrap_or(Act::Answer)
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// The `h2` crate's server following `acts` (GOAWAY acts are not available here).
pub async fn serve_h2(acts: Vec<Act>) -> (SocketAddr, Seen) {
    let (listener, addr) = listener().await;
    let seen = Seen::default();
    let (script, log) = (Script::new(acts), seen.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            log.connection();
            let (script, log) = (script.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(sock).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let act = script.next();
                    let i = log.request();
                    let log = log.clone();
                    let grpc = req
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                    tokio::spawn(async move {
                        if act == Act::Refuse {
                            respond.send_reset(h2::Reason::REFUSED_STREAM);
                            return;
                        }
                        let mut body = req.into_body();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            log.body(i, &chunk);
                        }
                        match act {
                            Act::ResetInternal => respond.send_reset(h2::Reason::INTERNAL_ERROR),
                            Act::Cancel => respond.send_reset(h2::Reason::CANCEL),
                            _ if grpc => answer_grpc(respond),
                            _ => {
                                let _ = respond.send_response(http::Response::new(()), true);
                            }
                        }
                    });
                }
            });
        }
    });
    (addr, seen)
}

/// A unary gRPC answer: an empty message (every field at its default) and status OK.
fn answer_grpc(mut respond: h2::server::SendResponse<Bytes>) {
    let head = http::Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let Ok(mut stream) = respond.send_response(head, false) else {
        return;
    };
    let _ = stream.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A hand-framed HTTP/2 server following `acts` (every act available).
pub async fn serve_frames(acts: Vec<Act>) -> (SocketAddr, Seen) {
    let (listener, addr) = listener().await;
    let seen = Seen::default();
    let (script, log) = (Script::new(acts), seen.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            log.connection();
            tokio::spawn(frames_connection(sock, script.clone(), log.clone()));
        }
    });
    (addr, seen)
}

async fn frames_connection(mut sock: TcpStream, script: Script, log: Seen) {
    let mut preface = [0u8; 24];
    if sock.read_exact(&mut preface).await.is_err() || preface != PREFACE {
        return;
    }
    let _ = write_frame(&mut sock, SETTINGS, 0, 0, &[]).await;
    // Stream id -> (request index, act) for streams whose body is still coming.
    let mut open: Vec<(u32, usize, Act)> = Vec::new();
    let mut last_answered = 0u32;
    loop {
        let Ok((kind, flags, stream, payload)) = read_frame(&mut sock).await else {
            return;
        };
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let _ = write_frame(&mut sock, SETTINGS, ACK, 0, &[]).await;
            }
            PING if flags & ACK == 0 => {
                let _ = write_frame(&mut sock, PING, ACK, 0, &payload).await;
            }
            HEADERS => {
                let act = script.next();
                let i = log.request();
                match act {
                    Act::Refuse => {
                        let _ = write_frame(&mut sock, RST_STREAM, 0, stream, &7u32.to_be_bytes())
                            .await;
                        continue;
                    }
                    Act::GoAwayBelow => {
                        let _ = go_away(&mut sock, last_answered).await;
                        return;
                    }
                    _ => {}
                }
                if flags & END_STREAM != 0 {
                    if !finish(&mut sock, stream, act).await {
                        return;
                    }
                    last_answered = stream;
                } else {
                    open.push((stream, i, act));
                }
            }
            DATA => {
                let Some(pos) = open.iter().position(|(s, _, _)| *s == stream) else {
                    continue;
                };
                let (_, i, act) = open[pos];
                // Give the flow-control credit back, so bodies of any size get through.
                if !payload.is_empty() {
                    let credit = (payload.len() as u32).to_be_bytes();
                    let _ = write_frame(&mut sock, WINDOW_UPDATE, 0, 0, &credit).await;
                    let _ = write_frame(&mut sock, WINDOW_UPDATE, 0, stream, &credit).await;
                }
                log.body(i, &strip_padding(flags, payload));
                if flags & END_STREAM != 0 {
                    open.swap_remove(pos);
                    if !finish(&mut sock, stream, act).await {
                        return;
                    }
                    last_answered = stream;
                }
            }
            _ => {}
        }
    }
}

/// The body is in: answer, reset, or GOAWAY covering the stream. `false` when the
/// connection is to close.
async fn finish(sock: &mut TcpStream, stream: u32, act: Act) -> bool {
    match act {
        Act::GoAwayCovering => {
            let _ = go_away(sock, stream).await;
            false
        }
        Act::ResetInternal | Act::Cancel => {
            let code: u32 = if act == Act::Cancel { 8 } else { 2 };
            write_frame(sock, RST_STREAM, 0, stream, &code.to_be_bytes())
                .await
                .is_ok()
        }
        // `:status: 200` is entry 8 of HPACK's static table.
        _ => write_frame(sock, HEADERS, END_HEADERS | END_STREAM, stream, &[0x88])
            .await
            .is_ok(),
    }
}

/// GOAWAY(last_stream_id, NO_ERROR), then the connection closes.
async fn go_away(sock: &mut TcpStream, last_stream_id: u32) -> std::io::Result<()> {
    let mut payload = [0u8; 8];
    payload[..4].copy_from_slice(&last_stream_id.to_be_bytes());
    write_frame(sock, GOAWAY, 0, 0, &payload).await?;
    sock.flush().await?;
    sock.shutdown().await
}

fn strip_padding(flags: u8, mut payload: Bytes) -> Bytes {
    const PADDED: u8 = 0x8;
    if flags & PADDED != 0 && !payload.is_empty() {
        let pad = usize::from(payload.get_u8());
        payload.truncate(payload.len().saturating_sub(pad));
    }
    payload
}

async fn read_frame(sock: &mut TcpStream) -> std::io::Result<(u8, u8, u32, Bytes)> {
    let mut head = [0u8; 9];
    sock.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).await?;
    Ok((head[3], head[4], stream, Bytes::from(payload)))
}

async fn write_frame(
    sock: &mut TcpStream,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(9 + payload.len());
    buf.put_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    buf.put_u8(kind);
    buf.put_u8(flags);
    buf.put_u32(stream);
    buf.put_slice(payload);
    sock.write_all(&buf).await
}
