//! The VMM partition: rhyve's device models as a bare-metal program at EL1.
//!
//! The core starts one VMM vCPU per physical CPU and drives it with requests (guest accesses
//! to modelled devices, console input, VM starts), each the return of the VMM's WAIT call;
//! the next WAIT carries the answer. See `abi::vmm` for the interface. The VMM sees only its
//! own 16 MiB and the RAM of the guests it serves; a fault here ends the partition, never the
//! core.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod partition;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("rhyve-vmm is the bare-metal VMM partition: build it with `cargo xtask build`.");
    std::process::exit(2);
}
