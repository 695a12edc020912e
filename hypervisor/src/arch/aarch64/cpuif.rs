//! The GICv3 virtual CPU interface's EL2 controls (ICH_*_EL2): the list registers and what
//! resets them.

use crate::arch::regs::{read_sysreg, write_sysreg, ICH_HCR};
use aarch64_cpu::registers::ICH_VTR_EL2;
use tock_registers::interfaces::Readable;

macro_rules! lr_access {
    ($n:expr, $write:expr, $($i:literal),*) => {
        match $n {
            $($i => if let Some(v) = $write {
                write_sysreg!(concat!("ich_lr", $i, "_el2"), v); 0
            } else {
                read_sysreg!(concat!("ich_lr", $i, "_el2"))
            },)*
            _ => 0,
        }
    };
}

/// How many list registers this CPU has (ICH_VTR_EL2.ListRegs + 1).
#[inline]
pub fn list_registers() -> usize {
    ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as usize + 1
}

/// ICH_LR<n>_EL2 (0 for a register that does not exist).
#[inline]
pub fn read_lr(n: usize) -> u64 {
    lr_access!(
        n,
        None::<u64>,
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15
    )
}

/// Writes ICH_LR<n>_EL2 (nothing for a register that does not exist).
#[inline]
pub fn write_lr(n: usize, value: u64) {
    lr_access!(
        n,
        Some(value),
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15
    );
}

/// ICH_ELRSR_EL2: the list registers that hold nothing.
#[inline]
pub fn empty_lrs() -> u64 {
    read_sysreg!("ich_elrsr_el2")
}

/// ICH_EISR_EL2: the list registers whose interrupt the guest ended and that asked for a
/// maintenance interrupt on it.
#[inline]
pub fn eoi_lrs() -> u64 {
    read_sysreg!("ich_eisr_el2")
}

/// Writes ICH_HCR_EL2.
#[inline]
pub fn set_control(hcr: u64) {
    write_sysreg!("ich_hcr_el2", hcr);
}

/// ICH_HCR_EL2.
#[inline]
pub fn control() -> u64 {
    read_sysreg!("ich_hcr_el2")
}

/// ICH_VMCR_EL2: the guest's view of its CPU interface (priority mask, group enables).
#[inline]
pub fn machine_control() -> u64 {
    read_sysreg!("ich_vmcr_el2")
}

/// Clears the active priorities and the virtual machine control state (a vCPU starting
/// afresh), and turns the interface on without maintenance interrupts.
#[inline]
pub fn reset_state() {
    write_sysreg!("ich_ap0r0_el2", 0);
    write_sysreg!("ich_ap1r0_el2", 0);
    write_sysreg!("ich_vmcr_el2", 0);
    set_control(ICH_HCR::EN::SET.value);
}
