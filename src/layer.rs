//! [`RetryLayer`]: the configuration and pluggable parts, applied to a service.

use crate::RetryConfig;
use crate::admission::{Admission, NoAdmission};
use crate::backoff::{Exponential, SeedSource};
use crate::budget::AdaptiveBudget;
#[cfg(feature = "tonic")]
use crate::classify::GrpcClassifier;
#[cfg(feature = "http")]
use crate::classify::HttpClassifier;
use crate::classify::RetryAnyError;
use crate::lifetime::Stored;
#[cfg(feature = "tonic")]
use crate::replay::AsTonicBody;
use crate::replay::CloneRequest;
#[cfg(feature = "http")]
use crate::replay::ReplayHttp;
use crate::service::RetryService;
use crate::shared::Shared;
use crate::telemetry::{NoHook, Telemetry};
use crate::timeout::{ClassifyTimeouts, TimedLayer};
use std::borrow::Cow;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in [`RetryService`].
///
/// Constructors:
/// - [`RetryLayer::new_for_http`] (feature `http`): HTTP clients and proxies.
/// - [`RetryLayer::new_for_grpc`] (feature `tonic`): gRPC over a tonic `Channel`.
/// - [`RetryLayer::new`]: any other service (a database client, a queue, your own protocol).
///
/// `RetryLayer::new(config)` gives the generic defaults: the exponential backoff of `config`
/// with per-request jitter, [`RetryAnyError`], a local [`AdaptiveBudget`] (a stock of 100
/// retries, refilled by 0.2 per success and 1 per second) and [`CloneRequest`]. Builder
/// methods swap any part.
///
/// Whatever the constructor, a request that says it is not idempotent (an HTTP POST without
/// `Idempotency-Key`, see [`Idempotent`](crate::replay::Idempotent)) is not resent after it
/// may have reached the server, and a server that asks for a delay longer than `max_delay`
/// gets its answer returned rather than an early retry (see [`Pushback`](crate::Pushback)). The layer is cheap to clone; **clones
/// share one budget and one seed source**, so every service built from one layer counts
/// against the same budget.
///
/// The parts are stored the first time the layer (or a clone) wraps a service and kept for
/// the life of the process, so that calls reach them without a reference count; layers
/// built as the process runs use [`release_on_drop`](RetryLayer::release_on_drop).
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_retrier::{RetryConfig, RetryLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryConfig::default()).service_name("users").operation_name("get"))
///     .timeout(Duration::from_millis(300))
///     .service(service_fn(|id: u32| async move { Ok::<_, std::io::Error>(id * 2) }));
/// assert_eq!(svc.oneshot(21).await.unwrap(), 42);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RetryLayer<
    K = Exponential,
    C = RetryAnyError,
    B = AdaptiveBudget,
    R = CloneRequest,
    H = NoHook,
    A = Admission,
> {
    /// Attempts, delays, deadline, attempt timeout.
    config: RetryConfig,
    /// How long to wait before each retry.
    backoff: K,
    /// Which results are retried.
    classifier: C,
    /// How many retries may go out (shared by clones).
    budget: B,
    /// How a request is made available again.
    replay: R,
    /// Called before every retry.
    on_retry: H,
    /// Admission control of first attempts (shared by clones).
    admission: A,
    /// Names, spans, counters.
    telemetry: Telemetry,
    /// Where each request's jitter generator takes its seed (shared by clones).
    seeds: Arc<SeedSource>,
    /// The user opted in to resending requests that say they are not idempotent.
    retry_non_idempotent: bool,
    /// Built by `timed_attempts`: the per-attempt timeout is applied around the inner service.
    timed: bool,
    /// The parts are reference-counted rather than kept for the process.
    release_on_drop: bool,
    /// The parts as first stored by `layer` (kept for the process), shared by clones; every
    /// change starts a new one.
    stored: Stored,
}

/// A layer's six pluggable parts, in the order of its type parameters.
type Parts<K, C, B, R, H, A> = (K, C, B, R, H, A);

impl RetryLayer {
    /// The generic defaults, with `config`'s attempts, backoff and deadline.
    ///
    /// For HTTP use [`RetryLayer::new_for_http`], for tonic [`RetryLayer::new_for_grpc`]:
    /// `new` retries every error and knows nothing of status codes, `Retry-After` or
    /// streaming bodies (it is still safe: an HTTP request that is not idempotent is never
    /// resent after it may have reached the server). Your request type must say whether it
    /// may be sent twice ([`Idempotent`](crate::replay::Idempotent); plain data types already
    /// do).
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(tower_retrier::RetryConfig::default());
    /// assert_eq!(layer.config().max_attempts(), 3);
    /// ```
    pub fn new(config: RetryConfig) -> Self {
        RetryLayer {
            backoff: Exponential::from_config(&config),
            config,
            classifier: RetryAnyError::new(),
            budget: AdaptiveBudget::default(),
            replay: CloneRequest::new(),
            on_retry: NoHook,
            admission: Admission::default(),
            telemetry: Telemetry::default(),
            seeds: Arc::new(SeedSource::random()),
            retry_non_idempotent: false,
            timed: false,
            release_on_drop: false,
            stored: Stored::default(),
        }
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl RetryLayer<Exponential, HttpClassifier, AdaptiveBudget, ReplayHttp> {
    /// The preset for HTTP clients and proxies (hyper-util's `Client`, an axum handler that
    /// forwards requests), like tower-http's `TraceLayer::new_for_http()`.
    ///
    /// - [`HttpClassifier`]: retries 502, 503, 504, 429 and 408 and transport errors; only
    ///   idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or requests carrying an
    ///   `Idempotency-Key` are resent after they may have reached the server; a refused
    ///   connection (nothing sent) is retried for every method. `Retry-After` is waited in
    ///   full; one longer than `max_delay` or past the deadline ends the retries.
    /// - [`ReplayHttp`]: works for any body (`Full<Bytes>`, `String`, hyper's `Incoming`,
    ///   axum's `Body`, streams): bodies are recorded as they are sent (up to 64 KiB; larger
    ///   ones are sent once) and replayed. The inner service receives
    ///   `http::Request<ReplayBody<B>>`, which a client generic over its body (hyper-util's
    ///   `Client`) infers.
    /// - The default backoff and budget of [`RetryLayer::new`].
    ///
    /// Every part can still be swapped (`with_classifier`, `with_replay`, ...).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// use tower_retrier::{RetryConfig, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = service_fn(|req: http::Request<_>| async move {
    ///     let _body: tower_retrier::replay::ReplayBody<String> = req.into_body();
    ///     Ok::<_, tower::BoxError>(http::Response::new(()))
    /// });
    /// let svc = ServiceBuilder::new()
    ///     .layer(RetryLayer::new_for_http(RetryConfig::default()))
    ///     .timeout(Duration::from_millis(300)) // per attempt
    ///     .service(client);
    /// let req = http::Request::get("/users/1").body(String::new()).unwrap();
    /// assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    /// # }
    /// ```
    pub fn new_for_http(config: RetryConfig) -> Self {
        RetryLayer::new(config)
            .with_classifier(HttpClassifier::new())
            .with_replay(ReplayHttp::new())
    }
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl<K, C, B, W, H, A> RetryLayer<K, C, B, ReplayHttp<W>, H, A> {
    /// Every attempt carries what it has left to live in `header` (the smaller of the attempt
    /// timeout and what is left of the deadline), so the server can drop work whose caller has
    /// given up: [`ReplayHttp::propagate_deadline`] on the layer's replay. The gRPC preset
    /// already sends `grpc-timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::deadline::DeadlineHeader;
    /// use tower_retrier::{RetryConfig, RetryLayer};
    ///
    /// let cfg = RetryConfig::builder().deadline(Duration::from_secs(2)).build().unwrap();
    /// let layer = RetryLayer::new_for_http(cfg).propagate_deadline(DeadlineHeader::envoy());
    /// # let _ = layer;
    /// ```
    pub fn propagate_deadline(self, header: crate::deadline::DeadlineHeader) -> Self {
        self.swap(|(k, c, b, r, h, a)| (k, c, b, r.propagate_deadline(header), h, a))
    }
}

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl RetryLayer<Exponential, GrpcClassifier, AdaptiveBudget, ReplayHttp<AsTonicBody>> {
    /// The preset for gRPC over a tonic `Channel`, like tower-http's
    /// `TraceLayer::new_for_grpc()`.
    ///
    /// - [`GrpcClassifier`]: retries UNAVAILABLE and transport errors (add codes with
    ///   `with_classifier(GrpcClassifier::new().retry_on(..))`, only for methods safe to
    ///   repeat: in gRPC the retryable codes are the opt-in, gRFC A6);
    ///   `grpc-retry-pushback-ms` is waited in full, a negative one stops retrying.
    /// - [`ReplayHttp::grpc`]: message bodies are recorded and replayed, with
    ///   `grpc-previous-rpc-attempts` on retries; bodies reach the `Channel` as
    ///   `tonic::body::Body` ([`AsTonicBody`]), so no `map_request` is needed.
    ///
    /// Put it on the `Channel`, with a per-attempt timeout below and the generated client on
    /// top: `Client::new(ServiceBuilder::new().layer(RetryLayer::new_for_grpc(cfg))
    /// .timeout(d).service(channel))`. Unary calls whose status comes in trailers also need
    /// [`GrpcTrailersLayer`](crate::classify::GrpcTrailersLayer) below the retry layer.
    ///
    /// ```
    /// use tower_retrier::{RetryConfig, RetryLayer};
    /// let layer = RetryLayer::new_for_grpc(RetryConfig::default()).service_name("greeter");
    /// # let _ = layer;
    /// ```
    pub fn new_for_grpc(config: RetryConfig) -> Self {
        RetryLayer::new(config)
            .with_classifier(GrpcClassifier::new())
            .with_replay(ReplayHttp::grpc().wrap_body(AsTonicBody))
    }
}

impl<K, C, B, R, H, A> RetryLayer<K, C, B, R, H, A> {
    /// The configuration.
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(Default::default());
    /// assert!(layer.config().jitter());
    /// ```
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The budget (clones share it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = tower_retrier::RetryLayer::new(Default::default());
    /// assert_eq!(layer.budget().remaining(), 100);
    /// # }
    /// ```
    pub fn budget(&self) -> &B {
        &self.budget
    }

    /// The telemetry sink.
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(Default::default()).service_name("db");
    /// assert_eq!(layer.telemetry().service_name(), "db");
    /// ```
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Uses another [`Backoff`](crate::backoff::Backoff). `max_delay` and the deadline still
    /// cap every delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::backoff::FullJitter;
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .with_backoff(FullJitter::new(Duration::from_millis(25), Duration::from_secs(1)));
    /// # let _ = layer;
    /// ```
    pub fn with_backoff<K2>(self, backoff: K2) -> RetryLayer<K2, C, B, R, H, A> {
        self.swap(|(_, c, b, r, h, a)| (backoff, c, b, r, h, a))
    }

    /// Uses another [`Classify`](crate::classify::Classify).
    ///
    /// ```
    /// use tower_retrier::classify::MatchErrors;
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .with_classifier(MatchErrors::boxed().retry::<std::io::Error>());
    /// # let _ = layer;
    /// ```
    pub fn with_classifier<C2>(self, classifier: C2) -> RetryLayer<K, C2, B, R, H, A> {
        self.swap(|(k, _, b, r, h, a)| (k, classifier, b, r, h, a))
    }

    /// Uses another [`Budget`](crate::budget::Budget), e.g. one shared with other layers.
    ///
    /// ```
    /// use tower_retrier::budget::Unlimited;
    /// let layer = tower_retrier::RetryLayer::new(Default::default()).with_budget(Unlimited::new());
    /// # let _ = layer;
    /// ```
    pub fn with_budget<B2>(self, budget: B2) -> RetryLayer<K, C, B2, R, H, A> {
        self.swap(|(k, c, _, r, h, a)| (k, c, budget, r, h, a))
    }

    /// Uses another [`Replay`](crate::replay::Replay), for requests that are not `Clone`.
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .with_replay(tower_retrier::replay::replay_fn(|s: &String| Some(s.clone())));
    /// # let _ = layer;
    /// ```
    pub fn with_replay<R2>(self, replay: R2) -> RetryLayer<K, C, B, R2, H, A> {
        self.swap(|(k, c, b, _, h, a)| (k, c, b, replay, h, a))
    }

    /// Calls `hook` before every retry (after the budget granted it).
    ///
    /// See [`OnRetry`](crate::telemetry::OnRetry) for an example.
    pub fn on_retry<H2>(self, hook: H2) -> RetryLayer<K, C, B, R, H2, A> {
        self.swap(|(k, c, b, r, _, a)| (k, c, b, r, hook, a))
    }

    /// Lets the layer resend requests that say they are not idempotent (an HTTP POST without
    /// `Idempotency-Key`, see [`Idempotent`](crate::replay::Idempotent)) after they may have
    /// reached the server. Off by default: a request that is not idempotent is only resent
    /// when nothing was sent (a refused connection).
    ///
    /// Only for services where you know every request is safe to repeat. Classifiers that
    /// judge idempotency themselves keep their own rules (`HttpClassifier::retry_all_methods`,
    /// the retryable codes of `GrpcClassifier`); a single request can opt in with an
    /// `Idempotency-Key` header.
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(Default::default()).retry_non_idempotent(true);
    /// # let _ = layer;
    /// ```
    pub fn retry_non_idempotent(self, on: bool) -> Self {
        self.change(|l| l.retry_non_idempotent = on)
    }

    /// Uses this admission control for first attempts (and hedges), e.g. one configured
    /// with [`AdmissionConfig`](crate::admission::AdmissionConfig), or one shared with other
    /// layers calling the same downstream. See [`crate::admission`].
    ///
    /// ```
    /// use tower_retrier::admission::{Admission, AdmissionConfig, Mechanism};
    /// let admission = Admission::new(AdmissionConfig::builder().mechanism(Mechanism::Breaker).build().unwrap());
    /// let layer = tower_retrier::RetryLayer::new(Default::default()).with_admission(admission);
    /// assert_eq!(layer.admission().config().mechanism(), Mechanism::Breaker);
    /// ```
    pub fn with_admission<A2>(self, admission: A2) -> RetryLayer<K, C, B, R, H, A2> {
        self.swap(|(k, c, b, r, h, _)| (k, c, b, r, h, admission))
    }

    /// Turns admission control off: every call's first attempt goes out, whatever the
    /// downstream's state (the retry budget still caps retries). For a service whose error
    /// type cannot carry a [`Rejected`](crate::admission::Rejected), or where another layer
    /// (a circuit breaker, a load shedder) already decides admission.
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(Default::default()).without_admission();
    /// # let _ = layer;
    /// ```
    pub fn without_admission(self) -> RetryLayer<K, C, B, R, H, NoAdmission> {
        self.with_admission(NoAdmission)
    }

    /// The admission control (clones share it).
    ///
    /// ```
    /// use tower_retrier::admission::AdmissionState;
    /// let layer = tower_retrier::RetryLayer::new(Default::default());
    /// assert_eq!(layer.admission().state(), AdmissionState::Closed);
    /// ```
    pub fn admission(&self) -> &A {
        &self.admission
    }

    /// Names the downstream service in telemetry (a label: keep it a constant).
    ///
    /// ```
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).service_name("payments");
    /// ```
    pub fn service_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        self.change(|l| l.telemetry.set_service_name(name.into()))
    }

    /// Names the operation in telemetry (a label: keep it a constant).
    ///
    /// ```
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).operation_name("charge");
    /// ```
    pub fn operation_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        self.change(|l| l.telemetry.set_operation_name(name.into()))
    }

    /// Replaces the telemetry sink (e.g. one with metrics or OpenTelemetry enabled).
    ///
    /// ```
    /// use tower_retrier::telemetry::Telemetry;
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).with_telemetry(Telemetry::new("a", "b"));
    /// ```
    pub fn with_telemetry(self, telemetry: Telemetry) -> Self {
        self.change(|l| l.telemetry = telemetry)
    }

    /// Makes jitter deterministic: request *i* (in the order requests first need a retry)
    /// draws from a generator seeded by `seed` and *i*. For tests and simulations.
    ///
    /// ```
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).seed(42);
    /// ```
    pub fn seed(self, seed: u64) -> Self {
        self.change(|l| l.seeds = Arc::new(SeedSource::new(seed)))
    }

    /// Frees the layer's parts (budget, classifier, telemetry handles) when the last service
    /// and call built from it end, instead of keeping them for the life of the process.
    ///
    /// For layers built while the process runs: one per tenant, per discovered upstream, per
    /// configuration reload. A dropped layer then releases what its budget holds (a
    /// [`RedisBudget`](crate::budget::RedisBudget) closes its connection). The price is a
    /// reference count taken and released by every call (a locked increment and decrement,
    /// about 15 ns on the benchmark machine; see BENCHMARKS.md).
    ///
    /// By default the parts are stored once, the first time the layer (or a clone) wraps a
    /// service, and kept for the process: calls reach them without a reference count. A
    /// process keeps at most [`PROCESS_LIFETIME_LAYERS`](crate::PROCESS_LIFETIME_LAYERS)
    /// layers that way; later ones are reference-counted, with a warning.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt, service_fn};
    /// use tower_retrier::{RetryConfig, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // A stack built for one tenant, dropped when the tenant goes away.
    /// let svc = RetryLayer::new(RetryConfig::default())
    ///     .release_on_drop()
    ///     .layer(service_fn(|x: u8| async move { Ok::<_, std::io::Error>(x) }));
    /// assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    /// # }
    /// ```
    pub fn release_on_drop(self) -> Self {
        self.change(|l| l.release_on_drop = true)
    }
}

impl<K, C, B, R, H, A> RetryLayer<K, C, B, R, H, A> {
    /// Cuts each attempt after the config's
    /// [`attempt_timeout`](RetryConfig::attempt_timeout), inside the layer: the classifier
    /// keeps seeing the inner service's own error type, a cut attempt is classified by
    /// [`Classify::classify_timeout`](crate::classify::Classify::classify_timeout) (reason
    /// `timeout`, idempotency guard applied), and the service's error becomes
    /// [`AttemptError<E>`](crate::AttemptError) so the caller can be told the last attempt
    /// timed out. The `with_*` methods and [`hedge`](RetryLayer::hedge) may come before or
    /// after it. See [`crate::timeout`].
    ///
    /// Without it the layer's error type stays the inner service's own, and a configured
    /// `attempt_timeout` is ignored (with a warning when the layer is applied).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// use tower_retrier::{AttemptError, RetryConfig, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let cfg = RetryConfig::builder().attempt_timeout(Duration::from_millis(100)).build().unwrap();
    /// let calls = &*Box::leak(Box::new(AtomicU32::new(0)));
    /// let svc = RetryLayer::new(cfg).timed_attempts().layer(service_fn(move |_: ()| async move {
    ///     // The first attempt hangs; the retry answers at once.
    ///     if calls.fetch_add(1, Ordering::Relaxed) == 0 {
    ///         tokio::time::sleep(Duration::from_secs(60)).await;
    ///     }
    ///     Ok::<_, std::io::Error>("ok")
    /// }));
    /// let res: Result<&str, AttemptError<std::io::Error>> = svc.oneshot(()).await;
    /// assert_eq!(res.unwrap(), "ok");
    /// # }
    /// ```
    pub fn timed_attempts(self) -> TimedLayer<RetryLayer<K, ClassifyTimeouts<C>, B, R, H, A>> {
        let timeout = self.config.attempt_timeout();
        TimedLayer::new(self.into_timed(), timeout)
    }

    /// The same parts with the classifier that handles cut attempts.
    pub(crate) fn into_timed(self) -> RetryLayer<K, ClassifyTimeouts<C>, B, R, H, A> {
        let mut inner = self.swap(|(k, c, b, r, h, a)| (k, ClassifyTimeouts::new(c), b, r, h, a));
        inner.timed = true;
        inner
    }

    /// The same layer with its pluggable parts passed through `swap` (one replaced, the others
    /// moved as they are). The new layer stores its parts afresh.
    fn swap<K2, C2, B2, R2, H2, A2>(
        self,
        swap: impl FnOnce(Parts<K, C, B, R, H, A>) -> Parts<K2, C2, B2, R2, H2, A2>,
    ) -> RetryLayer<K2, C2, B2, R2, H2, A2> {
        let parts = (
            self.backoff,
            self.classifier,
            self.budget,
            self.replay,
            self.on_retry,
            self.admission,
        );
        let (backoff, classifier, budget, replay, on_retry, admission) = swap(parts);
        RetryLayer {
            config: self.config,
            backoff,
            classifier,
            budget,
            replay,
            on_retry,
            admission,
            telemetry: self.telemetry,
            seeds: self.seeds,
            retry_non_idempotent: self.retry_non_idempotent,
            timed: self.timed,
            release_on_drop: self.release_on_drop,
            stored: Stored::default(),
        }
    }

    /// The same layer with `change` applied. The new layer stores its parts afresh (a clone
    /// that already wrapped a service keeps the parts it stored).
    fn change(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self.stored = Stored::default();
        self
    }

    /// Whether the parts are reference-counted rather than kept for the process.
    pub(crate) fn releases_on_drop(&self) -> bool {
        self.release_on_drop
    }

    /// The parts every service built from this layer shares (retry and hedge services).
    pub(crate) fn to_shared(&self) -> Shared<K, C, B, R, H, A>
    where
        K: Clone,
        C: Clone,
        B: Clone,
        R: Clone,
        H: Clone,
        A: Clone,
    {
        if !self.timed && self.config.attempt_timeout().is_some() {
            tracing::warn!(
                service = %self.telemetry.service_name(),
                "attempt_timeout is configured but this layer does not apply it: call .timed_attempts()"
            );
        }
        Shared {
            config: self.config.clone(),
            backoff: self.backoff.clone(),
            classifier: self.classifier.clone(),
            budget: self.budget.clone(),
            replay: self.replay.clone(),
            on_retry: self.on_retry.clone(),
            telemetry: self.telemetry.clone(),
            seeds: self.seeds.clone(),
            retry_non_idempotent: self.retry_non_idempotent,
            admission: self.admission.clone(),
        }
    }
}

impl<S, K, C, B, R, H, A> Layer<S> for RetryLayer<K, C, B, R, H, A>
where
    K: Clone + Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
    B: Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
    H: Clone + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
{
    type Service = RetryService<S, K, C, B, R, H, A>;

    fn layer(&self, inner: S) -> Self::Service {
        let shared = self
            .stored
            .parts_for_service(self.release_on_drop, || self.to_shared());
        RetryService::new(inner, shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setter_starts_a_new_store_so_a_clone_changed_after_use_gets_its_own_parts() {
        let layer = RetryLayer::new(RetryConfig::default());
        let first = layer.stored.parts_for_service(false, || layer.to_shared());
        let opted = layer.clone().retry_non_idempotent(true);
        let second = opted.stored.parts_for_service(false, || opted.to_shared());
        assert!(!first.retry_non_idempotent);
        assert!(second.retry_non_idempotent);
    }
}
