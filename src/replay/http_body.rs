//! Replaying HTTP requests whose body is not `Clone`: record it while it is sent, replay it.

use super::Replay;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

/// The default replay buffer: 64 KiB per request, as Linkerd.
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 64 * 1024;

/// Replays `http::Request<B>` for any body `B` (hyper's `Incoming`, `tonic::body::Body`, a
/// stream), by recording the body as the inner service sends it.
///
/// The first attempt's body is a [`ReplayBody`] that passes every frame through and keeps a
/// reference to it (`Bytes` are reference-counted: recording does not copy, so a `Full<Bytes>`
/// body costs nothing extra). A retry gets a body replaying those frames, trailers included.
///
/// A request is **sent once and not retried** when its body is known to exceed the buffer
/// limit (size hint), when it outgrew the limit while being sent (the recording is dropped at
/// once), or when the retry is decided before the body was completely sent (a server that
/// answered without reading it). Each case is counted in [`ReplayHttp::stats`] and traced at
/// `debug` level.
///
/// Optionally every attempt carries an attempt-number header (see
/// [`attempt_count_header`](Self::attempt_count_header) and
/// [`previous_attempts_header`](Self::previous_attempts_header)).
///
/// Clones share the counters.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower_retrier::replay::{Replay, ReplayHttp};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let replay = ReplayHttp::new().attempt_count_header(http::HeaderName::from_static("x-retry-attempt"));
/// let req = http::Request::post("/upload").body(Full::new(Bytes::from("payload"))).unwrap();
///
/// let (first, mut saved) = replay.save(req).ok().unwrap();
/// assert_eq!(first.headers()["x-retry-attempt"], "1");
/// // The inner service sends the body...
/// assert_eq!(first.into_body().collect().await.unwrap().to_bytes(), "payload");
/// // ...so a retry can send it again.
/// let second = replay.replay(&mut saved).unwrap();
/// assert_eq!(second.headers()["x-retry-attempt"], "2");
/// assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), "payload");
/// assert_eq!(replay.stats().replayed, 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ReplayHttp {
    max_bytes: usize,
    header: Option<AttemptHeader>,
    counters: Arc<Counters>,
}

#[derive(Clone, Debug)]
enum AttemptHeader {
    /// 1 on the first attempt, 2 on the second, ... (like `x-envoy-attempt-count`).
    Count(HeaderName),
    /// Absent on the first attempt, then 1, 2, ... (like `grpc-previous-rpc-attempts`).
    Previous(HeaderName),
}

#[derive(Debug, Default)]
struct Counters {
    replayed: AtomicU64,
    too_large: AtomicU64,
    incomplete: AtomicU64,
}

/// Counts kept by a [`ReplayHttp`] (and its clones).
///
/// ```
/// let s = tower_retrier::replay::ReplayHttp::new().stats();
/// assert_eq!((s.replayed, s.too_large, s.incomplete), (0, 0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayStats {
    /// Retries sent with a replayed body.
    pub replayed: u64,
    /// Requests whose body exceeded the buffer limit: sent once, never retried.
    pub too_large: u64,
    /// Retries refused because the body had not been completely sent when the response came.
    pub incomplete: u64,
}

impl ReplayHttp {
    /// Buffers up to [`DEFAULT_MAX_REPLAY_BYTES`] (64 KiB) per request, no attempt header.
    ///
    /// ```
    /// let _r = tower_retrier::replay::ReplayHttp::new();
    /// ```
    pub fn new() -> Self {
        ReplayHttp {
            max_bytes: DEFAULT_MAX_REPLAY_BYTES,
            header: None,
            counters: Arc::default(),
        }
    }

    /// The largest body (in bytes) kept for replay; larger bodies are sent once.
    ///
    /// ```
    /// let _r = tower_retrier::replay::ReplayHttp::new().max_buffer(1 << 20);
    /// ```
    pub fn max_buffer(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets `name` to the attempt number (1, 2, 3, ...) on every attempt, like Envoy's
    /// `x-envoy-attempt-count`.
    ///
    /// ```
    /// let _r = tower_retrier::replay::ReplayHttp::new()
    ///     .attempt_count_header(http::HeaderName::from_static("x-retry-attempt"));
    /// ```
    pub fn attempt_count_header(mut self, name: HeaderName) -> Self {
        self.header = Some(AttemptHeader::Count(name));
        self
    }

    /// Sets `name` to the number of previous attempts (1, 2, ...) on retries only, like gRPC's
    /// `grpc-previous-rpc-attempts`.
    ///
    /// ```
    /// let _r = tower_retrier::replay::ReplayHttp::new()
    ///     .previous_attempts_header(http::HeaderName::from_static("grpc-previous-rpc-attempts"));
    /// ```
    pub fn previous_attempts_header(mut self, name: HeaderName) -> Self {
        self.header = Some(AttemptHeader::Previous(name));
        self
    }

    /// The gRPC preset: `grpc-previous-rpc-attempts` on retries (gRFC A6).
    ///
    /// ```
    /// let _r = tower_retrier::replay::ReplayHttp::grpc();
    /// ```
    pub fn grpc() -> Self {
        Self::new().previous_attempts_header(HeaderName::from_static("grpc-previous-rpc-attempts"))
    }

    /// The counters so far (shared by clones).
    ///
    /// See [`ReplayHttp`] for an example.
    pub fn stats(&self) -> ReplayStats {
        ReplayStats {
            replayed: self.counters.replayed.load(Ordering::Relaxed),
            too_large: self.counters.too_large.load(Ordering::Relaxed),
            incomplete: self.counters.incomplete.load(Ordering::Relaxed),
        }
    }

    fn set_header(&self, headers: &mut HeaderMap, attempt: u32) {
        let (name, n) = match &self.header {
            None => return,
            Some(AttemptHeader::Count(name)) => (name, attempt),
            Some(AttemptHeader::Previous(name)) if attempt > 1 => (name, attempt - 1),
            Some(AttemptHeader::Previous(name)) => {
                // A caller's own value on the first attempt would be a lie.
                headers.remove(name);
                return;
            }
        };
        headers.insert(name.clone(), HeaderValue::from(n));
    }
}

impl Default for ReplayHttp {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`ReplayHttp`] keeps of a request between attempts (and what the classifier sees as
/// the request's body): the recording of the body and the attempt number.
///
/// ```
/// use tower_retrier::replay::{Replay, ReplayHttp};
///
/// let req = http::Request::get("/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
/// let (_first, saved) = ReplayHttp::new().save(req).ok().unwrap();
/// assert_eq!(saved.body().attempts(), 1);
/// assert_eq!(saved.body().buffered_bytes(), 0);
/// ```
pub struct Recorded<B> {
    recording: Arc<Mutex<Recording>>,
    attempts: u32,
    // Ties the saved request to its body type, so `replay` needs no annotations.
    _body: PhantomData<fn() -> B>,
}

impl<B> Recorded<B> {
    /// Attempts sent so far.
    ///
    /// See [`Recorded`] for an example.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Bytes of body recorded so far (0 once the body outgrew the buffer).
    ///
    /// See [`Recorded`] for an example.
    pub fn buffered_bytes(&self) -> usize {
        lock(&self.recording).len
    }
}

impl<B> fmt::Debug for Recorded<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorded")
            .field("attempts", &self.attempts)
            .field("buffered_bytes", &self.buffered_bytes())
            .finish()
    }
}

#[derive(Debug)]
struct Recording {
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    len: usize,
    state: RecState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecState {
    Sending,
    Complete,
    TooLarge,
    Failed,
}

fn lock(m: &Mutex<Recording>) -> MutexGuard<'_, Recording> {
    // No invariant can be half-updated by a panic here; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B> Replay<Request<B>> for ReplayHttp
where
    B: Body<Data = Bytes>,
{
    type Request = Request<ReplayBody<B>>;
    type Saved = Request<Recorded<B>>;

    fn save(&self, req: Request<B>) -> Result<(Self::Request, Self::Saved), Self::Request> {
        let (mut parts, body) = req.into_parts();
        self.set_header(&mut parts.headers, 1);
        if body.size_hint().lower() > self.max_bytes as u64 {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                max_bytes = self.max_bytes,
                body_bytes = body.size_hint().lower(),
                "request body larger than the replay buffer; it is sent once and not retried"
            );
            let body = ReplayBody {
                kind: Kind::Passthrough { body },
            };
            return Err(Request::from_parts(parts, body));
        }
        let state = if body.is_end_stream() {
            RecState::Complete
        } else {
            RecState::Sending
        };
        let recording = Arc::new(Mutex::new(Recording {
            chunks: Vec::new(),
            trailers: None,
            len: 0,
            state,
        }));
        let sent = ReplayBody {
            kind: Kind::Recording {
                body,
                recording: recording.clone(),
                max: self.max_bytes,
                counters: self.counters.clone(),
            },
        };
        let saved = Recorded {
            recording,
            attempts: 1,
            _body: PhantomData,
        };
        Ok((
            Request::from_parts(parts.clone(), sent),
            Request::from_parts(parts, saved),
        ))
    }

    fn replay(&self, saved: &mut Self::Saved) -> Option<Self::Request> {
        let (chunks, trailers) = {
            let rec = lock(&saved.body().recording);
            match rec.state {
                RecState::Complete => (
                    rec.chunks.iter().cloned().collect::<VecDeque<Bytes>>(),
                    rec.trailers.clone(),
                ),
                RecState::TooLarge => {
                    // Already counted when it overflowed.
                    tracing::debug!(
                        max_bytes = self.max_bytes,
                        "request body outgrew the replay buffer; not retried"
                    );
                    return None;
                }
                RecState::Sending | RecState::Failed => {
                    self.counters.incomplete.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        "request body was not completely sent before the response; not retried"
                    );
                    return None;
                }
            }
        };
        let attempt = saved.body().attempts.saturating_add(1);
        saved.body_mut().attempts = attempt;
        let remaining = chunks.iter().map(|c: &Bytes| c.len() as u64).sum();
        let mut req = Request::new(ReplayBody {
            kind: Kind::Replaying {
                chunks,
                trailers,
                remaining,
            },
        });
        *req.method_mut() = saved.method().clone();
        *req.uri_mut() = saved.uri().clone();
        *req.version_mut() = saved.version();
        *req.headers_mut() = saved.headers().clone();
        *req.extensions_mut() = saved.extensions().clone();
        self.set_header(req.headers_mut(), attempt);
        self.counters.replayed.fetch_add(1, Ordering::Relaxed);
        Some(req)
    }
}

pin_project! {
    /// The body of a request sent through [`ReplayHttp`]: the original body being recorded,
    /// a replay of a recorded body, or (when too large to keep) the original body as is.
    ///
    /// Services that need a specific body type (tonic's `Channel` takes
    /// `tonic::body::Body`) can convert it with a `map_request` layer, for example
    /// `req.map(tonic::body::Body::new)`.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use tower_retrier::replay::{Replay, ReplayBody, ReplayHttp};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let req = http::Request::put("/").body(Full::new(Bytes::from_static(b"x"))).unwrap();
    /// let (first, _saved) = ReplayHttp::new().save(req).ok().unwrap();
    /// let body: ReplayBody<Full<Bytes>> = first.into_body();
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "x");
    /// # }
    /// ```
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Recording {
            #[pin]
            body: B,
            recording: Arc<Mutex<Recording>>,
            max: usize,
            counters: Arc<Counters>,
        },
        Passthrough {
            #[pin]
            body: B,
        },
        Replaying {
            chunks: VecDeque<Bytes>,
            trailers: Option<HeaderMap>,
            remaining: u64,
        },
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => body.poll_frame(cx),
            KindProj::Replaying {
                chunks,
                trailers,
                remaining,
            } => {
                if let Some(c) = chunks.pop_front() {
                    *remaining -= c.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(c))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            KindProj::Recording {
                mut body,
                recording,
                max,
                counters,
            } => {
                let frame = ready!(body.as_mut().poll_frame(cx));
                let mut rec = lock(recording);
                if rec.state != RecState::Sending {
                    return Poll::Ready(frame);
                }
                match &frame {
                    None => rec.state = RecState::Complete,
                    Some(Err(_)) => rec.state = RecState::Failed,
                    Some(Ok(f)) => {
                        if let Some(data) = f.data_ref() {
                            rec.len = rec.len.saturating_add(data.len());
                            if rec.len > *max {
                                rec.state = RecState::TooLarge;
                                rec.chunks = Vec::new();
                                rec.len = 0;
                                counters.too_large.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(
                                    max_bytes = *max,
                                    "request body outgrew the replay buffer; it will not be retried"
                                );
                                return Poll::Ready(frame);
                            }
                            if !data.is_empty() {
                                rec.chunks.push(data.clone());
                            }
                        } else if let Some(t) = f.trailers_ref() {
                            rec.trailers = Some(t.clone());
                        }
                        // Senders stop polling once the body says it has ended.
                        if body.is_end_stream() {
                            rec.state = RecState::Complete;
                        }
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Recording { body, .. } | Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Replaying {
                chunks, trailers, ..
            } => chunks.is_empty() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Recording { body, .. } | Kind::Passthrough { body } => body.size_hint(),
            Kind::Replaying { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Recording { .. } => "recording",
            Kind::Passthrough { .. } => "passthrough",
            Kind::Replaying { .. } => "replaying",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::convert::Infallible;

    type Chunks = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
    >;

    fn streamed(chunks: &[&'static str], trailers: bool) -> Chunks {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        if trailers {
            let mut t = HeaderMap::new();
            t.insert("x-checksum", HeaderValue::from_static("abc"));
            frames.push(Ok(Frame::trailers(t)));
        }
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn records_and_replays_streams_with_trailers() {
        let r = ReplayHttp::new();
        let req = Request::post("/x")
            .body(streamed(&["ab", "", "cd"], true))
            .unwrap();
        let (first, mut saved) = r.save(req).ok().unwrap();
        let sent = first.into_body().collect().await.unwrap();
        assert_eq!(sent.trailers().unwrap()["x-checksum"], "abc");
        assert_eq!(sent.to_bytes(), "abcd");
        for attempt in 2..=3 {
            let again = r.replay(&mut saved).unwrap();
            assert_eq!(again.method(), "POST");
            assert_eq!(again.body().size_hint().exact(), Some(4));
            let got = again.into_body().collect().await.unwrap();
            assert_eq!(got.trailers().unwrap()["x-checksum"], "abc");
            assert_eq!(got.to_bytes(), "abcd");
            assert_eq!(saved.body().attempts(), attempt);
        }
        assert_eq!(r.stats().replayed, 2);
    }

    #[tokio::test]
    async fn too_large_bodies_are_sent_once() {
        let r = ReplayHttp::new().max_buffer(3);
        // Known from the size hint.
        let req = Request::post("/")
            .body(Full::new(Bytes::from("abcd")))
            .unwrap();
        let sent = r.save(req).err().unwrap();
        assert_eq!(sent.into_body().collect().await.unwrap().to_bytes(), "abcd");
        assert_eq!(r.stats().too_large, 1);
        // Discovered while streaming: sent in full, recording dropped, not replayed.
        let req = Request::post("/")
            .body(streamed(&["ab", "cd"], false))
            .unwrap();
        let (first, mut saved) = r.save(req).ok().unwrap();
        assert_eq!(
            first.into_body().collect().await.unwrap().to_bytes(),
            "abcd"
        );
        assert_eq!(saved.body().buffered_bytes(), 0);
        assert!(r.replay(&mut saved).is_none());
        assert_eq!(r.stats().too_large, 2);
        assert_eq!(r.stats().replayed, 0);
    }

    #[tokio::test]
    async fn unsent_body_is_not_replayed() {
        let r = ReplayHttp::new();
        let req = Request::post("/")
            .body(streamed(&["ab", "cd"], false))
            .unwrap();
        let (first, mut saved) = r.save(req).ok().unwrap();
        let mut body = first.into_body();
        let _ = body.frame().await; // only the first chunk went out
        assert!(r.replay(&mut saved).is_none());
        assert_eq!(r.stats().incomplete, 1);
    }

    #[tokio::test]
    async fn empty_bodies_replay_without_being_polled() {
        let r = ReplayHttp::new().previous_attempts_header(HeaderName::from_static("prev"));
        let req = Request::get("/")
            .header("prev", "7")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let (first, mut saved) = r.save(req).ok().unwrap();
        assert!(first.headers().get("prev").is_none());
        let again = r.replay(&mut saved).unwrap();
        assert_eq!(again.headers()["prev"], "1");
        assert!(again.body().is_end_stream());
        assert_eq!(r.replay(&mut saved).unwrap().headers()["prev"], "2");
    }
}
