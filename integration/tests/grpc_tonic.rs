//! The retry layer under a tonic client (over a `Channel`), against a real tonic server.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::greeter::{FlakyGreeter, GreeterClient, HelloRequest, Step};
use tonic::Code;
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_retrier::classify::{GrpcClassifier, GrpcCode, GrpcTrailersLayer, TrailersBody};
use tower_retrier::telemetry::{DelaySource, RetryEvent};
use tower_retrier::{RetryConfig, RetryLayer};

type Delays = Arc<Mutex<Vec<(Duration, DelaySource)>>>;

fn config() -> RetryConfig {
    RetryConfig::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(50))
        .build()
        .unwrap()
}

async fn connect(
    greeter: &FlakyGreeter,
    classifier: GrpcClassifier,
) -> (
    GreeterClient<
        impl tonic::client::GrpcService<
            tonic::body::Body,
            ResponseBody = tonic::body::Body,
            Error = tower::BoxError,
        > + Clone,
    >,
    Delays,
) {
    let addr = greeter.clone().serve().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let delays: Delays = Arc::default();
    let log = delays.clone();
    // The preset goes straight on the Channel: no map_request, no type annotations.
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new_for_grpc(config())
                .with_classifier(classifier)
                .on_retry(move |e: &RetryEvent<'_, _, _>| {
                    log.lock().unwrap().push((e.delay(), e.delay_source()))
                }),
        )
        .timeout(Duration::from_secs(5)) // per attempt; boxes the error
        .service(channel);
    (GreeterClient::new(svc), delays)
}

fn hello() -> HelloRequest {
    HelloRequest { name: "Ada".into() }
}

#[tokio::test]
async fn unavailable_is_retried_until_the_greeting_arrives() {
    let greeter = FlakyGreeter::new(vec![
        Step::Fail(Code::Unavailable, None),
        Step::Fail(Code::Unavailable, None),
    ]);
    let (mut client, delays) = connect(&greeter, GrpcClassifier::new()).await;
    let reply = client.say_hello(hello()).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello Ada!");
    assert_eq!(greeter.calls(), 3);
    assert_eq!(
        greeter.previous_attempts(),
        [None, Some("1".to_string()), Some("2".to_string())]
    );
    assert!(
        delays
            .lock()
            .unwrap()
            .iter()
            .all(|d| d.1 == DelaySource::Backoff)
    );
}

#[tokio::test]
async fn pushback_replaces_the_backoff() {
    let greeter = FlakyGreeter::new(vec![
        Step::Fail(Code::Unavailable, Some("30")),
        Step::Fail(Code::Unavailable, Some("40")),
    ]);
    let (mut client, delays) = connect(&greeter, GrpcClassifier::new()).await;
    client.say_hello(hello()).await.unwrap();
    assert_eq!(greeter.calls(), 3);
    let delays = delays.lock().unwrap().clone();
    assert_eq!(
        delays,
        [
            (Duration::from_millis(30), DelaySource::Pushback),
            (Duration::from_millis(40), DelaySource::Pushback)
        ]
    );
}

#[tokio::test]
async fn pushback_longer_than_max_delay_ends_the_retries() {
    let greeter = FlakyGreeter::new(vec![
        Step::Fail(Code::Unavailable, Some("30")),
        // A minute asked, max_delay is 50 ms: the server's answer is returned at once.
        Step::Fail(Code::Unavailable, Some("60000")),
    ]);
    let (mut client, delays) = connect(&greeter, GrpcClassifier::new()).await;
    let status = client.say_hello(hello()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        greeter.calls(),
        2,
        "never retried sooner than the server asked"
    );
    assert_eq!(
        delays.lock().unwrap().clone(),
        [(Duration::from_millis(30), DelaySource::Pushback)]
    );
}

#[tokio::test]
async fn negative_pushback_means_do_not_retry() {
    let greeter = FlakyGreeter::new(vec![Step::Fail(Code::Unavailable, Some("-1"))]);
    let (mut client, _) = connect(&greeter, GrpcClassifier::new()).await;
    let status = client.say_hello(hello()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(greeter.calls(), 1);
}

#[tokio::test]
async fn only_configured_codes_are_retried() {
    let greeter = FlakyGreeter::new(vec![Step::Fail(Code::ResourceExhausted, None)]);
    let (mut client, _) = connect(&greeter, GrpcClassifier::new()).await;
    let status = client.say_hello(hello()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(greeter.calls(), 1);

    let greeter = FlakyGreeter::new(vec![
        Step::Fail(Code::ResourceExhausted, None),
        Step::Fail(Code::InvalidArgument, None),
    ]);
    let classifier = GrpcClassifier::new().retry_on(GrpcCode::ResourceExhausted);
    let (mut client, _) = connect(&greeter, classifier).await;
    let status = client.say_hello(hello()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(greeter.calls(), 2);
}

#[tokio::test]
async fn attempts_are_bounded() {
    let greeter = FlakyGreeter::new(vec![Step::Fail(Code::Unavailable, None); 10]);
    let (mut client, delays) = connect(&greeter, GrpcClassifier::new()).await;
    let status = client.say_hello(hello()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(greeter.calls(), 4);
    assert_eq!(delays.lock().unwrap().len(), 3);
}

/// Like `connect`, with `GrpcTrailersLayer` between the retry layer and the channel.
async fn connect_unary(
    greeter: &FlakyGreeter,
) -> GreeterClient<
    impl tonic::client::GrpcService<
        tonic::body::Body,
        ResponseBody = TrailersBody<tonic::body::Body>,
        Error = tonic::transport::Error,
    > + Clone,
> {
    let addr = greeter.clone().serve().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    // No per-attempt timeout, so the channel's own error type: admission control off.
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new_for_grpc(config()).without_admission())
        .layer(GrpcTrailersLayer::new())
        .service(channel);
    GreeterClient::new(svc)
}

#[tokio::test]
async fn status_in_trailers_is_not_seen_without_the_trailers_layer() {
    let greeter = FlakyGreeter::new(vec![Step::FailInTrailers(Code::Unavailable)]);
    let (mut client, _) = connect(&greeter, GrpcClassifier::new()).await;
    let status = client.say_hello(hello()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "failed late");
    assert_eq!(greeter.calls(), 1, "the head looked fine: not retried");
}

#[tokio::test]
async fn status_in_trailers_is_retried_with_the_trailers_layer() {
    let greeter = FlakyGreeter::new(vec![
        Step::FailInTrailers(Code::Unavailable),
        Step::Fail(Code::Unavailable, None),
    ]);
    let mut client = connect_unary(&greeter).await;
    let reply = client.say_hello(hello()).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello Ada!");
    assert_eq!(greeter.calls(), 3);

    // A non-retryable code in the trailers still reaches the caller as that status.
    let greeter = FlakyGreeter::new(vec![Step::FailInTrailers(Code::InvalidArgument)]);
    let mut client = connect_unary(&greeter).await;
    let status = client.say_hello(hello()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "failed late");
    assert_eq!(greeter.calls(), 1);
}
