//! rhyve's EL2 core.
//!
//! The generic logic here (trap decoding, PSCI, the virtual GIC) is plain Rust that the host
//! tests; `arch` holds what only runs at EL2 on an aarch64 CPU.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod console_mux;
pub mod exit;
pub mod hostdev;
pub mod inject;
pub mod monitor;
pub mod placement;
pub mod platform;
pub mod psci;
pub mod sched_policy;
pub mod sysreg;
pub mod vgic;
pub mod vmmcall;
