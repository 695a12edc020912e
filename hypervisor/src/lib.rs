//! rhyve's EL2 core.
//!
//! The generic logic here (trap decoding, PSCI, the virtual GIC, device-tree discovery, the
//! console multiplexer, the monitor, the scheduler's policy) is plain Rust that the host tests.
//! `arch` is the architecture interface: its aarch64 implementation is what only runs at EL2,
//! and a fake implementation lets the host tests run the code that calls it.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod console_mux;
pub mod controls;
pub mod efi;
pub mod exit;
pub mod hostdev;
pub mod inject;
pub mod monitor;
pub mod placement;
pub mod platform;
pub mod psci;
pub mod ram;
pub mod sched_policy;
pub mod sysreg;
pub mod vgic;
pub mod vmmcall;
