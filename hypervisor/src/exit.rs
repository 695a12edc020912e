//! Trap decoding: ESR_EL2, FAR_EL2 and HPFAR_EL2 of a synchronous exception taken from a guest
//! become one typed [`Exit`], in one pure function ([`decode`]) that the host tests.
//!
//! This is the only module that reads the syndrome's bits, and it reads them through the
//! `register_bitfields!` layouts below. The data-abort fields that describe the access (SAS,
//! SSE, SRT, SF) are only trusted when ISV says they are valid, and the faulting IPA is only
//! taken from HPFAR_EL2 when the architecture says HPFAR_EL2 was written for that fault.
//!
//! References are to the Arm Architecture Reference Manual for A-profile, DDI 0487 (K.a), by
//! register name and the title of the subsection, since the section numbers move between issues.

use abi::GuestPhysAddr;
use tock_registers::{register_bitfields, LocalRegisterCopy};

use crate::sysreg::SysRegAccess;

register_bitfields! {u64,
    /// ESR_EL2, the fields every syndrome shares (DDI 0487, "ESR_EL2, Exception Syndrome
    /// Register (EL2)"). Also the layout of ESR_EL1, which [`crate::inject`] writes.
    pub ESR_EL2 [
        /// Instruction Specific Syndrome 2 (FEAT_LS64 and others); unused here.
        ISS2 OFFSET(32) NUMBITS(24) [],
        /// Exception Class: which ISS layout follows.
        EC OFFSET(26) NUMBITS(6) [
            /// Unknown reason (also: UNDEFINED instructions an EL1 sees).
            Unknown = 0x00,
            /// Trapped WFI, WFE, WFIT or WFET.
            WfxTrap = 0x01,
            /// Trapped access to SVE, Advanced SIMD or floating point.
            FpAccess = 0x07,
            /// Illegal Execution state.
            IllegalState = 0x0e,
            /// SVC from AArch32.
            Svc32 = 0x11,
            /// HVC from AArch32.
            Hvc32 = 0x12,
            /// SMC from AArch32.
            Smc32 = 0x13,
            /// SVC from AArch64.
            Svc64 = 0x15,
            /// HVC from AArch64.
            Hvc64 = 0x16,
            /// SMC from AArch64 (trapped by HCR_EL2.TSC).
            Smc64 = 0x17,
            /// Trapped MSR, MRS or System instruction from AArch64.
            SysReg64 = 0x18,
            /// Instruction Abort from a lower Exception level.
            InstrAbortLower = 0x20,
            /// Instruction Abort without a change in Exception level.
            InstrAbortSame = 0x21,
            /// PC alignment fault.
            PcAlignment = 0x22,
            /// Data Abort from a lower Exception level.
            DataAbortLower = 0x24,
            /// Data Abort without a change in Exception level.
            DataAbortSame = 0x25,
            /// SP alignment fault.
            SpAlignment = 0x26,
            /// SError exception.
            SError = 0x2f,
            /// BRK from AArch64.
            Brk64 = 0x3c
        ],
        /// Instruction Length: 1 for a 32-bit instruction, 0 for a 16-bit T32 one.
        IL OFFSET(25) NUMBITS(1) [],
        /// Instruction Specific Syndrome; its layout depends on EC.
        ISS OFFSET(0) NUMBITS(25) []
    ],

    /// ISS of a Data Abort, EC 0x24/0x25 (DDI 0487, ESR_EL2, "ISS encoding for an exception
    /// from a Data Abort"). SAS, SSE, SRT, SF and AR hold only when ISV is 1.
    pub ISS_DABT [
        /// Instruction Syndrome Valid: SAS, SSE, SRT, SF, AR describe the access.
        ISV OFFSET(24) NUMBITS(1) [],
        /// Syndrome Access Size.
        SAS OFFSET(22) NUMBITS(2) [
            Byte = 0b00,
            Halfword = 0b01,
            Word = 0b10,
            Doubleword = 0b11
        ],
        /// Syndrome Sign Extend: the load sign-extends.
        SSE OFFSET(21) NUMBITS(1) [],
        /// Syndrome Register Transfer: the X/W register loaded or stored (31 = XZR/WZR).
        SRT OFFSET(16) NUMBITS(5) [],
        /// Sixty-Four: the register is an X register (1) or a W register (0).
        SF OFFSET(15) NUMBITS(1) [],
        /// Acquire/Release semantics.
        AR OFFSET(14) NUMBITS(1) [],
        /// The fault came from a VNCR_EL2-relative access (FEAT_NV2).
        VNCR OFFSET(13) NUMBITS(1) [],
        /// Load/Store Type for ISV=1 (FEAT_LS64: nonzero for LD64B/ST64B*); the
        /// Synchronous Error Type (SET) for a RAS external abort.
        LST OFFSET(11) NUMBITS(2) [],
        /// FAR not Valid; meaningful only for a synchronous external abort (DFSC 0x10).
        FNV OFFSET(10) NUMBITS(1) [],
        /// External abort type (IMPLEMENTATION DEFINED classification).
        EA OFFSET(9) NUMBITS(1) [],
        /// Cache Maintenance: the fault came from a cache maintenance or address translation
        /// instruction (which then reports WnR = 1).
        CM OFFSET(8) NUMBITS(1) [],
        /// The stage-2 fault happened on a stage-1 translation table walk.
        S1PTW OFFSET(7) NUMBITS(1) [],
        /// Write not Read.
        WNR OFFSET(6) NUMBITS(1) [],
        /// Data Fault Status Code (see [`FaultStatus`]).
        DFSC OFFSET(0) NUMBITS(6) []
    ],

    /// ISS of an Instruction Abort, EC 0x20/0x21 (DDI 0487, ESR_EL2, "ISS encoding for an
    /// exception from an Instruction Abort").
    pub ISS_IABT [
        /// Synchronous Error Type (RAS).
        SET OFFSET(11) NUMBITS(2) [],
        /// FAR not Valid; meaningful only for a synchronous external abort (IFSC 0x10).
        FNV OFFSET(10) NUMBITS(1) [],
        /// External abort type.
        EA OFFSET(9) NUMBITS(1) [],
        /// The stage-2 fault happened on a stage-1 translation table walk.
        S1PTW OFFSET(7) NUMBITS(1) [],
        /// Instruction Fault Status Code (same encoding as DFSC; see [`FaultStatus`]).
        IFSC OFFSET(0) NUMBITS(6) []
    ],

    /// ISS of an HVC or SMC from AArch64, EC 0x16/0x17 (DDI 0487, ESR_EL2, "ISS encoding for an
    /// exception from HVC or SVC instruction execution" and "... from SMC instruction
    /// execution in AArch64 state").
    pub ISS_HVC [
        /// The instruction's immediate.
        IMM16 OFFSET(0) NUMBITS(16) []
    ],

    /// ISS of a trapped WF* instruction, EC 0x01 (DDI 0487, ESR_EL2, "ISS encoding for an
    /// exception from a WF* instruction").
    pub ISS_WFX [
        /// Condition code valid (AArch32).
        CV OFFSET(24) NUMBITS(1) [],
        /// Condition code (AArch32).
        COND OFFSET(20) NUMBITS(4) [],
        /// Register holding the timeout of WFIT/WFET.
        RN OFFSET(5) NUMBITS(5) [],
        /// RN is valid (WFIT/WFET).
        RV OFFSET(2) NUMBITS(1) [],
        /// Trapped Instruction.
        TI OFFSET(0) NUMBITS(2) [
            Wfi = 0b00,
            Wfe = 0b01,
            Wfit = 0b10,
            Wfet = 0b11
        ]
    ],

    /// HPFAR_EL2 (DDI 0487, "HPFAR_EL2, Hypervisor IPA Fault Address Register").
    pub HPFAR_EL2 [
        /// Faulting IPA space (FEAT_SEL2); RES0 for a Non-secure hypervisor.
        NS OFFSET(63) NUMBITS(1) [],
        /// Faulting IPA bits [55:12]. The field is [47:4] with FEAT_D128, [43:4] with
        /// FEAT_LPA and [39:4] otherwise; the bits above an implementation's width are RES0,
        /// so the widest form reads every implementation correctly.
        FIPA OFFSET(4) NUMBITS(44) []
    ],

    /// The low bits of FAR_EL2 that HPFAR_EL2 leaves out (DDI 0487, "FAR_EL2"): the faulting
    /// address's offset in its 4 KiB page, the granule HPFAR_EL2 always uses.
    pub FAR_EL2 [
        /// Offset within the 4 KiB page.
        PAGE_OFFSET OFFSET(0) NUMBITS(12) []
    ],

    /// An IPA assembled from HPFAR_EL2.FIPA and FAR_EL2's page offset.
    pub IPA [
        /// IPA bits [55:12], as HPFAR_EL2.FIPA holds them.
        PAGE OFFSET(12) NUMBITS(44) [],
        /// IPA bits [11:0], from FAR_EL2.
        PAGE_OFFSET OFFSET(0) NUMBITS(12) []
    ]
}

/// The width of a load or store (ESR_EL2 ISS.SAS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AccessSize {
    /// 1 byte.
    Byte = 1,
    /// 2 bytes.
    Halfword = 2,
    /// 4 bytes.
    Word = 4,
    /// 8 bytes.
    Doubleword = 8,
}

impl AccessSize {
    /// The width in bytes.
    pub const fn bytes(self) -> usize {
        self as usize
    }
}

/// A guest load or store that hit an IPA with no stage-2 mapping and that the hardware fully
/// described (ISV = 1): enough to emulate it and resume the guest past the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// The address accessed.
    pub ipa: GuestPhysAddr,
    /// The access width.
    pub size: AccessSize,
    /// A store (true) or a load (false).
    pub write: bool,
    /// The transfer register, 0..=31. 31 is XZR/WZR: a store writes zero, a load's value is
    /// discarded.
    pub reg: u8,
    /// The load sign-extends the value to the register width (SSE).
    pub sign_extend: bool,
    /// The register is an X register (true) or a W register (false) (SF): a load into a W
    /// register clears bits 63..32 of the X register.
    pub sixty_four: bool,
}

/// What ISV = 1 says about a load or store, without the address. [`Exit::PermissionFault`]
/// carries this because HPFAR_EL2 does not give the IPA of a stage-2 permission fault: the
/// core translates FAR_EL2 itself and then calls [`LoadStore::at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadStore {
    /// The access width.
    pub size: AccessSize,
    /// A store (true) or a load (false).
    pub write: bool,
    /// The transfer register, 0..=31 (31 = XZR/WZR).
    pub reg: u8,
    /// The load sign-extends (SSE).
    pub sign_extend: bool,
    /// X register (true) or W register (false) (SF).
    pub sixty_four: bool,
}

impl LoadStore {
    /// This access at `ipa`.
    pub const fn at(self, ipa: GuestPhysAddr) -> MmioAccess {
        MmioAccess {
            ipa,
            size: self.size,
            write: self.write,
            reg: self.reg,
            sign_extend: self.sign_extend,
            sixty_four: self.sixty_four,
        }
    }
}

/// A decoded DFSC/IFSC (DDI 0487, ESR_EL2, the DFSC and IFSC field descriptions). Levels are
/// translation table levels, -1..=3 (level -1 exists with FEAT_LPA2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    /// Address size fault: an output address beyond the configured size.
    AddressSize {
        /// Translation table level.
        level: i8,
    },
    /// Translation fault: no valid descriptor.
    Translation {
        /// Translation table level.
        level: i8,
    },
    /// Access flag fault.
    AccessFlag {
        /// Translation table level.
        level: i8,
    },
    /// Permission fault.
    Permission {
        /// Translation table level.
        level: i8,
    },
    /// Synchronous external abort, not on a translation table walk.
    SyncExternal,
    /// Synchronous external abort on a translation table walk.
    SyncExternalOnWalk {
        /// Translation table level.
        level: i8,
    },
    /// Synchronous parity or ECC error, not on a translation table walk.
    SyncParity,
    /// Synchronous parity or ECC error on a translation table walk.
    SyncParityOnWalk {
        /// Translation table level.
        level: i8,
    },
    /// Synchronous Tag Check fault (FEAT_MTE2).
    TagCheck,
    /// Alignment fault.
    Alignment,
    /// TLB conflict abort.
    TlbConflict,
    /// Unsupported atomic hardware update fault.
    UnsupportedAtomicUpdate,
    /// Any other code (granule protection faults, IMPLEMENTATION DEFINED, reserved): the raw
    /// six-bit code.
    Other(u8),
}

impl FaultStatus {
    /// Decodes a six-bit DFSC/IFSC value (higher bits ignored).
    pub const fn from_code(code: u8) -> Self {
        // The level of the codes with a level in their two low bits.
        let level = (code % 4) as i8;
        match code & 0x3f {
            0x00..=0x03 => Self::AddressSize { level },
            0x29 => Self::AddressSize { level: -1 },
            0x04..=0x07 => Self::Translation { level },
            0x2b => Self::Translation { level: -1 },
            0x08..=0x0b => Self::AccessFlag { level },
            0x0c..=0x0f => Self::Permission { level },
            0x10 => Self::SyncExternal,
            0x11 => Self::TagCheck,
            0x13 => Self::SyncExternalOnWalk { level: -1 },
            0x14..=0x17 => Self::SyncExternalOnWalk { level },
            0x18 => Self::SyncParity,
            0x1b => Self::SyncParityOnWalk { level: -1 },
            0x1c..=0x1f => Self::SyncParityOnWalk { level },
            0x21 => Self::Alignment,
            0x30 => Self::TlbConflict,
            0x31 => Self::UnsupportedAtomicUpdate,
            other => Self::Other(other),
        }
    }

    /// Whether HPFAR_EL2 holds the faulting IPA for a stage-2 fault with this status
    /// (DDI 0487, rule R_FKLWR, HPFAR_EL2): translation, access flag and address size faults
    /// always; permission faults only on a stage-1 table walk; external aborts never.
    pub const fn hpfar_valid(self, s1ptw: bool) -> bool {
        match self {
            Self::Translation { .. } | Self::AccessFlag { .. } | Self::AddressSize { .. } => true,
            Self::Permission { .. } => s1ptw,
            _ => false,
        }
    }
}

/// An abort the core does not emulate: it injects an abort into the guest (or reports it), and
/// never acts on the guest's behalf on the strength of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestAbort {
    /// An instruction fetch (Instruction Abort) rather than a data access.
    pub fetch: bool,
    /// What went wrong.
    pub status: FaultStatus,
    /// A data write (WnR); false for a fetch.
    pub write: bool,
    /// The fault was on the stage-2 translation of a stage-1 table walk: the guest's page
    /// tables are at an IPA without (usable) memory.
    pub s1ptw: bool,
    /// The faulting virtual address, unless FnV says FAR_EL2 is not valid.
    pub far: Option<u64>,
    /// The faulting IPA, when HPFAR_EL2 holds it (see [`FaultStatus::hpfar_valid`]).
    pub ipa: Option<GuestPhysAddr>,
}

/// Why a guest trapped to EL2, decoded from its syndrome by [`decode`].
///
/// The core resumes a guest past a trapped instruction by adding [`instruction_len`] to
/// ELR_EL2, except where a variant says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A load or store to an IPA with no stage-2 mapping (translation or access flag fault),
    /// fully described by the syndrome: emulate it, then skip the instruction.
    Mmio(MmioAccess),
    /// As [`Exit::Mmio`] but without a valid syndrome (ISV = 0: load/store pair, writeback
    /// addressing, SIMD registers, exclusives...). The core cannot emulate it; it injects an
    /// abort (`inject::GuestException::DataAbort { far, write }`).
    DataAbortNoSyndrome {
        /// The faulting IPA.
        ipa: GuestPhysAddr,
        /// The faulting virtual address.
        far: u64,
        /// A write (WnR).
        write: bool,
    },
    /// A cache maintenance or address translation instruction (DC, IC, AT) on an IPA with no
    /// stage-2 mapping (CM = 1). It has nothing to act on in an emulated device; the core
    /// skips the instruction, as KVM does.
    CacheMaintenance {
        /// The faulting IPA.
        ipa: GuestPhysAddr,
        /// The faulting virtual address.
        far: u64,
    },
    /// An instruction fetch from an IPA with no stage-2 mapping (translation or access flag
    /// fault): the guest jumped into a device or a hole. The core injects an instruction abort.
    StageTwoFetch {
        /// The faulting IPA.
        ipa: GuestPhysAddr,
        /// The faulting virtual address.
        far: u64,
    },
    /// A stage-2 permission fault on the access itself (a write to read-only memory, a fetch
    /// from execute-never memory). HPFAR_EL2 is UNKNOWN for these (R_FKLWR), so the IPA is not
    /// given: the core translates `far` with `AT S1E1R`/`S1E1W` if it needs it (KVM does the
    /// same), then, for a described access, calls [`LoadStore::at`].
    PermissionFault {
        /// The faulting virtual address.
        far: u64,
        /// A data write (WnR, also set by cache maintenance); false for a fetch.
        write: bool,
        /// An instruction fetch rather than a data access.
        fetch: bool,
        /// The load or store, when the syndrome describes it (data aborts with ISV = 1).
        access: Option<LoadStore>,
    },
    /// Any other abort from a lower EL: external aborts, parity errors, address size faults,
    /// faults on a stage-1 table walk (S1PTW), and everything unclassified. Never trusted.
    Abort(GuestAbort),
    /// HVC from AArch64 (EC 0x16). ELR_EL2 already points past the HVC: do not advance it.
    Hvc {
        /// The HVC immediate.
        imm: u16,
    },
    /// SMC from AArch64 trapped by HCR_EL2.TSC (EC 0x17). The preferred return address of a
    /// trapped SMC is the SMC itself (DDI 0487, "Preferred exception return address"), so
    /// unlike HVC the core must advance ELR_EL2 by 4 before returning to the guest.
    Smc {
        /// The SMC immediate.
        imm: u16,
    },
    /// A trapped WFI (HCR_EL2.TWI): block the vCPU until it has an interrupt to take.
    Wfi,
    /// A trapped WFE (HCR_EL2.TWE), or WFIT/WFET: yield the physical CPU and resume. WFIT and
    /// WFET come here rather than to [`Exit::Wfi`] because blocking until an interrupt could
    /// overrun their timeout; returning at once is a wake-up the architecture allows.
    Wfe,
    /// A trapped MSR, MRS or System instruction (EC 0x18).
    SysReg(SysRegAccess),
    /// Anything else, including traps the core never enables and exceptions from EL2 itself
    /// (EC 0x21/0x25): the core injects UNDEF or reports a bug.
    Unknown {
        /// Exception Class.
        ec: u8,
        /// The raw ISS.
        iss: u32,
        /// IL: the trapped instruction is 32 bits long.
        il: bool,
    },
}

/// The length in bytes (2 or 4) of the instruction that trapped, from ESR_EL2.IL: what the
/// core adds to ELR_EL2 to skip it. A 16-bit length is only possible from AArch32 T32 code at
/// the guest's EL0.
pub fn instruction_len(esr: u64) -> u64 {
    if LocalRegisterCopy::<u64, ESR_EL2::Register>::new(esr).is_set(ESR_EL2::IL) {
        4
    } else {
        2
    }
}

/// Decodes a synchronous exception taken to EL2 from its ESR_EL2, FAR_EL2 and HPFAR_EL2. Pure
/// and total: every input gives an [`Exit`], none panics.
pub fn decode(esr: u64, far: u64, hpfar: u64) -> Exit {
    let esr_reg = LocalRegisterCopy::<u64, ESR_EL2::Register>::new(esr);
    let iss = esr_reg.read(ESR_EL2::ISS);
    let unknown = Exit::Unknown {
        // EC is six bits and ISS 25: the narrowing keeps them whole.
        ec: esr_reg.read(ESR_EL2::EC) as u8,
        iss: iss as u32,
        il: esr_reg.is_set(ESR_EL2::IL),
    };
    let Some(ec) = esr_reg.read_as_enum(ESR_EL2::EC) else {
        return unknown;
    };
    match ec {
        ESR_EL2::EC::Value::DataAbortLower => data_abort(iss, far, hpfar),
        ESR_EL2::EC::Value::InstrAbortLower => instruction_abort(iss, far, hpfar),
        ESR_EL2::EC::Value::Hvc64 => Exit::Hvc { imm: imm16(iss) },
        ESR_EL2::EC::Value::Smc64 => Exit::Smc { imm: imm16(iss) },
        ESR_EL2::EC::Value::WfxTrap => {
            let wfx = LocalRegisterCopy::<u64, ISS_WFX::Register>::new(iss);
            match wfx.read_as_enum(ISS_WFX::TI) {
                Some(ISS_WFX::TI::Value::Wfi) => Exit::Wfi,
                // TI is two bits and all four values are named; `None` cannot happen but is
                // answered like WFE, which is always safe.
                _ => Exit::Wfe,
            }
        }
        ESR_EL2::EC::Value::SysReg64 => Exit::SysReg(SysRegAccess::from_iss(iss)),
        _ => unknown,
    }
}

fn imm16(iss: u64) -> u16 {
    // IMM16 is sixteen bits wide.
    LocalRegisterCopy::<u64, ISS_HVC::Register>::new(iss).read(ISS_HVC::IMM16) as u16
}

/// The IPA of a fault whose HPFAR_EL2 is valid.
fn fault_ipa(far: u64, hpfar: u64) -> GuestPhysAddr {
    let fipa = LocalRegisterCopy::<u64, HPFAR_EL2::Register>::new(hpfar).read(HPFAR_EL2::FIPA);
    let offset = LocalRegisterCopy::<u64, FAR_EL2::Register>::new(far).read(FAR_EL2::PAGE_OFFSET);
    GuestPhysAddr((IPA::PAGE.val(fipa) + IPA::PAGE_OFFSET.val(offset)).value)
}

/// FAR_EL2, unless FnV says it is not valid (only possible for a synchronous external abort).
fn valid_far(status: FaultStatus, fnv: bool, far: u64) -> Option<u64> {
    (status != FaultStatus::SyncExternal || !fnv).then_some(far)
}

fn data_abort(iss: u64, far: u64, hpfar: u64) -> Exit {
    let dabt = LocalRegisterCopy::<u64, ISS_DABT::Register>::new(iss);
    // DFSC is six bits wide.
    let status = FaultStatus::from_code(dabt.read(ISS_DABT::DFSC) as u8);
    let s1ptw = dabt.is_set(ISS_DABT::S1PTW);
    let write = dabt.is_set(ISS_DABT::WNR);
    let ipa = status.hpfar_valid(s1ptw).then(|| fault_ipa(far, hpfar));

    if s1ptw {
        // The guest's own page tables are not in RAM: nothing to emulate.
        return Exit::Abort(GuestAbort {
            fetch: false,
            status,
            write,
            s1ptw,
            far: valid_far(status, dabt.is_set(ISS_DABT::FNV), far),
            ipa,
        });
    }
    match (status, ipa) {
        (FaultStatus::Translation { .. } | FaultStatus::AccessFlag { .. }, Some(ipa)) => {
            if dabt.is_set(ISS_DABT::CM) {
                Exit::CacheMaintenance { ipa, far }
            } else if let Some(access) = load_store(dabt) {
                Exit::Mmio(access.at(ipa))
            } else {
                Exit::DataAbortNoSyndrome { ipa, far, write }
            }
        }
        (FaultStatus::Permission { .. }, _) => Exit::PermissionFault {
            far,
            write,
            fetch: false,
            access: load_store(dabt),
        },
        _ => Exit::Abort(GuestAbort {
            fetch: false,
            status,
            write,
            s1ptw,
            far: valid_far(status, dabt.is_set(ISS_DABT::FNV), far),
            ipa,
        }),
    }
}

/// The access described by a data abort's ISS, if ISV says it is described. LD64B/ST64B*
/// (LST != 0) also set ISV but move 64 bytes that SAS cannot express: treated as undescribed.
fn load_store(dabt: LocalRegisterCopy<u64, ISS_DABT::Register>) -> Option<LoadStore> {
    if !dabt.is_set(ISS_DABT::ISV) || dabt.read(ISS_DABT::LST) != 0 {
        return None;
    }
    let size = match dabt.read_as_enum(ISS_DABT::SAS)? {
        ISS_DABT::SAS::Value::Byte => AccessSize::Byte,
        ISS_DABT::SAS::Value::Halfword => AccessSize::Halfword,
        ISS_DABT::SAS::Value::Word => AccessSize::Word,
        ISS_DABT::SAS::Value::Doubleword => AccessSize::Doubleword,
    };
    Some(LoadStore {
        size,
        write: dabt.is_set(ISS_DABT::WNR),
        // SRT is five bits wide.
        reg: dabt.read(ISS_DABT::SRT) as u8,
        sign_extend: dabt.is_set(ISS_DABT::SSE),
        sixty_four: dabt.is_set(ISS_DABT::SF),
    })
}

fn instruction_abort(iss: u64, far: u64, hpfar: u64) -> Exit {
    let iabt = LocalRegisterCopy::<u64, ISS_IABT::Register>::new(iss);
    // IFSC is six bits wide.
    let status = FaultStatus::from_code(iabt.read(ISS_IABT::IFSC) as u8);
    let s1ptw = iabt.is_set(ISS_IABT::S1PTW);
    let ipa = status.hpfar_valid(s1ptw).then(|| fault_ipa(far, hpfar));
    match (status, ipa, s1ptw) {
        (FaultStatus::Translation { .. } | FaultStatus::AccessFlag { .. }, Some(ipa), false) => {
            Exit::StageTwoFetch { ipa, far }
        }
        (FaultStatus::Permission { .. }, _, false) => Exit::PermissionFault {
            far,
            write: false,
            fetch: true,
            access: None,
        },
        _ => Exit::Abort(GuestAbort {
            fetch: true,
            status,
            write: false,
            s1ptw,
            far: valid_far(status, iabt.is_set(ISS_IABT::FNV), far),
            ipa,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysreg::{SysRegId, ICC_SGI1R_EL1, ISS_SYS};
    use tock_registers::fields::FieldValue;

    const FAR: u64 = 0xffff_0000_1234_5abc;
    /// HPFAR_EL2 for IPA 0x0900_0000 (page 0x9000).
    const HPFAR: u64 = 0x9000 << 4;
    const IPA_EXPECTED: GuestPhysAddr = GuestPhysAddr(0x0900_0abc);

    fn esr(ec: FieldValue<u64, ESR_EL2::Register>, iss: u64) -> u64 {
        (ec + ESR_EL2::IL::SET + ESR_EL2::ISS.val(iss)).value
    }

    /// A data abort from a lower EL with ISV = 1 and a stage-2 level-3 translation fault.
    fn dabt(fields: FieldValue<u64, ISS_DABT::Register>) -> u64 {
        let base = ISS_DABT::ISV::SET + ISS_DABT::DFSC.val(0x07);
        esr(ESR_EL2::EC::DataAbortLower, (base + fields).value)
    }

    fn mmio(exit: Exit) -> MmioAccess {
        match exit {
            Exit::Mmio(access) => access,
            other => panic!("expected an MMIO exit, got {other:?}"),
        }
    }

    #[test]
    fn each_access_size() {
        for (sas, size) in [
            (ISS_DABT::SAS::Byte, AccessSize::Byte),
            (ISS_DABT::SAS::Halfword, AccessSize::Halfword),
            (ISS_DABT::SAS::Word, AccessSize::Word),
            (ISS_DABT::SAS::Doubleword, AccessSize::Doubleword),
        ] {
            let access = mmio(decode(dabt(sas + ISS_DABT::SRT.val(3)), FAR, HPFAR));
            assert_eq!(access.size, size);
            assert_eq!(access.ipa, IPA_EXPECTED);
            assert_eq!(access.reg, 3);
        }
        assert_eq!(AccessSize::Halfword.bytes(), 2);
        assert_eq!(AccessSize::Doubleword.bytes(), 8);
    }

    #[test]
    fn sign_extension_and_register_width() {
        let ldrsh_w = dabt(ISS_DABT::SAS::Halfword + ISS_DABT::SSE::SET + ISS_DABT::SRT.val(5));
        let access = mmio(decode(ldrsh_w, FAR, HPFAR));
        assert!(access.sign_extend);
        assert!(!access.sixty_four);
        assert!(!access.write);

        let ldrsb_x = dabt(ISS_DABT::SAS::Byte + ISS_DABT::SSE::SET + ISS_DABT::SF::SET);
        let access = mmio(decode(ldrsb_x, FAR, HPFAR));
        assert!(access.sign_extend && access.sixty_four);

        let ldr_x = dabt(ISS_DABT::SAS::Doubleword + ISS_DABT::SF::SET + ISS_DABT::SRT.val(30));
        let access = mmio(decode(ldr_x, FAR, HPFAR));
        assert!(!access.sign_extend && access.sixty_four);
        assert_eq!(access.reg, 30);
    }

    #[test]
    fn store_of_xzr_and_load_vs_store() {
        let str_wzr = dabt(ISS_DABT::SAS::Word + ISS_DABT::SRT.val(31) + ISS_DABT::WNR::SET);
        let access = mmio(decode(str_wzr, FAR, HPFAR));
        assert!(access.write);
        assert_eq!(access.reg, 31);

        let ldr = dabt(ISS_DABT::SAS::Word + ISS_DABT::SRT.val(31));
        assert!(!mmio(decode(ldr, FAR, HPFAR)).write);
    }

    #[test]
    fn access_flag_fault_is_mmio_too() {
        let esr = esr(
            ESR_EL2::EC::DataAbortLower,
            (ISS_DABT::ISV::SET + ISS_DABT::DFSC.val(0x0b) + ISS_DABT::SAS::Word).value,
        );
        assert_eq!(mmio(decode(esr, FAR, HPFAR)).ipa, IPA_EXPECTED);
    }

    #[test]
    fn ipa_takes_the_widest_fipa() {
        // IPA bit 51 (FEAT_LPA) is FIPA bit 39, HPFAR bit 43.
        let hpfar = (HPFAR_EL2::FIPA.val(1 << 39) + HPFAR_EL2::NS::SET).value;
        let access = mmio(decode(dabt(ISS_DABT::SAS::Byte), 0x123, hpfar));
        assert_eq!(access.ipa, GuestPhysAddr(1 << 51 | 0x123));
    }

    #[test]
    fn no_syndrome() {
        // ISV = 0 (e.g. STP): SAS/SRT bits present must not be believed.
        let iss = ISS_DABT::DFSC.val(0x06) + ISS_DABT::WNR::SET + ISS_DABT::SRT.val(7);
        let exit = decode(esr(ESR_EL2::EC::DataAbortLower, iss.value), FAR, HPFAR);
        assert_eq!(
            exit,
            Exit::DataAbortNoSyndrome {
                ipa: IPA_EXPECTED,
                far: FAR,
                write: true
            }
        );
        // LD64B-style accesses: ISV = 1 but LST != 0.
        let ls64 = dabt(ISS_DABT::LST.val(1) + ISS_DABT::SAS::Doubleword);
        assert!(matches!(
            decode(ls64, FAR, HPFAR),
            Exit::DataAbortNoSyndrome { .. }
        ));
    }

    #[test]
    fn cache_maintenance() {
        let iss = ISS_DABT::DFSC.val(0x07) + ISS_DABT::CM::SET + ISS_DABT::WNR::SET;
        assert_eq!(
            decode(esr(ESR_EL2::EC::DataAbortLower, iss.value), FAR, HPFAR),
            Exit::CacheMaintenance {
                ipa: IPA_EXPECTED,
                far: FAR
            }
        );
    }

    #[test]
    fn translation_vs_permission_fault() {
        let translation = dabt(ISS_DABT::SAS::Word + ISS_DABT::WNR::SET);
        assert!(matches!(decode(translation, FAR, HPFAR), Exit::Mmio(_)));

        // Permission fault, level 3: HPFAR_EL2 is UNKNOWN, so no IPA comes out of it.
        let permission = esr(
            ESR_EL2::EC::DataAbortLower,
            (ISS_DABT::ISV::SET
                + ISS_DABT::DFSC.val(0x0f)
                + ISS_DABT::SAS::Word
                + ISS_DABT::WNR::SET
                + ISS_DABT::SRT.val(2))
            .value,
        );
        let Exit::PermissionFault {
            far,
            write,
            fetch,
            access: Some(access),
        } = decode(permission, FAR, 0xdead_0000)
        else {
            panic!("expected a permission fault with a syndrome");
        };
        assert_eq!((far, write, fetch), (FAR, true, false));
        let at = access.at(GuestPhysAddr(0x4000_1000));
        assert_eq!(
            (at.ipa, at.size, at.reg),
            (GuestPhysAddr(0x4000_1000), AccessSize::Word, 2)
        );
    }

    #[test]
    fn s1ptw_and_external_aborts_are_not_emulated() {
        // A translation fault on the stage-1 walk, even with ISV set.
        let walk = dabt(ISS_DABT::S1PTW::SET + ISS_DABT::SAS::Word);
        let Exit::Abort(abort) = decode(walk, FAR, HPFAR) else {
            panic!("S1PTW must be an abort");
        };
        assert!(abort.s1ptw && !abort.fetch);
        assert_eq!(abort.ipa, Some(IPA_EXPECTED));
        assert_eq!(abort.status, FaultStatus::Translation { level: 3 });

        // Synchronous external abort with FnV: neither FAR nor HPFAR is valid.
        let sea = ISS_DABT::DFSC.val(0x10) + ISS_DABT::FNV::SET + ISS_DABT::WNR::SET;
        let exit = decode(esr(ESR_EL2::EC::DataAbortLower, sea.value), FAR, HPFAR);
        assert_eq!(
            exit,
            Exit::Abort(GuestAbort {
                fetch: false,
                status: FaultStatus::SyncExternal,
                write: true,
                s1ptw: false,
                far: None,
                ipa: None,
            })
        );

        // FnV is ignored for other codes (RES0 there): FAR stays.
        let parity = ISS_DABT::DFSC.val(0x18) + ISS_DABT::FNV::SET;
        let Exit::Abort(abort) = decode(esr(ESR_EL2::EC::DataAbortLower, parity.value), FAR, 0)
        else {
            panic!("parity error must be an abort");
        };
        assert_eq!(
            (abort.status, abort.far),
            (FaultStatus::SyncParity, Some(FAR))
        );

        // Address size fault: HPFAR is valid, but it is still an abort.
        let size = ISS_DABT::DFSC.val(0x29);
        let Exit::Abort(abort) = decode(esr(ESR_EL2::EC::DataAbortLower, size.value), FAR, HPFAR)
        else {
            panic!("address size fault must be an abort");
        };
        assert_eq!(abort.status, FaultStatus::AddressSize { level: -1 });
        assert_eq!(abort.ipa, Some(IPA_EXPECTED));
    }

    #[test]
    fn instruction_abort() {
        let fetch = esr(ESR_EL2::EC::InstrAbortLower, ISS_IABT::IFSC.val(0x05).value);
        assert_eq!(
            decode(fetch, FAR, HPFAR),
            Exit::StageTwoFetch {
                ipa: IPA_EXPECTED,
                far: FAR
            }
        );
        let xn = esr(ESR_EL2::EC::InstrAbortLower, ISS_IABT::IFSC.val(0x0e).value);
        assert_eq!(
            decode(xn, FAR, HPFAR),
            Exit::PermissionFault {
                far: FAR,
                write: false,
                fetch: true,
                access: None
            }
        );
        let walk = ISS_IABT::IFSC.val(0x06) + ISS_IABT::S1PTW::SET;
        let exit = decode(esr(ESR_EL2::EC::InstrAbortLower, walk.value), FAR, HPFAR);
        assert!(matches!(
            exit,
            Exit::Abort(GuestAbort {
                fetch: true,
                s1ptw: true,
                ..
            })
        ));
        // An abort taken from EL2 itself is not a guest exit.
        let own = esr(ESR_EL2::EC::InstrAbortSame, ISS_IABT::IFSC.val(0x05).value);
        assert!(matches!(
            decode(own, FAR, HPFAR),
            Exit::Unknown { ec: 0x21, .. }
        ));
    }

    #[test]
    fn hvc_and_smc() {
        assert_eq!(
            decode(esr(ESR_EL2::EC::Hvc64, 0xabcd), 0, 0),
            Exit::Hvc { imm: 0xabcd }
        );
        assert_eq!(
            decode(esr(ESR_EL2::EC::Smc64, 0), 0, 0),
            Exit::Smc { imm: 0 }
        );
        assert_eq!(
            decode(esr(ESR_EL2::EC::Smc64, 0x1_0007), 0, 0),
            Exit::Smc { imm: 7 }
        );
        // HVC from AArch32 is not an AArch64 hypercall.
        assert!(matches!(
            decode(esr(ESR_EL2::EC::Hvc32, 1), 0, 0),
            Exit::Unknown {
                ec: 0x12,
                iss: 1,
                il: true
            }
        ));
    }

    #[test]
    fn wfi_vs_wfe() {
        let wfx = |ti: FieldValue<u64, ISS_WFX::Register>| esr(ESR_EL2::EC::WfxTrap, ti.value);
        assert_eq!(decode(wfx(ISS_WFX::TI::Wfi), 0, 0), Exit::Wfi);
        assert_eq!(decode(wfx(ISS_WFX::TI::Wfe), 0, 0), Exit::Wfe);
        assert_eq!(
            decode(wfx(ISS_WFX::TI::Wfit + ISS_WFX::RV::SET), 0, 0),
            Exit::Wfe
        );
        assert_eq!(decode(wfx(ISS_WFX::TI::Wfet), 0, 0), Exit::Wfe);
    }

    #[test]
    fn sysreg_read_and_write_of_sgi1r() {
        // MSR ICC_SGI1R_EL1, X9.
        let write_iss = (ISS_SYS::OP0.val(3)
            + ISS_SYS::OP1.val(0)
            + ISS_SYS::CRN.val(12)
            + ISS_SYS::CRM.val(11)
            + ISS_SYS::OP2.val(5)
            + ISS_SYS::RT.val(9)
            + ISS_SYS::DIRECTION::Write)
            .value;
        let Exit::SysReg(access) = decode(esr(ESR_EL2::EC::SysReg64, write_iss), 0, 0) else {
            panic!("expected a sysreg exit");
        };
        assert_eq!(access.reg, ICC_SGI1R_EL1);
        assert_eq!(access.rt, 9);
        assert!(!access.read);

        let Exit::SysReg(access) = decode(
            esr(
                ESR_EL2::EC::SysReg64,
                ISS_SYS::DIRECTION::Read.modify(write_iss),
            ),
            0,
            0,
        ) else {
            panic!("expected a sysreg exit");
        };
        assert!(access.read);
        assert_eq!(access.reg, SysRegId::new(3, 0, 12, 11, 5));
    }

    #[test]
    fn unknown_ec() {
        let fp = (ESR_EL2::EC::FpAccess + ESR_EL2::ISS.val(0x1e0_0000)).value;
        assert_eq!(
            decode(fp, 0, 0),
            Exit::Unknown {
                ec: 0x07,
                iss: 0x1e0_0000,
                il: false
            }
        );
        // An EC with no name at all, and ISS2 bits set.
        let raw = 0x3f << 26 | 1 << 40 | 0x155;
        assert_eq!(
            decode(raw, 0, 0),
            Exit::Unknown {
                ec: 0x3f,
                iss: 0x155,
                il: false
            }
        );
    }

    #[test]
    fn instruction_length() {
        assert_eq!(instruction_len(esr(ESR_EL2::EC::WfxTrap, 0)), 4);
        assert_eq!(instruction_len(ESR_EL2::EC::WfxTrap.value), 2);
    }

    #[test]
    fn fault_status_codes() {
        assert_eq!(
            FaultStatus::from_code(0x04),
            FaultStatus::Translation { level: 0 }
        );
        assert_eq!(
            FaultStatus::from_code(0x2b),
            FaultStatus::Translation { level: -1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x09),
            FaultStatus::AccessFlag { level: 1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x0d),
            FaultStatus::Permission { level: 1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x15),
            FaultStatus::SyncExternalOnWalk { level: 1 }
        );
        assert_eq!(FaultStatus::from_code(0x21), FaultStatus::Alignment);
        assert_eq!(FaultStatus::from_code(0x3f), FaultStatus::Other(0x3f));
        assert!(!FaultStatus::Permission { level: 3 }.hpfar_valid(false));
        assert!(FaultStatus::Permission { level: 3 }.hpfar_valid(true));
    }

    /// xorshift64*: a deterministic pseudo-random sweep.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn random_syndromes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let mut mmio = 0;
        for i in 0..200_000u32 {
            let mut esr = next(&mut state);
            // Half of the sweep forces the interesting ECs so the deep paths are reached.
            if i % 2 == 0 {
                let ec = [0x01, 0x16, 0x17, 0x18, 0x20, 0x24][(i / 2 % 6) as usize];
                esr = ESR_EL2::EC.val(ec).modify(esr);
            }
            let exit = decode(esr, next(&mut state), next(&mut state));
            if let Exit::Mmio(access) = exit {
                assert!(access.reg <= 31);
                assert!(access.ipa.raw() < 1 << 56);
                mmio += 1;
            }
        }
        assert!(mmio > 0, "the sweep never reached the MMIO path");
    }
}
