//! Fuzz target `pl011`: the checks are in `rhyve_fuzz::pl011`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::pl011::run(data));
