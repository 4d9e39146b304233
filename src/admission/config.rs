//! [`AdmissionConfig`]: which mechanism decides admission, and its parameters (validated).

use crate::ConfigError;
use std::time::Duration;

/// How admission control decides whether a first attempt may go out.
///
/// The default, [`Mechanism::BreakerAndLimit`], is the one that met every goal of the
/// overload benchmark (`integration/examples/overload.rs`, README "Overload"); the others
/// are there to compare against and for downstreams where they fit better.
///
/// ```
/// use tower_retrier::admission::Mechanism;
/// assert_eq!(Mechanism::default(), Mechanism::BreakerAndLimit);
/// assert_eq!(Mechanism::Throttle.as_str(), "throttle");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// A circuit breaker (opens when at least `failure_ratio` of the attempts of the last
    /// `window` were not accepted, lets `probes` calls through per `probe_interval` while
    /// open, closes on an accepted probe) and, once it has opened, an adaptive concurrency
    /// limit (AIMD on the verdicts, from `initial_limit`) until the downstream has been
    /// calm for a `window`. The breaker stops a dead downstream's load at once and recovers
    /// within a probe interval; the limit keeps a slowed downstream's queue short, so what
    /// is sent is served before its caller gives up.
    #[default]
    BreakerAndLimit,
    /// The circuit breaker alone.
    Breaker,
    /// Google SRE client-side adaptive throttling: refuse with probability
    /// `max(0, (requests − k × accepts) / (requests + 1))` over the last `window`.
    Throttle,
    /// An adaptive concurrency limit alone (AIMD on the verdicts: an accepted attempt adds
    /// `1 / limit`, an attempt not accepted halves it, from `initial_limit` up to
    /// `max_limit`); a timed-out attempt is its latency signal.
    ConcurrencyLimit,
    /// An adaptive concurrency limit from measured latency, after Netflix's Gradient2: each
    /// served call's round trip against the long-run average (`limit × min(1, 1.5 × long /
    /// short) + √limit`, smoothed), halved by an attempt not accepted. It reads the clock
    /// twice per call.
    LatencyLimit,
}

impl Mechanism {
    /// A stable, lower-case name (the serde spelling).
    ///
    /// ```
    /// assert_eq!(tower_retrier::admission::Mechanism::BreakerAndLimit.as_str(), "breaker_and_limit");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Mechanism::BreakerAndLimit => "breaker_and_limit",
            Mechanism::Breaker => "breaker",
            Mechanism::Throttle => "throttle",
            Mechanism::ConcurrencyLimit => "concurrency_limit",
            Mechanism::LatencyLimit => "latency_limit",
        }
    }

    pub(crate) fn has_breaker(self) -> bool {
        matches!(self, Mechanism::BreakerAndLimit | Mechanism::Breaker)
    }
}

/// Parameters of admission control, valid by construction.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `mechanism` | `breaker_and_limit` | see [`Mechanism`] |
/// | `window` | 1 s | how far back attempts are counted |
/// | `min_calls` | 20 | attempts in the window before the breaker may open |
/// | `failure_ratio` | 0.8 | share of attempts not accepted that opens the breaker |
/// | `probe_interval` | 250 ms | while open, `probes` calls go through per interval |
/// | `probes` | 1 | calls let through per `probe_interval` while open |
/// | `k` | 2.0 | the throttle's multiplier of accepts |
/// | `initial_limit` | 1 | the concurrency limit when it engages |
/// | `max_limit` | 1000 | the concurrency limit's ceiling |
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::admission::{AdmissionConfig, Mechanism};
///
/// let cfg = AdmissionConfig::builder()
///     .probe_interval(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// assert_eq!(cfg.mechanism(), Mechanism::BreakerAndLimit);
/// let err = AdmissionConfig::builder().failure_ratio(1.5).build().unwrap_err();
/// assert_eq!(err.field(), "failure_ratio");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    pub(crate) mechanism: Mechanism,
    pub(crate) window: Duration,
    pub(crate) min_calls: u32,
    pub(crate) failure_ratio: f64,
    pub(crate) probe_interval: Duration,
    pub(crate) probes: u32,
    pub(crate) k: f64,
    pub(crate) initial_limit: u32,
    pub(crate) max_limit: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            mechanism: Mechanism::BreakerAndLimit,
            window: Duration::from_secs(1),
            min_calls: 20,
            failure_ratio: 0.8,
            probe_interval: Duration::from_millis(250),
            probes: 1,
            k: 2.0,
            initial_limit: 1,
            max_limit: 1000,
        }
    }
}

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> $ty {
            self.$name
        }
    )*};
}

impl AdmissionConfig {
    /// A builder starting from the defaults.
    ///
    /// See [`AdmissionConfig`] for an example.
    pub fn builder() -> AdmissionConfigBuilder {
        AdmissionConfigBuilder {
            config: AdmissionConfig::default(),
        }
    }

    getters! {
        /// The mechanism.
        ///
        /// ```
        /// use tower_retrier::admission::{AdmissionConfig, Mechanism};
        /// assert_eq!(AdmissionConfig::default().mechanism(), Mechanism::BreakerAndLimit);
        /// ```
        mechanism: Mechanism;
        /// How far back attempts are counted.
        ///
        /// ```
        /// # use std::time::Duration;
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().window(), Duration::from_secs(1));
        /// ```
        window: Duration;
        /// Attempts in the window before the breaker may open.
        ///
        /// ```
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().min_calls(), 20);
        /// ```
        min_calls: u32;
        /// The share of attempts not accepted that opens the breaker.
        ///
        /// ```
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().failure_ratio(), 0.8);
        /// ```
        failure_ratio: f64;
        /// While open, `probes` calls go through per interval.
        ///
        /// ```
        /// # use std::time::Duration;
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().probe_interval(), Duration::from_millis(250));
        /// ```
        probe_interval: Duration;
        /// Calls let through per `probe_interval` while open.
        ///
        /// ```
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().probes(), 1);
        /// ```
        probes: u32;
        /// The throttle's multiplier of accepts.
        ///
        /// ```
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().k(), 2.0);
        /// ```
        k: f64;
        /// The concurrency limit when it engages.
        ///
        /// ```
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().initial_limit(), 1);
        /// ```
        initial_limit: u32;
        /// The concurrency limit's ceiling.
        ///
        /// ```
        /// assert_eq!(tower_retrier::admission::AdmissionConfig::default().max_limit(), 1000);
        /// ```
        max_limit: u32;
    }

    fn validate(self) -> Result<Self, ConfigError> {
        let err = |field, value: String, reason: &str| {
            Err(ConfigError::new(field, value, reason).subject("admission config"))
        };
        if self.window < Duration::from_millis(10) || self.window > Duration::from_secs(3600) {
            return err(
                "window",
                format!("{:?}", self.window),
                "must be between 10ms and 1h",
            );
        }
        if self.min_calls == 0 || self.min_calls > 1_000_000 {
            return err(
                "min_calls",
                self.min_calls.to_string(),
                "must be between 1 and 1000000",
            );
        }
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            return err(
                "failure_ratio",
                self.failure_ratio.to_string(),
                "must be in (0, 1]",
            );
        }
        if self.probe_interval < Duration::from_millis(1)
            || self.probe_interval > Duration::from_secs(3600)
        {
            return err(
                "probe_interval",
                format!("{:?}", self.probe_interval),
                "must be between 1ms and 1h",
            );
        }
        if self.probes == 0 || self.probes > 1_000_000 {
            return err(
                "probes",
                self.probes.to_string(),
                "must be between 1 and 1000000",
            );
        }
        if !(self.k.is_finite() && self.k >= 1.0 && self.k <= 100.0) {
            return err("k", self.k.to_string(), "must be a number in [1, 100]");
        }
        if self.max_limit == 0 || self.max_limit > 1_000_000 {
            return err(
                "max_limit",
                self.max_limit.to_string(),
                "must be between 1 and 1000000",
            );
        }
        if self.initial_limit == 0 || self.initial_limit > self.max_limit {
            return err(
                "initial_limit",
                self.initial_limit.to_string(),
                "must be between 1 and max_limit",
            );
        }
        Ok(self)
    }
}

/// Builds an [`AdmissionConfig`]; [`build`](Self::build) validates it.
///
/// See [`AdmissionConfig`] for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct AdmissionConfigBuilder {
    config: AdmissionConfig,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    )*};
}

impl AdmissionConfigBuilder {
    setters! {
        /// See [`Mechanism`].
        ///
        /// ```
        /// use tower_retrier::admission::{AdmissionConfig, Mechanism};
        /// let cfg = AdmissionConfig::builder().mechanism(Mechanism::Breaker).build().unwrap();
        /// assert_eq!(cfg.mechanism(), Mechanism::Breaker);
        /// ```
        mechanism: Mechanism;
        /// How far back attempts are counted (10 ms to 1 h).
        ///
        /// ```
        /// # use std::time::Duration;
        /// let err = tower_retrier::admission::AdmissionConfig::builder().window(Duration::ZERO).build().unwrap_err();
        /// assert_eq!(err.field(), "window");
        /// ```
        window: Duration;
        /// Attempts in the window before the breaker may open (at least 1).
        ///
        /// ```
        /// let cfg = tower_retrier::admission::AdmissionConfig::builder().min_calls(5).build().unwrap();
        /// assert_eq!(cfg.min_calls(), 5);
        /// ```
        min_calls: u32;
        /// The share of attempts not accepted that opens the breaker, in (0, 1].
        ///
        /// See [`AdmissionConfig`] for an example.
        failure_ratio: f64;
        /// While open, `probes` calls go through per interval (1 ms to 1 h).
        ///
        /// See [`AdmissionConfig`] for an example.
        probe_interval: Duration;
        /// Calls let through per `probe_interval` while open (at least 1).
        ///
        /// ```
        /// let cfg = tower_retrier::admission::AdmissionConfig::builder().probes(2).build().unwrap();
        /// assert_eq!(cfg.probes(), 2);
        /// ```
        probes: u32;
        /// The throttle's multiplier of accepts, in [1, 100] (2 in the SRE book).
        ///
        /// ```
        /// let err = tower_retrier::admission::AdmissionConfig::builder().k(0.5).build().unwrap_err();
        /// assert_eq!(err.field(), "k");
        /// ```
        k: f64;
        /// The concurrency limit when it engages (1 to `max_limit`).
        ///
        /// ```
        /// let err = tower_retrier::admission::AdmissionConfig::builder().initial_limit(0).build().unwrap_err();
        /// assert_eq!(err.field(), "initial_limit");
        /// ```
        initial_limit: u32;
        /// The concurrency limit's ceiling (1 to 1,000,000).
        ///
        /// ```
        /// let cfg = tower_retrier::admission::AdmissionConfig::builder().max_limit(64).build().unwrap();
        /// assert_eq!(cfg.max_limit(), 64);
        /// ```
        max_limit: u32;
    }

    /// Validates the configuration; the error names the first field out of range.
    ///
    /// See [`AdmissionConfig`] for an example.
    pub fn build(self) -> Result<AdmissionConfig, ConfigError> {
        self.config.validate()
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::*;
    use serde::{Deserialize, Deserializer};

    /// The on-disk shape: durations as human strings ("250ms", "1s"); every field optional.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        mechanism: Option<MechanismRaw>,
        #[serde(default, with = "humantime_serde")]
        window: Option<Duration>,
        min_calls: Option<u32>,
        failure_ratio: Option<f64>,
        #[serde(default, with = "humantime_serde")]
        probe_interval: Option<Duration>,
        probes: Option<u32>,
        k: Option<f64>,
        initial_limit: Option<u32>,
        max_limit: Option<u32>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum MechanismRaw {
        BreakerAndLimit,
        Breaker,
        Throttle,
        ConcurrencyLimit,
        LatencyLimit,
    }

    impl<'de> Deserialize<'de> for AdmissionConfig {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let raw = Raw::deserialize(d)?;
            let mut b = AdmissionConfig::builder();
            if let Some(m) = raw.mechanism {
                b = b.mechanism(match m {
                    MechanismRaw::BreakerAndLimit => Mechanism::BreakerAndLimit,
                    MechanismRaw::Breaker => Mechanism::Breaker,
                    MechanismRaw::Throttle => Mechanism::Throttle,
                    MechanismRaw::ConcurrencyLimit => Mechanism::ConcurrencyLimit,
                    MechanismRaw::LatencyLimit => Mechanism::LatencyLimit,
                });
            }
            let c = &mut b.config;
            c.window = raw.window.unwrap_or(c.window);
            c.min_calls = raw.min_calls.unwrap_or(c.min_calls);
            c.failure_ratio = raw.failure_ratio.unwrap_or(c.failure_ratio);
            c.probe_interval = raw.probe_interval.unwrap_or(c.probe_interval);
            c.probes = raw.probes.unwrap_or(c.probes);
            c.k = raw.k.unwrap_or(c.k);
            c.initial_limit = raw.initial_limit.unwrap_or(c.initial_limit);
            c.max_limit = raw.max_limit.unwrap_or(c.max_limit);
            b.build().map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_each_bad_field_by_name() {
        let b = AdmissionConfig::builder;
        let cases = [
            (b().window(Duration::from_millis(1)).build(), "window"),
            (b().min_calls(0).build(), "min_calls"),
            (b().failure_ratio(0.0).build(), "failure_ratio"),
            (b().failure_ratio(f64::NAN).build(), "failure_ratio"),
            (b().probe_interval(Duration::ZERO).build(), "probe_interval"),
            (b().probes(0).build(), "probes"),
            (b().k(f64::INFINITY).build(), "k"),
            (b().max_limit(0).build(), "max_limit"),
            (b().max_limit(4).initial_limit(5).build(), "initial_limit"),
        ];
        for (res, field) in cases {
            let err = res.unwrap_err();
            assert_eq!(err.field(), field);
            assert!(err.to_string().starts_with("invalid admission config: "));
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_human_durations_and_validates() {
        let cfg: AdmissionConfig = serde_json::from_str(
            r#"{"mechanism": "throttle", "window": "2s", "probe_interval": "100ms", "k": 1.5}"#,
        )
        .unwrap();
        assert_eq!(cfg.mechanism(), Mechanism::Throttle);
        assert_eq!(cfg.window(), Duration::from_secs(2));
        assert_eq!(cfg.probe_interval(), Duration::from_millis(100));
        let err = serde_json::from_str::<AdmissionConfig>(r#"{"failure_ratio": 2}"#).unwrap_err();
        assert!(err.to_string().contains("failure_ratio"), "{err}");
        let err = serde_json::from_str::<AdmissionConfig>(r#"{"probe": 2}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
