//! Nothing to use here: this package holds tower-retrier's tests, benchmarks and examples
//! that need heavy dependencies (hyper, axum, tonic, the OpenTelemetry SDK, criterion,
//! peers), so that building the crate's demo and core tests does not compile them.
//! `scripts/test.sh` at the repository root runs them with everything else.
