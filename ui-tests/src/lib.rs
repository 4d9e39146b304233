//! Nothing to use here: `tests/compile_fail.rs` checks the compiler messages tower-retrier
//! gives for the usual mistakes (see `tests/ui/`).
