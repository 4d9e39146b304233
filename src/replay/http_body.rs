//! Replaying HTTP requests whose body is not `Clone`: record it while it is sent, replay it.

use super::{AttemptInfo, Replay};
use crate::deadline::DeadlineHeader;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body::{Body, Frame, SizeHint};
use std::fmt;
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
/// An attempt that lets go of its body before the end (a refused connection drops the
/// request unread; a connection that fails midway drops it half-read) hands the unread rest
/// back, and the next attempt sends what was recorded, then carries on reading the original.
///
/// A request is **sent once and not retried** when its body is known to exceed the buffer
/// limit (size hint), when it outgrew the limit while being sent (the recording is dropped at
/// once), when the body itself failed, or when the retry is decided while the previous
/// attempt still holds the body (a server that answered without reading it, on a connection
/// still sending it). The size and "still held" cases are counted in [`ReplayHttp::stats`];
/// all are traced at `debug` level. No attempt ever sends a partial body.
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
pub struct ReplayHttp<W = AsReplayBody> {
    max_bytes: usize,
    header: Option<AttemptHeader>,
    deadline: Option<DeadlineHeader>,
    counters: Arc<Counters>,
    wrap: W,
}

/// How [`ReplayHttp`] hands a body to the inner service: the body type the inner service
/// takes. [`AsReplayBody`] (the default) passes the [`ReplayBody`] itself, which any client
/// generic over its body accepts (hyper-util's `Client` infers it); `AsTonicBody` (feature
/// `tonic`) wraps it in `tonic::body::Body` for a tonic `Channel`.
///
/// ```
/// use tower_retrier::replay::{ReplayBody, WrapBody};
///
/// /// Boxes the body, for a client that takes `UnsyncBoxBody`.
/// #[derive(Clone, Debug)]
/// struct Boxed;
/// impl<B> WrapBody<B> for Boxed
/// where
///     B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
/// {
///     type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, B::Error>;
///     fn wrap(&self, body: ReplayBody<B>) -> Self::Body {
///         http_body_util::BodyExt::boxed_unsync(body)
///     }
/// }
/// let _r = tower_retrier::replay::ReplayHttp::new().wrap_body(Boxed);
/// ```
pub trait WrapBody<B> {
    /// The body type the inner service receives.
    type Body;
    /// Wraps one attempt's body.
    fn wrap(&self, body: ReplayBody<B>) -> Self::Body;
}

/// Hands the [`ReplayBody`] to the inner service as it is (see [`WrapBody`]).
///
/// ```
/// let _r: tower_retrier::replay::ReplayHttp<tower_retrier::replay::AsReplayBody> =
///     tower_retrier::replay::ReplayHttp::new();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AsReplayBody;

impl<B> WrapBody<B> for AsReplayBody {
    type Body = ReplayBody<B>;
    fn wrap(&self, body: ReplayBody<B>) -> ReplayBody<B> {
        body
    }
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
            deadline: None,
            counters: Arc::default(),
            wrap: AsReplayBody,
        }
    }

    /// The gRPC preset: `grpc-previous-rpc-attempts` on retries (gRFC A6), and `grpc-timeout`
    /// on every attempt when the layer knows a deadline or an attempt timeout (see
    /// [`propagate_deadline`](Self::propagate_deadline)).
    ///
    /// ```
    /// let _r = tower_retrier::replay::ReplayHttp::grpc();
    /// ```
    pub fn grpc() -> Self {
        Self::new()
            .previous_attempts_header(HeaderName::from_static("grpc-previous-rpc-attempts"))
            .propagate_deadline(DeadlineHeader::GrpcTimeout)
    }
}

impl<W> ReplayHttp<W> {
    /// Hands bodies to the inner service through `wrap` (see [`WrapBody`]).
    ///
    /// See [`WrapBody`] for an example.
    pub fn wrap_body<W2>(self, wrap: W2) -> ReplayHttp<W2> {
        ReplayHttp {
            max_bytes: self.max_bytes,
            header: self.header,
            deadline: self.deadline,
            counters: self.counters,
            wrap,
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

    /// Every attempt carries what it has left to live in `header`: the smaller of the
    /// layer's [`attempt_timeout`](crate::RetryConfig::attempt_timeout) and what is left of
    /// its [`deadline`](crate::RetryConfig::deadline), shrinking from attempt to attempt, so
    /// the server can drop work whose caller has given up (see [`crate::deadline`]). Nothing
    /// is written when the layer has neither; a shorter limit the request already carries
    /// stands. The gRPC preset sends `grpc-timeout`; for HTTP it is an opt-in, e.g.
    /// [`DeadlineHeader::envoy`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::deadline::DeadlineHeader;
    /// use tower_retrier::replay::{AttemptInfo, Replay, ReplayHttp};
    ///
    /// let replay = ReplayHttp::new().propagate_deadline(DeadlineHeader::envoy());
    /// let req = http::Request::post("/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    /// let (mut first, _saved) = replay.save(req).ok().unwrap();
    /// replay.before_send(&mut first, &AttemptInfo::new(1).with_time_left(Duration::from_millis(300)));
    /// assert_eq!(first.headers()["x-envoy-expected-rq-timeout-ms"], "300");
    /// ```
    pub fn propagate_deadline(mut self, header: DeadlineHeader) -> Self {
        self.deadline = Some(header);
        self
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
    recording: Arc<Mutex<Recording<B>>>,
    attempts: u32,
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

/// The body as read so far, shared by every attempt of one request.
struct Recording<B> {
    /// Data frames read from the original body, in order.
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    len: usize,
    /// `len`, as reported in the replay-bytes gauge.
    held: crate::telemetry::HeldBytes,
    state: RecState,
    /// The unread rest of the original body, handed back by an attempt that stopped before
    /// the end (for example a connection that was refused before anything was sent).
    rest: Option<B>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecState {
    /// More may come from the original body.
    Reading,
    /// The original body ended: the recording is all of it.
    Complete,
    /// The body outgrew the buffer; the recording was dropped.
    TooLarge,
    /// The original body failed; it cannot be sent again.
    Failed,
}

fn lock<B>(m: &Mutex<Recording<B>>) -> MutexGuard<'_, Recording<B>> {
    // No invariant can be half-updated by a panic here; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B, W> Replay<Request<B>> for ReplayHttp<W>
where
    B: Body<Data = Bytes> + Unpin,
    W: WrapBody<B>,
{
    type Request = Request<W::Body>;
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
                kind: Kind::Passthrough(body),
            };
            return Err(Request::from_parts(parts, self.wrap.wrap(body)));
        }
        let state = if body.is_end_stream() {
            RecState::Complete
        } else {
            RecState::Reading
        };
        let recording = Arc::new(Mutex::new(Recording {
            chunks: Vec::new(),
            trailers: None,
            len: 0,
            held: Default::default(),
            state,
            rest: None,
        }));
        let sent = self.body(&recording, Some(body));
        let saved = Recorded {
            recording,
            attempts: 1,
        };
        Ok((
            Request::from_parts(parts.clone(), self.wrap.wrap(sent)),
            Request::from_parts(parts, saved),
        ))
    }

    fn replay(&self, saved: &mut Self::Saved) -> Option<Self::Request> {
        let live = {
            let mut rec = lock(&saved.body().recording);
            match rec.state {
                RecState::Complete => None,
                RecState::Reading => match rec.rest.take() {
                    // The last attempt let go of the body midway: replay what was read,
                    // then carry on reading.
                    Some(rest) => Some(rest),
                    None => {
                        self.counters.incomplete.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            "request body still being sent when the response came; not retried"
                        );
                        return None;
                    }
                },
                RecState::TooLarge => {
                    // Already counted when it overflowed.
                    tracing::debug!(
                        max_bytes = self.max_bytes,
                        "request body outgrew the replay buffer; not retried"
                    );
                    return None;
                }
                RecState::Failed => {
                    tracing::debug!("request body failed while being sent; not retried");
                    return None;
                }
            }
        };
        let attempt = saved.body().attempts.saturating_add(1);
        saved.body_mut().attempts = attempt;
        let mut req = Request::new(self.wrap.wrap(self.body(&saved.body().recording, live)));
        *req.method_mut() = saved.method().clone();
        *req.uri_mut() = saved.uri().clone();
        *req.version_mut() = saved.version();
        *req.headers_mut() = saved.headers().clone();
        *req.extensions_mut() = saved.extensions().clone();
        self.set_header(req.headers_mut(), attempt);
        self.counters.replayed.fetch_add(1, Ordering::Relaxed);
        Some(req)
    }

    fn may_resend(&self, saved: &Self::Saved) -> bool {
        crate::classify::is_idempotent_request(saved.method(), saved.headers())
    }

    /// Only a fully recorded body can be copied while the first attempt is in flight.
    fn is_complete(&self, saved: &Self::Saved) -> bool {
        lock(&saved.body().recording).state == RecState::Complete
    }

    #[inline]
    fn before_send(&self, request: &mut Self::Request, attempt: &AttemptInfo) {
        if let (Some(header), Some(left)) = (&self.deadline, attempt.time_left) {
            header.write(request.headers_mut(), left);
        }
    }
}

impl<W> ReplayHttp<W> {
    fn body<B>(&self, recording: &Arc<Mutex<Recording<B>>>, live: Option<B>) -> ReplayBody<B> {
        ReplayBody {
            kind: Kind::Shared(Shared {
                recording: recording.clone(),
                pos: 0,
                live,
                trailers_sent: false,
                max: self.max_bytes,
                counters: self.counters.clone(),
            }),
        }
    }
}

/// The body of a request sent through [`ReplayHttp`]: the recorded frames of the body, then
/// (while it lasts) the original body, recorded as it is read; or, when the body was known to
/// be too large to keep, the original body as is.
///
/// It needs `B: Unpin` (hyper, axum and tonic bodies are; wrap others in `Box::pin`). Services
/// that need a specific body type get it through [`WrapBody`] (tonic's `Channel`:
/// `AsTonicBody`, feature `tonic`).
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
    kind: Kind<B>,
}

enum Kind<B> {
    Passthrough(B),
    Shared(Shared<B>),
}

/// One attempt's view of the shared recording.
struct Shared<B> {
    recording: Arc<Mutex<Recording<B>>>,
    /// Recorded chunks this attempt has sent.
    pos: usize,
    /// The original body, while this attempt is the one reading it.
    live: Option<B>,
    trailers_sent: bool,
    max: usize,
    counters: Arc<Counters>,
}

impl<B: Body<Data = Bytes> + Unpin> Shared<B> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        {
            let rec = lock(&self.recording);
            if let Some(c) = rec.chunks.get(self.pos) {
                self.pos += 1;
                return Poll::Ready(Some(Ok(Frame::data(c.clone()))));
            }
            if self.live.is_none() {
                // Replaying a complete recording: the trailers, then the end.
                if std::mem::replace(&mut self.trailers_sent, true) {
                    return Poll::Ready(None);
                }
                return Poll::Ready(rec.trailers.clone().map(|t| Ok(Frame::trailers(t))));
            }
        }
        let live = self.live.as_mut().expect("checked above");
        let frame = ready!(Pin::new(&mut *live).poll_frame(cx));
        let ended = live.is_end_stream();
        let mut rec = lock(&self.recording);
        match &frame {
            None => {
                self.live = None;
                if rec.state == RecState::Reading {
                    rec.state = RecState::Complete;
                }
                // Trailers read by an earlier attempt that let go just before the end.
                if !std::mem::replace(&mut self.trailers_sent, true)
                    && let Some(t) = rec.trailers.clone()
                {
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
            }
            Some(Err(_)) => {
                if rec.state == RecState::Reading {
                    rec.state = RecState::Failed;
                }
            }
            Some(Ok(f)) if rec.state == RecState::Reading => {
                if let Some(data) = f.data_ref() {
                    rec.len = rec.len.saturating_add(data.len());
                    if rec.len > self.max {
                        rec.state = RecState::TooLarge;
                        rec.chunks = Vec::new();
                        rec.len = 0;
                        rec.held.clear();
                        self.counters.too_large.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            max_bytes = self.max,
                            "request body outgrew the replay buffer; it will not be retried"
                        );
                        return Poll::Ready(frame);
                    }
                    if !data.is_empty() {
                        rec.held.add(data.len());
                        rec.chunks.push(data.clone());
                        self.pos = rec.chunks.len();
                    }
                } else if let Some(t) = f.trailers_ref() {
                    rec.trailers = Some(t.clone());
                    self.trailers_sent = true;
                }
                // Senders stop polling once the body says it has ended.
                if ended {
                    rec.state = RecState::Complete;
                }
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        let rec = lock(&self.recording);
        if self.pos < rec.chunks.len() {
            return false;
        }
        match &self.live {
            Some(live) => live.is_end_stream(),
            None => self.trailers_sent || rec.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let rec = lock(&self.recording);
        let buffered: u64 = rec
            .chunks
            .get(self.pos..)
            .unwrap_or_default()
            .iter()
            .map(|c| c.len() as u64)
            .sum();
        let Some(live) = &self.live else {
            return SizeHint::with_exact(buffered);
        };
        let live = live.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(live.lower().saturating_add(buffered));
        if let Some(upper) = live.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint
    }
}

impl<B> Drop for Shared<B> {
    fn drop(&mut self) {
        // An attempt that stops before the end hands the unread rest back, so the next attempt
        // can replay what was read and carry on.
        if let Some(live) = self.live.take() {
            let mut rec = lock(&self.recording);
            if rec.state == RecState::Reading {
                rec.rest = Some(live);
            }
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Passthrough(body) => Pin::new(body).poll_frame(cx),
            Kind::Shared(shared) => shared.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough(body) => body.is_end_stream(),
            Kind::Shared(shared) => shared.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough(body) => body.size_hint(),
            Kind::Shared(shared) => shared.size_hint(),
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Passthrough(_) => "passthrough",
            Kind::Shared(s) if s.live.is_some() => "reading",
            Kind::Shared(_) => "replaying",
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
    async fn an_attempt_that_lets_go_midway_hands_the_rest_to_the_next() {
        let r = ReplayHttp::new();
        let req = Request::post("/")
            .body(streamed(&["ab", "cd", "ef"], true))
            .unwrap();
        let (first, mut saved) = r.save(req).ok().unwrap();
        let mut body = first.into_body();
        let _ = body.frame().await; // "ab" sent, then the connection failed
        drop(body);
        let second = r.replay(&mut saved).unwrap();
        assert_eq!(second.body().size_hint().lower(), 2);
        let mut body = second.into_body();
        let _ = body.frame().await; // "ab" again
        let _ = body.frame().await; // "cd", read from the original
        drop(body);
        let third = r.replay(&mut saved).unwrap();
        let got = third.into_body().collect().await.unwrap();
        assert_eq!(got.trailers().unwrap()["x-checksum"], "abc");
        assert_eq!(got.to_bytes(), "abcdef");
        // Complete now: a fourth attempt replays from memory alone.
        let fourth = r.replay(&mut saved).unwrap();
        assert_eq!(fourth.body().size_hint().exact(), Some(6));
        assert_eq!(
            fourth.into_body().collect().await.unwrap().to_bytes(),
            "abcdef"
        );
        assert_eq!(r.stats().replayed, 3);
    }

    #[tokio::test]
    async fn trailers_read_by_an_attempt_that_let_go_are_replayed() {
        // A stream whose end is only known by polling past its trailers.
        let r = ReplayHttp::new();
        let req = Request::post("/").body(streamed(&["ab"], true)).unwrap();
        let (first, mut saved) = r.save(req).ok().unwrap();
        let mut body = first.into_body();
        assert!(body.frame().await.unwrap().unwrap().is_data());
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        drop(body); // let go before seeing the end
        let got = r
            .replay(&mut saved)
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        assert_eq!(got.trailers().unwrap()["x-checksum"], "abc");
        assert_eq!(got.to_bytes(), "ab");
    }

    #[tokio::test]
    async fn a_body_never_polled_is_replayed_whole() {
        // A refused connection drops the request without reading its body.
        let r = ReplayHttp::new();
        let req = Request::post("/")
            .body(streamed(&["ab", "cd"], false))
            .unwrap();
        let (first, mut saved) = r.save(req).ok().unwrap();
        drop(first);
        let again = r.replay(&mut saved).unwrap();
        assert_eq!(
            again.into_body().collect().await.unwrap().to_bytes(),
            "abcd"
        );
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
