//! Surfacing a unary gRPC call's trailer status in the response head, for the classifier.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower_layer::Layer;
use tower_service::Service;

/// The default read-ahead limit: 4 MiB, tonic's default maximum message size.
pub const DEFAULT_MAX_TRAILER_READ: usize = 4 * 1024 * 1024;

/// Copied from the trailers into the head when the trailer status is not OK.
const STATUS_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-retry-pushback-ms",
];

/// Reads **unary** gRPC responses through to their trailers, so a `grpc-status` sent in the
/// trailers (after a `200` head without one) reaches [`GrpcClassifier`](super::GrpcClassifier).
///
/// Servers report most errors in a *trailers-only* response (status in the head), which the
/// classifier reads without help. Some report them in trailers after the head, for example a
/// proxy, or a server that fails after starting its answer. Place this layer between the retry
/// layer and the channel: for a response whose head carries no `grpc-status`, it reads the
/// body (up to a limit, 4 MiB by default) and, if the trailers carry a non-OK status, copies
/// `grpc-status`, `grpc-message`, `grpc-status-details-bin` and `grpc-retry-pushback-ms` into
/// the head. The body, trailers included, is handed on unchanged, so the client sees the same
/// result it would have seen (tonic reads a status in the head as a trailers-only error).
///
/// **Trade-off**: the response is held until it is complete. For unary calls that costs
/// nothing (the client waits for the trailers anyway); for server-streaming calls it would
/// break streaming, so use this layer only on channels (or routes) carrying unary calls. A
/// response larger than the limit is handed on as soon as the limit is reached, unread rest
/// included, and its trailer status is not surfaced.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_retrier::classify::{GrpcClassifier, GrpcTrailersLayer};
/// use tower_retrier::{RetryConfig, RetryLayer};
///
/// # let channel = tower::service_fn(|_: http::Request<String>| async {
/// #     Ok::<_, std::io::Error>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// let svc = ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryConfig::default()).with_classifier(GrpcClassifier::new()))
///     .layer(GrpcTrailersLayer::new())
///     .service(channel);
/// # let _ = svc;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GrpcTrailersLayer {
    max_bytes: usize,
}

impl GrpcTrailersLayer {
    /// Reads up to [`DEFAULT_MAX_TRAILER_READ`] bytes of each response.
    ///
    /// ```
    /// let _l = tower_retrier::classify::GrpcTrailersLayer::new();
    /// ```
    pub fn new() -> Self {
        GrpcTrailersLayer {
            max_bytes: DEFAULT_MAX_TRAILER_READ,
        }
    }

    /// Reads up to `bytes` of each response before giving up on its trailers.
    ///
    /// ```
    /// let _l = tower_retrier::classify::GrpcTrailersLayer::new().max_bytes(64 * 1024);
    /// ```
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

impl Default for GrpcTrailersLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for GrpcTrailersLayer {
    type Service = GrpcTrailers<S>;

    fn layer(&self, inner: S) -> GrpcTrailers<S> {
        GrpcTrailers {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

/// The service built by [`GrpcTrailersLayer`].
///
/// ```
/// use tower::Layer;
/// let svc = tower_retrier::classify::GrpcTrailersLayer::new().layer(());
/// assert_eq!(svc.get_ref(), &());
/// ```
#[derive(Clone, Debug)]
pub struct GrpcTrailers<S> {
    inner: S,
    max_bytes: usize,
}

impl<S> GrpcTrailers<S> {
    /// The inner service.
    ///
    /// See [`GrpcTrailers`] for an example.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    ///
    /// ```
    /// use tower::Layer;
    /// assert_eq!(tower_retrier::classify::GrpcTrailersLayer::new().layer(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, B> Service<Req> for GrpcTrailers<S>
where
    S: Service<Req, Response = Response<B>>,
    B: Body<Data = Bytes> + Unpin,
{
    type Response = Response<TrailersBody<B>>;
    type Error = S::Error;
    type Future = TrailersFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        TrailersFuture {
            state: FutState::Calling {
                future: self.inner.call(req),
            },
            max_bytes: self.max_bytes,
        }
    }
}

pin_project! {
    /// The future of [`GrpcTrailers`]: the call, then (when needed) reading to the trailers.
    pub struct TrailersFuture<F, B> {
        #[pin]
        state: FutState<F, B>,
        max_bytes: usize,
    }
}

pin_project! {
    #[project = FutStateProj]
    enum FutState<F, B> {
        Calling { #[pin] future: F },
        Reading { head: Option<http::response::Parts>, body: Option<B>, chunks: VecDeque<Bytes>, len: usize, trailers: Option<HeaderMap> },
    }
}

impl<F, B, E> Future for TrailersFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes> + Unpin,
{
    type Output = Result<Response<TrailersBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                FutStateProj::Calling { future } => {
                    let res = ready!(future.poll(cx))?;
                    if res.status() != http::StatusCode::OK
                        || res.headers().contains_key("grpc-status")
                    {
                        return Poll::Ready(Ok(res.map(TrailersBody::passthrough)));
                    }
                    let (head, body) = res.into_parts();
                    this.state.set(FutState::Reading {
                        head: Some(head),
                        body: Some(body),
                        chunks: VecDeque::new(),
                        len: 0,
                        trailers: None,
                    });
                }
                FutStateProj::Reading {
                    head,
                    body,
                    chunks,
                    len,
                    trailers,
                } => {
                    let Some(b) = body.as_mut() else {
                        // Polled again after completion.
                        return Poll::Pending;
                    };
                    if *len > *this.max_bytes {
                        let rest = body.take();
                        return finish(head, chunks, rest, None, None);
                    }
                    match ready!(Pin::new(b).poll_frame(cx)) {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => {
                                *len += data.len();
                                chunks.push_back(data);
                            }
                            Err(frame) => {
                                if let Ok(t) = frame.into_trailers() {
                                    *trailers = Some(t);
                                }
                            }
                        },
                        Some(Err(e)) => {
                            body.take();
                            return finish(head, chunks, None, Some(e), None);
                        }
                        None => {
                            body.take();
                            let t = trailers.take();
                            if let (Some(h), Some(t)) = (head.as_mut(), t.as_ref())
                                && t.get("grpc-status").is_some_and(|s| s.as_bytes() != b"0")
                            {
                                for name in STATUS_HEADERS {
                                    if let Some(v) = t.get(name) {
                                        h.headers.insert(HeaderName::from_static(name), v.clone());
                                    }
                                }
                            }
                            return finish(head, chunks, None, None, t);
                        }
                    }
                }
            }
        }
    }
}

/// Hands on the response with what was read ahead.
fn finish<B: Body, E>(
    head: &mut Option<http::response::Parts>,
    chunks: &mut VecDeque<Bytes>,
    rest: Option<B>,
    error: Option<B::Error>,
    trailers: Option<HeaderMap>,
) -> Poll<Result<Response<TrailersBody<B>>, E>> {
    let head = head.take().expect("the head is kept until the end");
    let body = TrailersBody {
        chunks: std::mem::take(chunks),
        rest,
        error,
        trailers,
    };
    Poll::Ready(Ok(Response::from_parts(head, body)))
}

impl<F, B> fmt::Debug for TrailersFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailersFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// The response body of [`GrpcTrailers`]: frames read ahead, then the rest of the
    /// original body (if reading stopped at the limit), then the trailers.
    ///
    /// ```
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let svc = tower_retrier::classify::GrpcTrailersLayer::new().layer(tower::service_fn(|_: ()| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(Full::new(bytes::Bytes::from("msg"))))
    /// }));
    /// let res = svc.oneshot(()).await.unwrap();
    /// assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "msg");
    /// # }
    /// ```
    pub struct TrailersBody<B: Body> {
        chunks: VecDeque<Bytes>,
        rest: Option<B>,
        error: Option<B::Error>,
        trailers: Option<HeaderMap>,
    }
}

impl<B: Body> TrailersBody<B> {
    fn passthrough(body: B) -> Self {
        TrailersBody {
            chunks: VecDeque::new(),
            rest: Some(body),
            error: None,
            trailers: None,
        }
    }
}

impl<B> Body for TrailersBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(c) = this.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if let Some(rest) = this.rest.as_mut() {
            match ready!(Pin::new(rest).poll_frame(cx)) {
                Some(frame) => return Poll::Ready(Some(frame)),
                None => *this.rest = None,
            }
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
            && self.error.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self.chunks.iter().map(|c| c.len() as u64).sum();
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
        // Lower first, on a hint without an upper bound, so neither setter can panic.
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(buffered));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint
    }
}

impl<B: Body> fmt::Debug for TrailersBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailersBody")
            .field("buffered_chunks", &self.chunks.len())
            .field("has_rest", &self.rest.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Classify, Decision, GrpcClassifier, RetryReason};
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use tower::ServiceExt;

    type Frames = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
    >;

    fn response(data: &[&'static str], status: Option<&'static str>) -> Response<Frames> {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = data
            .iter()
            .map(|d| Ok(Frame::data(Bytes::from_static(d.as_bytes()))))
            .collect();
        if let Some(s) = status {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", s.parse().unwrap());
            t.insert("grpc-message", "try later".parse().unwrap());
            t.insert("grpc-retry-pushback-ms", "20".parse().unwrap());
            frames.push(Ok(Frame::trailers(t)));
        }
        Response::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    async fn through(
        layer: GrpcTrailersLayer,
        res: Response<Frames>,
    ) -> Response<TrailersBody<Frames>> {
        let res = std::sync::Mutex::new(Some(res));
        let svc = layer.layer(tower::service_fn(move |_: ()| {
            let res = res.lock().unwrap().take().unwrap();
            async move { Ok::<_, Infallible>(res) }
        }));
        svc.oneshot(()).await.unwrap()
    }

    #[tokio::test]
    async fn trailer_status_is_surfaced_and_the_body_kept() {
        let res = through(GrpcTrailersLayer::new(), response(&["a", "b"], Some("14"))).await;
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["grpc-message"], "try later");
        let c = GrpcClassifier::new();
        let decision = c.classify(&(), &Ok::<_, Infallible>(res));
        assert_eq!(
            decision,
            Decision::retry_after(
                RetryReason::ServerError,
                std::time::Duration::from_millis(20)
            )
        );
        let res = through(GrpcTrailersLayer::new(), response(&["a", "b"], Some("14"))).await;
        let body = res.into_body().collect().await.unwrap();
        assert_eq!(body.trailers().unwrap()["grpc-status"], "14");
        assert_eq!(body.to_bytes(), "ab");
    }

    #[tokio::test]
    async fn ok_trailers_and_large_bodies_are_left_alone() {
        let res = through(GrpcTrailersLayer::new(), response(&["a"], Some("0"))).await;
        assert!(res.headers().get("grpc-status").is_none());
        let res = through(
            GrpcTrailersLayer::new().max_bytes(1),
            response(&["ab", "cd"], Some("14")),
        )
        .await;
        assert!(res.headers().get("grpc-status").is_none());
        let body = res.into_body().collect().await.unwrap();
        assert_eq!(body.trailers().unwrap()["grpc-status"], "14");
        assert_eq!(body.to_bytes(), "abcd");
    }
}
