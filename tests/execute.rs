//! The function API, `execute_with_retry`: attempts, what `retry_on` retries and the config's
//! deadline (the names it reports in telemetry: `execute_telemetry.rs`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::BoxError;
use tower_retrier::classify::MatchErrors;
use tower_retrier::{RetryConfig, execute_with_retry};

fn config(attempts: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(attempts)
        .initial_delay(Duration::from_millis(100))
        .jitter(false)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retries_up_to_max_attempts_and_returns_the_last_error() {
    for attempts in [1, 3, 5] {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<(), std::io::Error> = execute_with_retry(
            &config(attempts),
            MatchErrors::typed().retry::<std::io::Error>(),
            "inventory",
            "count",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                Err(std::io::Error::other(format!("attempt {n}")))
            },
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), attempts);
        assert_eq!(
            result.unwrap_err().to_string(),
            format!("attempt {attempts}")
        );
        // 100, 200, 400, 800 ms between attempts (no jitter).
        let slept: u64 = (0..attempts - 1).map(|i| 100 << i).sum();
        assert_eq!(start.elapsed(), Duration::from_millis(slept));
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_returns_its_value() {
    let calls = AtomicU32::new(0);
    let value = execute_with_retry(
        &config(3),
        MatchErrors::typed().retry::<std::io::Error>(),
        "inventory",
        "count",
        || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(std::io::Error::other("reset")),
                _ => Ok(42),
            }
        },
    )
    .await;
    assert_eq!(value.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn only_the_retry_on_types_are_retried() {
    let run = |fail_with: fn() -> BoxError| async move {
        let calls = AtomicU32::new(0);
        let result: Result<(), BoxError> = execute_with_retry(
            &config(4),
            MatchErrors::boxed().retry::<std::io::Error>(),
            "inventory",
            "count",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fail_with())
            },
        )
        .await;
        assert!(result.is_err());
        calls.load(Ordering::SeqCst)
    };
    assert_eq!(run(|| std::io::Error::other("reset").into()).await, 4);
    assert_eq!(
        run(|| Box::new(std::fmt::Error)).await,
        1,
        "not a retry_on type"
    );
    assert_eq!(
        run(|| "a plain message".into()).await,
        1,
        "not a retry_on type"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_retries_and_returns_the_last_result() {
    let cfg = RetryConfig::builder()
        .max_attempts(10)
        .initial_delay(Duration::from_millis(100))
        .jitter(false)
        .deadline(Duration::from_millis(250))
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let result: Result<(), std::io::Error> = execute_with_retry(
        &cfg,
        MatchErrors::typed().retry::<std::io::Error>(),
        "inventory",
        "count",
        || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Err(std::io::Error::other(format!("attempt {n}")))
        },
    )
    .await;
    // Attempts at 0 and 100 ms; the next backoff (200 ms) would end at 300 ms > 250 ms.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(result.unwrap_err().to_string(), "attempt 2");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(100),
        "no sleep past the deadline"
    );
}
