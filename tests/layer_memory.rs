//! What a layer kept for the process costs in memory: the README states the figure this test
//! measures (bytes the layer's parts keep once its services are dropped), and the test keeps
//! it from growing unnoticed. The budgets' per-thread counters take one 64-byte cache line
//! per shard, and there are `clamp(2 × cores, 8, 256)` shards, so the figure grows with the
//! machine's core count. Its own test binary: the allocator counts this thread's bytes.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tower_retrier::budget::RatioBudget;
use tower_retrier::{RetryConfig, RetryLayer};

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|c| c.set(c.get() + layout.size() as i64));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get() - layout.size() as i64));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> i64 {
    LIVE.with(Cell::get)
}

#[derive(Clone, Copy)]
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

/// Bytes kept per layer once its services are dropped, over `n` layers.
fn kept_per_layer(n: i64, build: impl Fn()) -> i64 {
    build(); // first use: lazily initialised statics
    let before = live();
    for _ in 0..n {
        build();
    }
    (live() - before) / n
}

#[test]
fn a_kept_layer_costs_a_few_kilobytes_growing_with_the_core_count() {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let shards = (cores * 2).clamp(8, 256) as i64;
    let default = kept_per_layer(100, || {
        drop(RetryLayer::new(RetryConfig::default()).layer(Echo));
    });
    let ratio = kept_per_layer(100, || {
        drop(
            RetryLayer::new(RetryConfig::default())
                .with_budget(RatioBudget::default())
                .layer(Echo),
        );
    });
    let released = kept_per_layer(100, || {
        drop(
            RetryLayer::new(RetryConfig::default())
                .release_on_drop()
                .layer(Echo),
        );
    });
    eprintln!(
        "{cores} cores, {shards} counter shards: a kept default layer keeps {default} bytes, \
         with a RatioBudget {ratio} bytes; with release_on_drop {released} bytes"
    );
    assert_eq!(released, 0, "release_on_drop frees everything");
    // One 64-byte line per shard in each of two per-thread counters (the budget's successes,
    // admission control's accepted attempts), plus the rest of the parts (config, backoff,
    // classifier, admission window, telemetry handles: about 1.4 KB without features, 5 KB
    // with every feature on: one label set per retry reason and outcome).
    let counter = 2 * 64 * (shards + 1);
    assert!(default >= counter, "{default} < {counter}");
    assert!(default <= counter + 5400, "{default}");
    assert!(ratio <= counter + 5400, "{ratio}");
}
