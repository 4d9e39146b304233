// Budget constructors validate their arguments and return a `Result`.
use std::time::Duration;
use tower::{Service, service_fn};
use tower_retrier::budget::RatioBudget;
use tower_retrier::{RetryConfig, RetryLayer};

fn serve<S: Service<u32>>(_: S) {}

fn main() {
    let users = service_fn(|id: u32| async move { Ok::<_, std::io::Error>(id) });
    let layer = RetryLayer::new(RetryConfig::default())
        .with_budget(RatioBudget::new(Duration::from_secs(10), 10, 0.2));
    serve(tower::Layer::layer(&layer, users));
}
