//! Builder methods in any order: a retry layer's setters are also methods of the layers built
//! from it, [`HedgeLayer`] (`.hedge(..)`) and [`TimedLayer`] (`.timed_attempts()`), so
//! `.hedge(h).with_budget(b)` builds the same layer as `.with_budget(b).hedge(h)`, and
//! `.timed_attempts().hedge(h)` the same as `.hedge(h).timed_attempts()`. Each method hands
//! the change to the retry layer inside.
//!
//! The one order that stays fixed: a hedging layer has no backoff (hedges go out after the
//! hedging delay), so `with_backoff` after `.hedge(..)` fails to compile with a message that
//! says so (`NotUsedByHedging`).

use crate::RetryLayer;
use crate::admission::NoAdmission;
use crate::hedge::{HedgeConfig, HedgeLayer};
use crate::telemetry::Telemetry;
use crate::timeout::{ClassifyTimeouts, TimedLayer};
use std::borrow::Cow;

/// The setters every layer built from a [`RetryLayer`] forwards to it. The layer's type is
/// `$($pre)* K, C, B, R, H, A $($post)*`; `$map` passes the retry layer inside through a
/// closure; `$built` is an expression of such a layer, for the examples.
macro_rules! forward_setters {
    ({$($pre:tt)*} {$($post:tt)*}, $map:ident, $built:literal) => {
        impl<K, C, B, R, H, A> $($pre)* K, C, B, R, H, A $($post)* {
            /// Uses another budget: [`RetryLayer::with_budget`], in any order.
            ///
            /// ```
            /// use tower_retrier::budget::Unlimited;
            #[doc = concat!("let layer = ", $built, ".with_budget(Unlimited::new());")]
            /// # let _ = layer;
            /// ```
            pub fn with_budget<B2>(self, budget: B2) -> $($pre)* K, C, B2, R, H, A $($post)* {
                self.$map(|l| l.with_budget(budget))
            }

            /// Uses another replay: [`RetryLayer::with_replay`], in any order.
            ///
            /// ```
            /// use tower_retrier::replay::replay_fn;
            #[doc = concat!("let layer = ", $built, ".with_replay(replay_fn(|s: &String| Some(s.clone())));")]
            /// # let _ = layer;
            /// ```
            pub fn with_replay<R2>(self, replay: R2) -> $($pre)* K, C, B, R2, H, A $($post)* {
                self.$map(|l| l.with_replay(replay))
            }

            /// Calls `hook` before every retry or hedge sent after a retryable result:
            /// [`RetryLayer::on_retry`], in any order.
            ///
            /// ```
            /// use tower_retrier::telemetry::RetryEvent;
            #[doc = concat!("let layer = ", $built, ".on_retry(|e: &RetryEvent<'_, u8, std::io::Error>| println!(\"{}\", e.attempt()));")]
            /// # let _ = layer;
            /// ```
            pub fn on_retry<H2>(self, hook: H2) -> $($pre)* K, C, B, R, H2, A $($post)* {
                self.$map(|l| l.on_retry(hook))
            }

            /// Uses this admission control: [`RetryLayer::with_admission`], in any order.
            ///
            /// ```
            /// use tower_retrier::admission::Admission;
            #[doc = concat!("let layer = ", $built, ".with_admission(Admission::default());")]
            /// # let _ = layer;
            /// ```
            pub fn with_admission<A2>(self, admission: A2) -> $($pre)* K, C, B, R, H, A2 $($post)* {
                self.$map(|l| l.with_admission(admission))
            }

            /// Turns admission control off: [`RetryLayer::without_admission`], in any order.
            ///
            /// ```
            #[doc = concat!("let layer = ", $built, ".without_admission();")]
            /// # let _ = layer;
            /// ```
            pub fn without_admission(self) -> $($pre)* K, C, B, R, H, NoAdmission $($post)* {
                self.$map(|l| l.without_admission())
            }

            /// Lets the layer resend requests that say they are not idempotent:
            /// [`RetryLayer::retry_non_idempotent`], in any order.
            ///
            /// ```
            #[doc = concat!("let layer = ", $built, ".retry_non_idempotent(true);")]
            /// # let _ = layer;
            /// ```
            pub fn retry_non_idempotent(self, on: bool) -> Self {
                self.$map(|l| l.retry_non_idempotent(on))
            }

            /// Names the downstream service in telemetry: [`RetryLayer::service_name`], in
            /// any order.
            ///
            /// ```
            #[doc = concat!("let layer = ", $built, ".service_name(\"payments\");")]
            /// # let _ = layer;
            /// ```
            pub fn service_name(self, name: impl Into<Cow<'static, str>>) -> Self {
                self.$map(|l| l.service_name(name))
            }

            /// Names the operation in telemetry: [`RetryLayer::operation_name`], in any order.
            ///
            /// ```
            #[doc = concat!("let layer = ", $built, ".operation_name(\"charge\");")]
            /// # let _ = layer;
            /// ```
            pub fn operation_name(self, name: impl Into<Cow<'static, str>>) -> Self {
                self.$map(|l| l.operation_name(name))
            }

            /// Replaces the telemetry sink: [`RetryLayer::with_telemetry`], in any order.
            ///
            /// ```
            /// use tower_retrier::telemetry::Telemetry;
            #[doc = concat!("let layer = ", $built, ".with_telemetry(Telemetry::new(\"a\", \"b\"));")]
            /// # let _ = layer;
            /// ```
            pub fn with_telemetry(self, telemetry: Telemetry) -> Self {
                self.$map(|l| l.with_telemetry(telemetry))
            }

            /// Frees the parts with the last service and call built from the layer:
            /// [`RetryLayer::release_on_drop`], in any order.
            ///
            /// ```
            #[doc = concat!("let layer = ", $built, ".release_on_drop();")]
            /// # let _ = layer;
            /// ```
            pub fn release_on_drop(self) -> Self {
                self.$map(|l| l.release_on_drop())
            }
        }
    };
}

forward_setters!(
    {HedgeLayer<} {>},
    map_parts,
    "tower_retrier::RetryLayer::new(Default::default()).hedge(tower_retrier::hedge::HedgeConfig::builder().build().unwrap())"
);
forward_setters!(
    {TimedLayer<RetryLayer<} {>>},
    map,
    "tower_retrier::RetryLayer::new(Default::default()).timed_attempts()"
);
forward_setters!(
    {TimedLayer<HedgeLayer<} {>>},
    map,
    "tower_retrier::RetryLayer::new(Default::default()).hedge(tower_retrier::hedge::HedgeConfig::builder().build().unwrap()).timed_attempts()"
);

impl<K, C, B, R, H, A> HedgeLayer<K, C, B, R, H, A> {
    /// Uses another classifier: [`RetryLayer::with_classifier`], in any order.
    ///
    /// ```
    /// use tower_retrier::classify::MatchErrors;
    /// use tower_retrier::{RetryLayer, hedge::HedgeConfig};
    /// let layer = RetryLayer::new(Default::default())
    ///     .hedge(HedgeConfig::builder().build().unwrap())
    ///     .with_classifier(MatchErrors::boxed().retry::<std::io::Error>());
    /// # let _ = layer;
    /// ```
    pub fn with_classifier<C2>(self, classifier: C2) -> HedgeLayer<K, C2, B, R, H, A> {
        self.map_parts(|l| l.with_classifier(classifier))
    }

    /// Not available: a hedging layer has no backoff. Hedges go out after the hedging delay
    /// ([`HedgeConfig::delay`]), or at once after a retryable result (after the server's
    /// pushback, if any); the retry layer's backoff is only used by retries. The compiler
    /// says so (`NotUsedByHedging`).
    #[doc(hidden)]
    pub fn with_backoff<K2: NotUsedByHedging>(self, backoff: K2) -> Self {
        let _ = backoff;
        self
    }
}

/// Implemented by nothing: the bound of the setters a hedging layer does not have, so that
/// calling one names what to do instead.
#[diagnostic::on_unimplemented(
    message = "a hedging layer has no backoff: `with_backoff` cannot come after `.hedge(..)`",
    label = "hedges go out after the hedging delay, not after a backoff",
    note = "set the hedging delay with `HedgeConfig::builder().delay(..)` (or `.percentile(..)`); the retry layer's backoff is only used when retrying, without `.hedge(..)`"
)]
pub trait NotUsedByHedging {}

impl<K, C, B, R, H, A> TimedLayer<RetryLayer<K, ClassifyTimeouts<C>, B, R, H, A>> {
    /// Hedges calls instead of retrying them, each attempt cut after the attempt timeout:
    /// [`RetryLayer::hedge`] then [`HedgeLayer::timed_attempts`], in either order.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::{RetryConfig, RetryLayer, hedge::HedgeConfig};
    /// let cfg = RetryConfig::builder().attempt_timeout(Duration::from_millis(500)).build().unwrap();
    /// let layer = RetryLayer::new(cfg)
    ///     .timed_attempts()
    ///     .hedge(HedgeConfig::builder().delay(Duration::from_millis(20)).build().unwrap());
    /// assert_eq!(layer.get_ref().hedge_config().max_attempts(), 2);
    /// ```
    pub fn hedge(
        self,
        hedging: HedgeConfig,
    ) -> TimedLayer<HedgeLayer<K, ClassifyTimeouts<C>, B, R, H, A>> {
        self.map(|l| l.hedge(hedging))
    }

    /// Uses another classifier, which still sees the inner service's own results (a cut
    /// attempt goes to its [`classify_timeout`](crate::classify::Classify::classify_timeout)):
    /// [`RetryLayer::with_classifier`], in any order.
    ///
    /// ```
    /// use tower_retrier::classify::MatchErrors;
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .timed_attempts()
    ///     .with_classifier(MatchErrors::boxed().retry::<std::io::Error>());
    /// # let _ = layer;
    /// ```
    pub fn with_classifier<C2>(
        self,
        classifier: C2,
    ) -> TimedLayer<RetryLayer<K, ClassifyTimeouts<C2>, B, R, H, A>> {
        self.map(|l| l.with_classifier(ClassifyTimeouts::new(classifier)))
    }

    /// Uses another backoff: [`RetryLayer::with_backoff`], in any order.
    ///
    /// ```
    /// use tower_retrier::backoff::Constant;
    /// let layer = tower_retrier::RetryLayer::new(Default::default())
    ///     .timed_attempts()
    ///     .with_backoff(Constant::new(std::time::Duration::from_millis(10)));
    /// # let _ = layer;
    /// ```
    pub fn with_backoff<K2>(
        self,
        backoff: K2,
    ) -> TimedLayer<RetryLayer<K2, ClassifyTimeouts<C>, B, R, H, A>> {
        self.map(|l| l.with_backoff(backoff))
    }

    /// Makes jitter deterministic: [`RetryLayer::seed`], in any order.
    ///
    /// ```
    /// let layer = tower_retrier::RetryLayer::new(Default::default()).timed_attempts().seed(42);
    /// # let _ = layer;
    /// ```
    pub fn seed(self, seed: u64) -> Self {
        self.map(|l| l.seed(seed))
    }
}

impl<K, C, B, R, H, A> TimedLayer<HedgeLayer<K, ClassifyTimeouts<C>, B, R, H, A>> {
    /// Uses another classifier, which still sees the inner service's own results:
    /// [`RetryLayer::with_classifier`], in any order.
    ///
    /// ```
    /// use tower_retrier::classify::MatchErrors;
    /// use tower_retrier::{RetryLayer, hedge::HedgeConfig};
    /// let layer = RetryLayer::new(Default::default())
    ///     .hedge(HedgeConfig::builder().build().unwrap())
    ///     .timed_attempts()
    ///     .with_classifier(MatchErrors::boxed().retry::<std::io::Error>());
    /// # let _ = layer;
    /// ```
    pub fn with_classifier<C2>(
        self,
        classifier: C2,
    ) -> TimedLayer<HedgeLayer<K, ClassifyTimeouts<C2>, B, R, H, A>> {
        self.map(|l| l.with_classifier(ClassifyTimeouts::new(classifier)))
    }

    /// Not available: a hedging layer has no backoff (see `HedgeLayer::with_backoff`).
    #[doc(hidden)]
    pub fn with_backoff<K2: NotUsedByHedging>(self, backoff: K2) -> Self {
        let _ = backoff;
        self
    }
}

/// [`RetryLayer::propagate_deadline`] on the layers built from an HTTP or gRPC retry layer.
#[cfg(feature = "http")]
macro_rules! forward_propagate_deadline {
    ({$($pre:tt)*} {$($post:tt)*}, $map:ident, $built:literal) => {
        #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
        impl<K, C, B, W, H, A> $($pre)* K, C, B, crate::replay::ReplayHttp<W>, H, A $($post)* {
            /// Every attempt carries what it has left to live in `header`:
            /// [`RetryLayer::propagate_deadline`], in any order.
            ///
            /// ```
            /// use tower_retrier::deadline::DeadlineHeader;
            #[doc = concat!("let layer = ", $built, ".propagate_deadline(DeadlineHeader::envoy());")]
            /// # let _ = layer;
            /// ```
            pub fn propagate_deadline(self, header: crate::deadline::DeadlineHeader) -> Self {
                self.$map(|l| l.propagate_deadline(header))
            }
        }
    };
}

#[cfg(feature = "http")]
forward_propagate_deadline!(
    {HedgeLayer<} {>},
    map_parts,
    "tower_retrier::RetryLayer::new_for_http(Default::default()).hedge(tower_retrier::hedge::HedgeConfig::builder().build().unwrap())"
);
#[cfg(feature = "http")]
forward_propagate_deadline!(
    {TimedLayer<RetryLayer<} {>>},
    map,
    "tower_retrier::RetryLayer::new_for_http(Default::default()).timed_attempts()"
);
#[cfg(feature = "http")]
forward_propagate_deadline!(
    {TimedLayer<HedgeLayer<} {>>},
    map,
    "tower_retrier::RetryLayer::new_for_http(Default::default()).hedge(tower_retrier::hedge::HedgeConfig::builder().build().unwrap()).timed_attempts()"
);
