//! Fuzz target `cfi_flash`: the checks are in `rhyve_fuzz::cfi_flash`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::cfi_flash::run(data));
