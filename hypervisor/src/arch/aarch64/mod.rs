//! What only runs at EL2 on an aarch64 CPU: boot, translation, the world switch, the GIC and
//! the firmware interface.

pub mod boot;
pub mod context;
pub mod cpu;
pub mod el1;
pub mod exception;
pub mod firmware;
pub mod gic;
pub mod mmu;
pub mod regs;
pub mod stage2;
