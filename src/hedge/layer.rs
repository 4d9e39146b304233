//! [`HedgeLayer`]: a retry layer's parts with a hedging policy.

use super::config::{HedgeConfig, HedgeDelay};
use super::latency::LatencyTracker;
use super::service::HedgeService;
use super::shared::HedgeShared;
use crate::lifetime::Stored;
use crate::timeout::{ClassifyTimeouts, TimedLayer};
use crate::{RetryConfig, RetryLayer};
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in [`HedgeService`]; built by [`RetryLayer::hedge`]. Clones share the
/// budget and the latency window of an adaptive delay.
///
/// See the [module docs](super) for an example.
#[derive(Clone, Debug)]
pub struct HedgeLayer<K, C, B, R, H, A> {
    parts: RetryLayer<K, C, B, R, H, A>,
    hedge: HedgeConfig,
    latency: Option<Arc<LatencyTracker>>,
    /// The parts as first stored by `layer` (kept for the process), shared by clones.
    stored: Stored,
}

impl<K, C, B, R, H, A> RetryLayer<K, C, B, R, H, A> {
    /// Hedges calls instead of retrying them, with this layer's classifier, budget, replay,
    /// hook and telemetry. The `with_*` methods (all but `with_backoff`) and
    /// `timed_attempts` may come before or after it; see [`crate::hedge`].
    ///
    /// **Which `max_attempts` counts:** `hedging`'s. Under hedging,
    /// [`HedgeConfig::max_attempts`] is the number of attempts of a call (the first
    /// included); the retry config's [`max_attempts`](crate::RetryConfig::max_attempts) and
    /// the backoff are not used (its deadline and attempt timeout still are). A retry config
    /// whose `max_attempts` was changed from the default (3) to a count other than the hedge
    /// config's is most likely a mistake, so this method then logs a warning, once per layer
    /// it builds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::{RetryConfig, RetryLayer, hedge::HedgeConfig};
    /// let layer = RetryLayer::new(RetryConfig::default())
    ///     .hedge(HedgeConfig::builder().delay(Duration::from_millis(20)).build().unwrap());
    /// assert_eq!(layer.hedge_config().max_attempts(), 2);
    /// ```
    pub fn hedge(self, hedging: HedgeConfig) -> HedgeLayer<K, C, B, R, H, A> {
        let retrying = self.config().max_attempts();
        if retrying != RetryConfig::default().max_attempts() && retrying != hedging.max_attempts() {
            tracing::warn!(
                service = %self.telemetry().service_name(),
                retry_max_attempts = retrying,
                hedge_max_attempts = hedging.max_attempts(),
                "this layer hedges: HedgeConfig::max_attempts is the number of attempts and \
                 RetryConfig::max_attempts is not used; set the count on the HedgeConfig"
            );
        }
        let latency = match hedging.delay() {
            HedgeDelay::Percentile { percentile, .. } => {
                Some(Arc::new(LatencyTracker::new(percentile)))
            }
            HedgeDelay::Fixed(_) => None,
        };
        HedgeLayer {
            parts: self,
            hedge: hedging,
            latency,
            stored: Stored::default(),
        }
    }
}

impl<K, C, B, R, H, A> HedgeLayer<K, C, B, R, H, A> {
    /// The hedging policy.
    ///
    /// See [`RetryLayer::hedge`] for an example.
    pub fn hedge_config(&self) -> &HedgeConfig {
        &self.hedge
    }

    /// The budget (clones share it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_retrier::{RetryLayer, hedge::HedgeConfig};
    /// let layer = RetryLayer::new(Default::default()).hedge(HedgeConfig::builder().build().unwrap());
    /// assert_eq!(layer.budget().remaining(), 100);
    /// # }
    /// ```
    pub fn budget(&self) -> &B {
        self.parts.budget()
    }

    /// Cuts each attempt (the first and every hedge) after the retry config's
    /// `attempt_timeout`, keeping the inner error type for the classifier; see
    /// [`RetryLayer::timed_attempts`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::{RetryConfig, RetryLayer, hedge::HedgeConfig};
    /// let cfg = RetryConfig::builder().attempt_timeout(Duration::from_millis(500)).build().unwrap();
    /// let _layer = RetryLayer::new(cfg).hedge(HedgeConfig::builder().build().unwrap()).timed_attempts();
    /// ```
    pub fn timed_attempts(self) -> TimedLayer<HedgeLayer<K, ClassifyTimeouts<C>, B, R, H, A>> {
        let timeout = self.parts.config().attempt_timeout();
        TimedLayer::new(self.map_parts(RetryLayer::into_timed), timeout)
    }

    /// The same hedging policy over the retry layer's parts passed through `map`. The new
    /// layer stores its parts afresh.
    pub(crate) fn map_parts<K2, C2, B2, R2, H2, A2>(
        self,
        map: impl FnOnce(RetryLayer<K, C, B, R, H, A>) -> RetryLayer<K2, C2, B2, R2, H2, A2>,
    ) -> HedgeLayer<K2, C2, B2, R2, H2, A2> {
        HedgeLayer {
            parts: map(self.parts),
            hedge: self.hedge,
            latency: self.latency,
            stored: Stored::default(),
        }
    }
}

impl<S, K, C, B, R, H, A> Layer<S> for HedgeLayer<K, C, B, R, H, A>
where
    K: Clone + Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
    B: Clone + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
    H: Clone + Send + Sync + 'static,
    A: Clone + Send + Sync + 'static,
{
    type Service = HedgeService<S, K, C, B, R, H, A>;

    /// The parts live like a [`RetryLayer`]'s: kept for the process unless the retry layer
    /// said [`release_on_drop`](RetryLayer::release_on_drop).
    fn layer(&self, inner: S) -> Self::Service {
        let parts = || HedgeShared {
            core: self.parts.to_shared(),
            hedge: self.hedge.clone(),
            latency: self.latency.clone(),
        };
        let shared = self
            .stored
            .parts_for_service(self.parts.releases_on_drop(), parts);
        HedgeService::new(inner, shared)
    }
}
