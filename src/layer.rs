//! [`RetryLayer`]: the configuration and pluggable parts, applied to a service.

use crate::RetryConfig;
use crate::backoff::{Exponential, SeedSource};
use crate::budget::AdaptiveBudget;
use crate::classify::RetryAnyError;
use crate::replay::CloneRequest;
use crate::service::{RetryService, Shared};
use crate::telemetry::{NoHook, Telemetry};
use std::borrow::Cow;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in [`RetryService`].
///
/// `RetryLayer::new(config)` gives the defaults: the exponential backoff of `config` with
/// per-request jitter, [`RetryAnyError`], a local [`AdaptiveBudget`] (a stock of 100 retries,
/// refilled by 0.2 per success and 1 per second) and [`CloneRequest`]. Builder methods swap
/// any part. The layer is cheap to clone; **clones share one budget and one seed source**, so
/// every service built from one layer counts against the same budget.
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
> {
    config: RetryConfig,
    backoff: K,
    classifier: C,
    budget: B,
    replay: R,
    on_retry: H,
    telemetry: Telemetry,
    seeds: Arc<SeedSource>,
}

impl RetryLayer {
    /// The defaults, with `config`'s attempts, backoff and deadline.
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
            telemetry: Telemetry::default(),
            seeds: Arc::new(SeedSource::random()),
        }
    }
}

impl<K, C, B, R, H> RetryLayer<K, C, B, R, H> {
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
    pub fn with_backoff<K2>(self, backoff: K2) -> RetryLayer<K2, C, B, R, H> {
        RetryLayer {
            backoff,
            config: self.config,
            classifier: self.classifier,
            budget: self.budget,
            replay: self.replay,
            on_retry: self.on_retry,
            telemetry: self.telemetry,
            seeds: self.seeds,
        }
    }

    /// Uses another [`Classify`](crate::classify::Classify).
    ///
    /// ```
    /// use tower_retrier::classify::MatchErrors;
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .with_classifier(MatchErrors::boxed().retry::<std::io::Error>());
    /// # let _ = layer;
    /// ```
    pub fn with_classifier<C2>(self, classifier: C2) -> RetryLayer<K, C2, B, R, H> {
        RetryLayer {
            classifier,
            config: self.config,
            backoff: self.backoff,
            budget: self.budget,
            replay: self.replay,
            on_retry: self.on_retry,
            telemetry: self.telemetry,
            seeds: self.seeds,
        }
    }

    /// Uses another [`Budget`](crate::budget::Budget), e.g. one shared with other layers.
    ///
    /// ```
    /// use tower_retrier::budget::Unlimited;
    /// let layer = tower_retrier::RetryLayer::new(Default::default()).with_budget(Unlimited::new());
    /// # let _ = layer;
    /// ```
    pub fn with_budget<B2>(self, budget: B2) -> RetryLayer<K, C, B2, R, H> {
        RetryLayer {
            budget,
            config: self.config,
            backoff: self.backoff,
            classifier: self.classifier,
            replay: self.replay,
            on_retry: self.on_retry,
            telemetry: self.telemetry,
            seeds: self.seeds,
        }
    }

    /// Uses another [`Replay`](crate::replay::Replay), for requests that are not `Clone`.
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .with_replay(tower_retrier::replay::replay_fn(|s: &String| Some(s.clone())));
    /// # let _ = layer;
    /// ```
    pub fn with_replay<R2>(self, replay: R2) -> RetryLayer<K, C, B, R2, H> {
        RetryLayer {
            replay,
            config: self.config,
            backoff: self.backoff,
            classifier: self.classifier,
            budget: self.budget,
            on_retry: self.on_retry,
            telemetry: self.telemetry,
            seeds: self.seeds,
        }
    }

    /// Calls `hook` before every retry (after the budget granted it).
    ///
    /// See [`OnRetry`](crate::telemetry::OnRetry) for an example.
    pub fn on_retry<H2>(self, hook: H2) -> RetryLayer<K, C, B, R, H2> {
        RetryLayer {
            on_retry: hook,
            config: self.config,
            backoff: self.backoff,
            classifier: self.classifier,
            budget: self.budget,
            replay: self.replay,
            telemetry: self.telemetry,
            seeds: self.seeds,
        }
    }

    /// Names the downstream service in telemetry (a label: keep it a constant).
    ///
    /// ```
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).service_name("payments");
    /// ```
    pub fn service_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.telemetry.set_service_name(name.into());
        self
    }

    /// Names the operation in telemetry (a label: keep it a constant).
    ///
    /// ```
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).operation_name("charge");
    /// ```
    pub fn operation_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.telemetry.set_operation_name(name.into());
        self
    }

    /// Replaces the telemetry sink (e.g. one with metrics or OpenTelemetry enabled).
    ///
    /// ```
    /// use tower_retrier::telemetry::Telemetry;
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).with_telemetry(Telemetry::new("a", "b"));
    /// ```
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Makes jitter deterministic: request *i* (in the order requests first need a retry)
    /// draws from a generator seeded by `seed` and *i*. For tests and simulations.
    ///
    /// ```
    /// let _ = tower_retrier::RetryLayer::new(Default::default()).seed(42);
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeds = Arc::new(SeedSource::new(seed));
        self
    }
}

impl<S, K, C, B, R, H> Layer<S> for RetryLayer<K, C, B, R, H>
where
    K: Clone,
    C: Clone,
    B: Clone,
    R: Clone,
    H: Clone,
{
    type Service = RetryService<S, K, C, B, R, H>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::from_shared(
            inner,
            Arc::new(Shared {
                config: self.config.clone(),
                backoff: self.backoff.clone(),
                classifier: self.classifier.clone(),
                budget: self.budget.clone(),
                replay: self.replay.clone(),
                on_retry: self.on_retry.clone(),
                telemetry: self.telemetry.clone(),
                seeds: self.seeds.clone(),
            }),
        )
    }
}
