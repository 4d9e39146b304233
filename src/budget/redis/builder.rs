//! Building a [`RedisBudget`]: parameters, validation, connection, and its error type.

use super::backend::Backend;
use super::connect::{
    ClientSettings, ConnectError, Subject, check_reconnect_policies, check_timings,
    client_from_url, command_options, connect_cause,
};
use super::health::{Health, Unavailable};
use super::lease::Lease;
use super::mode::{Fallback, Mode};
use super::scripts::{self, Scripts};
use super::tls_error::TlsRejection;
use super::{Inner, Params, RedisBudget, SLOTS, UNIT, flusher, name};
use crate::ConfigError;
use crate::budget::counter::DepositCounter;
use crate::budget::{AdaptiveBudget, RatioBudget};
use fred::prelude::{Client, Error, Pool};
use fred::util::redis_keyslot;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Builds a [`RedisBudget`]. Every setting has a default; `build_*` validates them and
/// returns a [`RedisBudgetError::Config`] naming the field when one is out of range.
///
/// | setting | default | range |
/// |---|---|---|
/// | `mode` | [`Mode::Adaptive`] | |
/// | `ratio` | 0.2 | 0 – 1000 |
/// | `max_retries` (adaptive) | 100 | 1 – 1,000,000 |
/// | `min_per_sec` | 1 (adaptive), 10 (ratio) | adaptive: ≤ `max_retries`; ratio: any |
/// | `ttl` | 10 s | 1 s – 60 s (ratio: the window; both: idle keys expire after `2 × ttl`) |
/// | `flush_interval` | 100 ms | 1 ms – 1 s |
/// | `lease_size` | 10 | 1 – 1000 |
/// | `command_timeout` | 50 ms | 1 ms – 10 s |
/// | `connect_timeout` | 2 s | 1 ms – 60 s |
/// | `on_unavailable` | [`Unavailable::Fallback`] | |
/// | `lazy_connect` | `false` | |
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::budget::RedisBudget;
/// use tower_retrier::budget::redis::Unavailable;
///
/// let builder = RedisBudget::builder("search")
///     .mode(tower_retrier::budget::redis::Mode::Ratio)
///     .ttl(Duration::from_secs(10))
///     .min_per_sec(5)
///     .ratio(0.1)
///     .flush_interval(Duration::from_millis(50))
///     .lease_size(5)
///     .command_timeout(Duration::from_millis(30))
///     .on_unavailable(Unavailable::Allow)
///     .lazy_connect(true);
/// # let _ = builder;
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until one of its build methods is awaited"]
pub struct RedisBudgetBuilder {
    name: String,
    mode: Mode,
    ttl: Duration,
    min_per_sec: Option<u32>,
    ratio: f64,
    max_retries: u32,
    flush_interval: Duration,
    lease_size: u32,
    command_timeout: Duration,
    connect_timeout: Duration,
    on_unavailable: Unavailable,
    lazy_connect: bool,
    #[cfg(feature = "redis-tls")]
    tls: Option<fred::types::config::TlsConfig>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $field:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $field(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
    };
}

impl RedisBudgetBuilder {
    pub(crate) fn new(name: String) -> Self {
        RedisBudgetBuilder {
            name,
            mode: Mode::Adaptive,
            ttl: Duration::from_secs(10),
            min_per_sec: None,
            ratio: 0.2,
            max_retries: 100,
            flush_interval: Duration::from_millis(100),
            lease_size: 10,
            command_timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(2),
            on_unavailable: Unavailable::Fallback,
            lazy_connect: false,
            #[cfg(feature = "redis-tls")]
            tls: None,
        }
    }

    setter!(
        /// The semantics shared by the fleet: [`Mode::Adaptive`] (default) or [`Mode::Ratio`].
        mode: Mode
    );
    setter!(
        /// Ratio mode: the window over which deposits and withdrawals are counted. Both modes:
        /// the budget's key expires after `2 × ttl` without traffic.
        ttl: Duration
    );

    /// Retries per second granted to the whole fleet regardless of traffic (default 1 in
    /// adaptive mode, 10 in ratio mode).
    ///
    /// ```
    /// let b = tower_retrier::budget::RedisBudget::builder("x").min_per_sec(2);
    /// # let _ = b;
    /// ```
    pub fn min_per_sec(mut self, min_per_sec: u32) -> Self {
        self.min_per_sec = Some(min_per_sec);
        self
    }

    setter!(
        /// Adaptive mode: retries earned per successful attempt anywhere in the fleet. Ratio
        /// mode: retries granted per original request (0.2 = 20 % extra load).
        ratio: f64
    );
    setter!(
        /// Adaptive mode: the largest stock of retries the fleet can hold (and its size at start).
        max_retries: u32
    );
    setter!(
        /// How often each instance sends its batched deposits or successes (one script call each
        /// time).
        flush_interval: Duration
    );
    setter!(
        /// Retries fetched from Redis per round trip and then handed out locally. Larger means
        /// fewer round trips but up to `lease_size - 1` retries held per instance.
        lease_size: u32
    );
    setter!(
        /// The longest a retry waits for Redis before the [`Unavailable`] policy decides.
        command_timeout: Duration
    );
    setter!(
        /// The longest `build_*` waits for the first connection (not used with `lazy_connect`).
        connect_timeout: Duration
    );
    setter!(
        /// What retries get while Redis is unreachable or slow.
        on_unavailable: Unavailable
    );
    setter!(
        /// Build without waiting for Redis: the budget starts on the [`Unavailable`] policy
        /// and switches to Redis once it answers; connection problems are logged instead of
        /// returned.
        lazy_connect: bool
    );

    /// TLS settings for `build_from_url` (feature `redis-tls`), e.g. a rustls `ClientConfig`
    /// trusting a private CA. Without it, `rediss://` URLs trust the system's root
    /// certificates.
    ///
    /// ```no_run
    /// # fn f(rustls_config: fred::rustls::ClientConfig) {
    /// use fred::types::config::{TlsConfig, TlsConnector};
    /// let builder = tower_retrier::budget::RedisBudget::builder("orders")
    ///     .tls(TlsConfig::from(TlsConnector::from(rustls_config)));
    /// # let _ = builder; }
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn tls(mut self, tls: fred::types::config::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects to `redis://`, `rediss://` (feature `redis-tls`) or `redis-cluster://` URLs
    /// (`redis-cluster://host:port?node=host2:port2`), with ACL credentials in the URL
    /// (`redis://user:password@host:port`). The budget owns this client, sets a reconnect
    /// policy and command timeouts on it, and closes it when dropped.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), tower_retrier::budget::redis::RedisBudgetError> {
    /// let budget = tower_retrier::budget::RedisBudget::builder("orders")
    ///     .build_from_url("redis://retrier:secret@127.0.0.1:6379")
    ///     .await?;
    /// # let _ = budget; Ok(()) }
    /// ```
    pub async fn build_from_url(self, url: &str) -> Result<RedisBudget, RedisBudgetError> {
        let started = tokio::time::Instant::now();
        self.validate()?;
        let settings = ClientSettings {
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            lazy_connect: self.lazy_connect,
            #[cfg(feature = "redis-tls")]
            tls: self.tls.clone(),
        };
        let client = client_from_url(url, &settings, Subject::Budget, &self.name).await?;
        self.finish(Backend::Client(client), true, started).await
    }

    /// Uses an existing fred client. It must have a reconnect policy (fred never reconnects
    /// without one). The budget applies its own timeout to each of its commands and leaves
    /// the client open when dropped.
    ///
    /// ```no_run
    /// use fred::prelude::*;
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?)
    ///     .set_policy(ReconnectPolicy::new_exponential(0, 20, 1000, 2))
    ///     .build()?;
    /// client.init().await?;
    /// let budget = tower_retrier::budget::RedisBudget::builder("orders")
    ///     .build_with_client(client.clone())
    ///     .await?;
    /// # let _ = budget; Ok(()) }
    /// ```
    pub async fn build_with_client(self, client: Client) -> Result<RedisBudget, RedisBudgetError> {
        self.validate()?;
        self.finish(Backend::Client(client), false, tokio::time::Instant::now())
            .await
    }

    /// Uses an existing fred pool (commands go round-robin over its clients), under the same
    /// conditions as [`build_with_client`](Self::build_with_client).
    ///
    /// ```no_run
    /// use fred::prelude::*;
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?)
    ///     .set_policy(ReconnectPolicy::new_constant(0, 200))
    ///     .build_pool(4)?;
    /// pool.init().await?;
    /// let budget = tower_retrier::budget::RedisBudget::builder("orders")
    ///     .build_with_pool(pool)
    ///     .await?;
    /// # let _ = budget; Ok(()) }
    /// ```
    pub async fn build_with_pool(self, pool: Pool) -> Result<RedisBudget, RedisBudgetError> {
        self.validate()?;
        self.finish(Backend::Pool(pool), false, tokio::time::Instant::now())
            .await
    }

    fn min_per_sec_or_default(&self) -> u32 {
        self.min_per_sec.unwrap_or(match self.mode {
            Mode::Adaptive => 1,
            Mode::Ratio => 10,
        })
    }

    fn validate(&self) -> Result<Fallback, RedisBudgetError> {
        name::validate(&self.name)?;
        // Same checks (and the same fallback) as the local budget; the ttl is checked in both
        // modes since it sets the key's expiry.
        let ratio = RatioBudget::new(self.ttl, self.min_per_sec_or_default(), self.ratio)?;
        let fallback = match self.mode {
            Mode::Ratio => Fallback::Ratio(ratio),
            Mode::Adaptive => Fallback::Adaptive(AdaptiveBudget::new(
                self.max_retries,
                self.ratio,
                self.min_per_sec_or_default(),
            )?),
        };
        check_timings(
            self.flush_interval,
            self.command_timeout,
            self.connect_timeout,
        )?;
        if !(1..=1000).contains(&self.lease_size) {
            return Err(ConfigError::new(
                "lease_size",
                self.lease_size.to_string(),
                "must be between 1 and 1000",
            )
            .into());
        }
        Ok(fallback)
    }

    /// `started`: when the build began; `connect_timeout` bounds the whole of it.
    async fn finish(
        self,
        backend: Backend,
        owned: bool,
        started: tokio::time::Instant,
    ) -> Result<RedisBudget, RedisBudgetError> {
        let fallback = self.validate()?;
        check_reconnect_policies(&backend)?;
        let key = match self.mode {
            Mode::Adaptive => name::stock_key(&self.name),
            Mode::Ratio => name::window_key(&self.name),
        };
        let min_per_sec = self.min_per_sec_or_default();
        let slot = redis_keyslot(key.as_bytes());
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let unit = UNIT as f64;
        let options = command_options(self.command_timeout);
        let params = Params {
            mode: self.mode,
            ttl: self.ttl,
            min_per_sec,
            ratio: self.ratio,
            max_retries: self.max_retries,
            flush_interval: self.flush_interval,
            lease_size: self.lease_size,
            command_timeout: self.command_timeout,
        };
        let alive = super::alive::Alive::new(&self.name);
        let inner = Arc::new(Inner {
            health: Health::new(&self.name, self.on_unavailable, fallback, true),
            name: self.name,
            adaptive: self.mode == Mode::Adaptive,
            key,
            slot,
            backend: backend.clone(),
            options,
            slot_ms: (ttl_ms / SLOTS as i64).max(1),
            reserve_units: (f64::from(min_per_sec) * self.ttl.as_secs_f64() * unit).round() as i64,
            ratio_units: (self.ratio * unit).round() as i64,
            expire_ms: ttl_ms.saturating_mul(2),
            cap_units: i64::from(self.max_retries) * UNIT,
            refill_units: i64::from(min_per_sec) * UNIT,
            fingerprint: match self.mode {
                Mode::Adaptive => scripts::fingerprint(&[
                    1,
                    i64::from(self.max_retries) * UNIT,
                    (self.ratio * unit).round() as i64,
                    i64::from(min_per_sec) * UNIT,
                ]),
                Mode::Ratio => scripts::fingerprint(&[
                    0,
                    (ttl_ms / SLOTS as i64).max(1),
                    (f64::from(min_per_sec) * self.ttl.as_secs_f64() * unit).round() as i64,
                    (self.ratio * unit).round() as i64,
                ]),
            },
            alive,
            warned_repair: std::sync::atomic::AtomicBool::new(false),
            warned_mismatch: std::sync::atomic::AtomicBool::new(false),
            stock_units: std::sync::atomic::AtomicI64::new(-1),
            scripts: match self.mode {
                Mode::Adaptive => Scripts::adaptive(),
                Mode::Ratio => Scripts::ratio(),
            },
            pending: DepositCounter::default(),
            carry: AtomicU64::new(0),
            lease: Lease::new(self.ttl / SLOTS as u32),
            refill: tokio::sync::Mutex::new(()),
            params,
        });
        // Load the scripts and check the server answers; this is also the first probe. Its
        // commands may take what is left of connect_timeout, not just the command timeout:
        // a busy server or machine should not fail the build because a SCRIPT LOAD took
        // longer than a retry may wait.
        let left = || {
            self.connect_timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1))
        };
        let _ = tokio::time::timeout(left(), inner.probe_within(left())).await;
        if inner.health.is_down() && !self.lazy_connect {
            let error = inner.first_error(left()).await;
            if owned {
                // In the background: connect_timeout bounds the build, not the clean-up.
                let timeout = self.connect_timeout;
                tokio::spawn(async move { backend.quit(timeout).await });
            }
            return Err(error);
        }
        if inner.health.is_down() {
            let error = inner.first_error(left()).await;
            tracing::warn!(
                budget = %inner.name,
                %error,
                "Redis retry budget not reachable yet; using the fallback policy until it is"
            );
        }
        flusher::spawn(&inner, owned.then_some(backend));
        Ok(RedisBudget { inner })
    }
}

/// Why a [`RedisBudget`] could not be built (or a [`flush`](RedisBudget::flush) failed).
///
/// Messages never contain passwords.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_retrier::budget::RedisBudget;
/// use tower_retrier::budget::redis::RedisBudgetError;
///
/// let err = RedisBudget::builder("bad name!").build_from_url("redis://127.0.0.1:1").await.unwrap_err();
/// assert!(matches!(err, RedisBudgetError::Config(ref c) if c.field() == "name"));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisBudgetError {
    /// A setting (or the URL) is invalid.
    Config(ConfigError),
    /// The first connection to `server` failed: refused, timed out, wrong password, TLS
    /// rejected, ... The message names the server (`host:port`, never credentials) and the
    /// cause.
    Connect {
        /// The `host:port` (or list of them) the URL names.
        server: String,
        /// What the client reported.
        error: Error,
    },
    /// Redis answered with an error (a script or command failed).
    Redis(Error),
    /// Redis did not answer in time, or is known to be down.
    Unavailable(&'static str),
}

impl RedisBudgetError {
    pub(crate) fn backend(e: Error) -> Self {
        RedisBudgetError::Redis(e)
    }

    pub(crate) fn unavailable(what: &'static str) -> Self {
        RedisBudgetError::Unavailable(what)
    }

    /// What was wrong with the server's TLS certificate, when that is why a `rediss://`
    /// connection failed (the message says it in words too).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_retrier::budget::RedisBudget;
    /// let err = RedisBudget::builder("orders").build_from_url("redis://127.0.0.1:1").await.unwrap_err();
    /// assert_eq!(err.tls_rejection(), None); // refused, not a certificate problem
    /// # }
    /// ```
    pub fn tls_rejection(&self) -> Option<TlsRejection> {
        match self {
            RedisBudgetError::Connect { error, .. } | RedisBudgetError::Redis(error) => {
                TlsRejection::of(error)
            }
            _ => None,
        }
    }
}

impl From<ConfigError> for RedisBudgetError {
    fn from(e: ConfigError) -> Self {
        RedisBudgetError::Config(e.subject("Redis retry budget setting"))
    }
}

impl fmt::Display for RedisBudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisBudgetError::Config(e) => write!(f, "{e}"),
            RedisBudgetError::Connect { server, error } => write!(
                f,
                "Redis retry budget: cannot connect to {server}: {}",
                connect_cause(error)
            ),
            RedisBudgetError::Redis(e) => write!(f, "Redis retry budget: Redis error: {e}"),
            RedisBudgetError::Unavailable(what) => {
                write!(f, "Redis retry budget: Redis unavailable: {what}")
            }
        }
    }
}

impl From<ConnectError> for RedisBudgetError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Config(c) => c.into(),
            ConnectError::Redis(e) => RedisBudgetError::Redis(e),
            ConnectError::Connect { server, error } => RedisBudgetError::Connect { server, error },
        }
    }
}

impl std::error::Error for RedisBudgetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisBudgetError::Config(e) => Some(e),
            RedisBudgetError::Connect { error, .. } => Some(error),
            RedisBudgetError::Redis(e) => Some(e),
            RedisBudgetError::Unavailable(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_name_their_field() {
        let b = || RedisBudgetBuilder::new("ok".into());
        let field = |b: RedisBudgetBuilder| match b.validate().unwrap_err() {
            RedisBudgetError::Config(c) => c.field(),
            other => panic!("{other}"),
        };
        assert_eq!(field(b().lease_size(0)), "lease_size");
        assert_eq!(field(b().flush_interval(Duration::ZERO)), "flush_interval");
        assert_eq!(
            field(b().command_timeout(Duration::ZERO)),
            "command_timeout"
        );
        assert_eq!(field(b().ttl(Duration::from_secs(0))), "ttl");
        assert_eq!(field(b().ratio(f64::NAN)), "ratio");
        assert_eq!(field(b().max_retries(0)), "max_retries");
        assert_eq!(field(b().max_retries(5).min_per_sec(6)), "min_per_sec");
        assert_eq!(field(b().mode(Mode::Ratio).ratio(-1.0)), "ratio");
        assert_eq!(
            field(b().connect_timeout(Duration::ZERO)),
            "connect_timeout"
        );
    }
}
