//! Connecting to Redis, shared by everything this crate keeps there (the fleet-wide retry
//! budget and fleet-wide admission control): the client built from a URL (reconnect policy,
//! timeouts, eager or lazy first connection), the per-command options, and the checks and
//! messages that go with them.

use super::backend::Backend;
use super::tls_error::TlsRejection;
use crate::ConfigError;
use fred::prelude::{
    Client, ClientLike, Config, Error, ErrorKind, EventInterface, Options, ReconnectPolicy,
};
use fred::types::Builder;
use std::ops::RangeInclusive;
use std::time::Duration;

/// What a connection serves, for log lines and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    /// A fleet-wide retry budget (`RedisBudget`); logs and metrics carry `budget = NAME`.
    Budget,
    /// Fleet-wide admission control; logs and metrics carry `admission = NAME`.
    Admission,
}

/// How to reach Redis and how long to wait for it: the settings the fleet-wide retry budget
/// and fleet-wide admission control share. Both builders hold one and get their public
/// setters for it from [`client_setters!`], so a setting, its default and its range are
/// written once.
#[derive(Clone)]
pub(crate) struct ClientSettings {
    pub(crate) flush_interval: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) lazy_connect: bool,
    #[cfg(feature = "redis-tls")]
    pub(crate) tls: Option<fred::types::config::TlsConfig>,
}

impl std::fmt::Debug for ClientSettings {
    /// Timings only, and whether TLS is configured: never the TLS configuration itself (a
    /// client certificate may be in it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ClientSettings");
        d.field("flush_interval", &self.flush_interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("lazy_connect", &self.lazy_connect);
        #[cfg(feature = "redis-tls")]
        d.field("tls", &self.tls.is_some());
        d.finish()
    }
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            flush_interval: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_millis(50),
            lazy_connect: false,
            #[cfg(feature = "redis-tls")]
            tls: None,
        }
    }
}

impl ClientSettings {
    /// Each timing within its range; the error names the field.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        check_range(
            "flush_interval",
            self.flush_interval,
            Duration::from_millis(1)..=Duration::from_secs(1),
        )?;
        check_range(
            "command_timeout",
            self.command_timeout,
            Duration::from_millis(1)..=Duration::from_secs(10),
        )?;
        check_range(
            "connect_timeout",
            self.connect_timeout,
            Duration::from_millis(1)..=Duration::from_secs(60),
        )
    }
}

/// The public setters of [`ClientSettings`], for a builder that keeps them in a field named
/// `connection`. `$builder` is an expression that starts such a builder, for the examples;
/// `$command` says what waits for Redis at most `command_timeout` and what decides then.
macro_rules! client_setters {
    ($builder:literal, $command:literal) => {
        /// How often this instance sends its batched counts to Redis (one script call each
        /// time); default 100 ms, from 1 ms to 1 s.
        ///
        /// ```
        /// # use std::time::Duration;
        #[doc = concat!("let b = ", $builder, ".flush_interval(Duration::from_millis(50));")]
        /// # let _ = b;
        /// ```
        pub fn flush_interval(mut self, flush_interval: std::time::Duration) -> Self {
            self.connection.flush_interval = flush_interval;
            self
        }

        #[doc = concat!("The longest ", $command, "; default 50 ms, from 1 ms to 10 s.")]
        ///
        /// ```
        /// # use std::time::Duration;
        #[doc = concat!("let b = ", $builder, ".command_timeout(Duration::from_millis(30));")]
        /// # let _ = b;
        /// ```
        pub fn command_timeout(mut self, command_timeout: std::time::Duration) -> Self {
            self.connection.command_timeout = command_timeout;
            self
        }

        /// The longest building waits for the first connection (not used with
        /// `lazy_connect`); default 2 s, from 1 ms to 60 s.
        ///
        /// ```
        /// # use std::time::Duration;
        #[doc = concat!("let b = ", $builder, ".connect_timeout(Duration::from_secs(1));")]
        /// # let _ = b;
        /// ```
        pub fn connect_timeout(mut self, connect_timeout: std::time::Duration) -> Self {
            self.connection.connect_timeout = connect_timeout;
            self
        }

        /// Build without waiting for Redis: local state decides until Redis answers, and
        /// connection problems are logged instead of returned (default `false`).
        ///
        /// ```
        #[doc = concat!("let b = ", $builder, ".lazy_connect(true);")]
        /// # let _ = b;
        /// ```
        pub fn lazy_connect(mut self, lazy_connect: bool) -> Self {
            self.connection.lazy_connect = lazy_connect;
            self
        }

        /// TLS settings for a `rediss://` URL (feature `redis-tls`), e.g. a rustls
        /// `ClientConfig` trusting a private CA. Without it, `rediss://` URLs trust the
        /// system's root certificates.
        ///
        /// ```no_run
        /// # fn f(rustls_config: fred::rustls::ClientConfig) {
        /// use fred::types::config::{TlsConfig, TlsConnector};
        #[doc = concat!("let b = ", $builder, ".tls(TlsConfig::from(TlsConnector::from(rustls_config)));")]
        /// # let _ = b; }
        /// ```
        #[cfg(feature = "redis-tls")]
        pub fn tls(mut self, tls: fred::types::config::TlsConfig) -> Self {
            self.connection.tls = Some(tls);
            self
        }
    };
}
pub(crate) use client_setters;

/// Why no client could be made from a URL.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The URL is not a Redis URL.
    Config(ConfigError),
    /// fred refused the configuration.
    Redis(Error),
    /// The first connection failed (eager connect only).
    Connect { server: String, error: Error },
}

/// Builds a client for `url` that reconnects quickly and forever, and connects it: eagerly
/// (the first connection error is returned, bounded by `connect_timeout`) or lazily (fred
/// keeps trying in the background; the first error is logged once).
pub(crate) async fn client_from_url(
    url: &str,
    settings: &ClientSettings,
    subject: Subject,
    name: &str,
) -> Result<Client, ConnectError> {
    let mut config = Config::from_url(url).map_err(|e| {
        ConnectError::Config(ConfigError::new(
            "url",
            redact(url),
            format!("is not a Redis URL: {}", e.details()),
        ))
    })?;
    // Eager: the first connection error is returned. Lazy: fred keeps trying the first
    // connection with the reconnect policy, in the background.
    config.fail_fast = !settings.lazy_connect;
    #[cfg(feature = "redis-tls")]
    if let Some(tls) = &settings.tls {
        config.tls = Some(tls.clone());
    }
    let server = servers(&config);
    let mut builder = Builder::from_config(config);
    let (connect_timeout, command_timeout) = (settings.connect_timeout, settings.command_timeout);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.internal_command_timeout = connect_timeout;
            c.max_command_attempts = 1;
            c.tcp.nodelay = Some(true);
        })
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        // Without a policy fred never reconnects; retry quickly and forever.
        .set_policy(ReconnectPolicy::new_exponential(0, 20, 500, 2));
    let client = builder.build().map_err(ConnectError::Redis)?;
    if settings.lazy_connect {
        // The connection task reconnects in the background; the owner notices success.
        // Say once, clearly, why the first connection fails (wrong password, refused...).
        let mut errors = client.error_rx();
        let _task = client.connect();
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Ok(Ok((error, _))) = tokio::time::timeout(connect_timeout, errors.recv()).await {
                match subject {
                    Subject::Budget => {
                        tracing::warn!(budget = %name, %error, "Redis retry budget cannot connect")
                    }
                    Subject::Admission => tracing::warn!(
                        admission = %name,
                        %error,
                        "fleet-wide admission control cannot connect to Redis"
                    ),
                }
            }
        });
        return Ok(client);
    }
    // connect_timeout bounds the whole wait: the failed client is shut down in the
    // background rather than making the caller wait for its QUIT too.
    let connected = tokio::time::timeout(connect_timeout, client.init()).await;
    let error = match connected {
        Ok(Ok(_task)) => return Ok(client),
        Ok(Err(e)) => e,
        Err(_) => Error::new(ErrorKind::Timeout, format!("{connect_timeout:?} elapsed")),
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(connect_timeout, client.quit()).await;
    });
    Err(ConnectError::Connect { server, error })
}

/// Every client of a backend must reconnect by itself (fred never does without a policy).
pub(crate) fn check_reconnect_policies(backend: &Backend) -> Result<(), ConfigError> {
    for client in backend.clients() {
        if !client.has_reconnect_policy() {
            return Err(ConfigError::new(
                "client",
                client.id().to_owned(),
                "has no ReconnectPolicy: fred never reconnects without one; \
                 set one with Builder::set_policy",
            ));
        }
    }
    Ok(())
}

/// The options of every command: bounded by `command_timeout`, failing at once while
/// disconnected, one cluster redirection followed.
pub(crate) fn command_options(command_timeout: Duration) -> Options {
    Options {
        timeout: Some(command_timeout),
        // Fail in microseconds while disconnected instead of queueing for a reconnect.
        fail_fast: true,
        // A cluster redirection is followed once (a -MOVED after a failover or a
        // resharding). More attempts than redirections: fred 10.1 re-sends an -ASK'ed
        // command to the old owner, and if its attempts ran out before its redirections,
        // it ended the client's connection task for good.
        max_attempts: Some(2),
        max_redirections: Some(1),
        ..Options::default()
    }
}

fn check_range(
    field: &'static str,
    value: Duration,
    range: RangeInclusive<Duration>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{value:?}"),
            format!("must be between {:?} and {:?}", range.start(), range.end()),
        ))
    }
}

/// The `host:port` of every server the URL names (never credentials), for error messages.
fn servers(config: &Config) -> String {
    let hosts: Vec<String> = config
        .server
        .hosts()
        .iter()
        .map(|h| h.to_string())
        .collect();
    hosts.join(", ")
}

/// The URL without its credentials, for error messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A connection error in words an operator can act on, rather than fred's `Debug` of an
/// `io::Error` (`IO Error: Os { code: 111, kind: ConnectionRefused, .. }`).
pub(crate) fn connect_cause(error: &Error) -> String {
    let details = error.details();
    if let Some(why) = TlsRejection::of(error) {
        return format!("{why} ({details})");
    }
    let io_kind = |needle: &str| details.contains(needle);
    match error.kind() {
        ErrorKind::IO if io_kind("ConnectionRefused") => {
            "connection refused (is redis-server running and listening there?)".to_owned()
        }
        ErrorKind::IO if io_kind("TimedOut") => "connection timed out".to_owned(),
        ErrorKind::IO if io_kind("NotFound") || io_kind("failed to lookup") => {
            format!("host not found ({details})")
        }
        ErrorKind::Auth => format!("authentication failed: {details} (check user and password)"),
        ErrorKind::Timeout => format!("no answer within connect_timeout ({details})"),
        #[cfg(feature = "redis-tls")]
        ErrorKind::Tls => format!("TLS handshake failed: {details}"),
        kind => format!("{kind:?}: {details}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("redis://user:hunter2@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
