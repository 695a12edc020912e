//! Fuzz target `image_loader`: the checks are in `rhyve_fuzz::image_loader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhyve_fuzz::image_loader::run(data));
