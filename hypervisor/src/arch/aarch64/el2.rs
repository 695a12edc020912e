//! The EL2 controls that make the CPU run one guest: its traps, identity, counter offset and
//! stage-2 translation.

use crate::arch::regs::{read_sysreg, write_sysreg};
pub use crate::arch::GuestControls;
use aarch64_cpu::registers::HCR_EL2;
use tock_registers::interfaces::ReadWriteable;

/// Loads `c` into the CPU (they are the VMM's during an upcall, and another VM's when this
/// CPU ran one).
#[inline]
pub fn load_guest_controls(c: &GuestControls) {
    write_sysreg!("vpidr_el2", read_sysreg!("midr_el1"));
    write_sysreg!("vmpidr_el2", c.vmpidr);
    write_sysreg!("cntvoff_el2", c.cntvoff);
    write_sysreg!("cnthctl_el2", c.cnthctl);
    write_sysreg!("cptr_el2", c.cptr);
    write_sysreg!("vtcr_el2", c.vtcr);
    write_sysreg!("vttbr_el2", c.vttbr);
    write_sysreg!("hcr_el2", c.hcr);
    super::cpu::isb();
}

/// Sets or clears HCR_EL2.VI: a virtual IRQ for the guest whatever its virtual CPU interface
/// signals (for a machine whose GIC does not signal it; see `runtime::irq`).
#[inline]
pub fn set_virtual_irq(on: bool) {
    HCR_EL2.modify(if on {
        HCR_EL2::VI::SET
    } else {
        HCR_EL2::VI::CLEAR
    });
    super::cpu::isb();
}
