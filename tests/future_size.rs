//! What every call carries: the response future of the defaults around a small inner future
//! stays within 128 bytes, every back-end feature compiled in. Runtimes move the future into
//! their task (and `async` callers into their own state) once per call; below 128 bytes the
//! compiler copies it with a few inline moves instead of a `memcpy` call, which measured about
//! half the cost of the whole success path (BENCHMARKS.md, "What the profiles show").
//! Retry-only data (the budget's pending answer, the backoff timer) is boxed in the states
//! that need it.

#[path = "support/hand_driven.rs"]
mod hand_driven;

use hand_driven::Echo;
use tower::{Layer, Service};
use tower_retrier::budget::{RatioBudget, Unlimited};
use tower_retrier::{RetryConfig, RetryLayer};

fn future_size<S: Service<u64>>(_: &S) -> usize {
    std::mem::size_of::<S::Future>()
}

#[test]
#[cfg(target_pointer_width = "64")]
fn the_response_future_around_a_small_future_stays_within_128_bytes() {
    let inner = std::mem::size_of::<<Echo as Service<u64>>::Future>();
    let layer = RetryLayer::new(RetryConfig::default());
    for (name, size) in [
        ("defaults", future_size(&layer.layer(Echo))),
        (
            "RatioBudget",
            future_size(
                &layer
                    .clone()
                    .with_budget(RatioBudget::default())
                    .layer(Echo),
            ),
        ),
        (
            "Unlimited",
            future_size(&layer.clone().with_budget(Unlimited::new()).layer(Echo)),
        ),
        #[cfg(feature = "redis")]
        (
            "RedisBudget",
            std::mem::size_of::<
                tower_retrier::ResponseFuture<
                    u64,
                    Echo,
                    tower_retrier::backoff::Exponential,
                    tower_retrier::classify::RetryAnyError,
                    tower_retrier::budget::RedisBudget,
                    tower_retrier::replay::CloneRequest,
                    tower_retrier::telemetry::NoHook,
                    tower_retrier::admission::Admission,
                >,
            >(),
        ),
    ] {
        assert!(
            size <= 128,
            "{name}: the response future is {size} bytes around a {inner}-byte inner future"
        );
    }
}
