//! Deadlines known to both ends: how a client's remaining time travels with each attempt, and
//! how a server reads it back.
//!
//! A server whose queue holds requests whose callers already gave up serves nobody: it spends
//! its capacity on answers no one reads while the callers that still wait time out behind
//! them. gRPC sends what is left of the caller's deadline as `grpc-timeout` on every attempt;
//! Envoy sends `x-envoy-expected-rq-timeout-ms`. The presets of this crate do the same (see
//! [`ReplayHttp::propagate_deadline`](crate::replay::ReplayHttp::propagate_deadline)), and
//! this module holds the wire formats both ends agree on. With feature `server`,
//! `DropExpiredLayer` is the server's half: it answers at once, without calling the handler, a
//! request whose caller's deadline passed while it waited in the server's queue.
//!
//! ```
//! use std::time::Duration;
//! use tower_retrier::deadline::{encode_grpc_timeout, parse_grpc_timeout};
//!
//! let v = encode_grpc_timeout(Duration::from_millis(300));
//! assert_eq!(v, "300000u");
//! assert_eq!(parse_grpc_timeout(&v), Some(Duration::from_millis(300)));
//! ```

mod header;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
mod server;
mod wire;

pub use header::DeadlineHeader;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server::{Deadline, DropExpired, DropExpiredFuture, DropExpiredLayer, DropExpiredStats};
pub use wire::{
    GRPC_TIMEOUT, encode_grpc_timeout, encode_millis, parse_grpc_timeout, parse_millis,
};
