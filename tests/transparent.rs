//! Transparent resends in the engine, in paused time: what the server did not process is
//! resent at once, uncounted and free of the budget, at most `MAX_TRANSPARENT_RETRIES` times;
//! then it is an ordinary retry. For retries and for hedging alike.

use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, service_fn};
use tower_retrier::budget::Budget;
use tower_retrier::classify::{Decision, RetryReason, classify_fn};
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{MAX_TRANSPARENT_RETRIES, RetryConfig, RetryLayer};

/// What the server answers: `Err("refused")` (never processed), `Err("failed")`, or `Ok`.
fn server(
    script: &'static [&'static str],
) -> (
    impl tower::Service<u32, Response = u32, Error = &'static str, Future: Send> + Clone,
    Arc<Mutex<Vec<Duration>>>,
) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let start = Instant::now();
    let calls = Arc::new(AtomicU32::new(0));
    let svc = service_fn(move |req: u32| {
        log.lock().unwrap().push(start.elapsed());
        let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
        let answer = script.get(n).copied().unwrap_or("ok");
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            match answer {
                "ok" => Ok(req),
                other => Err(other),
            }
        }
    });
    (svc, sent)
}

/// "refused" is transparent, "failed" an ordinary retryable failure.
fn classifier() -> impl tower_retrier::classify::Classify<u32, u32, &'static str> + Clone {
    classify_fn(|_: &u32, r: &Result<u32, &'static str>| match r {
        Ok(_) => Decision::Success,
        Err("refused") => Decision::retry(RetryReason::Transparent),
        Err(_) => Decision::retry(RetryReason::Error),
    })
}

/// Grants no retry.
#[derive(Clone, Debug)]
struct Empty;
impl Budget for Empty {
    type Withdraw = Ready<bool>;
    fn deposit(&self) {}
    fn withdraw(&self) -> Ready<bool> {
        ready(false)
    }
    fn withdraw_now(&self) -> Option<bool> {
        Some(false)
    }
}

fn config(attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .jitter(false)
        .build()
        .unwrap()
}

type Reasons = Arc<Mutex<Vec<RetryReason>>>;

fn hook(reasons: &Reasons) -> impl Fn(&RetryEvent<'_, u32, &'static str>) + Clone + use<> {
    let reasons = reasons.clone();
    move |e| reasons.lock().unwrap().push(e.reason())
}

#[tokio::test(start_paused = true)]
async fn resent_at_once_uncounted_and_free() {
    let (svc, sent) = server(&["refused", "refused", "refused"]);
    let reasons = Reasons::default();
    let svc = RetryLayer::new(config(1))
        .with_classifier(classifier())
        .with_budget(Empty)
        .on_retry(hook(&reasons))
        .without_admission()
        .layer(svc);
    assert_eq!(svc.oneshot(7).await, Ok(7));
    // No backoff: each resend leaves as the refusal arrives (10 ms per attempt).
    let ms: Vec<u128> = sent.lock().unwrap().iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [0, 10, 20, 30]);
    assert_eq!(*reasons.lock().unwrap(), [RetryReason::Transparent; 3]);
}

#[tokio::test(start_paused = true)]
async fn after_the_allowance_a_refusal_is_an_ordinary_retry() {
    assert_eq!(MAX_TRANSPARENT_RETRIES, 3);
    let (svc, sent) = server(&["refused"; 10]);
    let reasons = Reasons::default();
    let svc = RetryLayer::new(config(2))
        .with_classifier(classifier())
        .on_retry(hook(&reasons))
        .without_admission()
        .layer(svc);
    assert_eq!(svc.oneshot(7).await, Err("refused"));
    use RetryReason::{NotSent, Transparent};
    assert_eq!(
        *reasons.lock().unwrap(),
        [Transparent, Transparent, Transparent, NotSent]
    );
    // The ordinary retry waits its backoff (100 ms) after the fourth refusal at 40 ms.
    let ms: Vec<u128> = sent.lock().unwrap().iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [0, 10, 20, 30, 140]);

    // With a budget that grants nothing, the call ends after the resends.
    let (svc, sent) = server(&["refused"; 10]);
    let svc = RetryLayer::new(config(3))
        .with_classifier(classifier())
        .with_budget(Empty)
        .without_admission()
        .layer(svc);
    assert_eq!(svc.oneshot(7).await, Err("refused"));
    assert_eq!(sent.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_allowance_is_per_call_and_mixes_with_ordinary_retries() {
    let (svc, sent) = server(&["failed", "refused", "refused", "ok"]);
    let svc = RetryLayer::new(config(2))
        .with_classifier(classifier())
        .without_admission()
        .layer(svc);
    assert_eq!(svc.oneshot(7).await, Ok(7));
    // Attempt 1 fails (10 ms), backoff 100 ms, attempt 2 at 110 refused twice and resent.
    let ms: Vec<u128> = sent.lock().unwrap().iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [0, 110, 120, 130]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_hedge_is_resent_outside_the_hedging_schedule() {
    let (svc, sent) = server(&["refused", "refused"]);
    let hedging = HedgeConfig::builder()
        .delay(Duration::from_millis(50))
        .max_attempts(2)
        .build()
        .unwrap();
    let reasons = Reasons::default();
    let svc = RetryLayer::new(config(2))
        .with_classifier(classifier())
        .with_budget(Empty)
        .on_retry(hook(&reasons))
        .without_admission()
        .hedge(hedging)
        .layer(svc);
    assert_eq!(svc.oneshot(7).await, Ok(7));
    // Refused at 10 and 20: resent at once, without the budget (which grants nothing).
    let ms: Vec<u128> = sent.lock().unwrap().iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [0, 10, 20]);
    assert_eq!(*reasons.lock().unwrap(), [RetryReason::Transparent; 2]);
}
