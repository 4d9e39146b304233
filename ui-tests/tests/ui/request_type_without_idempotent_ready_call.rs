// `ready().await?.call(req)` on a request type that has not said whether it may be sent twice.
#[allow(unused_imports)] // as in most code: the methods below are found before it
use tower::{Service, ServiceExt, service_fn};
use tower_retrier::{RetryConfig, RetryLayer};

#[derive(Clone)]
struct Charge {
    cents: u64,
}

async fn pay() -> Result<u64, std::io::Error> {
    let payments = service_fn(|c: Charge| async move { Ok::<_, std::io::Error>(c.cents) });
    let mut svc = tower::Layer::layer(&RetryLayer::new(RetryConfig::default()), payments);
    svc.ready().await?.call(Charge { cents: 100 }).await
}

fn main() {
    let _ = pay();
}
