//! `cargo xtask`: build, run, test and benchmark rhyve.
fn main() {}
