//! Fuzz target `virtio_net`: the checks are in `rhyve_fuzz::virtio_net` and `rhyve_fuzz::virtio`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::virtio_net::run(data));
