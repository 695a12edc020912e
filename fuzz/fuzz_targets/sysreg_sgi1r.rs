//! Fuzz target `sysreg_sgi1r`: the checks are in `rhyve_fuzz::sysreg_sgi1r`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::sysreg_sgi1r::run(data));
