//! Fuzz target `vgic_mmio`: the checks are in `rhyve_fuzz::vgic_mmio`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::vgic_mmio::run(data));
