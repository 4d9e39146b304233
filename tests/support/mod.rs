//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

// issue 5
#[cfg(feature = "http")]
pub mod flaky_http;
#[cfg(feature = "grpc")]
pub mod greeter;
