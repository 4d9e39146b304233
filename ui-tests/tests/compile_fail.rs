//! The usual mistakes in putting a retry stack together, and the messages the compiler gives
//! for them (`#[diagnostic::on_unimplemented]` on the crate's traits). Each case in `ui/`
//! must fail to compile with exactly the `.stderr` beside it.
//! Regenerate after a deliberate change: `TRYBUILD=overwrite cargo test -p tower-retrier-ui-tests`.

#[test]
fn mistakes_are_explained() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
