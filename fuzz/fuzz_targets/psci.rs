//! Fuzz target `psci`: the checks are in `rhyve_fuzz::psci`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::psci::run(data));
