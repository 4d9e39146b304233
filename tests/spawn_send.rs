//! Retried calls over mock services with boxed errors can be `tokio::spawn`ed, and the
//! default classifier still looks into the boxed error. A compile test first: each case
//! below must build.
//!
//! The one shape that cannot be spawned, `service_fn(|req| async move { .. Ok::<_, BoxError>(..) })`
//! (the error type written inside the closure's async block), is a compiler limitation that
//! tower's own `.timeout()` shares; `ui-tests/tests/ui/spawn_closure_with_boxed_errors.rs`
//! records it, and the README gives the workarounds used here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tower::{BoxError, Layer, service_fn};
use tower_retrier::{RetryConfig, RetryLayer};

async fn overloaded(_: u32) -> Result<u32, BoxError> {
    Err(Box::new(tower::load_shed::error::Overloaded::new()))
}

#[tokio::test]
async fn a_named_async_fn_with_boxed_errors_is_spawnable_and_its_errors_are_inspected() {
    let svc = RetryLayer::new(RetryConfig::default()).layer(service_fn(overloaded));
    let result = tokio::spawn(async move { svc.oneshot(1).await })
        .await
        .unwrap();
    let err = result.unwrap_err();
    assert!(err.is::<tower::load_shed::error::Overloaded>());
}

#[tokio::test]
async fn a_closure_that_calls_an_async_fn_is_spawnable_and_inspected() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = RetryLayer::new(RetryConfig::builder().jitter(false).build().unwrap()).layer(
        service_fn(move |req: u32| {
            seen.fetch_add(1, Ordering::Relaxed);
            overloaded(req)
        }),
    );
    let result = tokio::spawn(async move { svc.oneshot(1).await })
        .await
        .unwrap();
    assert!(result.is_err());
    // A boxed `Overloaded` is recognised inside the box: not retried.
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_closure_with_a_concrete_error_type_is_spawnable() {
    let svc = RetryLayer::new(RetryConfig::default()).layer(service_fn(|req: u32| async move {
        Ok::<_, std::io::Error>(req)
    }));
    let answer = tokio::spawn(async move { svc.oneshot(1).await })
        .await
        .unwrap();
    assert_eq!(answer.unwrap(), 1);
}

#[tokio::test]
async fn the_http_preset_over_a_named_async_fn_is_spawnable() {
    #[cfg(feature = "http")]
    {
        async fn ok(
            _: http::Request<tower_retrier::replay::ReplayBody<String>>,
        ) -> Result<http::Response<()>, BoxError> {
            Ok(http::Response::new(()))
        }
        let svc = RetryLayer::new_for_http(RetryConfig::default()).layer(service_fn(ok));
        let req = http::Request::get("http://x/").body(String::new()).unwrap();
        let res = tokio::spawn(async move { svc.oneshot(req).await })
            .await
            .unwrap();
        assert_eq!(res.unwrap().status(), 200);
    }
}
