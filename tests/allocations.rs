//! The success path allocates nothing beyond what the inner service allocates.
//!
//! A counting global allocator wraps the system one; the requests are polled by hand with a
//! no-op waker so no runtime allocates behind our back.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service};
use tower_retrier::{RetryConfig, RetryLayer};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

#[test]
fn default_layer_success_path_allocates_nothing() {
    let mut svc = RetryLayer::new(RetryConfig::default()).layer(Echo);
    let mut cx = Context::from_waker(Waker::noop());
    let mut run = |i: u64| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let fut = pin!(svc.call(i));
        assert!(matches!(fut.poll(&mut cx), Poll::Ready(Ok(v)) if v == i));
    };
    for i in 0..10 {
        run(i); // warm up (e.g. tracing callsite registration)
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..10_000 {
        run(i);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations on the success path");
}
