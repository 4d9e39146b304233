// The hook names a response type the service does not return.
use tower::{Service, service_fn};
use tower_retrier::telemetry::RetryEvent;
use tower_retrier::{RetryConfig, RetryLayer};

fn serve<S: Service<u32>>(_: S) {}

fn main() {
    let users = service_fn(|id: u32| async move { Ok::<_, std::io::Error>(id) });
    let layer = RetryLayer::new(RetryConfig::default())
        .on_retry(|e: &RetryEvent<'_, String, std::io::Error>| println!("{}", e.attempt()));
    serve(tower::Layer::layer(&layer, users));
}
