//! The rhyve image: the EL2 core's entry point.
//!
//! The image is the bare-metal half of the crate: `runtime` (the machine, the VMs, the vCPU
//! loop), over the library's `arch` interface (boot, vectors, translation, GIC, firmware on
//! aarch64). The host-tested logic it uses lives in the library.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod runtime;

#[cfg(target_os = "none")]
use hypervisor::{arch, exit, hostdev, inject, placement, psci, sysreg, vgic, vmmcall};

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("rhyve is a bare-metal image: build it with `cargo xtask build`.");
    std::process::exit(2);
}
