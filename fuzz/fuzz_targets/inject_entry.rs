//! Fuzz target `inject_entry`: the checks are in `rhyve_fuzz::inject_entry`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::inject_entry::run(data));
