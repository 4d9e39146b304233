//! What each attempt is told it has left (the deadline that travels to the server), and the
//! floor under which no retry starts. Paused time: the figures are exact.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer, ServiceExt, service_fn};
use tower_retrier::budget::Unlimited;
use tower_retrier::replay::{AttemptInfo, Replay};
use tower_retrier::{RetryConfig, RetryLayer};

/// Clones requests and records what every attempt was told as it went out.
#[derive(Clone, Debug, Default)]
struct Record(Arc<Mutex<Vec<AttemptInfo>>>);

impl Record {
    fn left(&self) -> Vec<Option<u64>> {
        let seen = self.0.lock().unwrap();
        seen.iter()
            .map(|a| a.time_left.map(|d| d.as_millis() as u64))
            .collect()
    }
    fn numbers(&self) -> Vec<u32> {
        self.0.lock().unwrap().iter().map(|a| a.number).collect()
    }
}

impl Replay<u32> for Record {
    type Request = u32;
    type Saved = u32;
    fn save(&self, req: u32) -> Result<(u32, u32), u32> {
        Ok((req, req))
    }
    fn replay(&self, saved: &mut u32) -> Option<u32> {
        Some(*saved)
    }
    fn before_send(&self, _req: &mut u32, attempt: &AttemptInfo) {
        self.0.lock().unwrap().push(*attempt);
    }
}

/// Fails `failures` times, each after `took`, then answers.
fn slow_flaky(
    failures: u32,
    took: Duration,
) -> (
    impl tower::Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let svc = service_fn(move |req: u32| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(took).await;
            if n < failures {
                Err(std::io::Error::other("unavailable"))
            } else {
                Ok(req)
            }
        }
    });
    (svc, calls)
}

fn config() -> tower_retrier::RetryConfigBuilder {
    RetryConfig::builder()
        .max_attempts(5)
        .jitter(false)
        .initial_delay(Duration::from_millis(100))
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_told_what_is_left_of_the_deadline() {
    let record = Record::default();
    let (svc, calls) = slow_flaky(2, Duration::from_millis(50));
    let cfg = config().deadline(Duration::from_secs(1)).build().unwrap();
    let svc = RetryLayer::new(cfg)
        .with_replay(record.clone())
        .with_budget(Unlimited::new())
        .without_admission()
        .layer(svc);
    assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // 1000 ms; 50 ms of attempt and 100 ms of backoff later, 850; then 50 + 200 more: 600.
    assert_eq!(record.left(), [Some(1000), Some(850), Some(600)]);
    assert_eq!(record.numbers(), [1, 2, 3]);
}

/// What three attempts (two failures of 50 ms, then an answer) are told, under a timed layer.
async fn told_with_attempt_timeout(deadline_ms: u64, attempt_ms: u64) -> Vec<Option<u64>> {
    let record = Record::default();
    let (svc, _) = slow_flaky(2, Duration::from_millis(50));
    let cfg = config()
        .deadline(Duration::from_millis(deadline_ms))
        .attempt_timeout(Duration::from_millis(attempt_ms))
        .build()
        .unwrap();
    let svc = RetryLayer::new(cfg)
        .with_replay(record.clone())
        .with_budget(Unlimited::new())
        .without_admission()
        .timed_attempts()
        .layer(svc);
    assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    record.left()
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_caps_what_an_attempt_is_told() {
    // 300 (the attempt timeout) while the deadline leaves more: 700 - 400 = 300 at the third.
    assert_eq!(told_with_attempt_timeout(700, 300).await, [Some(300); 3]);
    // With a 500 ms deadline the third attempt (at 400 ms) has 100 ms left.
    assert_eq!(
        told_with_attempt_timeout(500, 300).await,
        [Some(300), Some(300), Some(100)]
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_or_attempt_timeout_nothing_is_told() {
    let record = Record::default();
    let (svc, _) = slow_flaky(1, Duration::from_millis(5));
    let svc = RetryLayer::new(config().build().unwrap())
        .with_replay(record.clone())
        .without_admission()
        .layer(svc);
    assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    assert_eq!(record.left(), [None, None]);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_with_less_than_the_floor_left() {
    // Each attempt takes 100 ms, the backoff is 100 ms: the retry would start at 200 ms of a
    // 300 ms deadline, with 100 ms left.
    let run = |floor: Duration| async move {
        let (svc, calls) = slow_flaky(5, Duration::from_millis(100));
        let cfg = config()
            .deadline(Duration::from_millis(300))
            .min_attempt_time(floor)
            .build()
            .unwrap();
        let svc = RetryLayer::new(cfg)
            .with_budget(Unlimited::new())
            .without_admission()
            .layer(svc);
        let _ = svc.oneshot(7).await;
        calls.load(Ordering::SeqCst)
    };
    assert_eq!(
        run(Duration::from_millis(100)).await,
        1,
        "100 ms left is not more than the floor"
    );
    assert_eq!(run(Duration::from_millis(99)).await, 2);
    assert_eq!(run(Duration::ZERO).await, 2);
}

#[test]
fn the_floor_must_be_below_the_deadline() {
    let err = RetryConfig::builder()
        .deadline(Duration::from_millis(10))
        .min_attempt_time(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "min_attempt_time");
}
