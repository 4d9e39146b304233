//! End to end through the HTTP preset: a POST is resent only when its `Idempotency-Key`
//! gives the server something to deduplicate by. An empty key made the server see the POST
//! three times.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tower::{Layer, service_fn};
use tower_retrier::replay::ReplayBody;
use tower_retrier::{RetryConfig, RetryLayer};

async fn posts_seen(key: Option<&'static [u8]>) -> u32 {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let unavailable = service_fn(move |_: http::Request<ReplayBody<String>>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::io::Error>(http::Response::builder().status(503).body(()).unwrap()) }
    });
    let config = RetryConfig::builder()
        .max_attempts(3)
        .initial_delay(Duration::from_millis(1))
        .build()
        .unwrap();
    let svc = RetryLayer::new_for_http(config).layer(unavailable);
    let mut req = http::Request::post("/charges");
    if let Some(k) = key {
        req = req.header("idempotency-key", http::HeaderValue::from_bytes(k).unwrap());
    }
    let res = svc
        .oneshot(req.body("{}".to_string()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    calls.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn a_post_is_resent_only_with_a_usable_idempotency_key() {
    assert_eq!(posts_seen(None).await, 1);
    assert_eq!(posts_seen(Some(b"")).await, 1, "empty key");
    assert_eq!(posts_seen(Some(b"   ")).await, 1, "blank key");
    assert_eq!(posts_seen(Some(b"\"\"")).await, 1, "quoted empty key");
    assert_eq!(posts_seen(Some(b"\xff\xfe")).await, 1, "non-UTF-8 key");
    assert_eq!(posts_seen(Some(b"order-42")).await, 3, "a real key");
}
