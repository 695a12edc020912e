//! The EL1 state a guest sees: reset for a vCPU starting afresh, an exception delivered into
//! it, and the part that differs between a guest and the VMM partition sharing a physical
//! CPU, switched on every upcall into the VMM.
//!
//! On an upcall only what the VMM uses or its execution would clobber is moved: its MMU setup
//! (it maps its own view), its vectors and stacks, and the exception registers. Guest
//! FP/SIMD, timer, and GIC CPU-interface state stay live: the VMM is soft-float, uses no
//! timer, and runs with interrupts masked.

use crate::arch::regs::{read_sysreg, write_sysreg};
use crate::inject::El1Entry;

/// Puts the EL1 system registers in the state the arm64 boot protocol expects (MMU and caches
/// off, timers off; SCTLR_EL1 `sctlr`), for a vCPU starting afresh.
#[inline]
pub fn reset_for_boot(sctlr: u64) {
    write_sysreg!("sctlr_el1", sctlr);
    write_sysreg!("tcr_el1", 0);
    write_sysreg!("ttbr0_el1", 0);
    write_sysreg!("ttbr1_el1", 0);
    write_sysreg!("mair_el1", 0);
    write_sysreg!("vbar_el1", 0);
    write_sysreg!("cpacr_el1", 0);
    write_sysreg!("cntkctl_el1", 0);
    write_sysreg!("cntv_ctl_el0", 0);
    write_sysreg!("cntp_ctl_el0", 0);
    write_sysreg!("contextidr_el1", 0);
    write_sysreg!("tpidr_el1", 0);
    write_sysreg!("tpidr_el0", 0);
    write_sysreg!("tpidrro_el0", 0);
    write_sysreg!("sp_el0", 0);
    write_sysreg!("sp_el1", 0);
    write_sysreg!("mdscr_el1", 0);
}

/// VBAR_EL1: where the guest's exception vectors are.
#[inline]
pub fn vector_base() -> u64 {
    read_sysreg!("vbar_el1")
}

/// Writes the EL1 exception registers of an exception delivered into the guest (the vCPU then
/// resumes at the entry's PC with its PSTATE).
#[inline]
pub fn deliver(e: &El1Entry) {
    write_sysreg!("esr_el1", e.esr_el1);
    if let Some(far) = e.far_el1 {
        write_sysreg!("far_el1", far);
    }
    write_sysreg!("elr_el1", e.elr_el1);
    write_sysreg!("spsr_el1", e.spsr_el1);
}

/// One side's copy of the switched registers.
#[derive(Clone, Copy, Debug, Default)]
pub struct El1State {
    sctlr: u64,
    tcr: u64,
    ttbr0: u64,
    mair: u64,
    vbar: u64,
    sp_el1: u64,
    sp_el0: u64,
    elr: u64,
    spsr: u64,
    esr: u64,
    far: u64,
    hcr: u64,
    vttbr: u64,
    vtcr: u64,
    ich_hcr: u64,
}

impl El1State {
    /// The registers as the CPU holds them now.
    pub fn save() -> Self {
        Self {
            sctlr: read_sysreg!("sctlr_el1"),
            tcr: read_sysreg!("tcr_el1"),
            ttbr0: read_sysreg!("ttbr0_el1"),
            mair: read_sysreg!("mair_el1"),
            vbar: read_sysreg!("vbar_el1"),
            sp_el1: read_sysreg!("sp_el1"),
            sp_el0: read_sysreg!("sp_el0"),
            elr: read_sysreg!("elr_el1"),
            spsr: read_sysreg!("spsr_el1"),
            esr: read_sysreg!("esr_el1"),
            far: read_sysreg!("far_el1"),
            hcr: read_sysreg!("hcr_el2"),
            vttbr: read_sysreg!("vttbr_el2"),
            vtcr: read_sysreg!("vtcr_el2"),
            ich_hcr: read_sysreg!("ich_hcr_el2"),
        }
    }

    /// A fresh state for a partition entered with `hcr` and `vttbr`: MMU off, the GIC's
    /// virtual CPU interface off (no guest interrupt and no maintenance interrupt can fire
    /// while it runs).
    pub fn fresh(sctlr: u64, hcr: u64, vttbr: u64, vtcr: u64) -> Self {
        Self {
            sctlr,
            hcr,
            vttbr,
            vtcr,
            ..Self::default()
        }
    }

    /// Loads these registers into the CPU.
    pub fn restore(&self) {
        write_sysreg!("hcr_el2", self.hcr);
        write_sysreg!("vtcr_el2", self.vtcr);
        write_sysreg!("vttbr_el2", self.vttbr);
        write_sysreg!("ich_hcr_el2", self.ich_hcr);
        write_sysreg!("sctlr_el1", self.sctlr);
        write_sysreg!("tcr_el1", self.tcr);
        write_sysreg!("ttbr0_el1", self.ttbr0);
        write_sysreg!("mair_el1", self.mair);
        write_sysreg!("vbar_el1", self.vbar);
        write_sysreg!("sp_el1", self.sp_el1);
        write_sysreg!("sp_el0", self.sp_el0);
        write_sysreg!("elr_el1", self.elr);
        write_sysreg!("spsr_el1", self.spsr);
        write_sysreg!("esr_el1", self.esr);
        write_sysreg!("far_el1", self.far);
        super::cpu::isb();
    }
}
