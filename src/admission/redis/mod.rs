//! Fleet-wide admission control through Redis (feature `redis`): every instance that names
//! the same key shares what its attempts got, so a fleet of instances that each see too few
//! calls to judge the downstream alone opens together, and probes it with one fleet-wide
//! quota.
//!
//! Build one with [`Admission::redis`]; it is an ordinary [`Admission`] (pass it to
//! [`RetryLayer::with_admission`](crate::RetryLayer::with_admission)) whose state a
//! background task links to the fleet:
//!
//! - **Nothing on a call's path talks to Redis.** Admitting and recording stay the local
//!   atomics of [`Admission`]. Once per `flush_interval` (100 ms) a background task runs one
//!   Lua script: it publishes this instance's counts over its window (accepted, failed) under
//!   its own id, reads the fleet's totals over the instances heard from lately, takes probes
//!   from the fleet-wide quota while open, and announces an accepted probe.
//! - **Traffic-weighted, decided locally.** The fleet's totals are the instances' counts
//!   added, so an instance weighs what it sends: one instance whose network is broken among
//!   fifteen healthy ones is a sixteenth of the attempts and cannot make the others refuse.
//!   Each instance opens on the fleet's ratio (with the same `failure_ratio` and
//!   `min_calls`) or on its own, as without Redis.
//! - **Probes are a fleet-wide quota**: while open, at most `probes` calls per
//!   `probe_interval` go out from the whole fleet (a counter in Redis per interval, on the
//!   server's clock), not per instance. Only an instance that refused calls since its
//!   last flush (and holds none) asks; a probe granted and not used within one `window`
//!   is dropped. Over time the fleet sends at most `probes` per `probe_interval`; in any
//!   one interval at most `probes × (1 + window / probe_interval)` (5 with the defaults,
//!   against 4 per instance per second without the fleet). An accepted probe closes its instance at once and every other one at its next
//!   flush (within two flush intervals); counts published before that close do not count.
//! - **Redis away = local state.** Every command is bounded by `command_timeout`; a failed,
//!   slow or unreadable flush (Redis down, killed, paused, a key of the wrong type) leaves the
//!   decisions to this instance's own counts and probe clock until a flush succeeds again.
//!   It is counted (`retrier_admission_backend_errors_total`,
//!   `retrier_admission_fleet_lost_total`, label `admission`) and logged once per outage.
//!
//! What it leaves in Redis: two hashes per name, `{ra:NAME}:c` (one field per live instance)
//! and `{ra:NAME}:s` (the close token and the probe quota), expiring a minute after the last
//! instance stopped. What it sends: one `EVALSHA` per instance per flush interval.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower::{Layer, service_fn};
//! use tower_retrier::admission::{Admission, AdmissionConfig};
//! use tower_retrier::{RetryConfig, RetryLayer};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let admission = Admission::redis("checkout-api")
//!     .url("redis://127.0.0.1:6379")
//!     .config(AdmissionConfig::default())
//!     .flush_interval(Duration::from_millis(100))
//!     .build()
//!     .await?;
//! let layer = RetryLayer::new(RetryConfig::default()).with_admission(admission);
//! let svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
//! # let _ = svc; Ok(()) }
//! ```

mod link;
mod script;

use super::{Admission, AdmissionConfig};
use crate::ConfigError;
use crate::budget::redis::backend::Backend;
use crate::budget::redis::connect::{
    ClientSettings, ConnectError, Subject, check_reconnect_policies, client_from_url,
    client_setters, command_options, connect_cause,
};
use crate::budget::redis::name;
use fred::prelude::{Client, Error, ErrorKind, Pool};
use fred::util::redis_keyslot;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub(crate) use link::Shared;

impl Admission {
    /// Starts building admission control shared by every instance that uses the same `name`
    /// (1 to 128 characters from `[A-Za-z0-9._:-]`; checked by
    /// [`build`](RedisAdmissionBuilder::build)). See the [module](self) for what is shared.
    ///
    /// ```
    /// use tower_retrier::admission::Admission;
    /// let builder = Admission::redis("payments").url("redis://127.0.0.1:6379");
    /// # let _ = builder;
    /// ```
    pub fn redis(name: impl Into<String>) -> RedisAdmissionBuilder {
        RedisAdmissionBuilder::new(name.into())
    }

    /// What the fleet link did so far; `None` for admission control that is not shared.
    ///
    /// ```
    /// use tower_retrier::admission::Admission;
    /// assert!(Admission::default().fleet_stats().is_none());
    /// ```
    pub fn fleet_stats(&self) -> Option<RedisAdmissionStats> {
        self.fleet.as_ref().map(|f| f.stats())
    }
}

/// A snapshot of a fleet-wide [`Admission`]'s link since it was built.
///
/// ```
/// let s = tower_retrier::admission::redis::RedisAdmissionStats::default();
/// assert_eq!(s.flushes, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisAdmissionStats {
    /// Flushes Redis answered (one script call each).
    pub flushes: u64,
    /// Flushes that failed, timed out or got a reply of the wrong shape.
    pub backend_errors: u64,
    /// Times the fleet's view was lost (Redis went away) and the local state decided alone.
    pub outages: u64,
    /// Probes the fleet-wide quota granted to this instance.
    pub probes_granted: u64,
    /// Whether the last flush succeeded (the fleet's view is in use).
    pub redis_up: bool,
    /// The fleet's accepted attempts over the window at the last flush.
    pub fleet_accepted: u64,
    /// The fleet's attempts not accepted over the window at the last flush.
    pub fleet_failed: u64,
    /// The instances whose counts made those totals.
    pub fleet_instances: u64,
}

/// Where the builder finds Redis.
#[derive(Clone)]
enum Target {
    None,
    Url(String),
    Client(Client),
    Pool(Pool),
}

/// Builds a fleet-wide [`Admission`]: [`Admission::redis`]. Every setting has a default;
/// [`build`](Self::build) validates them and returns a [`RedisAdmissionError::Config`]
/// naming the field when one is out of range.
///
/// | setting | default | range |
/// |---|---|---|
/// | `url` / `client` / `pool` | (required) | |
/// | `config` | [`AdmissionConfig::default()`] | a mechanism with a breaker |
/// | `flush_interval` | 100 ms | 1 ms – 1 s (instances not heard from for three intervals stop counting) |
/// | `command_timeout` | 50 ms | 1 ms – 10 s |
/// | `connect_timeout` | 2 s | 1 ms – 60 s |
/// | `lazy_connect` | `false` | |
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::admission::{Admission, AdmissionConfig};
///
/// let builder = Admission::redis("search")
///     .url("redis://127.0.0.1:6379")
///     .config(AdmissionConfig::builder().min_calls(10).build().unwrap())
///     .flush_interval(Duration::from_millis(50))
///     .command_timeout(Duration::from_millis(30))
///     .lazy_connect(true);
/// # let _ = builder;
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisAdmissionBuilder {
    name: String,
    target: Target,
    config: AdmissionConfig,
    /// Where Redis is and how long to wait for it, as for the Redis retry budget.
    connection: ClientSettings,
}

impl fmt::Debug for RedisAdmissionBuilder {
    /// Settings only: never the URL (it may hold a password) or the client.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdmissionBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl RedisAdmissionBuilder {
    fn new(name: String) -> Self {
        RedisAdmissionBuilder {
            name,
            target: Target::None,
            config: AdmissionConfig::default(),
            connection: ClientSettings::default(),
        }
    }

    /// Connects to `redis://`, `rediss://` (feature `redis-tls`) or `redis-cluster://` URLs,
    /// with ACL credentials in the URL (`redis://user:password@host:port`). The admission
    /// control owns this client, sets a reconnect policy and command timeouts on it, and
    /// closes it when dropped.
    ///
    /// See [`RedisAdmissionBuilder`] for an example.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Url(url.into());
        self
    }

    /// Uses an existing fred client instead of a URL. It must have a reconnect policy (fred
    /// never reconnects without one); each command gets this builder's timeout; the client
    /// stays open when the admission control is dropped.
    ///
    /// ```no_run
    /// use fred::prelude::*;
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?)
    ///     .set_policy(ReconnectPolicy::new_exponential(0, 20, 1000, 2))
    ///     .build()?;
    /// client.init().await?;
    /// let admission = tower_retrier::admission::Admission::redis("orders")
    ///     .client(client.clone())
    ///     .build()
    ///     .await?;
    /// # let _ = admission; Ok(()) }
    /// ```
    pub fn client(mut self, client: Client) -> Self {
        self.target = Target::Client(client);
        self
    }

    /// Uses an existing fred pool, under the same conditions as [`client`](Self::client).
    ///
    /// ```no_run
    /// use fred::prelude::*;
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?)
    ///     .set_policy(ReconnectPolicy::new_constant(0, 200))
    ///     .build_pool(2)?;
    /// pool.init().await?;
    /// let admission = tower_retrier::admission::Admission::redis("orders")
    ///     .pool(pool)
    ///     .build()
    ///     .await?;
    /// # let _ = admission; Ok(()) }
    /// ```
    pub fn pool(mut self, pool: Pool) -> Self {
        self.target = Target::Pool(pool);
        self
    }

    /// The local mechanism and its parameters; the fleet shares the breaker's counts,
    /// its opening and its probes, so the mechanism must have a breaker
    /// ([`Mechanism::BreakerAndLimit`](super::Mechanism::BreakerAndLimit), the default, or
    /// [`Mechanism::Breaker`](super::Mechanism::Breaker)).
    ///
    /// See [`RedisAdmissionBuilder`] for an example.
    pub fn config(mut self, config: AdmissionConfig) -> Self {
        self.config = config;
        self
    }
    client_setters!(
        "tower_retrier::admission::Admission::redis(\"orders\")",
        "a flush waits for Redis before this instance's own state decides alone"
    );

    fn validate(&self) -> Result<(), RedisAdmissionError> {
        name::validate(&self.name)?;
        if matches!(self.target, Target::None) {
            return Err(ConfigError::new(
                "url",
                "(none)",
                "is missing: name the Redis server with .url(..), .client(..) or .pool(..)",
            )
            .into());
        }
        if !self.config.mechanism().has_breaker() {
            return Err(ConfigError::new(
                "mechanism",
                self.config.mechanism().as_str(),
                "must have a breaker (breaker_and_limit or breaker): the fleet shares the \
                 breaker's counts, opening and probes",
            )
            .into());
        }
        self.connection.check()?;
        Ok(())
    }

    /// Validates the settings, connects (unless `lazy_connect`), loads the script and starts
    /// the background link. A refused or timed-out first connection is a
    /// [`RedisAdmissionError::Connect`] naming the server.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_retrier::admission::Admission;
    /// use tower_retrier::admission::redis::RedisAdmissionError;
    ///
    /// let err = Admission::redis("bad name!").url("redis://127.0.0.1:1").build().await.unwrap_err();
    /// assert!(matches!(err, RedisAdmissionError::Config(ref c) if c.field() == "name"));
    /// # }
    /// ```
    pub async fn build(self) -> Result<Admission, RedisAdmissionError> {
        let started = tokio::time::Instant::now();
        self.validate()?;
        let (backend, owned) = match &self.target {
            Target::Url(url) => {
                let client =
                    client_from_url(url, &self.connection, Subject::Admission, &self.name).await?;
                (Backend::Client(client), true)
            }
            Target::Client(c) => (Backend::Client(c.clone()), false),
            Target::Pool(p) => (Backend::Pool(p.clone()), false),
            Target::None => unreachable!("validated"),
        };
        check_reconnect_policies(&backend)?;
        let [counts_key, _] = script::keys(&self.name);
        let slot = redis_keyslot(counts_key.as_bytes());
        let mut up = false;
        if !self.connection.lazy_connect {
            // Load the script now: the first flush then costs one round trip, and a server
            // that does not answer is reported here rather than in a log line.
            let left = self
                .connection
                .connect_timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1));
            let load = link::script();
            let client = backend.client();
            let loaded = tokio::time::timeout(left, load.load_on(client, slot)).await;
            let error = match loaded {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(RedisAdmissionError::Redis(e)),
                Err(_) => Some(RedisAdmissionError::Redis(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "loading the script took longer than {:?}",
                        self.connection.connect_timeout
                    ),
                ))),
            };
            if let Some(error) = error {
                if owned {
                    let within = self.connection.connect_timeout;
                    tokio::spawn(async move { backend.quit(within).await });
                }
                return Err(error);
            }
            up = true;
        }
        let shared = Arc::new(Shared::new(self.name, !up));
        let admission = Admission {
            core: Arc::new(super::core::Core::new(self.config)),
            observer: Arc::new(OnceLock::new()),
            fleet: Some(Arc::clone(&shared)),
        };
        let params = link::Params {
            flush_interval: self.connection.flush_interval,
            command_timeout: self.connection.command_timeout,
            options: command_options(self.connection.command_timeout),
            slot,
        };
        link::spawn(
            admission.core(),
            Arc::clone(&admission.observer),
            shared,
            backend,
            owned,
            params,
        );
        Ok(admission)
    }
}

/// Why a fleet-wide [`Admission`] could not be built. Messages never contain passwords.
///
/// See [`RedisAdmissionBuilder::build`] for an example.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisAdmissionError {
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
    /// Redis answered with an error, or not in time (loading the script).
    Redis(Error),
}

impl From<ConfigError> for RedisAdmissionError {
    fn from(e: ConfigError) -> Self {
        RedisAdmissionError::Config(e.subject("fleet-wide admission control setting"))
    }
}

impl From<ConnectError> for RedisAdmissionError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Config(c) => c.into(),
            ConnectError::Redis(e) => RedisAdmissionError::Redis(e),
            ConnectError::Connect { server, error } => {
                RedisAdmissionError::Connect { server, error }
            }
        }
    }
}

impl fmt::Display for RedisAdmissionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisAdmissionError::Config(e) => write!(f, "{e}"),
            RedisAdmissionError::Connect { server, error } => write!(
                f,
                "fleet-wide admission control: cannot connect to {server}: {}",
                connect_cause(error)
            ),
            RedisAdmissionError::Redis(e) => {
                write!(f, "fleet-wide admission control: Redis error: {e}")
            }
        }
    }
}

impl std::error::Error for RedisAdmissionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisAdmissionError::Config(e) => Some(e),
            RedisAdmissionError::Connect { error, .. } | RedisAdmissionError::Redis(error) => {
                Some(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Mechanism;

    #[test]
    fn out_of_range_settings_name_their_field() {
        let b = || Admission::redis("ok").url("redis://127.0.0.1:1");
        let field = |b: RedisAdmissionBuilder| match b.validate().unwrap_err() {
            RedisAdmissionError::Config(c) => {
                assert!(
                    c.to_string().contains("fleet-wide admission control"),
                    "{c}"
                );
                c.field()
            }
            other => panic!("{other}"),
        };
        assert_eq!(field(Admission::redis("a b").url("redis://x")), "name");
        assert_eq!(field(Admission::redis("ok")), "url");
        assert_eq!(field(b().flush_interval(Duration::ZERO)), "flush_interval");
        assert_eq!(
            field(b().flush_interval(Duration::from_secs(2))),
            "flush_interval"
        );
        assert_eq!(
            field(b().command_timeout(Duration::ZERO)),
            "command_timeout"
        );
        assert_eq!(
            field(b().connect_timeout(Duration::ZERO)),
            "connect_timeout"
        );
        let throttle = AdmissionConfig::builder()
            .mechanism(Mechanism::Throttle)
            .build()
            .unwrap();
        assert_eq!(field(b().config(throttle)), "mechanism");
    }
}
