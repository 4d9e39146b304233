// `execute` runs a closure; the HTTP preset judges and replays an `http::Request`, which a
// closure does not have.
use tower_retrier::{RetryConfig, RetryLayer};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let layer = RetryLayer::new_for_http(RetryConfig::default());
    let _ = layer
        .execute(|| async { Ok::<_, std::io::Error>(http::Response::new(String::new())) })
        .await;
}
