//! The architecture interface: what the generic code asks of the CPU, one module per concern,
//! as functions over plain values.
//!
//! | module | concern |
//! |---|---|
//! | `timer` | the physical count and frequency, the EL2 timer, silencing the guest timers |
//! | `tlb` | TLB maintenance for the guests' translation regimes |
//! | `trap` | the syndrome of the exception just taken |
//! | `cpuif` | the GIC's virtual CPU interface: list registers and their control |
//! | `el1` | a guest's EL1 state: reset, exception delivery, the partition's switch |
//! | `el2` | the EL2 controls that make the CPU run one guest ([`GuestControls`]) |
//! | `id` | the ID registers |
//!
//! `aarch64/` implements them with system-register accesses, and adds what only runs on the
//! target (boot, vectors and the world switch, stage-1 and stage-2 tables, the GIC's
//! distributor and redistributors, the firmware calls). `fake/` implements the same interface
//! in plain Rust over a per-thread register file, so the host tests run the generic code that
//! calls it (as Hafnium's `arch/fake` does). `regs` names the register fields both use.

pub mod regs;

#[cfg(target_os = "none")]
mod aarch64;
#[cfg(target_os = "none")]
pub use aarch64::*;

#[cfg(not(target_os = "none"))]
pub mod fake;
#[cfg(not(target_os = "none"))]
pub use fake::{cpuif, el1, el2, id, timer, tlb, trap};

/// What ESR_EL2, FAR_EL2 and HPFAR_EL2 say about an exception taken to EL2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Syndrome {
    /// ESR_EL2.
    pub esr: u64,
    /// FAR_EL2.
    pub far: u64,
    /// HPFAR_EL2.
    pub hpfar: u64,
}

/// The EL2 controls that make the CPU run one guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestControls {
    /// HCR_EL2: what traps.
    pub hcr: u64,
    /// CPTR_EL2: which FP/SVE/SME state traps.
    pub cptr: u64,
    /// CNTHCTL_EL2: the guest's access to the physical counter and timer.
    pub cnthctl: u64,
    /// CNTVOFF_EL2: the virtual counter's offset.
    pub cntvoff: u64,
    /// VMPIDR_EL2: the MPIDR the guest reads.
    pub vmpidr: u64,
    /// VTCR_EL2: the stage-2 translation's shape.
    pub vtcr: u64,
    /// VTTBR_EL2: the stage-2 tables and VMID.
    pub vttbr: u64,
}
