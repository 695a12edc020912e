//! The architecture interface on an aarch64 CPU at EL2, and what only runs there: boot,
//! translation, the world switch, the GIC and the firmware interface.

pub mod boot;
pub mod context;
pub mod cpu;
pub mod cpuif;
pub mod el1;
pub mod el2;
pub mod exception;
pub mod firmware;
pub mod gic;
pub mod id;
pub mod mmu;
pub mod stage2;
pub mod timer;
pub mod tlb;
pub mod trap;
