//! Readiness before every retry, cancellation at any point, and many concurrent requests.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::flaky::Flaky;
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok, task};
use tower::{BoxError, Layer, Service, ServiceBuilder};
use tower_retrier::budget::{RatioBudget, Unlimited};
use tower_retrier::{RetryConfig, RetryLayer};

fn no_jitter(attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .jitter(false)
        .build()
        .unwrap()
}

type Call = task::Spawn<Pin<Box<dyn Future<Output = Result<u32, BoxError>>>>>;

/// Request `1` through a 3-attempt, no-budget retry layer over a mock that allows `allowed`
/// calls, polled by hand; the handle scripts the mock's answers and readiness.
fn call_through_mock(allowed: u64) -> (Call, tower_test::mock::Handle<u32, u32>) {
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    handle.allow(allowed);
    let mut svc = RetryLayer::new(no_jitter(3))
        .with_budget(Unlimited::new())
        .layer(mock);
    let fut = task::spawn(Box::pin(async move {
        svc.ready().await?;
        svc.call(1).await
    }) as Pin<Box<dyn Future<Output = _>>>);
    (fut, handle)
}

#[tokio::test(start_paused = true)]
async fn each_retry_polls_the_inner_clone_ready() {
    let (mut fut, mut handle) = call_through_mock(1);
    assert_pending!(fut.poll());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("reset");
    assert_pending!(fut.poll()); // backing off
    // The retry waits for readiness: the mock allows no more calls yet.
    tokio::time::advance(Duration::from_millis(150)).await;
    assert_pending!(fut.poll());
    assert!(
        handle.poll_request().is_pending(),
        "no call before readiness"
    );
    handle.allow(1);
    assert_pending!(fut.poll());
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req, 1);
    send.send_response(10);
    assert_eq!(assert_ready_ok!(fut.poll()), 10);
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_ends_the_request_with_that_error() {
    let (mut fut, mut handle) = call_through_mock(1);
    assert_pending!(fut.poll());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("first attempt failed");
    handle.send_error("not ready: connection pool closed");
    assert_pending!(fut.poll()); // backing off
    tokio::time::advance(Duration::from_millis(150)).await;
    let err: BoxError = assert_ready_err!(fut.poll());
    assert_eq!(err.to_string(), "not ready: connection pool closed");
}

/// An inner service that takes 10 ms per call and records how many calls overlap: it
/// fails the first attempt of every request, then answers `req * 10`.
#[derive(Clone, Default)]
struct Slow {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
}

impl Service<u32> for Slow {
    type Response = u32;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<u32, std::io::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        let s = self.clone();
        Box::pin(async move {
            let now = s.now.fetch_add(1, Ordering::SeqCst) + 1;
            s.max.fetch_max(now, Ordering::SeqCst);
            s.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            s.now.fetch_sub(1, Ordering::SeqCst);
            if s.failed.lock().unwrap().insert(req) {
                Err(std::io::Error::other("first attempt fails"))
            } else {
                Ok(req * 10)
            }
        })
    }
}

/// 20 concurrent callers, each retried once, through `limit` (or no limit): returns the
/// largest number of calls the inner service saw at once.
async fn max_in_flight(limit: Option<usize>) -> usize {
    let inner = Slow::default();
    // Every first attempt fails: admission control would rightly refuse calls.
    let layer = RetryLayer::new(no_jitter(3))
        .with_budget(Unlimited::new())
        .without_admission();
    let tasks: Vec<_> = match limit {
        Some(n) => {
            let svc = ServiceBuilder::new()
                .layer(layer)
                .concurrency_limit(n)
                .service(inner.clone());
            (0..20)
                .map(|i| tokio::spawn(svc.clone().oneshot(i)))
                .collect()
        }
        None => {
            let svc = layer.layer(inner.clone());
            (0..20)
                .map(|i| tokio::spawn(svc.clone().oneshot(i)))
                .collect()
        }
    };
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), i as u32 * 10);
    }
    assert_eq!(
        inner.calls.load(Ordering::SeqCst),
        40,
        "every request retried once"
    );
    inner.max.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_inside_the_retry_layer_works_across_retries() {
    // The inner service really is concurrent: without a limit, all 20 callers overlap.
    assert_eq!(max_in_flight(None).await, 20);
    // With the limit inside the retry layer, retries take a permit too: never two at once.
    assert_eq!(max_in_flight(Some(1)).await, 1);
    assert_eq!(max_in_flight(Some(3)).await, 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_mid_call_stops_everything() {
    let (mut fut, mut handle) = call_through_mock(10);
    assert_pending!(fut.poll());
    let (_, _send) = handle.next_request().await.unwrap();
    drop(fut);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(
        handle.poll_request().is_ready(),
        "mock reports closed, not a new request"
    );
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn dropping_mid_backoff_makes_no_further_call_and_leaves_budget_consistent() {
    let inner = Flaky::always_failing();
    let budget = RatioBudget::new(Duration::from_secs(10), 1, 0.0).unwrap();
    let svc = RetryLayer::new(no_jitter(3))
        .with_budget(budget.clone())
        .layer(inner.clone());
    let mut fut = task::spawn(svc.oneshot(1));
    assert_pending!(fut.poll()); // first attempt failed, sleeping 100 ms
    assert_eq!(inner.count(), 1);
    assert_eq!(
        budget.remaining(),
        9,
        "the granted retry was withdrawn once"
    );
    drop(fut);
    assert_eq!(budget.remaining(), 9, "dropping gives nothing back");
    // Past the two backoffs the call would have slept (100 + 200 ms), inside the 10 s window:
    // no further attempt and no further withdrawal.
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert_eq!(inner.count(), 1);
    assert_eq!(budget.remaining(), 9, "nothing more was withdrawn");
    // Once the withdrawal leaves the window, the budget is whole again.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(budget.remaining(), 10);
}

#[tokio::test(start_paused = true)]
async fn thousands_of_concurrent_requests_behave_independently() {
    let inner = Flaky::failing(1);
    let done = Arc::new(AtomicUsize::new(0));
    // Every first attempt fails: admission control would rightly refuse calls.
    let svc = RetryLayer::new(RetryConfig::default())
        .with_budget(Unlimited::new())
        .without_admission()
        .layer(inner.clone());
    let tasks: Vec<_> = (0..5000u32)
        .map(|i| {
            let svc = svc.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let v = svc.oneshot(i).await.unwrap();
                assert_eq!(v, i * 10);
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), 5000);
    assert_eq!(inner.count(), 10_000);
    for i in (0..5000).step_by(499) {
        let gap = inner.gaps_ms(i)[0];
        assert!((89.0..=111.0).contains(&gap), "request {i}: {gap}");
    }
}
