//! Fuzz target `config`: the checks are in `rhyve_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::config::run(data));
