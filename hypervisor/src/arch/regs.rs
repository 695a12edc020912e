//! System register fields that aarch64-cpu does not declare, and (on the target) the accessors
//! by name that only `arch/aarch64` uses.
//!
//! Field layouts follow the Arm ARM (DDI 0487) and the GICv3 specification (IHI 0069). They are
//! plain declarations, so the host-tested logic that computes register values uses them too.

use tock_registers::register_bitfields;

#[cfg(target_os = "none")]
/// Reads a system register by name (or `S<op0>_<op1>_C<n>_C<m>_<op2>` encoding).
macro_rules! read_sysreg {
    ($name:expr) => {{
        let v: u64;
        // SAFETY: reading this system register at EL2 has no side effects on memory.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

#[cfg(target_os = "none")]
/// Writes a system register by name (or encoding).
macro_rules! write_sysreg {
    ($name:expr, $value:expr) => {{
        let v: u64 = $value;
        // SAFETY: the callers write EL2-owned or guest-context registers with values they
        // computed for that purpose; no Rust-visible memory changes.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack)) };
    }};
}

#[cfg(target_os = "none")]
pub(crate) use read_sysreg;
#[cfg(target_os = "none")]
pub(crate) use write_sysreg;

register_bitfields! {u64,
    /// CPTR_EL2 with HCR_EL2.E2H == 0 (D13.2.31).
    pub CPTR_EL2 [
        /// Trap CPACR_EL1 accesses.
        TCPAC OFFSET(31) NUMBITS(1) [],
        /// Trap activity monitor accesses.
        TAM OFFSET(30) NUMBITS(1) [],
        /// Trap trace register accesses.
        TTA OFFSET(20) NUMBITS(1) [],
        /// Trap SME (RES1 without FEAT_SME).
        TSM OFFSET(12) NUMBITS(1) [],
        /// Trap FP/SIMD.
        TFP OFFSET(10) NUMBITS(1) [],
        /// Trap SVE (RES1 without FEAT_SVE).
        TZ OFFSET(8) NUMBITS(1) [],
        /// RES1 bit 13.
        RES1_13 OFFSET(13) NUMBITS(1) [],
        /// RES1 bit 9.
        RES1_9 OFFSET(9) NUMBITS(1) [],
        /// RES1 bits 7:0.
        RES1_LOW OFFSET(0) NUMBITS(8) []
    ],

    /// ICC_CTLR_EL1 (GICv3 12.2.6).
    pub ICC_CTLR [
        /// 1: a write to EOIR only drops priority; deactivation is a separate DIR write.
        EOIMODE OFFSET(1) NUMBITS(1) []
    ],

    /// ICC_SRE_EL2 (GICv3 12.2.24).
    pub ICC_SRE [
        /// EL1 may access ICC_SRE_EL1 without trapping.
        ENABLE OFFSET(3) NUMBITS(1) [],
        /// Disable IRQ bypass.
        DIB OFFSET(2) NUMBITS(1) [],
        /// Disable FIQ bypass.
        DFB OFFSET(1) NUMBITS(1) [],
        /// System register interface enabled.
        SRE OFFSET(0) NUMBITS(1) []
    ],

    /// ICC_IAR1_EL1 / ICC_EOIR1_EL1 / ICC_DIR_EL1 (GICv3 12.2).
    pub ICC_INTID [
        /// The interrupt ID.
        INTID OFFSET(0) NUMBITS(24) []
    ],

    /// ICC_SGI1R_EL1 (GICv3 12.2.22), as the physical CPU interface takes it.
    pub ICC_SGI1R [
        /// Target list: bit n = Aff0 value n (within RS*16).
        TARGET_LIST OFFSET(0) NUMBITS(16) [],
        /// Aff1 of the targets.
        AFF1 OFFSET(16) NUMBITS(8) [],
        /// The SGI.
        INTID OFFSET(24) NUMBITS(4) [],
        /// Aff2 of the targets.
        AFF2 OFFSET(32) NUMBITS(8) [],
        /// Range selector: targets are Aff0 = RS*16 + bit.
        RS OFFSET(44) NUMBITS(4) [],
        /// Aff3 of the targets.
        AFF3 OFFSET(48) NUMBITS(8) []
    ],

    /// ICH_HCR_EL2 (GICv3 12.5.6).
    pub ICH_HCR [
        /// No-pending maintenance interrupt enable: asserted while no list register is
        /// pending.
        NPIE OFFSET(3) NUMBITS(1) [],
        /// Underflow maintenance interrupt enable.
        UIE OFFSET(1) NUMBITS(1) [],
        /// Virtual CPU interface enabled.
        EN OFFSET(0) NUMBITS(1) []
    ],

    /// ID_AA64PFR0_EL1 (D19.2.64): the fields we decide on.
    pub ID_AA64PFR0 [
        /// Scalable Vector Extension.
        SVE OFFSET(32) NUMBITS(4) []
    ],

    /// ID_AA64PFR1_EL1 (D19.2.65).
    pub ID_AA64PFR1 [
        /// Scalable Matrix Extension.
        SME OFFSET(24) NUMBITS(4) []
    ],

    /// ID_AA64ISAR1_EL1 (D19.2.62): pointer authentication.
    pub ID_AA64ISAR1 [
        /// Generic authentication, IMPLEMENTATION DEFINED algorithm.
        GPI OFFSET(28) NUMBITS(4) [],
        /// Generic authentication, QARMA5.
        GPA OFFSET(24) NUMBITS(4) [],
        /// Address authentication, IMPLEMENTATION DEFINED algorithm.
        API OFFSET(8) NUMBITS(4) [],
        /// Address authentication, QARMA5.
        APA OFFSET(4) NUMBITS(4) []
    ],

    /// ID_AA64ISAR2_EL1 (D19.2.63): pointer authentication with QARMA3.
    pub ID_AA64ISAR2 [
        /// Address authentication, QARMA3.
        APA3 OFFSET(12) NUMBITS(4) [],
        /// Generic authentication, QARMA3.
        GPA3 OFFSET(8) NUMBITS(4) []
    ],

    /// ICH_VTR_EL2 (GICv3 12.5.17): the preemption levels of the virtual CPU interface.
    pub ICH_VTR_PRE [
        /// Virtual preemption bits, minus one.
        PREbits OFFSET(26) NUMBITS(3) []
    ],

    /// CTR_EL0 (D19.2.34).
    pub CTR [
        /// log2 of the smallest data cache line, in words.
        DMINLINE OFFSET(16) NUMBITS(4) []
    ],

    /// MPIDR_EL1 affinity fields (D19.2.101).
    pub MPIDR [
        /// Affinity level 0.
        AFF0 OFFSET(0) NUMBITS(8) [],
        /// Affinity level 1.
        AFF1 OFFSET(8) NUMBITS(8) [],
        /// Affinity level 2.
        AFF2 OFFSET(16) NUMBITS(8) [],
        /// RES1 in MPIDR_EL1 (and so in VMPIDR_EL2).
        RES1 OFFSET(31) NUMBITS(1) [],
        /// Affinity level 3.
        AFF3 OFFSET(32) NUMBITS(8) []
    ],

    /// VTTBR_EL2 (D19.2.164).
    pub VTTBR [
        /// The VMID (8-bit form).
        VMID OFFSET(48) NUMBITS(8) [],
        /// Stage-2 root table address.
        BADDR OFFSET(1) NUMBITS(47) []
    ],

    /// VTCR_EL2 (D19.2.163).
    pub VTCR [
        /// RES1.
        RES1 OFFSET(31) NUMBITS(1) [],
        /// Physical address size.
        PS OFFSET(16) NUMBITS(3) [],
        /// Granule.
        TG0 OFFSET(14) NUMBITS(2) [Granule4KiB = 0],
        /// Shareability of table walks.
        SH0 OFFSET(12) NUMBITS(2) [Inner = 3],
        /// Outer cacheability of table walks.
        ORGN0 OFFSET(10) NUMBITS(2) [WriteBackWriteAllocate = 1],
        /// Inner cacheability of table walks.
        IRGN0 OFFSET(8) NUMBITS(2) [WriteBackWriteAllocate = 1],
        /// Starting level (4 KiB granule: 0 = level 2, 1 = level 1, 2 = level 0).
        SL0 OFFSET(6) NUMBITS(2) [Level1 = 1],
        /// 64 - IPA bits.
        T0SZ OFFSET(0) NUMBITS(6) []
    ],

    /// TCR_EL2 with E2H == 0 (D19.2.143): its RES1 bits, which aarch64-cpu leaves out.
    pub TCR_EL2_RES1 [
        /// RES1 bit 31.
        RES1_31 OFFSET(31) NUMBITS(1) [],
        /// RES1 bit 23.
        RES1_23 OFFSET(23) NUMBITS(1) []
    ],

    /// SCTLR_EL2 with E2H == 0 (D19.2.125): its RES1 bits.
    pub SCTLR_EL2_RES1 [
        /// Bits 29:28.
        B28 OFFSET(28) NUMBITS(2) [],
        /// Bits 23:22.
        B22 OFFSET(22) NUMBITS(2) [],
        /// Bit 18.
        B18 OFFSET(18) NUMBITS(1) [],
        /// Bit 16.
        B16 OFFSET(16) NUMBITS(1) [],
        /// Bit 11.
        B11 OFFSET(11) NUMBITS(1) [],
        /// Bits 5:4.
        B4 OFFSET(4) NUMBITS(2) []
    ],

    /// SCTLR_EL1 RES1 bits in ARMv8.0 (the reset state a guest kernel is entered with).
    pub SCTLR_EL1_RES1 [
        /// Bits 29:28.
        B28 OFFSET(28) NUMBITS(2) [],
        /// Bits 23:22.
        B22 OFFSET(22) NUMBITS(2) [],
        /// Bit 20.
        B20 OFFSET(20) NUMBITS(1) [],
        /// Bit 11.
        B11 OFFSET(11) NUMBITS(1) []
    ],

    /// SPSR_EL2 as written to enter a guest (C5.2.19).
    pub SPSR [
        /// Debug exceptions masked.
        D OFFSET(9) NUMBITS(1) [],
        /// SError masked.
        A OFFSET(8) NUMBITS(1) [],
        /// IRQ masked.
        I OFFSET(7) NUMBITS(1) [],
        /// FIQ masked.
        F OFFSET(6) NUMBITS(1) [],
        /// Exception level and stack.
        M OFFSET(0) NUMBITS(4) [EL1h = 0b0101]
    ],

    /// CNTHCTL_EL2 with E2H == 0 (D19.10.1).
    pub CNTHCTL [
        /// EL1 may use the physical timer.
        EL1PCEN OFFSET(1) NUMBITS(1) [],
        /// EL1 may read the physical counter.
        EL1PCTEN OFFSET(0) NUMBITS(1) []
    ],

    /// CNTV_CTL_EL0 / CNTP_CTL_EL0 / CNTHP_CTL_EL2 (D24.10).
    pub CNT_CTL [
        /// The timer condition is met.
        ISTATUS OFFSET(2) NUMBITS(1) [],
        /// The timer's interrupt is masked.
        IMASK OFFSET(1) NUMBITS(1) [],
        /// Timer enabled.
        ENABLE OFFSET(0) NUMBITS(1) []
    ]
}
