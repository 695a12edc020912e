//! Fuzz target `fdt_generate`: the checks are in `rhyve_fuzz::fdt_generate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::fdt_generate::run(data));
