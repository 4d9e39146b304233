// A known compiler limitation, recorded so that a compiler that lifts it is noticed: a
// retried call over a closure whose async block names `BoxError` cannot be spawned (the
// compiler cannot prove a bound for every lifetime of the boxed error: "higher-ranked lifetime
// error", or "implementation of .. is not general enough"); tower's own `.timeout()` over the
// same closure cannot either.
// Workarounds (README, "Mocks and tokio::spawn"): the closure calls a named `async fn`, or
// the error type is a concrete one (`std::io::Error`, your own).
use tower::{BoxError, Layer, service_fn};
use tower_retrier::{RetryConfig, RetryLayer};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let svc = RetryLayer::new(RetryConfig::default())
        .layer(service_fn(|req: u32| async move { Ok::<_, BoxError>(req) }));
    let _ = tokio::spawn(async move { svc.oneshot(1).await }).await;
}
