//! What the CPU says about the exception just taken to EL2.

use crate::arch::regs::read_sysreg;
pub use crate::arch::Syndrome;
use aarch64_cpu::registers::PAR_EL1;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::LocalRegisterCopy;

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

/// The guest-physical address of the guest's virtual address `far`, as its stage 1 translates
/// it for a write (`write`) or a read at EL1: what a stage-2 permission fault does not give
/// (HPFAR_EL2 is not valid for it). `None` if stage 1 no longer maps it (another vCPU changed
/// the tables since the fault). The guest's PAR_EL1 is kept.
#[inline]
pub fn translate_far(far: u64, write: bool) -> Option<u64> {
    let saved = PAR_EL1.get();
    // SAFETY: AT only walks the guest's stage-1 tables (whose stage-2 mapping is the current
    // VTTBR_EL2's) and writes PAR_EL1, which is restored below; the ISB makes the result
    // visible before it is read.
    unsafe {
        if write {
            core::arch::asm!("at s1e1w, {}", "isb", in(reg) far, options(nostack));
        } else {
            core::arch::asm!("at s1e1r, {}", "isb", in(reg) far, options(nostack));
        }
    }
    let par = LocalRegisterCopy::<u64, PAR_EL1::Register>::new(PAR_EL1.get());
    PAR_EL1.set(saved);
    if par.matches_all(PAR_EL1::F::TranslationAborted) {
        return None;
    }
    Some((par.read(PAR_EL1::PA) << 12) | (far & 0xfff))
}
