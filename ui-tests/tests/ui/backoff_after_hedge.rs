// A hedging layer has no backoff (hedges go out after the hedging delay): `with_backoff`
// after `.hedge(..)` names what to set instead.
use std::time::Duration;
use tower_retrier::backoff::Constant;
use tower_retrier::hedge::HedgeConfig;
use tower_retrier::{RetryConfig, RetryLayer};

fn main() {
    let hedging = HedgeConfig::builder().delay(Duration::from_millis(20)).build().unwrap();
    let _layer = RetryLayer::new(RetryConfig::default())
        .hedge(hedging)
        .with_backoff(Constant::new(Duration::from_millis(10)));
}
