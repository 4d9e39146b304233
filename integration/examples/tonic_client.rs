//! A tonic greeter whose server answers UNAVAILABLE (once with `grpc-retry-pushback-ms`)
//! before succeeding; the client runs over `RetryLayer::new_for_grpc` on a tonic `Channel`,
//! with no `map_request` and no type annotations.
//!
//! The greeter's client and server are the code `tonic-build` would generate, written by
//! hand in `tests/support/greeter.rs` (so no `protoc` is needed).
//!
//! Run: `cargo run -p tower-retrier-integration --example tonic_client`

#[path = "../tests/support/greeter.rs"]
#[allow(dead_code)]
mod greeter;

use greeter::{FlakyGreeter, GreeterClient, HelloRequest, Step};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;
use tower::{BoxError, ServiceBuilder};
use tower_retrier::classify::{GrpcClassifier, GrpcCode};
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{RetryConfig, RetryLayer};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = FlakyGreeter::new(vec![
        Step::Fail(Code::Unavailable, None),
        Step::Fail(Code::Unavailable, Some("150")),
        Step::Fail(Code::ResourceExhausted, None),
    ]);
    let addr = server.clone().serve().await;
    println!(
        "greeter on {addr}: UNAVAILABLE, UNAVAILABLE (pushback 150 ms), RESOURCE_EXHAUSTED, then OK"
    );

    let config = RetryConfig::builder()
        .max_attempts(5) // gRFC A6's ceiling
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_secs(1))
        .build()?;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let svc = ServiceBuilder::new()
        .layer(
            // Sets grpc-previous-rpc-attempts and hands tonic its own body type.
            RetryLayer::new_for_grpc(config)
                .with_classifier(GrpcClassifier::new().retry_on(GrpcCode::ResourceExhausted))
                .service_name("greeter")
                .on_retry(|e: &RetryEvent<'_, http::Response<tonic::body::Body>, _>| {
                    let code = e.result().as_ref().ok().and_then(|r| r.headers().get("grpc-status").cloned());
                    println!(
                        "  attempt {} failed (grpc-status {:?}); retrying in {:?} ({}, delay from {})",
                        e.attempt(),
                        code,
                        e.delay(),
                        e.reason(),
                        e.delay_source().as_str()
                    );
                }),
        )
        // Per attempt; its `BoxError` also carries admission control's refusals.
        .timeout(Duration::from_secs(1))
        .service(channel);
    let mut client = GreeterClient::new(svc);

    let started = Instant::now();
    let reply = client
        .say_hello(HelloRequest { name: "Ada".into() })
        .await?;
    println!(
        "reply: {:?} after {} calls in {:?}; grpc-previous-rpc-attempts seen by the server: {:?}",
        reply.into_inner().message,
        server.calls(),
        started.elapsed(),
        server.previous_attempts()
    );
    Ok(())
}
