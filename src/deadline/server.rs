//! The server half of a propagated deadline: a layer that answers at once, without calling
//! the inner service, a request whose caller's deadline has passed by the time the request
//! reaches the front of the queue.

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::DeadlineHeader;

/// The pushback sent with a dropped request unless configured otherwise.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What is left of a request's caller's deadline, put into the request's extensions by
/// [`DropExpired`] when the request carries one, so a handler can size its own work (or the
/// deadline of the calls it makes downstream) to it.
///
/// Measured from the moment the request reached the layer, on tokio's clock (so paused time in
/// tests moves it).
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// use tower_retrier::deadline::{Deadline, DropExpiredLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handler = service_fn(|req: http::Request<String>| async move {
///     let left = Deadline::of(&req).map(|d| d.remaining());
///     Ok::<_, std::convert::Infallible>(http::Response::new(format!("{left:?}")))
/// });
/// let svc = DropExpiredLayer::grpc().layer(handler);
/// let req = http::Request::builder().header("grpc-timeout", "5S").body(String::new()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_ne!(res.body(), "None");
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// The deadline of `req`, if [`DropExpired`] found one on it.
    ///
    /// See [`Deadline`] for an example.
    pub fn of<B>(req: &Request<B>) -> Option<Deadline> {
        req.extensions().get::<Deadline>().copied()
    }

    /// The instant the caller gives up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let d = tower_retrier::deadline::Deadline::of(&http::Request::new(()));
    /// if let Some(d) = d {
    ///     let _ = tokio::time::timeout_at(d.at(), async { /* the work */ }).await;
    /// }
    /// # }
    /// ```
    pub fn at(&self) -> Instant {
        self.at
    }

    /// What is left of it now (zero once it has passed).
    ///
    /// See [`Deadline`] for an example.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Counts kept by a [`DropExpiredLayer`] and every service it built (shared by clones).
///
/// ```
/// let s = tower_retrier::deadline::DropExpiredLayer::grpc().stats();
/// assert_eq!((s.expired_on_arrival, s.expired_in_queue), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropExpiredStats {
    /// Requests that arrived with no time left (or no more than
    /// [`min_time_left`](DropExpiredLayer::min_time_left)).
    pub expired_on_arrival: u64,
    /// Requests whose deadline passed while they waited for the inner service.
    pub expired_in_queue: u64,
}

#[derive(Debug, Default)]
struct Counters {
    on_arrival: AtomicU64,
    in_queue: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    header: DeadlineHeader,
    retry_after: Duration,
    min_time_left: Duration,
    counters: Arc<Counters>,
}

/// Drops work nobody waits for: answers a request at once, without calling the inner service,
/// when its caller's deadline has passed by the time the inner service is ready to take it.
///
/// The deadline is read from the request (`grpc-timeout`, or a header of whole milliseconds
/// such as Envoy's `x-envoy-expected-rq-timeout-ms`) and measured from the moment the request
/// reaches this layer. A request without one, or with a malformed one, is served as usual.
///
/// **Where it goes: outside the queue.** The layer is always ready; its response future waits
/// for a clone of the inner service to become ready and only then looks at the clock. Put it
/// *outside* the concurrency limit, so that the wait in the limit's FIFO queue counts:
/// `DropExpired → ConcurrencyLimit → handler`. It sees any wait that happens in the inner
/// service's `poll_ready` (a concurrency limit's permit, a rate limit, a `Buffer` whose channel
/// is full), not a queue hidden behind it (the requests a `Buffer` has already accepted). A
/// request that reaches the front with its time gone is answered without the handler running:
///
/// - HTTP: `503 Service Unavailable` with `Retry-After` (1 s by default,
///   [`retry_after`](Self::retry_after)). This crate's HTTP classifier waits that long before a
///   retry, and admission control counts it as an attempt the server could not serve.
/// - gRPC (reading `grpc-timeout`, or a request whose `content-type` is
///   `application/grpc…`): a trailers-only response with `grpc-status: 4`
///   (`DEADLINE_EXCEEDED`) and `grpc-retry-pushback-ms` (1000 by default). The gRPC
///   classifier does not retry `DEADLINE_EXCEEDED` unless told to, and then waits for the
///   pushback.
///
/// The request's deadline is put into its extensions as a [`Deadline`]; the drops are counted
/// in [`stats`](Self::stats) (shared by the layer's clones and every service it built) and
/// logged at `debug` level (`tracing`). A header the layer cannot read is no deadline, never
/// an error.
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_retrier::deadline::{DeadlineHeader, DropExpiredLayer};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let drop_expired = DropExpiredLayer::new(DeadlineHeader::envoy());
/// let svc = ServiceBuilder::new()
///     .layer(drop_expired.clone())
///     .concurrency_limit(1)
///     .service(service_fn(|_: http::Request<String>| async {
///         tokio::time::sleep(Duration::from_millis(100)).await;
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("done")))
///     }));
/// let req = |ms: &str| {
///     http::Request::builder()
///         .header("x-envoy-expected-rq-timeout-ms", ms)
///         .body(String::new())
///         .unwrap()
/// };
/// // The first takes the only slot for 100 ms; the second's caller gives up after 50 ms.
/// let (first, second) = tokio::join!(svc.clone().oneshot(req("500")), svc.clone().oneshot(req("50")));
/// assert_eq!(first.unwrap().body(), "done");
/// let second = second.unwrap();
/// assert_eq!(second.status(), 503);
/// assert_eq!(second.headers()["retry-after"], "1");
/// assert_eq!(drop_expired.stats().expired_in_queue, 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DropExpiredLayer {
    header: DeadlineHeader,
    retry_after: Duration,
    min_time_left: Duration,
    counters: Arc<Counters>,
}

impl DropExpiredLayer {
    /// Reads the caller's deadline from `header` (the one its clients send it in, as this
    /// crate's clients do with
    /// [`ReplayHttp::propagate_deadline`](crate::replay::ReplayHttp::propagate_deadline)), and
    /// answers a dropped request with `503` and `Retry-After`; a gRPC request (read from
    /// `grpc-timeout`, or by its `content-type`) with `DEADLINE_EXCEEDED`.
    ///
    /// ```
    /// use tower_retrier::deadline::{DeadlineHeader, DropExpiredLayer};
    ///
    /// // Envoy's x-envoy-expected-rq-timeout-ms, in whole milliseconds:
    /// let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
    /// # let _ = layer;
    /// ```
    pub fn new(header: DeadlineHeader) -> Self {
        DropExpiredLayer {
            header,
            retry_after: DEFAULT_RETRY_AFTER,
            min_time_left: Duration::ZERO,
            counters: Arc::default(),
        }
    }

    /// Reads gRPC's `grpc-timeout` and answers a dropped call with `DEADLINE_EXCEEDED`: for a
    /// tonic server (or any gRPC server built on tower). The same as
    /// `DropExpiredLayer::new(DeadlineHeader::GrpcTimeout)`.
    ///
    /// ```
    /// let layer = tower_retrier::deadline::DropExpiredLayer::grpc();
    /// # let _ = layer;
    /// ```
    pub fn grpc() -> Self {
        Self::new(DeadlineHeader::GrpcTimeout)
    }

    /// How long a client should wait before it sends a dropped request again (default 1 s):
    /// `Retry-After` in whole seconds, rounded up, or `grpc-retry-pushback-ms`.
    ///
    /// A queue in which requests outlive their callers is a server that cannot keep up: a
    /// retry sent at once would join the same queue.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = tower_retrier::deadline::DropExpiredLayer::grpc().retry_after(Duration::from_secs(2));
    /// # let _ = layer;
    /// ```
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Also drops a request that has no more than `left` of its deadline when it reaches the
    /// front (default zero: only requests whose deadline has passed). Set it to the least time
    /// the work takes, so that work which cannot finish in time is not started.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = tower_retrier::deadline::DropExpiredLayer::grpc().min_time_left(Duration::from_millis(5));
    /// # let _ = layer;
    /// ```
    pub fn min_time_left(mut self, left: Duration) -> Self {
        self.min_time_left = left;
        self
    }

    /// What this layer and the services it built have dropped so far.
    ///
    /// See [`DropExpiredLayer`] for an example.
    pub fn stats(&self) -> DropExpiredStats {
        stats(&self.counters)
    }
}

fn stats(c: &Counters) -> DropExpiredStats {
    DropExpiredStats {
        expired_on_arrival: c.on_arrival.load(Ordering::Relaxed),
        expired_in_queue: c.in_queue.load(Ordering::Relaxed),
    }
}

impl<S> Layer<S> for DropExpiredLayer {
    type Service = DropExpired<S>;

    fn layer(&self, inner: S) -> DropExpired<S> {
        DropExpired {
            inner,
            shared: Arc::new(Shared {
                header: self.header.clone(),
                retry_after: self.retry_after,
                min_time_left: self.min_time_left,
                counters: self.counters.clone(),
            }),
        }
    }
}

/// The service of [`DropExpiredLayer`]: always ready; each call waits for a clone of the inner
/// service to be ready, then calls it, or answers at once if the caller's deadline has passed.
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
/// use tower_retrier::deadline::DropExpiredLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = DropExpiredLayer::grpc().layer(service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("served")))
/// }));
/// // Already expired on arrival: answered at once, DEADLINE_EXCEEDED.
/// let req = http::Request::builder().header("grpc-timeout", "0m").body(()).unwrap();
/// let res = svc.clone().oneshot(req).await.unwrap();
/// assert_eq!(res.headers()["grpc-status"], "4");
/// assert_eq!(res.body(), "");
/// assert_eq!(svc.stats().expired_on_arrival, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct DropExpired<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> DropExpired<S> {
    /// What the layer that built this service (and every service it built) has dropped.
    ///
    /// See [`DropExpired`] for an example.
    pub fn stats(&self) -> DropExpiredStats {
        stats(&self.shared.counters)
    }

    /// The inner service.
    ///
    /// ```
    /// use tower::{Layer, service_fn};
    /// let svc = tower_retrier::deadline::DropExpiredLayer::grpc()
    ///     .layer(service_fn(|r: http::Request<()>| async move { Ok::<_, std::io::Error>(http::Response::new(())) }));
    /// let _inner = svc.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// See [`get_ref`](Self::get_ref) for an example.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    ///
    /// See [`get_ref`](Self::get_ref) for an example.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for DropExpired<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropExpired")
            .field("inner", &self.inner)
            .field("header", &self.shared.header)
            .field("retry_after", &self.shared.retry_after)
            .field("min_time_left", &self.shared.min_time_left)
            .finish()
    }
}

impl Shared {
    /// The deadline `req` carries, from `now`; `None` when it carries none, a malformed one or
    /// one too far away for the clock.
    fn deadline<B>(&self, req: &Request<B>, now: Instant) -> Option<Instant> {
        now.checked_add(self.header.read(req.headers())?)
    }

    fn is_grpc<B>(&self, req: &Request<B>) -> bool {
        self.header == DeadlineHeader::GrpcTimeout
            || req
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
    }

    /// Whether a request due at `deadline` may still be served at `now`.
    fn expired(&self, deadline: Instant, now: Instant) -> bool {
        deadline.saturating_duration_since(now) <= self.min_time_left
    }

    /// The answer to a dropped request, counted and logged.
    fn drop_answer<B: Default>(&self, grpc: bool, arrived: Instant, in_queue: bool) -> Response<B> {
        let counter = if in_queue {
            &self.counters.in_queue
        } else {
            &self.counters.on_arrival
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            waited_ms = arrived.elapsed().as_millis() as u64,
            in_queue,
            grpc,
            "dropped a request whose caller's deadline had passed"
        );
        let mut res = Response::new(B::default());
        let headers = res.headers_mut();
        if grpc {
            // A trailers-only response: the status in the head, no body.
            let ms = u64::try_from(self.retry_after.as_millis()).unwrap_or(u64::MAX);
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert("grpc-status", HeaderValue::from_static("4"));
            headers.insert(
                "grpc-message",
                HeaderValue::from_static("deadline exceeded before the server started the call"),
            );
            headers.insert("grpc-retry-pushback-ms", HeaderValue::from(ms));
        } else {
            let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        res
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for DropExpired<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = DropExpiredFuture<S, Request<ReqB>>;

    /// Always ready: the wait for the inner service happens in the response future, where the
    /// deadline can be checked once it ends.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let arrived = Instant::now();
        let check = match self.shared.deadline(&req, arrived) {
            None => None,
            Some(at) => {
                let grpc = self.shared.is_grpc(&req);
                if self.shared.expired(at, arrived) {
                    let res = self.shared.drop_answer(grpc, arrived, false);
                    return DropExpiredFuture {
                        state: State::Answered { res: Some(res) },
                    };
                }
                req.extensions_mut().insert(Deadline { at });
                Some(Check {
                    at,
                    arrived,
                    grpc,
                    shared: self.shared.clone(),
                })
            }
        };
        DropExpiredFuture {
            state: State::Queued {
                svc: self.inner.clone(),
                req: Some(req),
                check,
            },
        }
    }
}

/// What a queued request's future checks once the inner service is ready.
struct Check {
    at: Instant,
    arrived: Instant,
    grpc: bool,
    shared: Arc<Shared>,
}

pin_project! {
    /// The response future of [`DropExpired`]: waits for the inner service to be ready, then
    /// calls it or answers at once.
    ///
    /// ```
    /// use tower::{Layer, Service, service_fn};
    /// use tower_retrier::deadline::{DropExpiredFuture, DropExpiredLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut svc = DropExpiredLayer::grpc().layer(service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// }));
    /// let future: DropExpiredFuture<_, _> = svc.call(http::Request::new(()));
    /// assert!(future.await.is_ok());
    /// # }
    /// ```
    pub struct DropExpiredFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        // Waiting for a clone of the inner service to be ready.
        Queued { svc: S, req: Option<Req>, check: Option<Check> },
        // The inner service's call.
        Called { #[pin] future: S::Future },
        // Answered without calling the inner service.
        Answered { res: Option<S::Response> },
    }
}

impl<S, Req> fmt::Debug for DropExpiredFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Queued { .. } => "queued",
            State::Called { .. } => "called",
            State::Answered { .. } => "answered",
        };
        f.debug_struct("DropExpiredFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqB, ResB> Future for DropExpiredFuture<S, Request<ReqB>>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Default,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Queued { svc, req, check } => {
                    ready!(svc.poll_ready(cx))?;
                    if let Some(c) = check.take()
                        && c.shared.expired(c.at, Instant::now())
                    {
                        // Dropping the ready clone hands its slot to the next in line.
                        let res = c.shared.drop_answer(c.grpc, c.arrived, true);
                        state.set(State::Answered { res: Some(res) });
                        continue;
                    }
                    let req = req.take().expect("polled after completion");
                    let future = svc.call(req);
                    state.set(State::Called { future });
                }
                StateProj::Called { future } => return future.poll(cx),
                StateProj::Answered { res } => {
                    return Poll::Ready(Ok(res.take().expect("polled after completion")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    const MILLIS: http::HeaderName =
        http::HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

    /// A handler taking `work`, counting its calls; one at a time behind a FIFO limit.
    fn one_worker(
        layer: DropExpiredLayer,
        work: Duration,
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
    {
        ServiceBuilder::new()
            .layer(layer)
            .concurrency_limit(1)
            .service(service_fn(move |_: Request<()>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(work).await;
                    Ok::<_, Infallible>(Response::new(String::from("served")))
                }
            }))
    }

    fn with(name: &str, value: &str) -> Request<()> {
        Request::builder().header(name, value).body(()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waited_past_its_deadline_is_dropped_at_the_front() {
        let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = one_worker(layer.clone(), Duration::from_millis(100), calls.clone());
        let start = Instant::now();
        let busy = svc.clone().oneshot(with(MILLIS.as_str(), "1000"));
        // Queued behind 100 ms of work: 99 ms left when it arrives, none at the front.
        let late = svc.clone().oneshot(with(MILLIS.as_str(), "99"));
        // Queued behind the same, with time to spare.
        let patient = svc.clone().oneshot(with(MILLIS.as_str(), "101"));
        let (busy, late, patient) = tokio::join!(busy, late, patient);
        assert_eq!(busy.unwrap().body(), "served");
        let late = late.unwrap();
        assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(late.headers()[RETRY_AFTER], "1");
        assert_eq!(patient.unwrap().body(), "served");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the late one never ran");
        // The patient one started at 100 ms, right after the first: the drop took no time.
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        assert_eq!(
            layer.stats(),
            DropExpiredStats {
                expired_on_arrival: 0,
                expired_in_queue: 1
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exactly_at_the_deadline_is_too_late() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = one_worker(
            DropExpiredLayer::grpc(),
            Duration::from_millis(100),
            calls.clone(),
        );
        let busy = svc.clone().oneshot(with("grpc-timeout", "1S"));
        let due = svc.clone().oneshot(with("grpc-timeout", "100m"));
        let (_, due) = tokio::join!(busy, due);
        let due = due.unwrap();
        assert_eq!(due.status(), StatusCode::OK);
        assert_eq!(due.headers()["grpc-status"], "4");
        assert_eq!(due.headers()["grpc-retry-pushback-ms"], "1000");
        assert_eq!(due.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn min_time_left_drops_work_that_cannot_finish() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = DropExpiredLayer::grpc().min_time_left(Duration::from_millis(50));
        let svc = one_worker(layer.clone(), Duration::from_millis(100), calls.clone());
        // 40 ms left at the front (140 - 100): less than the 50 ms floor.
        let busy = svc.clone().oneshot(with("grpc-timeout", "1S"));
        let short = svc.clone().oneshot(with("grpc-timeout", "140m"));
        let (_, short) = tokio::join!(busy, short);
        assert_eq!(short.unwrap().headers()["grpc-status"], "4");
        // 30 ms on arrival: dropped at once.
        let res = svc
            .clone()
            .oneshot(with("grpc-timeout", "30m"))
            .await
            .unwrap();
        assert_eq!(res.headers()["grpc-status"], "4");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let s = layer.stats();
        assert_eq!((s.expired_on_arrival, s.expired_in_queue), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_on_arrival_is_answered_without_waiting_for_the_queue() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
        let svc = one_worker(layer.clone(), Duration::from_secs(10), calls.clone());
        let busy = tokio::spawn(svc.clone().oneshot(with(MILLIS.as_str(), "60000")));
        tokio::task::yield_now().await;
        let start = Instant::now();
        let res = svc
            .clone()
            .oneshot(with(MILLIS.as_str(), "0"))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A gRPC request behind a milliseconds header gets a gRPC answer.
        let grpc = Request::builder()
            .header(MILLIS, "0")
            .header(CONTENT_TYPE, "application/grpc+proto")
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(grpc).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "4");
        assert_eq!(layer.stats().expired_on_arrival, 2);
        busy.await.unwrap().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_header_or_a_malformed_one_is_served_however_long_it_waits() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = DropExpiredLayer::new(DeadlineHeader::envoy());
        let svc = one_worker(layer.clone(), Duration::from_millis(100), calls.clone());
        let reqs = [
            Request::new(()),
            with(MILLIS.as_str(), "1"),
            with(MILLIS.as_str(), "-5"),
            with(MILLIS.as_str(), "1.5"),
            with(MILLIS.as_str(), "99999999999999999999999"),
            // The other format is not read by a milliseconds layer.
            with("grpc-timeout", "1n"),
        ];
        let answers =
            futures_util::future::join_all(reqs.into_iter().map(|r| svc.clone().oneshot(r))).await;
        let statuses: Vec<_> = answers
            .iter()
            .map(|r| r.as_ref().unwrap().status())
            .collect();
        // Only the valid 1 ms deadline (queued behind 100 ms) is dropped.
        assert_eq!(statuses[1], StatusCode::SERVICE_UNAVAILABLE);
        for (i, s) in statuses.iter().enumerate().filter(|&(i, _)| i != 1) {
            assert_eq!(*s, StatusCode::OK, "request {i}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        // Malformed grpc-timeout values are no deadline either.
        let svc = one_worker(DropExpiredLayer::grpc(), Duration::ZERO, calls.clone());
        for bad in ["", "5", "5x", "-1S", "123456789m", "99999999H"] {
            let res = svc
                .clone()
                .oneshot(with("grpc-timeout", bad))
                .await
                .unwrap();
            assert_eq!(res.body(), "served", "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_handler_sees_what_is_left() {
        let svc = ServiceBuilder::new()
            .layer(DropExpiredLayer::grpc())
            .service(service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(Response::new(Deadline::of(&req).map(|d| d.remaining())))
            }));
        let res = svc
            .clone()
            .oneshot(with("grpc-timeout", "250m"))
            .await
            .unwrap();
        assert_eq!(*res.body(), Some(Duration::from_millis(250)));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(*res.body(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_whole_seconds_rounded_up() {
        let svc = DropExpiredLayer::new(DeadlineHeader::envoy())
            .retry_after(Duration::from_millis(1500))
            .layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let res = svc.oneshot(with(MILLIS.as_str(), "0")).await.unwrap();
        assert_eq!(res.headers()[RETRY_AFTER], "2");
        let svc = DropExpiredLayer::grpc()
            .retry_after(Duration::from_millis(1500))
            .layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let res = svc.oneshot(with("grpc-timeout", "0n")).await.unwrap();
        assert_eq!(res.headers()["grpc-retry-pushback-ms"], "1500");
    }

    #[tokio::test(start_paused = true)]
    async fn a_readiness_error_is_the_inner_services() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
        handle.send_error("not ready");
        let svc = DropExpiredLayer::grpc().layer(svc);
        let err = svc.oneshot(with("grpc-timeout", "1S")).await.unwrap_err();
        assert_eq!(err.to_string(), "not ready");
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn our_answers_are_what_our_classifiers_wait_for() {
        use crate::classify::{Classify, Decision, GrpcClassifier, GrpcCode, HttpClassifier};
        let shared = DropExpiredLayer::grpc().layer(()).shared.clone();
        let now = Instant::now();
        let req = Request::new(());
        // gRPC: not retried by default; retried after the pushback where opted in.
        let grpc: Response<()> = shared.drop_answer(true, now, true);
        let grpc = Ok::<_, std::io::Error>(grpc);
        assert_eq!(GrpcClassifier::new().classify(&req, &grpc), Decision::Fail);
        let opted_in = GrpcClassifier::new().retry_on(GrpcCode::DeadlineExceeded);
        assert!(matches!(
            opted_in.classify(&req, &grpc),
            Decision::Retry { after: Some(d), .. } if d == Duration::from_secs(1)
        ));
        // HTTP: a 503 retried after Retry-After, not at once.
        let http: Response<()> = shared.drop_answer(false, now, true);
        let http = Ok::<_, std::io::Error>(http);
        let get = Request::get("/").body(()).unwrap();
        assert!(matches!(
            HttpClassifier::new().classify(&get, &http),
            Decision::Retry { after: Some(d), .. } if d == Duration::from_secs(1)
        ));
    }
}
