//! The property checks behind rhyve's fuzz targets, one module per target.
//!
//! Each `run(data)` turns the fuzzer's bytes into calls on one parser or model of
//! guest-controlled (or user-supplied) data and asserts what must hold for every input: not
//! only "no panic", but the invariants the callers rely on. A failed assertion is a crash to
//! libFuzzer. The same functions replay the committed seeds in `tests/seeds.rs`.

pub mod bundle;
pub mod cfi_flash;
pub mod config;
pub mod exit_decode;
pub mod fdt_generate;
pub mod image_loader;
pub mod inject_entry;
pub mod pl011;
pub mod pl031;
pub mod psci;
pub mod sysreg_sgi1r;
pub mod vgic_mmio;
pub mod virtio;
pub mod virtio_blk;
pub mod virtio_console;
pub mod virtio_net;
pub mod virtio_rng;

/// A target's check: runs one input, panics on a broken invariant.
pub type Check = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/<name>.rs` binary) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("exit_decode", exit_decode::run),
    ("inject_entry", inject_entry::run),
    ("sysreg_sgi1r", sysreg_sgi1r::run),
    ("psci", psci::run),
    ("vgic_mmio", vgic_mmio::run),
    ("pl011", pl011::run),
    ("pl031", pl031::run),
    ("cfi_flash", cfi_flash::run),
    ("image_loader", image_loader::run),
    ("bundle", bundle::run),
    ("config", config::run),
    ("fdt_generate", fdt_generate::run),
    ("virtio_blk", virtio_blk::run),
    ("virtio_net", virtio_net::run),
    ("virtio_console", virtio_console::run),
    ("virtio_rng", virtio_rng::run),
];
