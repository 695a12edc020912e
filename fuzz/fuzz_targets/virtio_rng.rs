//! Fuzz target `virtio_rng`: the checks are in `rhyve_fuzz::virtio_rng` and `rhyve_fuzz::virtio`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::virtio_rng::run(data));
