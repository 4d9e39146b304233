// Admission control is on by default: the layer fails a refused call with the inner service's
// own error type, so that type must be able to carry a `Rejected` (`From`).
use tower::{Service, service_fn};
use tower_retrier::{RetryConfig, RetryLayer};

#[derive(Debug)]
struct DbError;

fn serve<S: Service<u32>>(_: S) {}

fn main() {
    let db = service_fn(|id: u32| async move { Ok::<_, DbError>(id) });
    serve(tower::Layer::layer(&RetryLayer::new(RetryConfig::default()), db));
}
