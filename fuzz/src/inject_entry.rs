//! `inject_entry`: `hypervisor::inject::entry` for any exception, guest PC, PSTATE and VBAR.
//!
//! Invariants: the new PC is VBAR_EL1 with bits [10:0] cleared plus the vector the guest's
//! PSTATE selects (0x000, 0x200, 0x400 or 0x600); the new PSTATE is EL1h with D, A, I and F
//! masked and only DIT carried over (from an AArch64 source); ELR_EL1/SPSR_EL1 keep the
//! guest's PC/PSTATE; ESR_EL1 has IL = 1, the EC of the exception and its source, an ISS of a
//! synchronous external abort (WnR for writes) and nothing above bit 31; FAR_EL1 is written
//! for aborts only.

use arbitrary::Unstructured;
use hypervisor::inject::{entry, GuestException};

/// EL1h with D, A, I and F masked.
const NEW_PSTATE: u64 = 0x3c5;
const DIT: u64 = 1 << 24;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((kind, far, write, pc, spsr, vbar, il32)) =
        u.arbitrary::<(u8, u64, bool, u64, u64, u64, bool)>()
    else {
        return;
    };
    let exc = match kind % 3 {
        0 => GuestException::Undefined,
        1 => GuestException::DataAbort { far, write },
        _ => GuestException::InstructionAbort { far },
    };
    let e = entry(exc, pc, spsr, vbar, il32);

    assert_eq!(e.elr_el1, pc);
    assert_eq!(e.spsr_el1, spsr);

    let aarch32 = spsr & (1 << 4) != 0;
    let (offset, lower) = if aarch32 {
        (0x600, true)
    } else {
        match spsr & 0xf {
            0b0000 => (0x400, true),  // EL0t
            0b0100 => (0x000, false), // EL1t
            _ => (0x200, false),      // EL1h, and modes a guest cannot be in
        }
    };
    assert_eq!(e.pc, (vbar & !0x7ff) | offset, "vector for spsr {spsr:#x}");

    let dit = if aarch32 { 0 } else { spsr & DIT };
    assert_eq!(e.spsr, NEW_PSTATE | dit, "new PSTATE");

    assert_eq!(e.esr_el1 >> 32, 0, "ESR_EL1 bits above 31");
    assert_eq!((e.esr_el1 >> 25) & 1, 1, "ESR_EL1.IL must be 1");
    let ec = e.esr_el1 >> 26;
    let iss = e.esr_el1 & 0x1ff_ffff;
    match exc {
        GuestException::Undefined => {
            assert_eq!((ec, iss), (0, 0));
            assert_eq!(e.far_el1, None);
        }
        GuestException::DataAbort { far, write } => {
            assert_eq!(ec, if lower { 0x24 } else { 0x25 });
            assert_eq!(iss, 0x10 | u64::from(write) << 6);
            assert_eq!(e.far_el1, Some(far));
        }
        GuestException::InstructionAbort { far } => {
            assert_eq!(ec, if lower { 0x20 } else { 0x21 });
            assert_eq!(iss, 0x10);
            assert_eq!(e.far_el1, Some(far));
        }
    }
}
