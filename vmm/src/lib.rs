//! rhyve's VMM: everything about a guest that does not need EL2.
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
pub mod pl011;
pub mod virtio;
