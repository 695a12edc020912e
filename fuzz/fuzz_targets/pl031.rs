//! Fuzz target `pl031`: the checks are in `rhyve_fuzz::pl031`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::pl031::run(data));
