//! What the CPU says about the exception just taken to EL2.

use crate::arch::regs::read_sysreg;
pub use crate::arch::Syndrome;

/// ESR_EL2, FAR_EL2 and HPFAR_EL2 of the exception just taken.
#[inline]
pub fn syndrome() -> Syndrome {
    Syndrome {
        esr: read_sysreg!("esr_el2"),
        far: read_sysreg!("far_el2"),
        hpfar: read_sysreg!("hpfar_el2"),
    }
}

/// ELR_EL2: where an exception taken at EL2 itself happened.
#[inline]
pub fn return_address() -> u64 {
    read_sysreg!("elr_el2")
}
