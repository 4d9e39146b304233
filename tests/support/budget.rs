//! Asking a budget for retries, as the retry loop does.

use tower_retrier::budget::Budget;

/// Asks `b` for `n` retries one after the other; returns how many were granted.
pub async fn take<B: Budget>(b: &B, n: usize) -> usize {
    let mut granted = 0;
    for _ in 0..n {
        granted += usize::from(b.withdraw().await);
    }
    granted
}
