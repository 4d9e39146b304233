//! Helpers shared by the integration tests. Each test file uses what it needs. (The HTTP and
//! gRPC servers live with the tests that use them, in `integration/tests/support/`.)
#![allow(dead_code, unreachable_pub)]

pub mod budget;
pub mod flaky;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub mod redis_faults;
pub mod tracked_budget;
pub mod warnings;
