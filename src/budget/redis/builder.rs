//! Building a [`RedisBudget`]: one builder per mode, sharing the connection settings;
//! validation, connection, and the error type.

use super::backend::Backend;
use super::connect::{
    ClientSettings, ConnectError, Subject, check_reconnect_policies, client_from_url,
    client_setters, command_options, connect_cause,
};
use super::health::{Health, Unavailable};
use super::lease::Lease;
use super::mode::{Fallback, Mode, Semantics};
use super::scripts::{self, Scripts};
use super::tls_error::TlsRejection;
use super::{Inner, Params, RedisBudget, SLOTS, UNIT, flusher, name};
use crate::ConfigError;
use crate::budget::counter::DepositCounter;
use fred::prelude::{Client, Error, Pool};
use fred::util::redis_keyslot;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Builds a [`RedisBudget`]: [`RedisBudget::adaptive`] or [`RedisBudget::ratio`].
///
/// The type parameter is the mode, and each mode's builder has only that mode's settings, so
/// the settings of one cannot be given to the other: [`AdaptiveMode`] (`max_retries`,
/// `per_success`, `min_per_sec`) or [`RatioMode`] (`ttl`, `ratio`, `min_per_sec`), with the
/// meanings of the local [`AdaptiveBudget`](crate::budget::AdaptiveBudget) and
/// [`RatioBudget`](crate::budget::RatioBudget). [`AnyMode`] is the builder of the deprecated
/// [`RedisBudget::builder`]. Every setting has a default; `build_*` validates them and
/// returns a [`RedisBudgetError::Config`] naming the field when one is out of range.
///
/// | setting | mode | default | range |
/// |---|---|---|---|
/// | `max_retries` | adaptive | 100 | 1 – 1,000,000 |
/// | `per_success` | adaptive | 0.2 | 0 – 1000 |
/// | `min_per_sec` | adaptive | 1 | ≤ `max_retries` |
/// | `ttl` | ratio | 10 s | 1 s – 60 s (idle keys expire after `2 × ttl`) |
/// | `ratio` | ratio | 0.2 | 0 – 1000 |
/// | `min_per_sec` | ratio | 10 | any |
/// | `lease_size` | both | 10 | 1 – 1000 |
/// | `on_unavailable` | both | [`Unavailable::Fallback`] | |
/// | `flush_interval` | both | 100 ms | 1 ms – 1 s |
/// | `command_timeout` | both | 50 ms | 1 ms – 10 s |
/// | `connect_timeout` | both | 2 s | 1 ms – 60 s |
/// | `lazy_connect` | both | `false` | |
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::budget::RedisBudget;
/// use tower_retrier::budget::redis::Unavailable;
///
/// let adaptive = RedisBudget::adaptive("checkout")
///     .max_retries(100)
///     .per_success(0.2)
///     .min_per_sec(1);
/// let ratio = RedisBudget::ratio("search")
///     .ttl(Duration::from_secs(10))
///     .min_per_sec(5)
///     .ratio(0.1)
///     .flush_interval(Duration::from_millis(50))
///     .lease_size(5)
///     .command_timeout(Duration::from_millis(30))
///     .on_unavailable(Unavailable::Allow)
///     .lazy_connect(true);
/// # let _ = (adaptive, ratio);
/// ```
///
/// A setting of the other mode does not compile:
///
/// ```compile_fail
/// let b = tower_retrier::budget::RedisBudget::adaptive("checkout").ttl(std::time::Duration::from_secs(10));
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until one of its build methods is awaited"]
pub struct RedisBudgetBuilder<M = AnyMode> {
    name: String,
    /// What the mode's setters wrote; which of them exist depends on `M`.
    settings: Settings,
    lease_size: u32,
    on_unavailable: Unavailable,
    /// Where Redis is and how long to wait for it, as for fleet-wide admission control.
    connection: ClientSettings,
    mode: PhantomData<fn() -> M>,
}

/// The mode of [`RedisBudget::adaptive`]'s builder: the settings of the
/// [`AdaptiveBudget`](crate::budget::AdaptiveBudget) ([`Mode::Adaptive`]).
///
/// ```
/// use tower_retrier::budget::RedisBudget;
/// use tower_retrier::budget::redis::{AdaptiveMode, RedisBudgetBuilder};
///
/// fn checkout() -> RedisBudgetBuilder<AdaptiveMode> {
///     RedisBudget::adaptive("checkout").max_retries(50)
/// }
/// # let _ = checkout();
/// ```
#[derive(Clone, Copy, Debug)]
pub enum AdaptiveMode {}

/// The mode of [`RedisBudget::ratio`]'s builder: the settings of the
/// [`RatioBudget`](crate::budget::RatioBudget) ([`Mode::Ratio`]).
///
/// ```
/// use tower_retrier::budget::RedisBudget;
/// use tower_retrier::budget::redis::{RatioMode, RedisBudgetBuilder};
///
/// fn search() -> RedisBudgetBuilder<RatioMode> {
///     RedisBudget::ratio("search").ratio(0.1)
/// }
/// # let _ = search();
/// ```
#[derive(Clone, Copy, Debug)]
pub enum RatioMode {}

/// The mode of the deprecated [`RedisBudget::builder`]'s builder: chosen with
/// [`mode`](RedisBudgetBuilder::mode), or adaptive. It takes both modes' settings and refuses,
/// naming the setting, those that do not belong to the mode or whose meaning depends on a
/// mode that was not chosen; see [`RedisBudget::builder`].
///
/// ```
/// # #![allow(deprecated)]
/// use tower_retrier::budget::RedisBudget;
/// use tower_retrier::budget::redis::{AnyMode, Mode, RedisBudgetBuilder};
///
/// let b: RedisBudgetBuilder<AnyMode> = RedisBudget::builder("search").mode(Mode::Ratio);
/// # let _ = b;
/// ```
#[derive(Clone, Copy, Debug)]
pub enum AnyMode {}

/// The mode settings as given; `None` means not set (the mode's default applies).
#[derive(Clone, Debug, Default)]
struct Settings {
    /// Fixed by `adaptive` / `ratio`; the deprecated builder's `mode(..)`, if called.
    mode: Option<Mode>,
    /// Whether these come from the deprecated builder, whose `ratio` is adaptive mode's
    /// `per_success` (errors then name the setting that was called).
    deprecated: bool,
    max_retries: Option<u32>,
    per_success: Option<f64>,
    min_per_sec: Option<u32>,
    ttl: Option<Duration>,
    ratio: Option<f64>,
}

impl Settings {
    /// The mode's parameters and the local budget with the same ones (which validates them),
    /// or an error naming the setting that does not belong to the mode (or whose meaning
    /// depends on a mode the deprecated builder was not told).
    fn resolve(&self) -> Result<(Semantics, Fallback), ConfigError> {
        let mode = match self.mode {
            Some(mode) => mode,
            // `max_retries` only exists in adaptive mode: the builder was written for it.
            None if self.max_retries.is_some() => Mode::Adaptive,
            None => {
                self.refuse_unchosen()?;
                Mode::Adaptive
            }
        };
        match mode {
            Mode::Adaptive => {
                if let Some(ttl) = self.ttl {
                    return Err(ConfigError::new(
                        "ttl",
                        format!("{ttl:?}"),
                        "does not belong to adaptive mode, which has no window (its state \
                         expires after 20 s without traffic): remove it, or build a windowed \
                         budget with RedisBudget::ratio(name).ttl(..)",
                    ));
                }
                let semantics = Semantics::Adaptive {
                    max_retries: self.max_retries.unwrap_or(100),
                    per_success: self.per_success.or(self.ratio).unwrap_or(0.2),
                    min_per_sec: self.min_per_sec.unwrap_or(1),
                };
                match semantics.fallback() {
                    // The deprecated builder's `ratio` is `per_success` here: name what was
                    // called.
                    Err(e) if self.deprecated && e.field() == "per_success" => {
                        Err(ConfigError::new(
                            "ratio",
                            e.value(),
                            "must be a number in [0, 1000] (adaptive mode: retries earned per \
                             success, `per_success` of RedisBudget::adaptive)",
                        ))
                    }
                    Err(e) => Err(e),
                    Ok(fallback) => Ok((semantics, fallback)),
                }
            }
            Mode::Ratio => {
                if let Some(max_retries) = self.max_retries {
                    return Err(ConfigError::new(
                        "max_retries",
                        max_retries.to_string(),
                        "does not belong to ratio mode, which has no stock (its bound is \
                         min_per_sec × ttl + ratio × requests): remove it, or use \
                         RedisBudget::adaptive(name).max_retries(..)",
                    ));
                }
                let semantics = Semantics::Ratio {
                    ttl: self.ttl.unwrap_or(Duration::from_secs(10)),
                    min_per_sec: self.min_per_sec.unwrap_or(10),
                    ratio: self.ratio.unwrap_or(0.2),
                };
                let fallback = semantics.fallback()?;
                Ok((semantics, fallback))
            }
        }
    }

    /// The deprecated builder without a mode (nor `max_retries`): the settings whose meaning
    /// changed when the default mode became adaptive are refused, since the code that set them
    /// may have been written for ratio mode.
    fn refuse_unchosen(&self) -> Result<(), ConfigError> {
        let ambiguous = [
            (
                "ratio",
                self.ratio.map(|r| r.to_string()),
                "adaptive mode (the default) reads it as retries earned per success \
                 (`per_success`), ratio mode as retries per request",
            ),
            (
                "ttl",
                self.ttl.map(|t| format!("{t:?}")),
                "it is ratio mode's window, and adaptive mode (the default) has none",
            ),
            (
                "min_per_sec",
                self.min_per_sec.map(|m| m.to_string()),
                "adaptive mode (the default) refills a stock of max_retries with it, ratio \
                 mode grants min_per_sec × ttl per window",
            ),
        ];
        match ambiguous
            .into_iter()
            .find_map(|(field, value, why)| Some((field, value?, why)))
        {
            Some((field, value, why)) => Err(ConfigError::new(
                field,
                value,
                format!(
                    "is ambiguous without a mode: {why}; use RedisBudget::adaptive(name) or \
                     RedisBudget::ratio(name), or .mode(..) here"
                ),
            )),
            None => Ok(()),
        }
    }
}

/// A public setter: `settings.FIELD` records a mode setting as given (unset, it takes the
/// mode's default), `FIELD` sets a setting of every mode.
macro_rules! setter {
    ($(#[$doc:meta])* settings.$field:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $field(mut self, $field: $ty) -> Self {
            self.settings.$field = Some($field);
            self
        }
    };
    ($(#[$doc:meta])* $field:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $field(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
    };
}

impl<M> RedisBudgetBuilder<M> {
    /// A builder of `mode` (`M` says the same in types), or of the deprecated builder's
    /// mode chosen later (`None`).
    pub(crate) fn new(name: String, mode: Option<Mode>) -> Self {
        let settings = Settings {
            mode,
            deprecated: mode.is_none(),
            ..Settings::default()
        };
        RedisBudgetBuilder {
            name,
            settings,
            lease_size: 10,
            on_unavailable: Unavailable::Fallback,
            connection: ClientSettings::default(),
            mode: PhantomData,
        }
    }
}

impl RedisBudgetBuilder<AdaptiveMode> {
    setter!(
        /// The largest stock of retries the fleet holds, and its size at start; default 100,
        /// from 1 to 1,000,000 (as [`AdaptiveBudget::max_retries`](crate::budget::AdaptiveBudget::max_retries)).
        ///
        /// ```
        /// let b = tower_retrier::budget::RedisBudget::adaptive("x").max_retries(50);
        /// # let _ = b;
        /// ```
        settings.max_retries: u32
    );

    setter!(
        /// Retries earned per successful attempt anywhere in the fleet; default 0.2 (five
        /// successes pay for one retry), from 0 to 1000 (as
        /// [`AdaptiveBudget::per_success`](crate::budget::AdaptiveBudget::per_success)).
        ///
        /// ```
        /// let b = tower_retrier::budget::RedisBudget::adaptive("x").per_success(0.5);
        /// # let _ = b;
        /// ```
        settings.per_success: f64
    );

    setter!(
        /// Retries per second added to the stock regardless of traffic; default 1, at most
        /// `max_retries` (as [`AdaptiveBudget::min_per_sec`](crate::budget::AdaptiveBudget::min_per_sec)).
        ///
        /// ```
        /// let b = tower_retrier::budget::RedisBudget::adaptive("x").min_per_sec(2);
        /// # let _ = b;
        /// ```
        settings.min_per_sec: u32
    );
}

impl RedisBudgetBuilder<RatioMode> {
    setter!(
        /// The window over which requests and retries are counted; default 10 s, from 1 s to
        /// 60 s (as [`RatioBudget::ttl`](crate::budget::RatioBudget::ttl)). The budget's state
        /// expires after `2 × ttl` without traffic.
        ///
        /// ```
        /// let b = tower_retrier::budget::RedisBudget::ratio("x").ttl(std::time::Duration::from_secs(5));
        /// # let _ = b;
        /// ```
        settings.ttl: Duration
    );

    setter!(
        /// Retries granted per original request anywhere in the fleet; default 0.2 (20 % extra
        /// load), from 0 to 1000 (as [`RatioBudget::ratio`](crate::budget::RatioBudget::ratio)).
        ///
        /// ```
        /// let b = tower_retrier::budget::RedisBudget::ratio("x").ratio(0.1);
        /// # let _ = b;
        /// ```
        settings.ratio: f64
    );

    setter!(
        /// Retries per second granted regardless of traffic (`min_per_sec × ttl` per window);
        /// default 10 (as [`RatioBudget::min_per_sec`](crate::budget::RatioBudget::min_per_sec)).
        ///
        /// ```
        /// let b = tower_retrier::budget::RedisBudget::ratio("x").min_per_sec(5);
        /// # let _ = b;
        /// ```
        settings.min_per_sec: u32
    );
}

impl RedisBudgetBuilder<AnyMode> {
    setter!(
        /// The semantics shared by the fleet. Without it the budget is adaptive, and `ratio`,
        /// `ttl` and `min_per_sec` are refused unless `max_retries` says adaptive mode was meant.
        ///
        /// ```
        /// # #![allow(deprecated)]
        /// use tower_retrier::budget::{RedisBudget, redis::Mode};
        /// let b = RedisBudget::builder("x").mode(Mode::Ratio).ratio(0.1);
        /// # let _ = b;
        /// ```
        settings.mode: Mode
    );

    setter!(
        /// Ratio mode: the window (as [`RedisBudget::ratio`]'s [`ttl`](RedisBudgetBuilder::ttl)).
        /// Refused in adaptive mode.
        ///
        /// ```
        /// # #![allow(deprecated)]
        /// use tower_retrier::budget::{RedisBudget, redis::Mode};
        /// let b = RedisBudget::builder("x").mode(Mode::Ratio).ttl(std::time::Duration::from_secs(5));
        /// # let _ = b;
        /// ```
        settings.ttl: Duration
    );

    setter!(
        /// Adaptive mode: retries per second added to the stock; ratio mode: retries per second
        /// granted regardless of traffic. Default 1 (adaptive) or 10 (ratio).
        ///
        /// ```
        /// # #![allow(deprecated)]
        /// use tower_retrier::budget::{RedisBudget, redis::Mode};
        /// let b = RedisBudget::builder("x").mode(Mode::Adaptive).min_per_sec(2);
        /// # let _ = b;
        /// ```
        settings.min_per_sec: u32
    );

    setter!(
        /// Adaptive mode: retries earned per success (`per_success`); ratio mode: retries per
        /// request. Default 0.2.
        ///
        /// ```
        /// # #![allow(deprecated)]
        /// use tower_retrier::budget::{RedisBudget, redis::Mode};
        /// let b = RedisBudget::builder("x").mode(Mode::Ratio).ratio(0.1);
        /// # let _ = b;
        /// ```
        settings.ratio: f64
    );

    setter!(
        /// Adaptive mode: the largest stock of retries. Refused in ratio mode.
        ///
        /// ```
        /// # #![allow(deprecated)]
        /// let b = tower_retrier::budget::RedisBudget::builder("x").max_retries(50);
        /// # let _ = b;
        /// ```
        settings.max_retries: u32
    );
}

impl<M> RedisBudgetBuilder<M> {
    setter!(
        /// Retries fetched from Redis per round trip and then handed out locally; default 10,
        /// from 1 to 1000. Larger means fewer round trips but up to `lease_size - 1` retries held
        /// per instance.
        ///
        /// ```
        /// let b = tower_retrier::budget::RedisBudget::adaptive("x").lease_size(5);
        /// # let _ = b;
        /// ```
        lease_size: u32
    );

    setter!(
        /// What retries get while Redis is unreachable or slow; default
        /// [`Unavailable::Fallback`] (a local budget of the same mode and parameters).
        ///
        /// ```
        /// use tower_retrier::budget::redis::Unavailable;
        /// let b = tower_retrier::budget::RedisBudget::adaptive("x").on_unavailable(Unavailable::Deny);
        /// # let _ = b;
        /// ```
        on_unavailable: Unavailable
    );

    client_setters!(
        "tower_retrier::budget::RedisBudget::adaptive(\"orders\")",
        "a retry waits for Redis before the `on_unavailable` policy decides"
    );

    /// Connects to `redis://`, `rediss://` (feature `redis-tls`) or `redis-cluster://` URLs
    /// (`redis-cluster://host:port?node=host2:port2`), with ACL credentials in the URL
    /// (`redis://user:password@host:port`). The budget owns this client, sets a reconnect
    /// policy and command timeouts on it, and closes it when dropped.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), tower_retrier::budget::redis::RedisBudgetError> {
    /// let budget = tower_retrier::budget::RedisBudget::adaptive("orders")
    ///     .build_from_url("redis://retrier:secret@127.0.0.1:6379")
    ///     .await?;
    /// # let _ = budget; Ok(()) }
    /// ```
    pub async fn build_from_url(self, url: &str) -> Result<RedisBudget, RedisBudgetError> {
        let started = tokio::time::Instant::now();
        let (semantics, fallback) = self.validate()?;
        let client = client_from_url(url, &self.connection, Subject::Budget, &self.name).await?;
        self.finish(semantics, fallback, Backend::Client(client), true, started)
            .await
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
    /// let budget = tower_retrier::budget::RedisBudget::adaptive("orders")
    ///     .build_with_client(client.clone())
    ///     .await?;
    /// # let _ = budget; Ok(()) }
    /// ```
    pub async fn build_with_client(self, client: Client) -> Result<RedisBudget, RedisBudgetError> {
        let started = tokio::time::Instant::now();
        let (semantics, fallback) = self.validate()?;
        self.finish(semantics, fallback, Backend::Client(client), false, started)
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
    /// let budget = tower_retrier::budget::RedisBudget::ratio("orders")
    ///     .build_with_pool(pool)
    ///     .await?;
    /// # let _ = budget; Ok(()) }
    /// ```
    pub async fn build_with_pool(self, pool: Pool) -> Result<RedisBudget, RedisBudgetError> {
        let started = tokio::time::Instant::now();
        let (semantics, fallback) = self.validate()?;
        self.finish(semantics, fallback, Backend::Pool(pool), false, started)
            .await
    }

    /// Every setting in its range (the error names the field), and the local budget the
    /// outage policy falls back to.
    fn validate(&self) -> Result<(Semantics, Fallback), RedisBudgetError> {
        name::validate(&self.name)?;
        let (semantics, fallback) = self.settings.resolve()?;
        self.connection.check()?;
        if !(1..=1000).contains(&self.lease_size) {
            return Err(ConfigError::new(
                "lease_size",
                self.lease_size.to_string(),
                "must be between 1 and 1000",
            )
            .into());
        }
        Ok((semantics, fallback))
    }

    /// `started`: when the build began; `connect_timeout` bounds the whole of it.
    async fn finish(
        self,
        semantics: Semantics,
        fallback: Fallback,
        backend: Backend,
        owned: bool,
        started: tokio::time::Instant,
    ) -> Result<RedisBudget, RedisBudgetError> {
        check_reconnect_policies(&backend)?;
        let unit = UNIT as f64;
        let units = |x: f64| (x * unit).round() as i64;
        let expire_ms = i64::try_from(semantics.idle_expiry().as_millis()).unwrap_or(i64::MAX);
        // The script arguments that do not change, and the fingerprint of the parameters that
        // give the shared state its meaning (unchanged from earlier releases, so that a
        // rolling upgrade shares the same state).
        let (key, scripts, args) = match semantics {
            Semantics::Adaptive {
                max_retries,
                per_success,
                min_per_sec,
            } => {
                let args = ScriptArgs {
                    per_event_units: units(per_success),
                    cap_units: i64::from(max_retries) * UNIT,
                    refill_units: i64::from(min_per_sec) * UNIT,
                    ..ScriptArgs::default()
                };
                (name::stock_key(&self.name), Scripts::adaptive(), args)
            }
            Semantics::Ratio {
                ttl,
                min_per_sec,
                ratio,
            } => {
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                let args = ScriptArgs {
                    slot_ms: (ttl_ms / SLOTS as i64).max(1),
                    reserve_units: units(f64::from(min_per_sec) * ttl.as_secs_f64()),
                    per_event_units: units(ratio),
                    ..ScriptArgs::default()
                };
                (name::window_key(&self.name), Scripts::ratio(), args)
            }
        };
        let fingerprint = match semantics {
            Semantics::Adaptive { .. } => {
                scripts::fingerprint(&[1, args.cap_units, args.per_event_units, args.refill_units])
            }
            Semantics::Ratio { .. } => {
                scripts::fingerprint(&[0, args.slot_ms, args.reserve_units, args.per_event_units])
            }
        };
        let slot = redis_keyslot(key.as_bytes());
        let command_timeout = self.connection.command_timeout;
        let params = Params {
            semantics,
            flush_interval: self.connection.flush_interval,
            lease_size: self.lease_size,
            command_timeout,
        };
        let alive = super::alive::Alive::new(&self.name);
        let inner = Arc::new(Inner {
            health: Health::new(&self.name, self.on_unavailable, fallback, true),
            name: self.name,
            adaptive: semantics.mode() == Mode::Adaptive,
            key,
            slot,
            backend: backend.clone(),
            options: command_options(command_timeout),
            slot_ms: args.slot_ms,
            reserve_units: args.reserve_units,
            per_event_units: args.per_event_units,
            expire_ms,
            cap_units: args.cap_units,
            refill_units: args.refill_units,
            fingerprint,
            alive,
            warned_repair: std::sync::atomic::AtomicBool::new(false),
            warned_mismatch: std::sync::atomic::AtomicBool::new(false),
            stock_units: std::sync::atomic::AtomicI64::new(-1),
            scripts,
            pending: DepositCounter::default(),
            carry: AtomicU64::new(0),
            lease: Lease::new(semantics.lease_validity(SLOTS as u32)),
            refill: tokio::sync::Mutex::new(()),
            params,
        });
        // Load the scripts and check the server answers; this is also the first probe. Its
        // commands may take what is left of connect_timeout, not just the command timeout:
        // a busy server or machine should not fail the build because a SCRIPT LOAD took
        // longer than a retry may wait.
        let connect_timeout = self.connection.connect_timeout;
        let left = || {
            connect_timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1))
        };
        let _ = tokio::time::timeout(left(), inner.probe_within(left())).await;
        if inner.health.is_down() && !self.connection.lazy_connect {
            let error = inner.first_error(left()).await;
            if owned {
                // In the background: connect_timeout bounds the build, not the clean-up.
                tokio::spawn(async move { backend.quit(connect_timeout).await });
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

/// The script arguments of one mode, in fixed-point units; those of the other mode stay 0.
#[derive(Clone, Copy, Default)]
struct ScriptArgs {
    /// Ratio mode: the slot length and the floor over a window.
    slot_ms: i64,
    reserve_units: i64,
    /// Retries per event: per request (ratio mode) or per success (adaptive mode).
    per_event_units: i64,
    /// Adaptive mode: the largest stock and the refill per second.
    cap_units: i64,
    refill_units: i64,
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
/// let err = RedisBudget::adaptive("bad name!").build_from_url("redis://127.0.0.1:1").await.unwrap_err();
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
    /// let err = RedisBudget::ratio("orders").build_from_url("redis://127.0.0.1:1").await.unwrap_err();
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

    fn field<M>(b: RedisBudgetBuilder<M>) -> &'static str {
        match b.validate().unwrap_err() {
            RedisBudgetError::Config(c) => {
                assert!(c.to_string().contains("Redis retry budget"), "{c}");
                c.field()
            }
            other => panic!("{other}"),
        }
    }

    fn semantics<M>(b: RedisBudgetBuilder<M>) -> Semantics {
        b.validate().unwrap().0
    }

    #[test]
    fn out_of_range_settings_name_their_field() {
        let a = || RedisBudget::adaptive("ok");
        let r = || RedisBudget::ratio("ok");
        assert_eq!(field(RedisBudget::adaptive("a b")), "name");
        assert_eq!(field(a().lease_size(0)), "lease_size");
        assert_eq!(field(r().flush_interval(Duration::ZERO)), "flush_interval");
        assert_eq!(
            field(a().command_timeout(Duration::ZERO)),
            "command_timeout"
        );
        assert_eq!(
            field(r().connect_timeout(Duration::ZERO)),
            "connect_timeout"
        );
        assert_eq!(field(a().max_retries(0)), "max_retries");
        assert_eq!(field(a().per_success(f64::NAN)), "per_success");
        assert_eq!(field(a().max_retries(5).min_per_sec(6)), "min_per_sec");
        assert_eq!(field(r().ttl(Duration::from_secs(0))), "ttl");
        assert_eq!(field(r().ratio(-1.0)), "ratio");
    }

    #[test]
    fn each_mode_builds_its_own_semantics() {
        assert_eq!(
            semantics(RedisBudget::adaptive("ok")),
            Semantics::Adaptive {
                max_retries: 100,
                per_success: 0.2,
                min_per_sec: 1
            }
        );
        assert_eq!(
            semantics(
                RedisBudget::adaptive("ok")
                    .max_retries(50)
                    .per_success(0.5)
                    .min_per_sec(2)
            ),
            Semantics::Adaptive {
                max_retries: 50,
                per_success: 0.5,
                min_per_sec: 2
            }
        );
        assert_eq!(
            semantics(RedisBudget::ratio("ok")),
            Semantics::Ratio {
                ttl: Duration::from_secs(10),
                min_per_sec: 10,
                ratio: 0.2
            }
        );
        assert_eq!(
            semantics(
                RedisBudget::ratio("ok")
                    .ttl(Duration::from_secs(5))
                    .min_per_sec(3)
                    .ratio(0.1)
            ),
            Semantics::Ratio {
                ttl: Duration::from_secs(5),
                min_per_sec: 3,
                ratio: 0.1
            }
        );
        // A ratio budget's ttl is its window; an adaptive one's state has none.
        let ratio = semantics(RedisBudget::ratio("ok").ttl(Duration::from_secs(5)));
        assert_eq!(ratio.idle_expiry(), Duration::from_secs(10));
        assert_eq!(ratio.lease_validity(10), Duration::from_millis(500));
        let adaptive = semantics(RedisBudget::adaptive("ok"));
        assert_eq!(adaptive.idle_expiry(), Duration::from_secs(20));
        assert_eq!(adaptive.lease_validity(10), Duration::from_secs(1));
    }

    #[test]
    fn the_connection_settings_reach_the_shared_struct() {
        let b = RedisBudget::ratio("ok")
            .flush_interval(Duration::from_millis(7))
            .command_timeout(Duration::from_millis(8))
            .connect_timeout(Duration::from_millis(9))
            .lazy_connect(true);
        let c = &b.connection;
        assert_eq!(c.flush_interval, Duration::from_millis(7));
        assert_eq!(c.command_timeout, Duration::from_millis(8));
        assert_eq!(c.connect_timeout, Duration::from_millis(9));
        assert!(c.lazy_connect);
    }
}
