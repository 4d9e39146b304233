//! Helpers shared by the integration tests. Each test file uses what it needs.
#![allow(dead_code, unreachable_pub)]

pub mod flaky;
#[cfg(feature = "redis")]
pub mod redis;

// HTTP and gRPC test services, behind their features.
#[cfg(feature = "http")]
pub mod flaky_http;
#[cfg(feature = "grpc")]
pub mod greeter;
