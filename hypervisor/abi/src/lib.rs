//! Types and constants shared by the EL2 core and the VMM.
//!
//! This crate holds no code that touches hardware: typed addresses and identifiers, and the
//! layout of the guest machine both sides must agree on.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod layout;
pub mod types;
pub mod vmm;

pub use types::{GuestPhysAddr, HostPhysAddr, IntId, VcpuId, VmId};
