//! The Redis budget's two constructors build the mode they name, with that mode's settings
//! only (the other mode's do not compile: see the `compile_fail` example of
//! `RedisBudgetBuilder`); the deprecated `RedisBudget::builder` refuses, naming the setting,
//! what does not belong to its mode or is ambiguous without one, and builds the same shared
//! state as the new constructors for the same parameters.

mod support;

use std::time::Duration;
use support::budget::take;
use support::redis::RedisServer;
use tower_retrier::budget::redis::{Mode, RedisBudgetBuilder, RedisBudgetError, Unavailable};
use tower_retrier::budget::{Budget, RedisBudget};

/// Builds `b` so that every grant goes to Redis (a lease of one) and nothing falls back
/// locally.
async fn build<M>(b: RedisBudgetBuilder<M>, url: &str) -> RedisBudget {
    b.lease_size(1)
        .command_timeout(Duration::from_millis(500))
        .on_unavailable(Unavailable::Deny)
        .build_from_url(url)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_constructor_builds_the_mode_it_names() {
    let server = RedisServer::start();
    let url = server.url();
    // Adaptive: a stock of max_retries, nothing earned without successes or time.
    let adaptive = build(
        RedisBudget::adaptive("stock")
            .max_retries(3)
            .per_success(0.5)
            .min_per_sec(0),
        &url,
    )
    .await;
    assert_eq!(adaptive.mode(), Mode::Adaptive);
    assert_eq!(take(&adaptive, 10).await, 3);
    // Two successes at 0.5 each pay for one retry.
    adaptive.record_success();
    adaptive.record_success();
    adaptive.flush().await.unwrap();
    assert_eq!(take(&adaptive, 10).await, 1);
    assert_eq!(server.command(&["EXISTS", "{rb:stock}:q"]).trim(), "1");
    let debug = format!("{adaptive:?}");
    assert!(
        debug.contains("max_retries: 3") && debug.contains("per_success: 0.5"),
        "{debug}"
    );
    assert!(
        !debug.contains("ttl"),
        "no window in adaptive mode: {debug}"
    );

    // Ratio: min_per_sec × ttl per window, plus ratio per request.
    let ratio = build(
        RedisBudget::ratio("window")
            .ttl(Duration::from_secs(2))
            .min_per_sec(2)
            .ratio(0.5),
        &url,
    )
    .await;
    assert_eq!(ratio.mode(), Mode::Ratio);
    for _ in 0..4 {
        ratio.deposit();
    }
    ratio.flush().await.unwrap();
    assert_eq!(
        take(&ratio, 20).await,
        4 + 2,
        "2/s × 2 s, plus 4 requests × 0.5"
    );
    assert_eq!(server.command(&["EXISTS", "{rb:window}:w"]).trim(), "1");
    let debug = format!("{ratio:?}");
    assert!(
        debug.contains("ttl: 2s") && debug.contains("ratio: 0.5"),
        "{debug}"
    );
    assert!(
        !debug.contains("max_retries"),
        "no stock in ratio mode: {debug}"
    );
}

#[test]
#[allow(deprecated)] // the deprecated path is what this test covers
fn the_deprecated_builder_names_the_setting_it_refuses() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Settings are checked before connecting: nothing listens on port 1.
    let refused = |b: RedisBudgetBuilder| match rt.block_on(b.build_from_url("redis://127.0.0.1:1"))
    {
        Err(RedisBudgetError::Config(c)) => (c.field(), c.to_string()),
        other => panic!("expected a setting refused, got {other:?}"),
    };
    let b = || RedisBudget::builder("old");

    // The calls that built a ratio budget before the adaptive one became the default.
    let (field, message) = refused(b().ttl(Duration::from_secs(10)).min_per_sec(10).ratio(0.2));
    assert_eq!(field, "ratio");
    assert!(message.contains("RedisBudget::ratio(name)"), "{message}");
    assert!(message.contains("per success"), "{message}");
    let (field, message) = refused(b().ttl(Duration::from_secs(10)));
    assert_eq!(field, "ttl");
    assert!(message.contains("ambiguous"), "{message}");
    assert_eq!(refused(b().min_per_sec(10)).0, "min_per_sec");

    // Settings of the other mode.
    let (field, message) = refused(b().mode(Mode::Ratio).max_retries(100));
    assert_eq!(field, "max_retries");
    assert!(message.contains("ratio mode"), "{message}");
    let (field, message) = refused(b().mode(Mode::Adaptive).ttl(Duration::from_secs(10)));
    assert_eq!(field, "ttl");
    assert!(message.contains("adaptive mode"), "{message}");
    // `max_retries` says adaptive mode was meant; a window still does not belong to it.
    assert_eq!(
        refused(b().max_retries(100).ttl(Duration::from_secs(10))).0,
        "ttl"
    );

    // Out of range: the setting that was called is named (adaptive mode's `ratio` is its
    // `per_success`).
    assert_eq!(refused(b().max_retries(100).ratio(-1.0)).0, "ratio");
    assert_eq!(refused(b().mode(Mode::Ratio).ratio(-1.0)).0, "ratio");
    assert_eq!(refused(b().max_retries(0)).0, "max_retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // the deprecated path is what this test covers
async fn the_deprecated_builder_builds_what_the_new_constructors_build() {
    let server = RedisServer::start();
    let url = server.url();
    // No mode, no setting: the adaptive default.
    let plain = RedisBudget::builder("plain")
        .build_from_url(&url)
        .await
        .unwrap();
    assert_eq!(plain.mode(), Mode::Adaptive);

    // The same shared state as the new constructors for the same parameters: instances of a
    // fleet half upgraded share one budget without a parameter mismatch.
    let old = build(
        RedisBudget::builder("stock")
            .max_retries(4)
            .ratio(0.5)
            .min_per_sec(0),
        &url,
    )
    .await;
    let new = build(
        RedisBudget::adaptive("stock")
            .max_retries(4)
            .per_success(0.5)
            .min_per_sec(0),
        &url,
    )
    .await;
    assert_eq!(old.mode(), Mode::Adaptive);
    assert_eq!(take(&old, 2).await + take(&new, 10).await, 4);
    assert_eq!(old.stats().parameter_mismatches, 0);
    assert_eq!(new.stats().parameter_mismatches, 0);

    let old = build(
        RedisBudget::builder("window")
            .mode(Mode::Ratio)
            .ttl(Duration::from_secs(2))
            .min_per_sec(3)
            .ratio(0.0),
        &url,
    )
    .await;
    let new = build(
        RedisBudget::ratio("window")
            .ttl(Duration::from_secs(2))
            .min_per_sec(3)
            .ratio(0.0),
        &url,
    )
    .await;
    assert_eq!(old.mode(), Mode::Ratio);
    assert_eq!(take(&old, 2).await + take(&new, 10).await, 6, "3/s × 2 s");
    assert_eq!(old.stats().parameter_mismatches, 0);
    assert_eq!(new.stats().parameter_mismatches, 0);
}
