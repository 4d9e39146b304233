//! Attempts, classification, budgets and deadlines of the retry engine.

mod support;

use std::time::Duration;
use support::flaky::Flaky;
use tower::Layer;
use tower_retrier::budget::{RatioBudget, TokenBucket, Unlimited};
use tower_retrier::classify::{ClassifyExt, Decision, MatchErrors, RetryReason, classify_fn};
use tower_retrier::replay::replay_fn;
use tower_retrier::{RetryConfig, RetryLayer};

fn config(attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .jitter(false)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn always_failing_service_gets_exactly_max_attempts_and_the_last_error() {
    for attempts in [1, 2, 3, 5] {
        let inner = Flaky::always_failing();
        let svc = RetryLayer::new(config(attempts))
            .with_budget(Unlimited::new())
            .layer(inner.clone());
        let err = svc.oneshot(1).await.unwrap_err();
        assert_eq!(inner.count(), attempts as usize);
        assert_eq!(err.to_string(), format!("attempt {attempts} failed"));
    }
}

#[tokio::test(start_paused = true)]
async fn recovers_when_a_retry_succeeds() {
    let inner = Flaky::failing(2);
    let svc = RetryLayer::new(config(3)).layer(inner.clone());
    assert_eq!(svc.oneshot(4).await.unwrap(), 40);
    assert_eq!(inner.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_return_at_once() {
    let inner = Flaky::always_failing();
    let svc = RetryLayer::new(config(5))
        .with_classifier(MatchErrors::typed().never::<std::io::Error>())
        .layer(inner.clone());
    assert!(svc.oneshot(1).await.is_err());
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_ok_responses_matching_a_predicate() {
    // The service answers 1, 2, 3, ... (one more per call); answers below 3 are "bad".
    let counting = || {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = calls.clone();
        let svc = tower::service_fn(move |_: u32| {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move { Ok::<u32, std::io::Error>(n) }
        });
        (svc, calls)
    };
    let layer = |attempts| {
        RetryLayer::new(config(attempts)).with_classifier(
            tower_retrier::classify::RetryAnyError::new().retry_response_if(|v: &u32| *v < 3),
        )
    };
    // Retried while the predicate holds, and not once more after it turns false.
    let (svc, calls) = counting();
    assert_eq!(layer(5).layer(svc).oneshot(1).await.unwrap(), 3);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    // Out of attempts while still bad: the last response is returned.
    let (svc, calls) = counting();
    assert_eq!(
        layer(2).layer(svc).oneshot(1).await.unwrap(),
        2,
        "last result is returned"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn classifier_sees_the_request() {
    let inner = Flaky::always_failing();
    let only_even = classify_fn(|req: &u32, res: &Result<u32, std::io::Error>| match res {
        Err(_) if req.is_multiple_of(2) => Decision::retry(RetryReason::Error),
        Err(_) => Decision::Fail,
        Ok(_) => Decision::Success,
    });
    let layer = RetryLayer::new(config(3)).with_classifier(only_even);
    assert!(layer.layer(inner.clone()).oneshot(3).await.is_err());
    assert_eq!(inner.count(), 1);
    assert!(layer.layer(inner.clone()).oneshot(4).await.is_err());
    assert_eq!(inner.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn denied_budget_stops_retrying_and_returns_the_last_result() {
    let inner = Flaky::always_failing();
    let budget = RatioBudget::new(Duration::from_secs(10), 0, 0.5).unwrap();
    let layer = RetryLayer::new(config(3)).with_budget(budget.clone());
    let svc = layer.layer(inner.clone());
    // Request 1 deposits 0.5 retries: not enough for one, so it fails at once.
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(err.to_string(), "attempt 1 failed");
    // Request 2 brings the total to 1.0: one retry granted, the next denied.
    let err = svc.oneshot(2).await.unwrap_err();
    assert_eq!(err.to_string(), "attempt 2 failed");
    assert_eq!(inner.count(), 3);
    assert_eq!(budget.remaining(), 0);
}

#[tokio::test(start_paused = true)]
async fn token_bucket_throttles_like_grpc() {
    let inner = Flaky::always_failing();
    let bucket = TokenBucket::new(10, 0.1).unwrap();
    let svc = RetryLayer::new(config(5))
        .with_budget(bucket.clone())
        .layer(inner.clone());
    // 10 tokens, retries only while more than 5 remain: request 0 takes 4 retries
    // (10 → 6) and exhausts its 5 attempts; every later request is denied at once.
    for i in 0..5 {
        let _ = svc.clone().oneshot(i).await;
    }
    assert_eq!(inner.count(), 5 + 4);
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_when_the_next_backoff_would_overrun_it() {
    let inner = Flaky::always_failing();
    let cfg = RetryConfig::builder()
        .max_attempts(10)
        .jitter(false)
        .deadline(Duration::from_millis(250))
        .build()
        .unwrap();
    let svc = RetryLayer::new(cfg)
        .with_budget(Unlimited::new())
        .layer(inner.clone());
    let err = svc.oneshot(1).await.unwrap_err();
    // t=0 fail, sleep 100 → t=100 fail; the next sleep (200) would end at 300 > 250.
    assert_eq!(inner.count(), 2);
    assert_eq!(err.to_string(), "attempt 2 failed");
}

#[tokio::test(start_paused = true)]
async fn server_pushback_is_capped_only_with_pushback_cap() {
    let inner = Flaky::always_failing();
    let cfg = RetryConfig::builder()
        .max_attempts(3)
        .jitter(false)
        .max_delay(Duration::from_secs(2))
        .pushback(tower_retrier::Pushback::Cap)
        .build()
        .unwrap();
    let pushback = classify_fn(|_: &u32, res: &Result<u32, std::io::Error>| match res {
        Err(_) => Decision::retry_after(RetryReason::Throttled, Duration::from_secs(3600)),
        Ok(_) => Decision::Success,
    });
    let svc = RetryLayer::new(cfg)
        .with_classifier(pushback)
        .with_budget(Unlimited::new())
        .layer(inner.clone());
    let _ = svc.oneshot(7).await;
    assert_eq!(
        inner.gaps_ms(7),
        vec![2000.0, 2000.0],
        "with Pushback::Cap an hour is capped at max_delay"
    );
}

#[tokio::test(start_paused = true)]
async fn unreplayable_requests_are_sent_once() {
    let inner = Flaky::always_failing();
    let svc = RetryLayer::new(config(3))
        .with_replay(replay_fn(|_: &u32| None))
        .layer(inner.clone());
    assert!(svc.oneshot(1).await.is_err());
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn on_retry_hook_sees_every_retry() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let inner = Flaky::failing(2);
    let svc = RetryLayer::new(config(5))
        .on_retry(
            move |e: &tower_retrier::telemetry::RetryEvent<'_, u32, std::io::Error>| {
                let msg = e.result().as_ref().unwrap_err().to_string();
                log.lock().unwrap().push((e.attempt(), e.delay(), msg));
            },
        )
        .layer(inner);
    assert_eq!(svc.oneshot(1).await.unwrap(), 10);
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            (
                1,
                Duration::from_millis(100),
                "attempt 1 failed".to_string()
            ),
            (
                2,
                Duration::from_millis(200),
                "attempt 2 failed".to_string()
            ),
        ]
    );
}
