//! Retry configuration: how many attempts, how long to wait between them, and an optional
//! overall deadline. A [`RetryConfig`] is valid by construction.

use std::fmt;
use std::time::Duration;

/// The largest accepted `max_attempts`. Anything above this is a misconfiguration that would
/// turn a brief outage into a long retry storm.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// How a request is retried: attempts, backoff parameters and an optional deadline.
///
/// `RetryConfig::default()` carries the reference defaults: 3 attempts in total (the first
/// included), 100 ms initial delay, 10 s cap, base 2, jitter on with factor 0.1, no deadline.
/// Every value is checked when the config is built, so a `RetryConfig` you hold is always valid.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::RetryConfig;
///
/// let cfg = RetryConfig::builder()
///     .max_attempts(5)
///     .initial_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(2))
///     .deadline(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(cfg.max_attempts(), 5);
/// # Ok::<(), tower_retrier::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    exponential_base: f64,
    jitter: bool,
    jitter_factor: f64,
    deadline: Option<Duration>,
    attempt_timeout: Option<Duration>,
    min_attempt_time: Duration,
    pushback: Pushback,
}

/// The default [`RetryConfig::min_attempt_time`]: an attempt with less than this left of
/// the deadline could not get an answer back in time on most networks.
pub const DEFAULT_MIN_ATTEMPT_TIME: Duration = Duration::from_millis(5);

/// What to do when a server asks for a delay (`Retry-After`, `grpc-retry-pushback-ms`) that
/// the configuration cannot honour: longer than `max_delay`, or ending after the deadline.
///
/// ```
/// use tower_retrier::{Pushback, RetryConfig};
///
/// assert_eq!(RetryConfig::default().pushback(), Pushback::Honor);
/// let cfg = RetryConfig::builder().pushback(Pushback::Cap).build().unwrap();
/// assert_eq!(cfg.pushback(), Pushback::Cap);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pushback {
    /// Never retry sooner than the server asked (the default). A pushback the config can
    /// honour is waited in full; one longer than `max_delay`, or one that would end after the
    /// deadline, **ends the retries**: the caller gets the server's response, with stop reason
    /// `pushback_too_long`.
    #[default]
    Honor,
    /// Cap the pushback at `max_delay` and retry then (the deadline still applies). This
    /// retries *sooner than the server asked* whenever it asked for more than `max_delay`:
    /// that adds load exactly when the server said it cannot take it. Use it only for servers
    /// known to over-state their `Retry-After`.
    Cap,
}

impl Pushback {
    /// A stable lower-case name (`honor`, `cap`), as accepted by the `serde` form.
    ///
    /// ```
    /// assert_eq!(tower_retrier::Pushback::Cap.as_str(), "cap");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Pushback::Honor => "honor",
            Pushback::Cap => "cap",
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            exponential_base: 2.0,
            jitter: true,
            jitter_factor: 0.1,
            deadline: None,
            attempt_timeout: None,
            min_attempt_time: DEFAULT_MIN_ATTEMPT_TIME,
            pushback: Pushback::Honor,
        }
    }
}

impl RetryConfig {
    /// Starts a builder from the reference defaults.
    ///
    /// ```
    /// let cfg = tower_retrier::RetryConfig::builder().jitter(false).build().unwrap();
    /// assert!(!cfg.jitter());
    /// ```
    pub fn builder() -> RetryConfigBuilder {
        RetryConfigBuilder {
            config: RetryConfig::default(),
            max_delay_set: false,
            initial_delay_set: false,
        }
    }

    /// Attempts in total, the first one included (1 means "never retry"). A hedging layer
    /// counts [`HedgeConfig::max_attempts`](crate::hedge::HedgeConfig::max_attempts) instead
    /// (see [`RetryLayer::hedge`](crate::RetryLayer::hedge)).
    ///
    /// ```
    /// assert_eq!(tower_retrier::RetryConfig::default().max_attempts(), 3);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Delay before the first retry, before jitter.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_retrier::RetryConfig::default().initial_delay(), Duration::from_millis(100));
    /// ```
    pub fn initial_delay(&self) -> Duration {
        self.initial_delay
    }

    /// Upper bound for any single delay. A server pushback (`Retry-After`) above it ends the
    /// retries, unless [`Pushback::Cap`] is chosen.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(tower_retrier::RetryConfig::default().max_delay(), Duration::from_secs(10));
    /// ```
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// Growth factor of the exponential backoff.
    ///
    /// ```
    /// assert_eq!(tower_retrier::RetryConfig::default().exponential_base(), 2.0);
    /// ```
    pub fn exponential_base(&self) -> f64 {
        self.exponential_base
    }

    /// Whether delays are randomised.
    ///
    /// ```
    /// assert!(tower_retrier::RetryConfig::default().jitter());
    /// ```
    pub fn jitter(&self) -> bool {
        self.jitter
    }

    /// Relative size of the jitter: a delay `d` becomes uniform in `d × (1 ± jitter_factor)`.
    ///
    /// ```
    /// assert_eq!(tower_retrier::RetryConfig::default().jitter_factor(), 0.1);
    /// ```
    pub fn jitter_factor(&self) -> f64 {
        self.jitter_factor
    }

    /// Overall time budget across all attempts and backoffs, if any. A retry whose backoff
    /// would end after the deadline is not made; the last result is returned instead.
    ///
    /// ```
    /// assert_eq!(tower_retrier::RetryConfig::default().deadline(), None);
    /// ```
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// How long one attempt (the first, a retry or a hedge) may take before the layer cuts
    /// it, if set. A timed-out attempt is classified as a timeout (reason `timeout`) and
    /// retried under the same rules as any failure (the idempotency guard, attempts, budget).
    ///
    /// The cut happens inside the layer, so the inner service keeps its own error type and
    /// typed classifiers keep working; it applies to layers switched with
    /// [`RetryLayer::timed_attempts`](crate::RetryLayer::timed_attempts), whose error type
    /// is [`AttemptError<E>`](crate::AttemptError) (a plain layer cannot return a timeout as
    /// the inner service's own error, and logs a warning when built with one set).
    ///
    /// ```
    /// assert_eq!(tower_retrier::RetryConfig::default().attempt_timeout(), None);
    /// ```
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// The least time left of the deadline a retry (or hedge) needs to be started: with less,
    /// it could not finish, and the server would work for a caller that has given up, so the
    /// call ends with stop reason `deadline_exceeded` instead. Only applies with a
    /// [`deadline`](Self::deadline). Defaults to [`DEFAULT_MIN_ATTEMPT_TIME`] (5 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(tower_retrier::RetryConfig::default().min_attempt_time(), Duration::from_millis(5));
    /// ```
    pub fn min_attempt_time(&self) -> Duration {
        self.min_attempt_time
    }

    /// What happens when a server asks for a delay longer than `max_delay` or past the
    /// deadline (see [`Pushback`]).
    ///
    /// ```
    /// assert_eq!(tower_retrier::RetryConfig::default().pushback(), tower_retrier::Pushback::Honor);
    /// ```
    pub fn pushback(&self) -> Pushback {
        self.pushback
    }

    /// Checks every field. `blame_max_delay`: when `initial_delay > max_delay`, the user
    /// changed `max_delay` (not `initial_delay`), so the error names the field they set.
    fn validate(self, blame_max_delay: bool) -> Result<Self, ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(ConfigError::new(
                "max_attempts",
                self.max_attempts.to_string(),
                format!("must be between 1 and {MAX_ATTEMPTS_LIMIT} (1 means never retry)"),
            ));
        }
        if self.initial_delay > self.max_delay && blame_max_delay {
            return Err(ConfigError::new(
                "max_delay",
                format!("{:?}", self.max_delay),
                format!(
                    "must be at least initial_delay ({:?}); lower initial_delay too for shorter delays",
                    self.initial_delay
                ),
            ));
        }
        if self.initial_delay > self.max_delay {
            return Err(ConfigError::new(
                "initial_delay",
                format!("{:?}", self.initial_delay),
                format!("must not exceed max_delay ({:?})", self.max_delay),
            ));
        }
        if !self.exponential_base.is_finite() || self.exponential_base < 1.0 {
            return Err(ConfigError::new(
                "exponential_base",
                self.exponential_base.to_string(),
                "must be a finite number >= 1.0",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter_factor) {
            return Err(ConfigError::new(
                "jitter_factor",
                self.jitter_factor.to_string(),
                "must be a number in [0.0, 1.0]",
            ));
        }
        if self.deadline == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "deadline",
                "0s",
                "must be positive (leave it unset for no deadline)",
            ));
        }
        if let Some(deadline) = self.deadline
            && self.min_attempt_time >= deadline
        {
            return Err(ConfigError::new(
                "min_attempt_time",
                format!("{:?}", self.min_attempt_time),
                format!("must be less than the deadline ({deadline:?})"),
            ));
        }
        if let Some(t) = self.attempt_timeout {
            if t.is_zero() {
                return Err(ConfigError::new(
                    "attempt_timeout",
                    "0s",
                    "must be positive (leave it unset for no per-attempt timeout)",
                ));
            }
            if let Some(deadline) = self.deadline
                && t > deadline
            {
                return Err(ConfigError::new(
                    "attempt_timeout",
                    format!("{t:?}"),
                    format!("must not exceed deadline ({deadline:?})"),
                ));
            }
        }
        Ok(self)
    }
}

/// Builds a validated [`RetryConfig`]; see [`RetryConfig::builder`].
///
/// ```
/// use tower_retrier::RetryConfig;
///
/// let err = RetryConfig::builder().jitter_factor(1.5).build().unwrap_err();
/// assert_eq!(err.field(), "jitter_factor");
/// ```
#[derive(Clone, Debug)]
#[must_use = "call .build() to get a RetryConfig"]
pub struct RetryConfigBuilder {
    config: RetryConfig,
    // Which delay the user set, so a conflict between the two names the one they changed.
    max_delay_set: bool,
    initial_delay_set: bool,
}

impl RetryConfigBuilder {
    /// Attempts in total, the first included; 1..=[`MAX_ATTEMPTS_LIMIT`].
    ///
    /// ```
    /// let cfg = tower_retrier::RetryConfig::builder().max_attempts(1).build().unwrap();
    /// assert_eq!(cfg.max_attempts(), 1);
    /// ```
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// Delay before the first retry; must not exceed `max_delay`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let cfg = tower_retrier::RetryConfig::builder().initial_delay(Duration::from_millis(5)).build().unwrap();
    /// assert_eq!(cfg.initial_delay(), Duration::from_millis(5));
    /// ```
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.config.initial_delay = d;
        self.initial_delay_set = true;
        self
    }

    /// Cap on every delay.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let cfg = tower_retrier::RetryConfig::builder().max_delay(Duration::from_secs(1)).build().unwrap();
    /// assert_eq!(cfg.max_delay(), Duration::from_secs(1));
    /// ```
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.config.max_delay = d;
        self.max_delay_set = true;
        self
    }

    /// Growth factor, finite and >= 1.0.
    ///
    /// ```
    /// let cfg = tower_retrier::RetryConfig::builder().exponential_base(3.0).build().unwrap();
    /// assert_eq!(cfg.exponential_base(), 3.0);
    /// ```
    pub fn exponential_base(mut self, base: f64) -> Self {
        self.config.exponential_base = base;
        self
    }

    /// Turns jitter on or off.
    ///
    /// ```
    /// let cfg = tower_retrier::RetryConfig::builder().jitter(false).build().unwrap();
    /// assert!(!cfg.jitter());
    /// ```
    pub fn jitter(mut self, on: bool) -> Self {
        self.config.jitter = on;
        self
    }

    /// Relative jitter in [0, 1].
    ///
    /// ```
    /// let cfg = tower_retrier::RetryConfig::builder().jitter_factor(0.5).build().unwrap();
    /// assert_eq!(cfg.jitter_factor(), 0.5);
    /// ```
    pub fn jitter_factor(mut self, factor: f64) -> Self {
        self.config.jitter_factor = factor;
        self
    }

    /// Overall deadline across all attempts and backoffs (positive).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let cfg = tower_retrier::RetryConfig::builder().deadline(Duration::from_secs(3)).build().unwrap();
    /// assert_eq!(cfg.deadline(), Some(Duration::from_secs(3)));
    /// ```
    pub fn deadline(mut self, d: Duration) -> Self {
        self.config.deadline = Some(d);
        self
    }

    /// Cuts each attempt after `d` (positive, at most the deadline); see
    /// [`RetryConfig::attempt_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = tower_retrier::RetryConfig::builder()
    ///     .attempt_timeout(Duration::from_millis(300))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(cfg.attempt_timeout(), Some(Duration::from_millis(300)));
    /// ```
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.config.attempt_timeout = Some(d);
        self
    }

    /// No retry starts with less than `d` left of the deadline (less than the deadline; zero
    /// turns the floor off); see [`RetryConfig::min_attempt_time`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = tower_retrier::RetryConfig::builder()
    ///     .deadline(Duration::from_secs(2))
    ///     .min_attempt_time(Duration::from_millis(50))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(cfg.min_attempt_time(), Duration::from_millis(50));
    /// ```
    pub fn min_attempt_time(mut self, d: Duration) -> Self {
        self.config.min_attempt_time = d;
        self
    }

    /// Removes the overall deadline.
    ///
    /// ```
    /// let cfg = tower_retrier::RetryConfig::builder().no_deadline().build().unwrap();
    /// assert_eq!(cfg.deadline(), None);
    /// ```
    pub fn no_deadline(mut self) -> Self {
        self.config.deadline = None;
        self
    }

    /// Validates and returns the config, or a [`ConfigError`] naming the offending field.
    ///
    /// ```
    /// let err = tower_retrier::RetryConfig::builder().max_attempts(0).build().unwrap_err();
    /// assert!(err.to_string().contains("max_attempts"));
    /// ```
    pub fn build(self) -> Result<RetryConfig, ConfigError> {
        self.config
            .validate(self.max_delay_set && !self.initial_delay_set)
    }

    /// What to do with a server pushback longer than `max_delay` or past the deadline:
    /// [`Pushback::Honor`] (the default: stop retrying) or [`Pushback::Cap`] (retry after
    /// `max_delay`, sooner than the server asked).
    ///
    /// ```
    /// use tower_retrier::{Pushback, RetryConfig};
    /// let cfg = RetryConfig::builder().pushback(Pushback::Cap).build().unwrap();
    /// assert_eq!(cfg.pushback(), Pushback::Cap);
    /// ```
    pub fn pushback(mut self, mode: Pushback) -> Self {
        self.config.pushback = mode;
        self
    }
}

/// A configuration value was rejected. The message names the field, the value and the rule.
///
/// ```
/// let err = tower_retrier::RetryConfig::builder().exponential_base(f64::NAN).build().unwrap_err();
/// assert_eq!(err.field(), "exponential_base");
/// assert_eq!(err.to_string(), "invalid retry config: exponential_base = NaN: must be a finite number >= 1.0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    subject: &'static str,
    field: &'static str,
    value: String,
    reason: String,
}

impl ConfigError {
    /// Creates an error for `field` holding `value`, with the rule it broke.
    ///
    /// ```
    /// let err = tower_retrier::ConfigError::new("ttl", "0s", "must be positive");
    /// assert_eq!(err.field(), "ttl");
    /// ```
    pub fn new(field: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            subject: "retry config",
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Says what was being configured (`"retry budget"`, `"Redis budget"`, ...); the message
    /// then reads "invalid {subject}: ...". The default is `"retry config"`.
    ///
    /// ```
    /// let err = tower_retrier::ConfigError::new("ttl", "0s", "must be positive").subject("retry budget");
    /// assert_eq!(err.to_string(), "invalid retry budget: ttl = 0s: must be positive");
    /// ```
    pub fn subject(mut self, subject: &'static str) -> Self {
        self.subject = subject;
        self
    }

    /// The name of the rejected field.
    ///
    /// ```
    /// let err = tower_retrier::RetryConfig::builder().max_attempts(1000).build().unwrap_err();
    /// assert_eq!(err.field(), "max_attempts");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The rejected value, as text.
    ///
    /// ```
    /// let err = tower_retrier::RetryConfig::builder().max_attempts(1000).build().unwrap_err();
    /// assert_eq!(err.value(), "1000");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: {} = {}: {}",
            self.subject, self.field, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::*;
    use serde::{Deserialize, Deserializer};

    /// The on-disk shape: durations as human strings ("100ms", "10s"); every field optional.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        max_attempts: Option<u32>,
        #[serde(default, with = "humantime_serde")]
        initial_delay: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        max_delay: Option<Duration>,
        exponential_base: Option<f64>,
        jitter: Option<bool>,
        jitter_factor: Option<f64>,
        #[serde(default, with = "humantime_serde")]
        deadline: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        attempt_timeout: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        min_attempt_time: Option<Duration>,
        pushback: Option<PushbackRaw>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum PushbackRaw {
        Honor,
        Cap,
    }

    impl<'de> Deserialize<'de> for RetryConfig {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let raw = Raw::deserialize(d)?;
            let mut cfg = RetryConfig::default();
            if let Some(v) = raw.max_attempts {
                cfg.max_attempts = v;
            }
            if let Some(v) = raw.initial_delay {
                cfg.initial_delay = v;
            }
            if let Some(v) = raw.max_delay {
                cfg.max_delay = v;
            }
            if let Some(v) = raw.exponential_base {
                cfg.exponential_base = v;
            }
            if let Some(v) = raw.jitter {
                cfg.jitter = v;
            }
            if let Some(v) = raw.jitter_factor {
                cfg.jitter_factor = v;
            }
            cfg.deadline = raw.deadline;
            cfg.attempt_timeout = raw.attempt_timeout;
            if let Some(v) = raw.min_attempt_time {
                cfg.min_attempt_time = v;
            }
            if let Some(p) = raw.pushback {
                cfg.pushback = match p {
                    PushbackRaw::Honor => Pushback::Honor,
                    PushbackRaw::Cap => Pushback::Cap,
                };
            }
            let blame_max_delay = raw.max_delay.is_some() && raw.initial_delay.is_none();
            cfg.validate(blame_max_delay)
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_reference() {
        let c = RetryConfig::default();
        assert_eq!(c.max_attempts(), 3);
        assert_eq!(c.initial_delay(), Duration::from_millis(100));
        assert_eq!(c.max_delay(), Duration::from_secs(10));
        assert_eq!(c.exponential_base(), 2.0);
        assert!(c.jitter());
        assert_eq!(c.jitter_factor(), 0.1);
        assert_eq!(RetryConfig::builder().build().unwrap(), c);
    }

    #[test]
    fn rejects_each_bad_field_by_name() {
        let b = RetryConfig::builder;
        let cases = [
            (b().max_attempts(0).build(), "max_attempts"),
            (b().max_attempts(101).build(), "max_attempts"),
            (
                b().initial_delay(Duration::from_secs(11)).build(),
                "initial_delay",
            ),
            (b().exponential_base(0.5).build(), "exponential_base"),
            (
                b().exponential_base(f64::INFINITY).build(),
                "exponential_base",
            ),
            (b().exponential_base(f64::NAN).build(), "exponential_base"),
            (b().jitter_factor(-0.1).build(), "jitter_factor"),
            (b().jitter_factor(f64::NAN).build(), "jitter_factor"),
            (b().deadline(Duration::ZERO).build(), "deadline"),
            (
                b().attempt_timeout(Duration::ZERO).build(),
                "attempt_timeout",
            ),
            (
                b().deadline(Duration::from_secs(1))
                    .attempt_timeout(Duration::from_secs(2))
                    .build(),
                "attempt_timeout",
            ),
            // The field the user changed is the one named.
            (b().max_delay(Duration::ZERO).build(), "max_delay"),
            (
                b().max_delay(Duration::from_millis(50))
                    .initial_delay(Duration::from_millis(60))
                    .build(),
                "initial_delay",
            ),
        ];
        for (res, field) in cases {
            let err = res.unwrap_err();
            assert_eq!(err.field(), field);
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn boundaries_are_accepted() {
        let c = RetryConfig::builder()
            .max_attempts(MAX_ATTEMPTS_LIMIT)
            .initial_delay(Duration::ZERO)
            .max_delay(Duration::ZERO)
            .exponential_base(1.0)
            .jitter_factor(1.0)
            .build()
            .unwrap();
        assert_eq!(c.max_attempts(), MAX_ATTEMPTS_LIMIT);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_human_durations_and_validates() {
        let cfg: RetryConfig = serde_json::from_str(
            r#"{"max_attempts": 4, "initial_delay": "50ms", "max_delay": "2s", "deadline": "5s"}"#,
        )
        .unwrap();
        assert_eq!(cfg.max_attempts(), 4);
        assert_eq!(cfg.initial_delay(), Duration::from_millis(50));
        assert_eq!(cfg.max_delay(), Duration::from_secs(2));
        assert_eq!(cfg.deadline(), Some(Duration::from_secs(5)));
        assert!(cfg.jitter(), "unspecified fields keep the defaults");

        let cfg: RetryConfig = serde_json::from_str(r#"{"pushback": "cap"}"#).unwrap();
        assert_eq!(cfg.pushback(), Pushback::Cap);
        let err = serde_json::from_str::<RetryConfig>(r#"{"pushback": "later"}"#).unwrap_err();
        assert!(err.to_string().contains("honor"), "{err}");
        let err = serde_json::from_str::<RetryConfig>(r#"{"max_delay": "0s"}"#).unwrap_err();
        assert!(err.to_string().contains("max_delay = 0ns"), "{err}");

        let err = serde_json::from_str::<RetryConfig>(r#"{"jitter_factor": 2.0}"#).unwrap_err();
        assert!(err.to_string().contains("jitter_factor"), "{err}");
        let cfg: RetryConfig = serde_json::from_str(r#"{"attempt_timeout": "250ms"}"#).unwrap();
        assert_eq!(cfg.attempt_timeout(), Some(Duration::from_millis(250)));
        let err = serde_json::from_str::<RetryConfig>(r#"{"attempt_timeout": "0s"}"#).unwrap_err();
        assert!(err.to_string().contains("attempt_timeout"), "{err}");
        let err = serde_json::from_str::<RetryConfig>(r#"{"max_attemps": 2}"#).unwrap_err();
        assert!(
            err.to_string().contains("max_attemps"),
            "typos are rejected: {err}"
        );
    }
}
