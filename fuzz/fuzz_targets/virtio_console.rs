//! Fuzz target `virtio_console`: the checks are in `rhyve_fuzz::virtio_console` and `rhyve_fuzz::virtio`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::virtio_console::run(data));
