//! Fuzz target `bundle`: the checks are in `rhyve_fuzz::bundle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::bundle::run(data));
