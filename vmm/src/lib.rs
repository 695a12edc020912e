//! rhyve's VMM: the device models (PL011, PL031, virtio) the EL1 VMM partition runs for its guests.
//!
//! Of rhyve's images only the partition program (`src/main.rs`, `partition/`) links this
//! crate; the EL2 core never does (the host fuzzers and tests drive the models too). What the core needs before a guest exists (VM descriptions, the boot bundle,
//! the loader, the guest's device tree and memory layout) is in `vmboot`, which this crate
//! uses for [`vmboot::memory::GuestMemory`]. `cargo xtask test` checks the core's image
//! carries no symbol of `vmm::virtio` or `vmm::pl011` (`xtask/src/symbols.rs`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cfi_flash;
pub mod pl011;
pub mod pl031;
pub mod virtio;
