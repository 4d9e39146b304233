//! The success path allocates nothing beyond what the inner service allocates: with the
//! default layer, and with telemetry on as long as nobody listens (no `tracing` subscriber,
//! no `metrics` recorder, the no-op global meter provider).
#![allow(unsafe_code)] // the counting allocator below; the library itself forbids unsafe code

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service};
use tower_retrier::telemetry::Telemetry;
use tower_retrier::{RetryConfig, RetryLayer};

/// Counts allocations made by the current thread (other test threads do not interfere).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

fn drive<S: Service<u64, Response = u64>>(svc: &mut S, req: u64) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(())) = svc.poll_ready(&mut cx) else {
        panic!("not ready")
    };
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(r)) => r,
        _ => panic!("not done"),
    }
}

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
    // What `RetryLayer::new(RetryConfig::default())` gives: RatioBudget, CloneRequest, ...
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
