//! Hedging semantics (gRFC A6) in paused time: the first final result wins and the losers'
//! futures are dropped at once; a non-fatal result sends the next hedge at once; the budget
//! is asked for every hedge; `max_attempts` bounds the total; pushback delays the next hedge;
//! requests that must not be sent twice are never hedged.

use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_retrier::budget::Budget;
use tower_retrier::classify::{Decision, RetryReason, classify_fn};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::replay::Idempotent;
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{RetryConfig, RetryLayer};

/// What the n-th attempt does: answer `outcome` after `delay_ms`.
#[derive(Clone, Copy, Debug)]
struct Step {
    delay_ms: u64,
    outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Ok,
    Retryable,
    Fatal,
}

fn step(delay_ms: u64, outcome: Outcome) -> Step {
    Step { delay_ms, outcome }
}

/// One attempt as the server saw it: when it started, and whether its future was dropped
/// before it answered (cancelled) or answered.
#[derive(Clone, Debug, Default)]
struct Seen {
    started_ms: u64,
    cancelled_at_ms: Option<u64>,
    answered: bool,
}

/// Sets `cancelled_at_ms` if the attempt's future is dropped before it answered.
struct DropGuard {
    log: Arc<Mutex<Vec<Seen>>>,
    index: usize,
    t0: Instant,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let mut log = self.log.lock().unwrap();
        if !log[self.index].answered {
            log[self.index].cancelled_at_ms = Some(self.t0.elapsed().as_millis() as u64);
        }
    }
}

/// A service that plays `script` (the last step repeats) and logs every attempt.
#[derive(Clone)]
struct Scripted {
    script: Arc<Vec<Step>>,
    log: Arc<Mutex<Vec<Seen>>>,
    t0: Instant,
}

impl Scripted {
    fn new(script: Vec<Step>) -> Self {
        Scripted {
            script: Arc::new(script),
            log: Arc::default(),
            t0: Instant::now(),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn starts(&self) -> Vec<u64> {
        self.seen().iter().map(|s| s.started_ms).collect()
    }
}

impl<Req> Service<Req> for Scripted {
    type Response = (usize, Outcome);
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<(usize, Outcome), std::io::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        let index = {
            let mut log = self.log.lock().unwrap();
            log.push(Seen {
                started_ms: self.t0.elapsed().as_millis() as u64,
                ..Seen::default()
            });
            log.len() - 1
        };
        let s = self.script[index.min(self.script.len() - 1)];
        let guard = DropGuard {
            log: self.log.clone(),
            index,
            t0: self.t0,
        };
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(s.delay_ms)).await;
            guard.log.lock().unwrap()[guard.index].answered = true;
            Ok((index, s.outcome))
        })
    }
}

/// Success for `Ok`, "retry" (non-fatal) for `Retryable`, final failure for `Fatal`.
fn by_outcome<Q>()
-> impl tower_retrier::classify::Classify<Q, (usize, Outcome), std::io::Error> + Clone {
    classify_fn(
        |_: &Q, r: &Result<(usize, Outcome), std::io::Error>| match r {
            Ok((_, Outcome::Ok)) => Decision::Success,
            Ok((_, Outcome::Retryable)) => Decision::retry(RetryReason::ServerError),
            Ok((_, Outcome::Fatal)) | Err(_) => Decision::Fail,
        },
    )
}

fn hedging(delay_ms: u64, max_attempts: u32) -> HedgeConfig {
    HedgeConfig::builder()
        .delay(Duration::from_millis(delay_ms))
        .max_attempts(max_attempts)
        .build()
        .unwrap()
}

fn layer(
    cfg: HedgeConfig,
) -> tower_retrier::hedge::HedgeLayer<
    tower_retrier::backoff::Exponential,
    impl tower_retrier::classify::Classify<u32, (usize, Outcome), std::io::Error> + Clone,
    tower_retrier::budget::AdaptiveBudget,
    tower_retrier::replay::CloneRequest,
    tower_retrier::telemetry::NoHook,
    tower_retrier::admission::Admission,
> {
    RetryLayer::new(RetryConfig::default())
        .with_classifier(by_outcome::<u32>())
        .hedge(cfg)
}

#[tokio::test(start_paused = true)]
async fn the_first_final_answer_wins_and_the_loser_is_dropped_at_once() {
    let inner = Scripted::new(vec![step(1000, Outcome::Ok), step(10, Outcome::Ok)]);
    let svc = layer(hedging(20, 2)).layer(inner.clone());
    let t0 = Instant::now();
    let (winner, _) = svc.oneshot(1).await.unwrap();
    assert_eq!(winner, 1, "the hedge answered first");
    assert_eq!(t0.elapsed(), Duration::from_millis(30));
    let seen = inner.seen();
    assert_eq!(inner.starts(), [0, 20]);
    assert_eq!(
        seen[0].cancelled_at_ms,
        Some(30),
        "the slow first attempt is dropped the moment the hedge wins"
    );
    assert!(seen[1].answered);
}

#[tokio::test(start_paused = true)]
async fn a_fast_first_attempt_sends_no_hedge() {
    let inner = Scripted::new(vec![step(10, Outcome::Ok)]);
    let svc = layer(hedging(20, 3)).layer(inner.clone());
    svc.oneshot(1).await.unwrap();
    assert_eq!(inner.starts(), [0]);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_answer_also_wins_and_cancels_the_rest() {
    // Attempt 2 (sent at 20 ms) fails fatally at 25 ms; attempts 1 and 3 are dropped.
    let inner = Scripted::new(vec![
        step(1000, Outcome::Ok),
        step(5, Outcome::Fatal),
        step(1000, Outcome::Ok),
    ]);
    let svc = layer(hedging(20, 3)).layer(inner.clone());
    let (index, outcome) = svc.oneshot(1).await.unwrap();
    assert_eq!((index, outcome), (1, Outcome::Fatal));
    let seen = inner.seen();
    assert_eq!(
        inner.starts(),
        [0, 20],
        "no third attempt after the final answer"
    );
    assert_eq!(seen[0].cancelled_at_ms, Some(25));
}

#[tokio::test(start_paused = true)]
async fn a_non_fatal_answer_sends_the_next_hedge_at_once_and_the_others_continue() {
    // Attempt 1 is slow; attempt 2 (at 20 ms) fails non-fatally at 22 ms, so attempt 3 goes
    // at 22 ms rather than 40 ms; attempt 1 keeps running and answers first at 30 ms.
    let inner = Scripted::new(vec![
        step(30, Outcome::Ok),
        step(2, Outcome::Retryable),
        step(1000, Outcome::Ok),
    ]);
    let svc = layer(hedging(20, 3)).layer(inner.clone());
    let (index, _) = svc.oneshot(1).await.unwrap();
    assert_eq!(
        index, 0,
        "the first attempt was not cancelled by the non-fatal answer"
    );
    assert_eq!(inner.starts(), [0, 20, 22]);
    assert_eq!(inner.seen()[2].cancelled_at_ms, Some(30));
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bounds_the_hedges_and_the_last_non_fatal_answer_stands() {
    let inner = Scripted::new(vec![step(100, Outcome::Retryable)]);
    let svc = layer(hedging(20, 3)).layer(inner.clone());
    let t0 = Instant::now();
    let (index, outcome) = svc.oneshot(1).await.unwrap();
    assert_eq!(
        inner.starts(),
        [0, 20, 40],
        "three attempts, never a fourth"
    );
    assert_eq!((index, outcome), (2, Outcome::Retryable));
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(140),
        "waits for every attempt"
    );
}

/// A budget that grants `allow` withdrawals and counts every request for one.
#[derive(Clone, Default)]
struct Counting {
    allow: Arc<AtomicU32>,
    asked: Arc<AtomicU32>,
}

impl Budget for Counting {
    type Withdraw = Ready<bool>;
    fn deposit(&self) {}
    fn withdraw(&self) -> Ready<bool> {
        ready(self.withdraw_now().unwrap())
    }
    fn withdraw_now(&self) -> Option<bool> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Some(
            self.allow
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
        )
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_asked_for_every_hedge_and_a_denied_hedge_is_not_sent() {
    let budget = Counting::default();
    budget.allow.store(1, Ordering::SeqCst);
    let inner = Scripted::new(vec![step(1000, Outcome::Ok)]);
    let svc = RetryLayer::new(RetryConfig::default())
        .with_classifier(by_outcome::<u32>())
        .with_budget(budget.clone())
        .hedge(hedging(20, 4))
        .layer(inner.clone());
    let (index, _) = svc.oneshot(1).await.unwrap();
    assert_eq!(index, 0);
    assert_eq!(inner.starts(), [0, 20], "the second hedge was denied");
    assert_eq!(
        budget.asked.load(Ordering::SeqCst),
        2,
        "asked for hedges 2 and 3 (the first attempt is free); after a denial no more"
    );
}

#[tokio::test(start_paused = true)]
async fn server_pushback_delays_the_next_hedge() {
    // Attempt 1 answers "retry in 100 ms" at 5 ms: the next hedge waits until 105 ms
    // instead of going at once (or at the 20 ms hedging delay).
    let inner = Scripted::new(vec![step(5, Outcome::Retryable), step(1, Outcome::Ok)]);
    let classifier = classify_fn(
        |_: &u32, r: &Result<(usize, Outcome), std::io::Error>| match r {
            Ok((_, Outcome::Retryable)) => {
                Decision::retry_after(RetryReason::Throttled, Duration::from_millis(100))
            }
            _ => Decision::Success,
        },
    );
    let svc = RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier)
        .hedge(hedging(20, 2))
        .layer(inner.clone());
    svc.oneshot(1).await.unwrap();
    assert_eq!(inner.starts(), [0, 105]);
}

/// A request that says it must not be sent twice (like an HTTP POST).
#[derive(Clone, Debug)]
struct Charge;
impl Idempotent for Charge {
    fn is_idempotent(&self) -> bool {
        false
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_is_not_idempotent_is_never_hedged_without_opt_in() {
    let inner = Scripted::new(vec![step(1000, Outcome::Ok)]);
    let svc = RetryLayer::new(RetryConfig::default())
        .with_classifier(by_outcome::<Charge>())
        .hedge(hedging(20, 3))
        .layer(inner.clone());
    svc.oneshot(Charge).await.unwrap();
    assert_eq!(inner.starts(), [0]);

    let inner = Scripted::new(vec![step(1000, Outcome::Ok)]);
    let svc = RetryLayer::new(RetryConfig::default())
        .with_classifier(by_outcome::<Charge>())
        .retry_non_idempotent(true)
        .hedge(hedging(20, 3))
        .layer(inner.clone());
    svc.oneshot(Charge).await.unwrap();
    assert_eq!(inner.starts(), [0, 20, 40]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_drops_every_attempt() {
    let inner = Scripted::new(vec![step(1000, Outcome::Ok)]);
    let svc = layer(hedging(20, 3)).layer(inner.clone());
    let res = tokio::time::timeout(Duration::from_millis(50), svc.oneshot(1)).await;
    assert!(res.is_err());
    let seen = inner.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s.cancelled_at_ms == Some(50)),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_hook_hears_hedges_sent_after_a_non_fatal_answer() {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = reasons.clone();
    let inner = Scripted::new(vec![step(2, Outcome::Retryable), step(5, Outcome::Ok)]);
    let svc = RetryLayer::new(RetryConfig::default())
        .with_classifier(by_outcome::<u32>())
        .on_retry(move |e: &RetryEvent<'_, _, _>| seen.lock().unwrap().push(e.reason()))
        .hedge(hedging(20, 3))
        .layer(inner.clone());
    svc.oneshot(1).await.unwrap();
    assert_eq!(inner.starts(), [0, 2]);
    assert_eq!(*reasons.lock().unwrap(), [RetryReason::ServerError]);
}

#[tokio::test(start_paused = true)]
async fn hedges_and_the_attempt_timeout_compose() {
    // Every attempt hangs; each is cut after 50 ms; with 2 attempts (0 ms and 20 ms) the call
    // ends when the second is cut, at 70 ms, with a timeout error.
    let calls = Arc::new(AtomicU32::new(0));
    let count = calls.clone();
    let inner = service_fn(move |_: u32| {
        count.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, std::io::Error>(())
        }
    });
    let cfg = RetryConfig::builder()
        .attempt_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let svc = RetryLayer::new(cfg)
        .hedge(hedging(20, 2))
        .timed_attempts()
        .layer(inner);
    let t0 = Instant::now();
    let err = svc.oneshot(1).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(t0.elapsed(), Duration::from_millis(70));
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_delay_follows_the_latency_percentile() {
    // 64 calls answering in 10 ms teach the layer its p95 (10 ms, above the 2 ms floor and
    // below the 500 ms ceiling); then a call whose first attempt hangs is hedged at 10 ms,
    // not at the 500 ms used before there was data.
    let mut script = vec![step(10, Outcome::Ok); 64];
    script.push(step(1000, Outcome::Ok));
    script.push(step(10, Outcome::Ok));
    let inner = Scripted::new(script);
    let cfg = HedgeConfig::builder()
        .percentile(95.0, Duration::from_millis(2), Duration::from_millis(500))
        .max_attempts(2)
        .build()
        .unwrap();
    let svc = layer(cfg).layer(inner.clone());
    for i in 0..64 {
        svc.clone().oneshot(i).await.unwrap();
    }
    assert_eq!(
        inner.seen().len(),
        64,
        "no hedge while every answer is fast"
    );
    let t0 = Instant::now();
    let (index, _) = svc.oneshot(64).await.unwrap();
    assert_eq!(index, 65, "the hedge answered");
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(20),
        "hedged at 10 ms, answered 10 ms later"
    );
}

#[tokio::test(start_paused = true)]
async fn no_hedge_is_sent_past_the_deadline() {
    let inner = Scripted::new(vec![step(1000, Outcome::Ok)]);
    let cfg = RetryConfig::builder()
        .deadline(Duration::from_millis(30))
        .build()
        .unwrap();
    let svc = RetryLayer::new(cfg)
        .with_classifier(by_outcome::<u32>())
        .hedge(hedging(20, 5))
        .layer(inner.clone());
    svc.oneshot(1).await.unwrap();
    assert_eq!(
        inner.starts(),
        [0, 20],
        "the hedge due at 40 ms is past the 30 ms deadline"
    );
}

// -- Duration arithmetic: no configuration or server answer may panic a hedged call --

#[tokio::test(start_paused = true)]
async fn a_duration_max_delay_hedges_only_after_non_fatal_answers_without_overflowing() {
    // After the first non-fatal answer the hedge goes at once; the next one is due
    // "Duration::MAX" later, which used to panic with "overflow when adding duration to
    // instant".
    let cfg = HedgeConfig::builder()
        .delay(Duration::MAX)
        .max_attempts(3)
        .build()
        .unwrap();
    let inner = Scripted::new(vec![step(10, Outcome::Retryable), step(10, Outcome::Ok)]);
    let svc = layer(cfg).layer(inner.clone());
    let (winner, outcome) = svc.oneshot(1).await.unwrap();
    assert_eq!((winner, outcome), (1, Outcome::Ok));
    assert_eq!(inner.starts(), [0, 10]);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_pushback_under_an_absurd_max_delay_waits_instead_of_panicking() {
    // `max_delay` of ~300 billion years (accepted by serde) and a server asking for
    // 9.3 × 10^18 s: the delay is honoured (the call waits), it must not panic.
    let config = RetryConfig::builder()
        .max_delay(Duration::from_secs(300_000_000_000 * 31_557_600))
        .build()
        .unwrap();
    let pushback = classify_fn(
        |_: &u32, r: &Result<(usize, Outcome), std::io::Error>| match r {
            Ok((_, Outcome::Ok)) => Decision::Success,
            _ => Decision::retry_after(
                RetryReason::Throttled,
                Duration::from_secs(9_300_000_000_000_000_000),
            ),
        },
    );
    let inner = Scripted::new(vec![step(10, Outcome::Retryable), step(10, Outcome::Ok)]);
    let svc = RetryLayer::new(config)
        .with_classifier(pushback)
        .hedge(hedging(1_000_000, 2))
        .layer(inner.clone());
    let waited = tokio::time::timeout(Duration::from_secs(3600), svc.oneshot(1)).await;
    assert!(waited.is_err(), "still waiting as the server asked");
    assert_eq!(inner.starts(), [0]);
}
