// `.typed_errors()` looks into a concrete error type, but the `.timeout(..)` below the retry
// layer boxes the client's error into `BoxError`.
use std::time::Duration;
use tower::{Service, ServiceBuilder, service_fn};
use tower_retrier::classify::HttpClassifier;
use tower_retrier::{RetryConfig, RetryLayer};

fn serve<S: Service<http::Request<String>>>(_: S) {}

fn main() {
    let client = service_fn(|_: http::Request<String>| async {
        Ok::<_, std::io::Error>(http::Response::new(String::new()))
    });
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new(RetryConfig::default())
                .with_classifier(HttpClassifier::new().typed_errors()),
        )
        .timeout(Duration::from_millis(300))
        .service(client);
    serve(svc);
}
