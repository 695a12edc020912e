//! Fuzz target `virtio_blk`: the checks are in `rhyve_fuzz::virtio_blk` and `rhyve_fuzz::virtio`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::virtio_blk::run(data));
