//! Hedged gRPC calls over a tonic `Channel`, against a real tonic server: the hedge carries
//! `grpc-previous-rpc-attempts`, the loser's stream is cancelled (the server drops its
//! handler), a non-fatal status sends the next hedge at once, a fatal one ends the call.
//!
//! Real sockets need real time: every wait is bounded by a generous 10 s, and the checks
//! are on what happened, never on how long it took.

mod support;

use std::time::Duration;
use support::greeter::{FlakyGreeter, GreeterClient, HelloRequest, Step};
use tonic::Code;
use tonic::transport::Channel;
use tower::Layer;
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::{RetryConfig, RetryLayer};

const GENEROUS: Duration = Duration::from_secs(10);

async fn connect(
    greeter: &FlakyGreeter,
    hedging_delay: Duration,
) -> GreeterClient<
    impl tonic::client::GrpcService<tonic::body::Body, ResponseBody = tonic::body::Body> + Clone,
> {
    let addr = greeter.clone().serve().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let cfg = RetryConfig::builder()
        .attempt_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let hedging = HedgeConfig::builder()
        .delay(hedging_delay)
        .max_attempts(3)
        .build()
        .unwrap();
    // The preset's classifier and replay, hedging instead of retrying, and the per-attempt
    // timeout inside the layer (the error stays tonic's, wrapped in AttemptError).
    let svc = RetryLayer::new_for_grpc(cfg)
        .hedge(hedging)
        .timed_attempts()
        .layer(channel);
    GreeterClient::new(svc)
}

fn hello() -> HelloRequest {
    HelloRequest { name: "Ada".into() }
}

#[tokio::test]
async fn a_hedge_answers_for_a_slow_attempt_which_is_cancelled() {
    let greeter = FlakyGreeter::new(vec![Step::Slow(Duration::from_secs(60))]);
    let mut client = connect(&greeter, Duration::from_millis(50)).await;
    let reply = tokio::time::timeout(GENEROUS, client.say_hello(hello()))
        .await
        .expect("the hedge answers")
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello Ada!");
    assert_eq!(greeter.calls(), 2);
    assert_eq!(greeter.previous_attempts(), [None, Some("1".to_string())]);
    // The slow attempt's stream was reset when the hedge won: the server dropped it.
    let waited = tokio::time::timeout(GENEROUS, async {
        while greeter.cancelled() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the server never saw the loser cancelled");
}

#[tokio::test]
async fn unavailable_sends_the_next_hedge_at_once() {
    // The hedging delay (1 hour) never passes: only the non-fatal status can send the hedge.
    let greeter = FlakyGreeter::new(vec![Step::Fail(Code::Unavailable, None)]);
    let mut client = connect(&greeter, Duration::from_secs(3600)).await;
    let reply = tokio::time::timeout(GENEROUS, client.say_hello(hello()))
        .await
        .expect("the hedge went at once")
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello Ada!");
    assert_eq!(greeter.calls(), 2);
}

#[tokio::test]
async fn a_fatal_status_ends_the_call() {
    let greeter = FlakyGreeter::new(vec![Step::Fail(Code::InvalidArgument, None)]);
    let mut client = connect(&greeter, Duration::from_secs(3600)).await;
    let status = tokio::time::timeout(GENEROUS, client.say_hello(hello()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(greeter.calls(), 1);
}
