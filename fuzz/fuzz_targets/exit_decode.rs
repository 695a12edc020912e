//! Fuzz target `exit_decode`: the checks are in `rhyve_fuzz::exit_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::exit_decode::run(data));
