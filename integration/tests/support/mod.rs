//! Helpers shared by the integration tests. Each test file uses what it needs; the ones also
//! used by the root crate's tests live there and are included by path.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../tests/support/flaky.rs"]
pub mod flaky;
pub mod flaky_http;
pub mod greeter;
pub mod h2_server;
#[path = "../../../tests/support/redis.rs"]
pub mod redis;
