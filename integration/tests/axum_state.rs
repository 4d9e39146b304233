//! `examples/axum_state.rs` compiles and does what it says: the client named
//! `HttpRetryService` in axum's state retries a 503, the one named `HttpHedgeService` answers
//! from its hedge while the first attempt hangs.
//!
//! Real time is needed for sockets; the hanging attempt waits 10 s, far longer than the
//! 50 ms hedging delay, so a slow machine cannot make the hedge lose.

#[path = "../examples/axum_state.rs"]
#[allow(dead_code)] // its `main`
mod example;

#[tokio::test]
async fn the_clients_kept_in_axum_state_retry_and_hedge() {
    let outcome = example::run().await.unwrap();
    assert_eq!(outcome.retried, (200, "call 2".to_owned()));
    assert_eq!(outcome.hedged, (200, "call 2".to_owned()));
}
