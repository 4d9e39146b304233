// `RetryLayer::new` clones the request to resend it, and must know whether that is safe.
use tower::{Service, service_fn};
use tower_retrier::{RetryConfig, RetryLayer};

#[derive(Clone)]
struct Charge {
    cents: u64,
}

fn serve<S: Service<Charge>>(_: S) {}

fn main() {
    let payments = service_fn(|c: Charge| async move { Ok::<_, std::io::Error>(c.cents) });
    let svc = tower::Layer::layer(&RetryLayer::new(RetryConfig::default()), payments);
    serve(svc);
}
