#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod admission;
mod any_order;
pub mod backoff;
pub mod budget;
mod call_ext;
pub mod classify;
mod config;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod deadline;
mod decide;
mod execute;
mod front;
mod future;
pub mod hedge;
mod layer;
mod lifetime;
#[cfg(feature = "http")]
mod preset_types;
pub mod replay;
mod service;
mod shared;
mod state;
pub mod telemetry;
pub mod timeout;

pub use config::{
    ConfigError, DEFAULT_MIN_ATTEMPT_TIME, MAX_ATTEMPTS_LIMIT, Pushback, RetryConfig,
    RetryConfigBuilder,
};

/// At most this many transparent resends per call: attempts the server said it did not
/// process (see [`RetryReason::Transparent`](classify::RetryReason::Transparent)), as undici
/// bounds them. They are not counted toward `max_attempts`.
///
/// ```
/// assert_eq!(tower_retrier::MAX_TRANSPARENT_RETRIES, 3);
/// ```
pub const MAX_TRANSPARENT_RETRIES: u32 = 3;
pub use execute::{ReplaysNothing, execute_with_retry};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use lifetime::PROCESS_LIFETIME_LAYERS;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use preset_types::{
    GrpcHedgeLayer, GrpcHedgeService, GrpcRetryLayer, GrpcRetryService, TimedGrpcHedgeLayer,
    TimedGrpcHedgeService, TimedGrpcRetryLayer, TimedGrpcRetryService,
};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use preset_types::{
    HttpHedgeLayer, HttpHedgeService, HttpRetryLayer, HttpRetryService, TimedHttpHedgeLayer,
    TimedHttpHedgeService, TimedHttpRetryLayer, TimedHttpRetryService,
};
pub use service::RetryService;
pub use timeout::AttemptError;

/// The error type most tower middleware uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
