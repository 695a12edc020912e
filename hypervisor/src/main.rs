//! The rhyve image: the EL2 core's entry point.
//!
//! The image is the bare-metal half of the crate: `arch` (boot, vectors, translation, GIC,
//! firmware) and `runtime` (the machine, the VM, the vCPU loop). The host-tested logic it
//! uses (trap decoding, PSCI, the virtual GIC) lives in the library.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod runtime;

#[cfg(target_os = "none")]
use hypervisor::{exit, hostdev, inject, placement, psci, sysreg, vgic, vmmcall};

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("rhyve is a bare-metal image: build it with `cargo xtask build`.");
    std::process::exit(2);
}
