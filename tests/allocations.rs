//! The success path allocates nothing beyond what the inner service allocates: with the
//! default layer, and with telemetry on as long as nobody listens (no `tracing` subscriber,
//! no `metrics` recorder, the no-op global meter provider).

#[path = "support/hand_driven.rs"]
mod hand_driven;

use hand_driven::{Echo, allocations, drive};
use tower::Layer;
use tower_retrier::telemetry::Telemetry;
use tower_retrier::{RetryConfig, RetryLayer};

fn allocations_per_1000_calls(telemetry: Telemetry) -> u64 {
    let mut svc = RetryLayer::new(RetryConfig::default())
        .with_telemetry(telemetry)
        .layer(Echo);
    // The first call registers metric handles / instruments (once per layer).
    drive(&mut svc, 0);
    let before = allocations();
    for i in 0..1000 {
        assert_eq!(drive(&mut svc, i), i);
    }
    allocations() - before
}

#[test]
fn the_default_layer_success_path_does_not_allocate() {
    // What `RetryLayer::new(RetryConfig::default())` gives: AdaptiveBudget, CloneRequest, ...
    assert_eq!(allocations_per_1000_calls(Telemetry::default()), 0);
}

#[test]
fn the_success_path_does_not_allocate_with_telemetry_on_and_nobody_listening() {
    assert_eq!(allocations_per_1000_calls(Telemetry::new("svc", "op")), 0);
}

#[test]
fn the_success_path_does_not_allocate_with_telemetry_off() {
    assert_eq!(allocations_per_1000_calls(Telemetry::disabled()), 0);
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 16]);
    assert!(allocations() > before);
    drop(v);
}
