//! The architectural answer to a guest that did something the core will not emulate: a
//! synchronous exception delivered to the guest's EL1, exactly as if its own CPU had raised it.
//!
//! [`entry`] is pure: from the guest's PC, PSTATE (SPSR_EL2) and VBAR_EL1 it computes the EL1
//! registers and the PC/PSTATE to ERET to. The core writes ELR_EL1, SPSR_EL1, ESR_EL1 and
//! FAR_EL1, then sets ELR_EL2 = `pc` and SPSR_EL2 = `spsr`.
//!
//! rhyve runs guests' EL1 in AArch64 (HCR_EL2.RW = 1), so a guest can be in AArch32 only at
//! EL0; such an exception is taken at VBAR_EL1 + 0x600, "lower EL using AArch32".
//!
//! What this leaves out, next to KVM's `enter_exception64`: the new PSTATE is EL1h with D, A,
//! I and F masked, DIT kept (the architecture preserves it) and every other bit zero. KVM also
//! sets PAN when SCTLR_EL1.SPAN is 0, SSBS from SCTLR_EL1.DSSBS, TCO when MTE is exposed,
//! ALLINT from SCTLR_EL1.SPINTMASK (FEAT_NMI), and handles GCS's EXLOCK. Each needs SCTLR_EL1
//! and a feature rhyve does not expose yet; PAN = 0 is the only one a guest can notice (its
//! kernel runs without PAN until its next exception return), and it is what a CPU without
//! FEAT_PAN does. Add them here when those features are exposed.

use tock_registers::{register_bitfields, LocalRegisterCopy};

use crate::exit::{ESR_EL2, ISS_DABT, ISS_IABT};

register_bitfields! {u64,
    /// SPSR_EL1/SPSR_EL2 for an exception taken from AArch64 (Arm ARM DDI 0487, "SPSR_EL2,
    /// Saved Program Status Register (EL2)", for an exception taken from AArch64; of an
    /// AArch32 source's SPSR, whose other fields sit elsewhere, only M[4] is read).
    pub SPSR [
        /// Negative, Zero, Carry, oVerflow condition flags.
        NZCV OFFSET(28) NUMBITS(4) [],
        /// Tag Check Override (FEAT_MTE).
        TCO OFFSET(25) NUMBITS(1) [],
        /// Data Independent Timing (FEAT_DIT).
        DIT OFFSET(24) NUMBITS(1) [],
        /// User Access Override (FEAT_UAO).
        UAO OFFSET(23) NUMBITS(1) [],
        /// Privileged Access Never (FEAT_PAN).
        PAN OFFSET(22) NUMBITS(1) [],
        /// Software Step.
        SS OFFSET(21) NUMBITS(1) [],
        /// Illegal Execution state.
        IL OFFSET(20) NUMBITS(1) [],
        /// All IRQ or FIQ interrupts mask (FEAT_NMI).
        ALLINT OFFSET(13) NUMBITS(1) [],
        /// Speculative Store Bypass Safe (FEAT_SSBS).
        SSBS OFFSET(12) NUMBITS(1) [],
        /// Branch Type (FEAT_BTI).
        BTYPE OFFSET(10) NUMBITS(2) [],
        /// Debug exception mask.
        D OFFSET(9) NUMBITS(1) [],
        /// SError exception mask.
        A OFFSET(8) NUMBITS(1) [],
        /// IRQ mask.
        I OFFSET(7) NUMBITS(1) [],
        /// FIQ mask.
        F OFFSET(6) NUMBITS(1) [],
        /// M[4]: the Execution state the exception came from.
        NRW OFFSET(4) NUMBITS(1) [
            AArch64 = 0,
            AArch32 = 1
        ],
        /// M[3:0] for an AArch64 source: Exception level and stack pointer.
        M OFFSET(0) NUMBITS(4) [
            EL0t = 0b0000,
            EL1t = 0b0100,
            EL1h = 0b0101,
            EL2t = 0b1000,
            EL2h = 0b1001,
            EL3t = 0b1100,
            EL3h = 0b1101
        ]
    ],

    /// VBAR_EL1 (Arm ARM DDI 0487, "VBAR_EL1, Vector Base Address Register (EL1)").
    pub VBAR_EL1 [
        /// Vector base address bits [63:11]; bits [10:0] are RES0.
        VBA OFFSET(11) NUMBITS(53) []
    ]
}

/// Offsets of the synchronous-exception vectors from VBAR_EL1 (Arm ARM DDI 0487, D1.10
/// "Exception entry", the exception vector table). Each block of four vectors is 0x200 bytes;
/// the synchronous one is first.
pub mod vector {
    /// Current EL with SP_EL0 (the guest was in EL1t).
    pub const CURRENT_EL_SP0: u64 = 0x000;
    /// Current EL with SP_ELx (the guest was in EL1h).
    pub const CURRENT_EL_SPX: u64 = 0x200;
    /// Lower EL using AArch64 (the guest was in EL0t).
    pub const LOWER_EL_AARCH64: u64 = 0x400;
    /// Lower EL using AArch32 (the guest was at EL0 in AArch32).
    pub const LOWER_EL_AARCH32: u64 = 0x600;
}

/// Exception Classes the injector writes to ESR_EL1 (Arm ARM DDI 0487, ESR_EL1, EC).
pub mod ec {
    /// Unknown reason: how an UNDEFINED instruction is reported.
    pub const UNKNOWN: u64 = 0x00;
    /// Instruction Abort from a lower Exception level.
    pub const INSTR_ABORT_LOWER: u64 = 0x20;
    /// Instruction Abort taken without a change in Exception level.
    pub const INSTR_ABORT_SAME: u64 = 0x21;
    /// Data Abort from a lower Exception level.
    pub const DATA_ABORT_LOWER: u64 = 0x24;
    /// Data Abort taken without a change in Exception level.
    pub const DATA_ABORT_SAME: u64 = 0x25;
}

/// The fault status code of an injected abort: synchronous external abort, not on a
/// translation table walk. The guest learns that the access failed and nothing more.
pub const FSC_SYNC_EXTERNAL: u64 = 0x10;

/// An exception to deliver to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestException {
    /// An UNDEFINED instruction (an unhandled trap, an access to a register the core does not
    /// emulate).
    Undefined,
    /// A synchronous external abort on a data access to virtual address `far`.
    DataAbort {
        /// The faulting virtual address, for FAR_EL1.
        far: u64,
        /// The access was a write (ESR_EL1.WnR).
        write: bool,
    },
    /// A synchronous external abort on an instruction fetch from virtual address `far`.
    InstructionAbort {
        /// The faulting virtual address, for FAR_EL1.
        far: u64,
    },
}

/// The register values that deliver an exception to a guest's EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct El1Entry {
    /// ELR_EL1: where the guest returns to, the instruction that raised the exception.
    pub elr_el1: u64,
    /// SPSR_EL1: the guest's PSTATE when it raised the exception.
    pub spsr_el1: u64,
    /// ESR_EL1: the syndrome.
    pub esr_el1: u64,
    /// FAR_EL1 for an abort; `None` leaves FAR_EL1 as it is (UNKNOWN for other exceptions).
    pub far_el1: Option<u64>,
    /// The guest's new PC (to write to ELR_EL2): the vector.
    pub pc: u64,
    /// The guest's new PSTATE (to write to SPSR_EL2): EL1h with D, A, I, F masked.
    pub spsr: u64,
}

/// Where the exception was taken from, as the vector table distinguishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// EL1 using SP_EL0.
    CurrentSp0,
    /// EL1 using SP_EL1.
    CurrentSpx,
    /// EL0 in AArch64.
    LowerAArch64,
    /// EL0 in AArch32.
    LowerAArch32,
}

impl Source {
    fn of(spsr: LocalRegisterCopy<u64, SPSR::Register>) -> Self {
        if spsr.matches_all(SPSR::NRW::AArch32) {
            // With HCR_EL2.RW = 1, AArch32 is only possible at EL0.
            return Self::LowerAArch32;
        }
        match spsr.read_as_enum(SPSR::M) {
            Some(SPSR::M::Value::EL0t) => Self::LowerAArch64,
            Some(SPSR::M::Value::EL1t) => Self::CurrentSp0,
            // EL1h, and what a guest's PSTATE cannot hold (EL2/EL3 modes, reserved encodings):
            // the handler at SP_EL1 is the one a confused guest can best survive.
            _ => Self::CurrentSpx,
        }
    }

    fn vector(self) -> u64 {
        match self {
            Self::CurrentSp0 => vector::CURRENT_EL_SP0,
            Self::CurrentSpx => vector::CURRENT_EL_SPX,
            Self::LowerAArch64 => vector::LOWER_EL_AARCH64,
            Self::LowerAArch32 => vector::LOWER_EL_AARCH32,
        }
    }

    fn is_lower(self) -> bool {
        matches!(self, Self::LowerAArch64 | Self::LowerAArch32)
    }
}

/// Computes how `exc` enters the guest's EL1 when the guest was at `guest_pc` with PSTATE
/// `guest_spsr` (SPSR_EL2 at the trap) and has `vbar_el1` as its vector base.
///
/// `il32` is accepted for the trapped instruction's length but not used: the Arm ARM fixes
/// ESR.IL to 1 for every syndrome written here (ESR_ELx, IL: "RES1 for ... Instruction Aborts,
/// Data Aborts with ISV == 0, ... exceptions reported with EC 0b000000"), whatever the length of
/// the instruction, so a 16-bit T32 instruction at EL0 gets IL = 1 too.
pub fn entry(
    exc: GuestException,
    guest_pc: u64,
    guest_spsr: u64,
    vbar_el1: u64,
    il32: bool,
) -> El1Entry {
    let _ = il32;
    let old = LocalRegisterCopy::<u64, SPSR::Register>::new(guest_spsr);
    let source = Source::of(old);

    let (class, iss, far_el1) = match exc {
        GuestException::Undefined => (ec::UNKNOWN, 0, None),
        GuestException::DataAbort { far, write } => {
            let class = if source.is_lower() {
                ec::DATA_ABORT_LOWER
            } else {
                ec::DATA_ABORT_SAME
            };
            let iss = ISS_DABT::DFSC.val(FSC_SYNC_EXTERNAL) + ISS_DABT::WNR.val(write.into());
            (class, iss.value, Some(far))
        }
        GuestException::InstructionAbort { far } => {
            let class = if source.is_lower() {
                ec::INSTR_ABORT_LOWER
            } else {
                ec::INSTR_ABORT_SAME
            };
            (
                class,
                ISS_IABT::IFSC.val(FSC_SYNC_EXTERNAL).value,
                Some(far),
            )
        }
    };
    let esr = ESR_EL2::EC.val(class) + ESR_EL2::IL::SET + ESR_EL2::ISS.val(iss);

    let base = LocalRegisterCopy::<u64, VBAR_EL1::Register>::new(vbar_el1).read(VBAR_EL1::VBA);
    // VBA leaves bits [10:0] clear and every vector offset is below 0x800: no carry, no
    // overflow.
    let pc = VBAR_EL1::VBA.val(base).value | source.vector();

    // DIT is unchanged by exception entry; only an AArch64 source has it at bit 24.
    let dit = match source {
        Source::LowerAArch32 => 0,
        _ => old.read(SPSR::DIT),
    };
    let spsr = SPSR::M::EL1h
        + SPSR::NRW::AArch64
        + SPSR::D::SET
        + SPSR::A::SET
        + SPSR::I::SET
        + SPSR::F::SET
        + SPSR::DIT.val(dit);

    El1Entry {
        elr_el1: guest_pc,
        spsr_el1: guest_spsr,
        esr_el1: esr.value,
        far_el1,
        pc,
        spsr: spsr.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VBAR: u64 = 0xffff_8000_1001_0800;
    const PC: u64 = 0xffff_8000_1234_5678;
    const EL0T: u64 = 0b0000;
    const EL1T: u64 = 0b0100;
    const EL1H: u64 = 0b0101;
    const AARCH32_USR: u64 = 0b1_0000;
    /// EL1h, D A I F masked.
    const NEW_PSTATE: u64 = 0x3c5;

    #[test]
    fn vector_offsets_per_source() {
        for (spsr, offset) in [
            (EL1T, 0x000),
            (EL1H, 0x200),
            (EL0T, 0x400),
            (AARCH32_USR, 0x600),
            // Thumb, flags and masks do not change the source.
            (AARCH32_USR | 1 << 5 | 0xf << 28, 0x600),
            (EL0T | 0xf << 28 | 0x3c0, 0x400),
            // Impossible guest modes fall back to the SP_EL1 vector.
            (0b1001, 0x200),
            (0b0010, 0x200),
        ] {
            let e = entry(GuestException::Undefined, PC, spsr, VBAR, true);
            assert_eq!(e.pc, VBAR + offset, "spsr {spsr:#x}");
            assert_eq!(e.spsr, NEW_PSTATE);
            assert_eq!(e.elr_el1, PC);
            assert_eq!(e.spsr_el1, spsr);
        }
    }

    #[test]
    fn vbar_res0_bits_are_ignored() {
        let e = entry(GuestException::Undefined, PC, EL0T, VBAR | 0x7ff, true);
        assert_eq!(e.pc, VBAR + 0x400);
        let e = entry(GuestException::Undefined, PC, EL1H, u64::MAX, true);
        assert_eq!(e.pc, !0x7ff | 0x200);
    }

    #[test]
    fn undefined_syndrome() {
        let e = entry(GuestException::Undefined, PC, EL1H, VBAR, true);
        assert_eq!(e.esr_el1, 0x0200_0000, "EC 0, IL 1");
        assert_eq!(e.far_el1, None);
        // IL is RES1 for EC 0 whatever the instruction length.
        let e = entry(GuestException::Undefined, PC, AARCH32_USR, VBAR, false);
        assert_eq!(e.esr_el1, 0x0200_0000);
    }

    #[test]
    fn data_abort_syndromes() {
        let write = GuestException::DataAbort {
            far: 0xdead_b000,
            write: true,
        };
        let e = entry(write, PC, EL0T, VBAR, true);
        assert_eq!(e.esr_el1, 0x9200_0050, "EC 0x24, IL, WnR, DFSC 0x10");
        assert_eq!(e.far_el1, Some(0xdead_b000));
        assert_eq!(e.pc, VBAR + 0x400);

        let read = GuestException::DataAbort {
            far: 0x1000,
            write: false,
        };
        let e = entry(read, PC, EL1H, VBAR, true);
        assert_eq!(e.esr_el1, 0x9600_0010, "EC 0x25, IL, DFSC 0x10");
        assert_eq!(e.pc, VBAR + 0x200);

        let e = entry(read, PC, AARCH32_USR, VBAR, false);
        assert_eq!(
            e.esr_el1, 0x9200_0010,
            "from AArch32 EL0 it is a lower-EL abort"
        );
    }

    #[test]
    fn instruction_abort_syndromes() {
        let fetch = GuestException::InstructionAbort { far: PC };
        let e = entry(fetch, PC, EL0T, VBAR, true);
        assert_eq!(e.esr_el1, 0x8200_0010, "EC 0x20, IL, IFSC 0x10");
        assert_eq!(e.far_el1, Some(PC));
        let e = entry(fetch, PC, EL1T, VBAR, true);
        assert_eq!(e.esr_el1, 0x8600_0010, "EC 0x21, IL, IFSC 0x10");
        assert_eq!(e.pc, VBAR);
    }

    #[test]
    fn new_pstate_keeps_only_dit() {
        // PAN, UAO, SSBS, SS, BTYPE, NZCV set in the old PSTATE; all but DIT are dropped.
        let busy = EL1H | 1 << 24 | 1 << 22 | 1 << 23 | 1 << 12 | 1 << 21 | 0b11 << 10 | 0xf << 28;
        let e = entry(GuestException::Undefined, PC, busy, VBAR, true);
        assert_eq!(e.spsr, NEW_PSTATE | 1 << 24);
        assert_eq!(e.spsr_el1, busy);
        // From AArch32, bit 24 is not DIT.
        let e = entry(
            GuestException::Undefined,
            PC,
            AARCH32_USR | 1 << 24,
            VBAR,
            true,
        );
        assert_eq!(e.spsr, NEW_PSTATE);
    }
}
