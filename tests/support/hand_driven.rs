//! Driving a service by hand, with no runtime, and counting the calling thread's allocations.
//! Shared (through `#[path]`) by `tests/allocations.rs` and the benches; it installs a global
//! allocator, so it is not part of `support/mod.rs`.
#![allow(dead_code, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tower::Service;

/// Counts allocations per thread, so other threads (test harness, a Redis budget's flusher)
/// do not interfere with the calls being measured.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: a thread being torn down may allocate after its locals are gone.
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

/// Allocations made by the current thread so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The floor: answers at once and allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// One call polled by hand with a no-op waker: ready, call, one poll. `None` for an error.
#[inline]
pub fn drive_result<S: Service<u64, Response = u64>>(svc: &mut S, req: u64) -> Option<u64> {
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(())) = svc.poll_ready(&mut cx) else {
        unreachable!("the service is always ready")
    };
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(r) => r.ok(),
        Poll::Pending => unreachable!("every future here completes at once"),
    }
}

/// One successful call polled by hand.
#[inline]
pub fn drive<S: Service<u64, Response = u64>>(svc: &mut S, req: u64) -> u64 {
    drive_result(svc, req).expect("the call succeeds")
}
