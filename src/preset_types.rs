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

/// The alias of a layer (generic over the admission control `A`) and of the service it
/// builds over a client `S`: `$layer` and `$service` with the preset's classifier `$C` and
/// replay `$R`, as they are (`plain`) or after `.timed_attempts()` (`timed`).
/// `RetryLayer::$preset(cfg)$then` builds the layer (for the example).
macro_rules! layer_and_service {
    (plain $L:ident, $S:ident = $layer:ident, $service:ident, $C:ty, $R:ty, $($how:literal),+) => {
        layer_and_service!(@named $L = $layer<Exponential, $C, AdaptiveBudget, $R, NoHook, A>,
            $S = $service<S, Exponential, $C, AdaptiveBudget, $R, NoHook, A>, $($how),+);
    };
    (timed $L:ident, $S:ident = $layer:ident, $service:ident, $C:ty, $R:ty, $($how:literal),+) => {
        layer_and_service!(@named $L = TimedLayer<$layer<Exponential, ClassifyTimeouts<$C>,
            AdaptiveBudget, $R, NoHook, A>>, $S = Flatten<$service<AttemptTimeout<S>, Exponential,
            ClassifyTimeouts<$C>, AdaptiveBudget, $R, NoHook, A>>, $($how),+);
    };
    (@named $Layer:ident = $layer:ty, $Service:ident = $service:ty,
        $preset:literal, $then:literal) => {
        #[doc = concat!("What `RetryLayer::", $preset, "(cfg)", $then, "` builds.")]
        ///
        /// ```
        /// use tower::Layer;
        /// use tower_retrier::admission::NoAdmission;
        /// use tower_retrier::hedge::HedgeConfig;
        #[doc = concat!(
            "use tower_retrier::{RetryConfig, RetryLayer, ",
            stringify!($Layer), ", ", stringify!($Service), "};"
        )]
        ///
        /// // A client kept in a struct, here with admission control off (the last parameter).
        /// struct AppState<C> {
        #[doc = concat!("    client: ", stringify!($Service), "<C, NoAdmission>,")]
        /// }
        /// let (cfg, hedging) = (RetryConfig::default(), HedgeConfig::builder().build().unwrap());
        /// # let _ = &hedging;
        #[doc = concat!(
            "let layer: ", stringify!($Layer), " = RetryLayer::", $preset, "(cfg)", $then, ";"
        )]
        /// let state = AppState { client: layer.without_admission().layer(()) };
        /// # let _ = state.client;
        /// ```
        pub type $Layer<A = Admission> = $layer;

        #[doc = concat!("What a [`", stringify!($Layer), "`] wraps a client `S` in.")]
        ///
        #[doc = concat!("See [`", stringify!($Layer), "`] for an example.")]
        pub type $Service<S, A = Admission> = $service;
    };
}

/// The eight names of one preset (`RetryLayer::$preset`, classifier `$C`, replay `$R`): retry
/// and hedge, each plain and timed, each a layer and a service.
macro_rules! preset_types {
    (
        $preset:literal, $C:ty, $R:ty,
        [$RetryL:ident, $RetryS:ident, $HedgeL:ident, $HedgeS:ident],
        [$TimedRetryL:ident, $TimedRetryS:ident, $TimedHedgeL:ident, $TimedHedgeS:ident]
    ) => {
        layer_and_service!(plain $RetryL, $RetryS = RetryLayer, RetryService, $C, $R, $preset, "");
        layer_and_service!(plain $HedgeL, $HedgeS = HedgeLayer, HedgeService, $C, $R, $preset,
            ".hedge(hedging)");
        layer_and_service!(timed $TimedRetryL, $TimedRetryS = RetryLayer, RetryService, $C, $R,
            $preset, ".timed_attempts()");
        layer_and_service!(timed $TimedHedgeL, $TimedHedgeS = HedgeLayer, HedgeService, $C, $R,
            $preset, ".hedge(hedging).timed_attempts()");
    };
}

preset_types!(
    "new_for_http",
    crate::classify::HttpClassifier,
    crate::replay::ReplayHttp,
    [
        HttpRetryLayer,
        HttpRetryService,
        HttpHedgeLayer,
        HttpHedgeService
    ],
    [
        TimedHttpRetryLayer,
        TimedHttpRetryService,
        TimedHttpHedgeLayer,
        TimedHttpHedgeService
    ]
);

#[cfg(feature = "tonic")]
preset_types!(
    "new_for_grpc",
    crate::classify::GrpcClassifier,
    crate::replay::ReplayHttp<crate::replay::AsTonicBody>,
    [
        GrpcRetryLayer,
        GrpcRetryService,
        GrpcHedgeLayer,
        GrpcHedgeService
    ],
    [
        TimedGrpcRetryLayer,
        TimedGrpcRetryService,
        TimedGrpcHedgeLayer,
        TimedGrpcHedgeService
    ]
);
