//! Delays observed by the inner service follow the backoff formula (paused tokio time).

mod support;

use std::collections::HashSet;
use std::time::Duration;
use support::flaky::Flaky;
use tower::Layer;
use tower_retrier::budget::Unlimited;
use tower_retrier::{RetryConfig, RetryLayer};

#[tokio::test(start_paused = true)]
async fn delays_follow_the_formula_without_jitter_and_cap_at_max_delay() {
    let inner = Flaky::always_failing();
    let cfg = RetryConfig::builder()
        .max_attempts(6)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(700))
        .exponential_base(2.0)
        .jitter(false)
        .build()
        .unwrap();
    let svc = RetryLayer::new(cfg)
        .with_budget(Unlimited::new())
        .layer(inner.clone());
    let _ = svc.oneshot(1).await;
    assert_eq!(inner.gaps_ms(1), vec![100.0, 200.0, 400.0, 700.0, 700.0]);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_bounds() {
    let inner = Flaky::always_failing();
    let cfg = RetryConfig::builder()
        .max_attempts(4)
        .jitter_factor(0.1)
        .build()
        .unwrap();
    let svc = RetryLayer::new(cfg)
        .with_budget(Unlimited::new())
        .seed(7)
        .layer(inner.clone());
    for req in 0..200 {
        let _ = svc.clone().oneshot(req).await;
        for (i, gap) in inner.gaps_ms(req).into_iter().enumerate() {
            let nominal = 100.0 * 2f64.powi(i as i32);
            // Paused time advances in whole milliseconds; allow one tick of rounding.
            assert!(
                gap >= nominal * 0.9 - 1.0 && gap <= nominal * 1.1 + 1.0,
                "req {req} gap {i}: {gap} ms vs nominal {nominal}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_request_draws_its_own_jitter() {
    // tower's ExponentialBackoffMaker hands every request the same sequence; we must not.
    let inner = Flaky::failing(3);
    // Every request fails three times at once: admission control would rightly stop it.
    let svc = RetryLayer::new(RetryConfig::builder().max_attempts(4).build().unwrap())
        .with_budget(Unlimited::new())
        .without_admission()
        .layer(inner.clone());
    let mut tasks = Vec::new();
    for req in 0..100 {
        tasks.push(tokio::spawn(svc.clone().oneshot(req)));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let sequences: HashSet<Vec<u64>> = (0..100)
        .map(|r| {
            inner
                .gaps_ms(r)
                .into_iter()
                .map(|g| g.round() as u64)
                .collect()
        })
        .collect();
    assert!(
        sequences.len() > 90,
        "only {} distinct sequences",
        sequences.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_seed_makes_schedules_reproducible() {
    async fn run(seed: u64) -> Vec<f64> {
        let inner = Flaky::always_failing();
        let svc = RetryLayer::new(RetryConfig::builder().max_attempts(4).build().unwrap())
            .with_budget(Unlimited::new())
            .seed(seed)
            .layer(inner.clone());
        let _ = svc.oneshot(1).await;
        inner.gaps_ms(1)
    }
    assert_eq!(run(11).await, run(11).await);
    assert_ne!(run(11).await, run(12).await);
}
