//! Hedged requests (gRFC A6 hedging), built from the same parts as retries.
//!
//! Retries fix failures; hedging fixes the slow tail. The first attempt goes at once; if no
//! final answer has come after the hedging delay, the request is sent again, up to
//! [`HedgeConfig::max_attempts`] in all (under hedging, that is the count: the retry
//! config's `max_attempts` is not used, and a layer whose two counts disagree warns once).
//! The first *final* result (a success, or a failure the classifier says retrying will not
//! fix) wins and every other attempt still in flight is
//! dropped at once, which cancels it. A *non-fatal* result (the classifier says "retry") lets
//! the others continue and sends the next hedge at once, or after the server's pushback (a
//! pushback the config cannot honour, or the retry config's deadline passing, stops
//! hedging; a gRPC pushback that is negative or unparsable is a final answer for
//! [`GrpcClassifier`](crate::classify::GrpcClassifier), so it ends the call).
//!
//! What a hedging layer shares with a retry layer, unchanged: the classifier, the budget
//! (every hedge beyond the first is withdrawn from it; a denied hedge is not sent and no
//! further hedge is tried), the replay (each hedge is a replayed copy: HTTP bodies are
//! replayed byte for byte, `grpc-previous-rpc-attempts` is set), the `on_retry` hook (for
//! hedges sent after a non-fatal result), the per-attempt timeout and the telemetry.
//!
//! Only requests that may be sent more than once are hedged: with a classifier that judges
//! idempotency itself (HTTP, gRPC), its [`allows_resend`](crate::classify::Classify::allows_resend)
//! rule; otherwise the replay's [`may_resend`](crate::replay::Replay::may_resend) (an HTTP
//! POST without `Idempotency-Key` is sent once), unless the layer opted in with
//! [`retry_non_idempotent`](crate::RetryLayer::retry_non_idempotent). A streamed body is
//! hedged only once it has been recorded in full (checked again at each hedge time); one too
//! large to record is sent once.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt, service_fn};
//! use tower_retrier::hedge::HedgeConfig;
//! use tower_retrier::{RetryConfig, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let hedging = HedgeConfig::builder().delay(Duration::from_millis(20)).max_attempts(2).build().unwrap();
//! let calls = &*Box::leak(Box::new(std::sync::atomic::AtomicU32::new(0)));
//! let svc = RetryLayer::new(RetryConfig::default()).hedge(hedging).layer(service_fn(move |_: ()| async move {
//!     // The first attempt is stuck; the hedge, sent after 20 ms, answers in 10 ms.
//!     let slow = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
//!     tokio::time::sleep(Duration::from_millis(if slow { 1000 } else { 10 })).await;
//!     Ok::<_, std::io::Error>(slow)
//! }));
//! let start = tokio::time::Instant::now();
//! assert_eq!(svc.oneshot(()).await.unwrap(), false); // the hedge won
//! assert_eq!(start.elapsed(), Duration::from_millis(30));
//! # }
//! ```

mod config;
mod future;
mod latency;
mod layer;
mod service;
mod shared;

pub use config::{HedgeConfig, HedgeConfigBuilder, HedgeDelay, MAX_HEDGED_ATTEMPTS};
pub use future::HedgeFuture;
pub use layer::HedgeLayer;
pub use service::HedgeService;
