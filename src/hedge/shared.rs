//! What every call of one hedging service shares: the ground both
//! [`HedgeService`](super::HedgeService) and [`HedgeFuture`](super::HedgeFuture) stand on,
//! as [`crate::shared`] is for retries.

use super::config::{HedgeConfig, HedgeDelay};
use super::latency::LatencyTracker;
use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;

/// The retry layer's parts and the hedging policy, shared by every call of one service.
pub(crate) struct HedgeShared<K, C, B, R, H, A> {
    pub(crate) core: Shared<K, C, B, R, H, A>,
    pub(crate) hedge: HedgeConfig,
    pub(crate) latency: Option<Arc<LatencyTracker>>,
}

impl<K, C, B, R, H, A> HedgeShared<K, C, B, R, H, A> {
    /// How long to wait for a final answer before the next hedge.
    pub(crate) fn delay(&self) -> Duration {
        match (self.hedge.delay(), &self.latency) {
            (HedgeDelay::Percentile { min, max, .. }, Some(t)) => t.delay(min, max),
            (HedgeDelay::Percentile { max, .. }, None) => max,
            (HedgeDelay::Fixed(d), _) => d,
        }
    }
}

impl<K, C, B, R, H, A> AsRef<Shared<K, C, B, R, H, A>> for HedgeShared<K, C, B, R, H, A> {
    fn as_ref(&self) -> &Shared<K, C, B, R, H, A> {
        &self.core
    }
}
