//! Names for the types the presets build, as tower-http names its layers
//! (`tower_http::classify::SharedClassifier`, `TraceLayer<HttpMakeClassifier>`): a retried or
//! hedged client can be stored in a struct (an axum `State`, a connection pool) without
//! writing the six parts out.
//!
//! `A` is the admission control: [`Admission`] as the presets build it, or
//! [`NoAdmission`](crate::admission::NoAdmission) after `.without_admission()` (needed when
//! the client's error type cannot carry a refusal, as hyper-util's cannot). The `Timed*`
//! names are what `.timed_attempts()` builds.

use crate::admission::Admission;
use crate::backoff::Exponential;
use crate::budget::AdaptiveBudget;
use crate::hedge::{HedgeLayer, HedgeService};
use crate::telemetry::NoHook;
use crate::timeout::{AttemptTimeout, ClassifyTimeouts, Flatten, TimedLayer};
use crate::{RetryLayer, RetryService};

#[cfg(feature = "tonic")]
pub use grpc_types::*;
pub use http_types::*;

mod http_types {
    use super::*;
    use crate::classify::HttpClassifier;
    use crate::replay::ReplayHttp;

    /// What [`RetryLayer::new_for_http`] builds.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::admission::NoAdmission;
    /// use tower_retrier::{HttpRetryLayer, HttpRetryService, RetryConfig, RetryLayer};
    ///
    /// // A retried client kept in a struct, here with admission control off.
    /// struct AppState<C> {
    ///     client: HttpRetryService<C, NoAdmission>,
    /// }
    /// let layer: HttpRetryLayer = RetryLayer::new_for_http(RetryConfig::default());
    /// let state = AppState { client: layer.without_admission().layer(()) };
    /// # let _ = state.client;
    /// ```
    pub type HttpRetryLayer<A = Admission> =
        RetryLayer<Exponential, HttpClassifier, AdaptiveBudget, ReplayHttp, NoHook, A>;

    /// What an [`HttpRetryLayer`] wraps a client `S` in.
    ///
    /// See [`HttpRetryLayer`] for an example.
    pub type HttpRetryService<S, A = Admission> =
        RetryService<S, Exponential, HttpClassifier, AdaptiveBudget, ReplayHttp, NoHook, A>;

    /// What `RetryLayer::new_for_http(cfg).hedge(hedging)` builds.
    ///
    /// ```
    /// use tower_retrier::hedge::HedgeConfig;
    /// use tower_retrier::{HttpHedgeLayer, RetryConfig, RetryLayer};
    /// let layer: HttpHedgeLayer = RetryLayer::new_for_http(RetryConfig::default())
    ///     .hedge(HedgeConfig::builder().build().unwrap());
    /// # let _ = layer;
    /// ```
    pub type HttpHedgeLayer<A = Admission> =
        HedgeLayer<Exponential, HttpClassifier, AdaptiveBudget, ReplayHttp, NoHook, A>;

    /// What an [`HttpHedgeLayer`] wraps a client `S` in.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::hedge::HedgeConfig;
    /// use tower_retrier::{HttpHedgeService, RetryConfig, RetryLayer};
    /// let svc: HttpHedgeService<()> = RetryLayer::new_for_http(RetryConfig::default())
    ///     .hedge(HedgeConfig::builder().build().unwrap())
    ///     .layer(());
    /// # let _ = svc;
    /// ```
    pub type HttpHedgeService<S, A = Admission> =
        HedgeService<S, Exponential, HttpClassifier, AdaptiveBudget, ReplayHttp, NoHook, A>;

    /// What `RetryLayer::new_for_http(cfg).timed_attempts()` builds.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::{RetryConfig, RetryLayer, TimedHttpRetryLayer, TimedHttpRetryService};
    /// let layer: TimedHttpRetryLayer = RetryLayer::new_for_http(RetryConfig::default()).timed_attempts();
    /// let svc: TimedHttpRetryService<()> = layer.layer(());
    /// # let _ = svc;
    /// ```
    pub type TimedHttpRetryLayer<A = Admission> = TimedLayer<
        RetryLayer<
            Exponential,
            ClassifyTimeouts<HttpClassifier>,
            AdaptiveBudget,
            ReplayHttp,
            NoHook,
            A,
        >,
    >;

    /// What a [`TimedHttpRetryLayer`] wraps a client `S` in (its error is
    /// [`AttemptError`](crate::AttemptError)`<S::Error>`).
    ///
    /// See [`TimedHttpRetryLayer`] for an example.
    pub type TimedHttpRetryService<S, A = Admission> = Flatten<
        RetryService<
            AttemptTimeout<S>,
            Exponential,
            ClassifyTimeouts<HttpClassifier>,
            AdaptiveBudget,
            ReplayHttp,
            NoHook,
            A,
        >,
    >;

    /// What `RetryLayer::new_for_http(cfg).hedge(hedging).timed_attempts()` builds.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::hedge::HedgeConfig;
    /// use tower_retrier::{RetryConfig, RetryLayer, TimedHttpHedgeLayer, TimedHttpHedgeService};
    /// let layer: TimedHttpHedgeLayer = RetryLayer::new_for_http(RetryConfig::default())
    ///     .hedge(HedgeConfig::builder().build().unwrap())
    ///     .timed_attempts();
    /// let svc: TimedHttpHedgeService<()> = layer.layer(());
    /// # let _ = svc;
    /// ```
    pub type TimedHttpHedgeLayer<A = Admission> = TimedLayer<
        HedgeLayer<
            Exponential,
            ClassifyTimeouts<HttpClassifier>,
            AdaptiveBudget,
            ReplayHttp,
            NoHook,
            A,
        >,
    >;

    /// What a [`TimedHttpHedgeLayer`] wraps a client `S` in.
    ///
    /// See [`TimedHttpHedgeLayer`] for an example.
    pub type TimedHttpHedgeService<S, A = Admission> = Flatten<
        HedgeService<
            AttemptTimeout<S>,
            Exponential,
            ClassifyTimeouts<HttpClassifier>,
            AdaptiveBudget,
            ReplayHttp,
            NoHook,
            A,
        >,
    >;
}

#[cfg(feature = "tonic")]
mod grpc_types {
    use super::*;
    use crate::classify::GrpcClassifier;
    use crate::replay::{AsTonicBody, ReplayHttp};

    /// What [`RetryLayer::new_for_grpc`] builds.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::{GrpcRetryLayer, GrpcRetryService, RetryConfig, RetryLayer};
    /// let layer: GrpcRetryLayer = RetryLayer::new_for_grpc(RetryConfig::default());
    /// let channel: GrpcRetryService<()> = layer.layer(());
    /// # let _ = channel;
    /// ```
    pub type GrpcRetryLayer<A = Admission> =
        RetryLayer<Exponential, GrpcClassifier, AdaptiveBudget, ReplayHttp<AsTonicBody>, NoHook, A>;

    /// What a [`GrpcRetryLayer`] wraps a channel `S` in.
    ///
    /// See [`GrpcRetryLayer`] for an example.
    pub type GrpcRetryService<S, A = Admission> = RetryService<
        S,
        Exponential,
        GrpcClassifier,
        AdaptiveBudget,
        ReplayHttp<AsTonicBody>,
        NoHook,
        A,
    >;

    /// What `RetryLayer::new_for_grpc(cfg).hedge(hedging)` builds.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::hedge::HedgeConfig;
    /// use tower_retrier::{GrpcHedgeLayer, GrpcHedgeService, RetryConfig, RetryLayer};
    /// let layer: GrpcHedgeLayer = RetryLayer::new_for_grpc(RetryConfig::default())
    ///     .hedge(HedgeConfig::builder().build().unwrap());
    /// let channel: GrpcHedgeService<()> = layer.layer(());
    /// # let _ = channel;
    /// ```
    pub type GrpcHedgeLayer<A = Admission> =
        HedgeLayer<Exponential, GrpcClassifier, AdaptiveBudget, ReplayHttp<AsTonicBody>, NoHook, A>;

    /// What a [`GrpcHedgeLayer`] wraps a channel `S` in.
    ///
    /// See [`GrpcHedgeLayer`] for an example.
    pub type GrpcHedgeService<S, A = Admission> = HedgeService<
        S,
        Exponential,
        GrpcClassifier,
        AdaptiveBudget,
        ReplayHttp<AsTonicBody>,
        NoHook,
        A,
    >;

    /// What `RetryLayer::new_for_grpc(cfg).timed_attempts()` builds.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::{RetryConfig, RetryLayer, TimedGrpcRetryLayer, TimedGrpcRetryService};
    /// let layer: TimedGrpcRetryLayer = RetryLayer::new_for_grpc(RetryConfig::default()).timed_attempts();
    /// let channel: TimedGrpcRetryService<()> = layer.layer(());
    /// # let _ = channel;
    /// ```
    pub type TimedGrpcRetryLayer<A = Admission> = TimedLayer<
        RetryLayer<
            Exponential,
            ClassifyTimeouts<GrpcClassifier>,
            AdaptiveBudget,
            ReplayHttp<AsTonicBody>,
            NoHook,
            A,
        >,
    >;

    /// What a [`TimedGrpcRetryLayer`] wraps a channel `S` in.
    ///
    /// See [`TimedGrpcRetryLayer`] for an example.
    pub type TimedGrpcRetryService<S, A = Admission> = Flatten<
        RetryService<
            AttemptTimeout<S>,
            Exponential,
            ClassifyTimeouts<GrpcClassifier>,
            AdaptiveBudget,
            ReplayHttp<AsTonicBody>,
            NoHook,
            A,
        >,
    >;

    /// What `RetryLayer::new_for_grpc(cfg).hedge(hedging).timed_attempts()` builds.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_retrier::hedge::HedgeConfig;
    /// use tower_retrier::{RetryConfig, RetryLayer, TimedGrpcHedgeLayer, TimedGrpcHedgeService};
    /// let layer: TimedGrpcHedgeLayer = RetryLayer::new_for_grpc(RetryConfig::default())
    ///     .hedge(HedgeConfig::builder().build().unwrap())
    ///     .timed_attempts();
    /// let channel: TimedGrpcHedgeService<()> = layer.layer(());
    /// # let _ = channel;
    /// ```
    pub type TimedGrpcHedgeLayer<A = Admission> = TimedLayer<
        HedgeLayer<
            Exponential,
            ClassifyTimeouts<GrpcClassifier>,
            AdaptiveBudget,
            ReplayHttp<AsTonicBody>,
            NoHook,
            A,
        >,
    >;

    /// What a [`TimedGrpcHedgeLayer`] wraps a channel `S` in.
    ///
    /// See [`TimedGrpcHedgeLayer`] for an example.
    pub type TimedGrpcHedgeService<S, A = Admission> = Flatten<
        HedgeService<
            AttemptTimeout<S>,
            Exponential,
            ClassifyTimeouts<GrpcClassifier>,
            AdaptiveBudget,
            ReplayHttp<AsTonicBody>,
            NoHook,
            A,
        >,
    >;
}
