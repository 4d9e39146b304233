//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod flaky;
