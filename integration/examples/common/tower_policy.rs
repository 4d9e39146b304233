//! `tower::retry`'s policy as users write it, for the peers measured beside ours (the
//! overhead bench and the overload simulation): 2 retries, one `ExponentialBackoffMaker`
//! (100 ms to 10 s, jitter 0.1), an optional `TpsBudget::default()` (deposit on success,
//! withdraw per retry).

use std::sync::Arc;
use std::time::Duration;
use tower::retry::backoff::{
    Backoff as _, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff,
};
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::util::rng::Rng;

#[derive(Clone)]
pub struct TowerPolicy<R> {
    retries_left: usize,
    backoff: ExponentialBackoff<R>,
    budget: Option<Arc<TpsBudget>>,
}

impl<R: Rng + Clone> TowerPolicy<R> {
    /// The policy, its jitter drawn from `rng`.
    pub fn with_rng(with_budget: bool, rng: R) -> Self {
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_millis(100),
            Duration::from_secs(10),
            0.1,
            rng,
        )
        .expect("valid backoff");
        TowerPolicy {
            retries_left: 2,
            backoff: maker.make_backoff(),
            budget: with_budget.then(|| Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2))),
        }
    }
}

impl<R: Rng + Clone, E> tower::retry::Policy<u64, u64, E> for TowerPolicy<R> {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                if let Some(b) = &self.budget {
                    b.deposit();
                }
                None
            }
            Err(_) => {
                if self.retries_left == 0 || self.budget.as_ref().is_some_and(|b| !b.withdraw()) {
                    return None;
                }
                self.retries_left -= 1;
                Some(self.backoff.next_backoff())
            }
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}
