//! rhyve's boot-time code: what the EL2 core runs before a guest exists, and what the host
//! tools (`cargo xtask`) run to prepare a machine.
//!
//! - [`config`]: the VM descriptions (a strict TOML subset) the core reads at boot;
//! - [`bundle`]: the boot bundle that carries them and the files they name;
//! - [`image`]: the arm64 Linux `Image` header;
//! - [`loader`]: places a guest's kernel, initrd and device tree in its RAM;
//! - [`fdt`]: the guest's device tree;
//! - [`memory`]: guest memory as the loader and the device models see it.
//!
//! Both sides of the privilege line link this crate: the EL2 core (`hypervisor`) to build its
//! VMs, the VMM partition (`vmm`) for [`memory::GuestMemory`], and the host tools and fuzzers
//! to check and write the same formats. The device models stay in `vmm`, which only the EL1
//! partition links: nothing here may depend on it, and `cargo xtask test` checks the core's
//! image carries no symbol of `vmm::virtio` or `vmm::pl011` (`xtask/src/symbols.rs`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bundle;
pub mod config;
pub mod fdt;
pub mod image;
pub mod loader;
pub mod memory;
