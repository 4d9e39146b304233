//! [`HedgeConfig`]: how many attempts a hedged call may have in flight and when each goes.

use crate::ConfigError;
use std::time::Duration;

/// The most attempts a hedged call may make (gRFC A6 clamps `maxAttempts` to 5).
pub const MAX_HEDGED_ATTEMPTS: u32 = 5;

/// When the next hedge is sent if no answer has come.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// A fixed `hedging_delay` (gRFC A6).
    Fixed(Duration),
    /// The given percentile (in `(0, 100)`) of recent attempt latencies, kept within
    /// `[min, max]` (what `tower::hedge` does, with bounds). Until enough attempts have been
    /// seen, `max` is used.
    Percentile {
        /// E.g. `95.0` for p95.
        percentile: f64,
        /// The delay never goes below this.
        min: Duration,
        /// The delay never goes above this (and is used before there is data).
        max: Duration,
    },
}

/// The hedging policy: at most `max_attempts` attempts per call (the first included), a new
/// one after each `delay` without a final answer. Built with [`HedgeConfig::builder`];
/// valid by construction. With feature `serde` it deserializes (validated) from config
/// files: `{"max_attempts": 2, "delay": "20ms"}`, or `{"percentile": 95.0, "min_delay":
/// "5ms", "max_delay": "200ms"}` for the adaptive delay.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::hedge::{HedgeConfig, HedgeDelay};
///
/// let cfg = HedgeConfig::builder().delay(Duration::from_millis(20)).max_attempts(2).build().unwrap();
/// assert_eq!(cfg.max_attempts(), 2);
/// assert_eq!(cfg.delay(), HedgeDelay::Fixed(Duration::from_millis(20)));
/// let err = HedgeConfig::builder().max_attempts(9).build().unwrap_err();
/// assert_eq!(err.field(), "max_attempts");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct HedgeConfig {
    max_attempts: u32,
    delay: HedgeDelay,
}

impl HedgeConfig {
    /// Starts a builder: 2 attempts, a fixed 50 ms delay.
    ///
    /// See [`HedgeConfig`] for an example.
    pub fn builder() -> HedgeConfigBuilder {
        HedgeConfigBuilder {
            config: HedgeConfig {
                max_attempts: 2,
                delay: HedgeDelay::Fixed(Duration::from_millis(50)),
            },
        }
    }

    /// The most attempts per call, the first included. Under hedging this is the count; the
    /// retry config's `max_attempts` is not used (see
    /// [`RetryLayer::hedge`](crate::RetryLayer::hedge)).
    ///
    /// See [`HedgeConfig`] for an example.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// When the next hedge is sent.
    ///
    /// See [`HedgeConfig`] for an example.
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }

    fn validate(self) -> Result<Self, ConfigError> {
        let err = |field, value: String, reason: &str| {
            Err(ConfigError::new(field, value, reason).subject("hedge config"))
        };
        if !(1..=MAX_HEDGED_ATTEMPTS).contains(&self.max_attempts) {
            return err(
                "max_attempts",
                self.max_attempts.to_string(),
                "must be between 1 and 5 (gRFC A6; 1 means never hedge)",
            );
        }
        match self.delay {
            HedgeDelay::Fixed(d) if d.is_zero() => {
                return err("delay", "0s".into(), "must be positive");
            }
            HedgeDelay::Percentile {
                percentile,
                min,
                max,
            } => {
                if !(percentile > 0.0 && percentile < 100.0) {
                    return err(
                        "percentile",
                        percentile.to_string(),
                        "must be a number in (0, 100)",
                    );
                }
                if min.is_zero() {
                    return err("min_delay", "0s".into(), "must be positive");
                }
                if min > max {
                    return err(
                        "max_delay",
                        format!("{max:?}"),
                        &format!("must be at least min_delay ({min:?})"),
                    );
                }
            }
            HedgeDelay::Fixed(_) => {}
        }
        Ok(self)
    }
}

/// Builds a validated [`HedgeConfig`]; see [`HedgeConfig::builder`].
///
/// ```
/// use std::time::Duration;
/// let cfg = tower_retrier::hedge::HedgeConfig::builder()
///     .percentile(95.0, Duration::from_millis(5), Duration::from_millis(200))
///     .build()
///     .unwrap();
/// # let _ = cfg;
/// ```
#[derive(Clone, Debug)]
#[must_use = "call .build() to get a HedgeConfig"]
pub struct HedgeConfigBuilder {
    config: HedgeConfig,
}

impl HedgeConfigBuilder {
    /// The most attempts per call, the first included (1 to 5).
    ///
    /// See [`HedgeConfig`] for an example.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// A fixed delay before each further attempt (positive).
    ///
    /// See [`HedgeConfig`] for an example.
    pub fn delay(mut self, d: Duration) -> Self {
        self.config.delay = HedgeDelay::Fixed(d);
        self
    }

    /// An adaptive delay: the `percentile` of recent attempt latencies, within `[min, max]`.
    ///
    /// See [`HedgeConfigBuilder`] for an example.
    pub fn percentile(mut self, percentile: f64, min: Duration, max: Duration) -> Self {
        self.config.delay = HedgeDelay::Percentile {
            percentile,
            min,
            max,
        };
        self
    }

    /// Checks every field; the error names the first invalid one.
    ///
    /// See [`HedgeConfig`] for an example.
    pub fn build(self) -> Result<HedgeConfig, ConfigError> {
        self.config.validate()
    }
}

/// Deserialized (feature `serde`) from `{"max_attempts": 2, "delay": "20ms"}` or, for the
/// adaptive delay, `{"percentile": 95.0, "min_delay": "5ms", "max_delay": "200ms"}`; every
/// field is optional (the builder's defaults) and validated, and unknown fields are errors.
#[cfg(feature = "serde")]
mod serde_impl {
    use super::*;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        max_attempts: Option<u32>,
        #[serde(default, with = "humantime_serde")]
        delay: Option<Duration>,
        percentile: Option<f64>,
        #[serde(default, with = "humantime_serde")]
        min_delay: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        max_delay: Option<Duration>,
    }

    impl<'de> Deserialize<'de> for HedgeConfig {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let raw = Raw::deserialize(d)?;
            let mut b = HedgeConfig::builder();
            if let Some(n) = raw.max_attempts {
                b = b.max_attempts(n);
            }
            let missing = |field| {
                ConfigError::new(field, "none", "is required with percentile")
                    .subject("hedge config")
            };
            match (raw.percentile, raw.delay) {
                (Some(_), Some(_)) => {
                    let e = ConfigError::new("delay", "set", "cannot be combined with percentile")
                        .subject("hedge config");
                    return Err(serde::de::Error::custom(e));
                }
                (Some(p), None) => {
                    let min = raw.min_delay.ok_or_else(|| missing("min_delay"));
                    let min = min.map_err(serde::de::Error::custom)?;
                    let max = raw.max_delay.ok_or_else(|| missing("max_delay"));
                    let max = max.map_err(serde::de::Error::custom)?;
                    b = b.percentile(p, min, max);
                }
                (None, Some(delay)) => b = b.delay(delay),
                (None, None) => {}
            }
            b.build().map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_fields_are_named() {
        let ms = Duration::from_millis;
        let cases = [
            (
                HedgeConfig::builder().max_attempts(0).build(),
                "max_attempts",
            ),
            (HedgeConfig::builder().delay(ms(0)).build(), "delay"),
            (
                HedgeConfig::builder()
                    .percentile(100.0, ms(1), ms(2))
                    .build(),
                "percentile",
            ),
            (
                HedgeConfig::builder()
                    .percentile(f64::NAN, ms(1), ms(2))
                    .build(),
                "percentile",
            ),
            (
                HedgeConfig::builder()
                    .percentile(50.0, ms(0), ms(2))
                    .build(),
                "min_delay",
            ),
            (
                HedgeConfig::builder()
                    .percentile(50.0, ms(3), ms(2))
                    .build(),
                "max_delay",
            ),
        ];
        for (res, field) in cases {
            let err = res.unwrap_err();
            assert_eq!(err.field(), field);
            assert!(err.to_string().contains("hedge config"), "{err}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_and_validates() {
        let ms = Duration::from_millis;
        let cfg: HedgeConfig =
            serde_json::from_str(r#"{"max_attempts": 3, "delay": "20ms"}"#).unwrap();
        assert_eq!(cfg.max_attempts(), 3);
        assert_eq!(cfg.delay(), HedgeDelay::Fixed(ms(20)));
        let cfg: HedgeConfig = serde_json::from_str(
            r#"{"percentile": 95.0, "min_delay": "5ms", "max_delay": "200ms"}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.delay(),
            HedgeDelay::Percentile {
                percentile: 95.0,
                min: ms(5),
                max: ms(200)
            }
        );
        for (json, field) in [
            (r#"{"max_attempts": 6}"#, "max_attempts"),
            (r#"{"percentile": 95.0, "max_delay": "1s"}"#, "min_delay"),
            (r#"{"percentile": 95.0, "delay": "1s"}"#, "delay"),
            (r#"{"dealy": "1s"}"#, "dealy"),
        ] {
            let err = serde_json::from_str::<HedgeConfig>(json).unwrap_err();
            assert!(err.to_string().contains(field), "{json}: {err}");
        }
    }
}
