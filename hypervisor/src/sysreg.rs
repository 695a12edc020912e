//! Trapped system register accesses (ESR_EL2 EC 0x18) and the registers the core emulates:
//! the GICv3 SGI generation registers and the ID register space.
//!
//! The SGI registers are decoded here into an [`SgiRequest`] whose targets are vCPUs; the
//! virtual GIC delivers them.

use abi::types::VCPUS_PER_CLUSTER;
use abi::VcpuId;
use tock_registers::{register_bitfields, LocalRegisterCopy};

register_bitfields! {u64,
    /// ISS of a trapped MSR, MRS or System instruction from AArch64, EC 0x18 (Arm ARM
    /// DDI 0487, ESR_EL2, "ISS encoding for an exception from MSR, MRS, or System instruction
    /// execution in AArch64 state").
    pub ISS_SYS [
        /// Op0 of the register's encoding.
        OP0 OFFSET(20) NUMBITS(2) [],
        /// Op2.
        OP2 OFFSET(17) NUMBITS(3) [],
        /// Op1.
        OP1 OFFSET(14) NUMBITS(3) [],
        /// CRn.
        CRN OFFSET(10) NUMBITS(4) [],
        /// The general-purpose register transferred (31 = XZR).
        RT OFFSET(5) NUMBITS(5) [],
        /// CRm.
        CRM OFFSET(1) NUMBITS(4) [],
        /// Direction: 1 for a read (MRS), 0 for a write (MSR) or System instruction.
        DIRECTION OFFSET(0) NUMBITS(1) [
            Write = 0,
            Read = 1
        ]
    ],

    /// ICC_SGI1R_EL1, ICC_ASGI1R_EL1 and ICC_SGI0R_EL1, which share one layout (GICv3/v4
    /// architecture specification, IHI 0069, "ICC_SGI1R_EL1, Interrupt Controller Software
    /// Generated Interrupt Group 1 Register").
    pub ICC_SGIR [
        /// Aff3 of the target cluster.
        AFF3 OFFSET(48) NUMBITS(8) [],
        /// Range Selector: the targets' Aff0 is RS * 16 + bit.
        RS OFFSET(44) NUMBITS(4) [],
        /// Interrupt Routing Mode.
        IRM OFFSET(40) NUMBITS(1) [
            /// The PEs in TargetList of cluster Aff3.Aff2.Aff1.
            List = 0,
            /// Every PE but the sender.
            AllButSelf = 1
        ],
        /// Aff2 of the target cluster.
        AFF2 OFFSET(32) NUMBITS(8) [],
        /// The SGI (INTID 0..=15).
        INTID OFFSET(24) NUMBITS(4) [],
        /// Aff1 of the target cluster.
        AFF1 OFFSET(16) NUMBITS(8) [],
        /// One bit per target PE: bit n is Aff0 = RS * 16 + n.
        TARGET_LIST OFFSET(0) NUMBITS(16) []
    ],

    /// The affinity fields of MPIDR_EL1 (Arm ARM DDI 0487, "MPIDR_EL1, Multiprocessor Affinity
    /// Register"), the form `VcpuId::from_mpidr_affinity` takes.
    pub MPIDR [
        /// Affinity level 3.
        AFF3 OFFSET(32) NUMBITS(8) [],
        /// Affinity level 2.
        AFF2 OFFSET(16) NUMBITS(8) [],
        /// Affinity level 1.
        AFF1 OFFSET(8) NUMBITS(8) [],
        /// Affinity level 0.
        AFF0 OFFSET(0) NUMBITS(8) []
    ]
}

/// A system register (or System instruction) by its encoding: `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysRegId {
    /// Op0, 0..=3.
    pub op0: u8,
    /// Op1, 0..=7.
    pub op1: u8,
    /// CRn, 0..=15.
    pub crn: u8,
    /// CRm, 0..=15.
    pub crm: u8,
    /// Op2, 0..=7.
    pub op2: u8,
}

impl SysRegId {
    /// The register `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self {
            op0,
            op1,
            crn,
            crm,
            op2,
        }
    }

    /// Whether this is in the ID register space HCR_EL2.TID3 traps: op0 = 3, op1 = 0, CRn = 0,
    /// CRm = 1..=7 (Arm ARM DDI 0487, HCR_EL2.TID3, and the System register encoding index for
    /// op0 = 0b11). It includes the unallocated encodings there, which the architecture makes
    /// read as zero so that software can probe them.
    pub const fn is_id_register(self) -> bool {
        self.op0 == 3 && self.op1 == 0 && self.crn == 0 && self.crm >= 1 && self.crm <= 7
    }
}

/// ID_AA64PFR0_EL1.
pub const ID_AA64PFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 4, 0);
/// ID_AA64PFR1_EL1.
pub const ID_AA64PFR1_EL1: SysRegId = SysRegId::new(3, 0, 0, 4, 1);
/// ID_AA64ZFR0_EL1: the SVE features.
pub const ID_AA64ZFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 4, 4);
/// ID_AA64SMFR0_EL1: the SME features.
pub const ID_AA64SMFR0_EL1: SysRegId = SysRegId::new(3, 0, 0, 4, 5);

register_bitfields! {u64,
    /// ID_AA64PFR0_EL1 (Arm ARM DDI 0487, D19.2): the fields hidden from some guests.
    ID_PFR0 [
        /// Scalable Vector Extension.
        SVE OFFSET(32) NUMBITS(4) []
    ],
    /// ID_AA64PFR1_EL1: the fields hidden from some guests.
    ID_PFR1 [
        /// Scalable Matrix Extension.
        SME OFFSET(24) NUMBITS(4) []
    ]
}

/// What a guest whose vCPUs time-share a CPU reads from ID register `reg`, whose value on the
/// machine is `real`: SVE and SME hidden (their register state is not switched between
/// vCPUs, and their instructions trap to an UNDEF), everything else as the machine has it.
pub fn shared_cpu_id_value(reg: SysRegId, real: u64) -> u64 {
    match reg {
        ID_AA64PFR0_EL1 => {
            let mut v = LocalRegisterCopy::<u64, ID_PFR0::Register>::new(real);
            v.modify(ID_PFR0::SVE.val(0));
            v.get()
        }
        ID_AA64PFR1_EL1 => {
            let mut v = LocalRegisterCopy::<u64, ID_PFR1::Register>::new(real);
            v.modify(ID_PFR1::SME.val(0));
            v.get()
        }
        ID_AA64ZFR0_EL1 | ID_AA64SMFR0_EL1 => 0,
        _ => real,
    }
}

/// ICC_SGI1R_EL1: generate a Group 1 SGI for the current Security state.
pub const ICC_SGI1R_EL1: SysRegId = SysRegId::new(3, 0, 12, 11, 5);
/// ICC_ASGI1R_EL1: generate a Group 1 SGI for the other Security state.
pub const ICC_ASGI1R_EL1: SysRegId = SysRegId::new(3, 1, 12, 11, 6);
/// ICC_SGI0R_EL1: generate a Group 0 SGI.
pub const ICC_SGI0R_EL1: SysRegId = SysRegId::new(3, 2, 12, 11, 7);

/// A trapped MSR/MRS (or System instruction), decoded from the ISS of EC 0x18.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    /// The register.
    pub reg: SysRegId,
    /// The general-purpose register transferred, 0..=31; 31 is XZR (an MRS to it discards the
    /// value, an MSR from it writes zero).
    pub rt: u8,
    /// An MRS (read); false for an MSR or a System instruction.
    pub read: bool,
}

impl SysRegAccess {
    /// Decodes the ISS of an EC 0x18 syndrome (the ISS only: bits above 24 are ignored).
    pub fn from_iss(iss: u64) -> Self {
        let iss = LocalRegisterCopy::<u64, ISS_SYS::Register>::new(iss);
        // Each field is at most five bits wide: the narrowings keep them whole.
        let field = |f| iss.read(f) as u8;
        Self {
            reg: SysRegId::new(
                field(ISS_SYS::OP0),
                field(ISS_SYS::OP1),
                field(ISS_SYS::CRN),
                field(ISS_SYS::CRM),
                field(ISS_SYS::OP2),
            ),
            rt: field(ISS_SYS::RT),
            read: iss.matches_all(ISS_SYS::DIRECTION::Read),
        }
    }
}

/// The PEs an SGI register write targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTargets {
    /// IRM = 1: every PE but the sender.
    AllButSelf,
    /// IRM = 0: the PEs of cluster `aff3.aff2.aff1` whose Aff0 is `rs * 16 + n` for each bit
    /// n set in `target_list`.
    List {
        /// Aff3 of the cluster.
        aff3: u8,
        /// Aff2 of the cluster.
        aff2: u8,
        /// Aff1 of the cluster.
        aff1: u8,
        /// Range Selector, 0..=15.
        rs: u8,
        /// One bit per PE.
        target_list: u16,
    },
}

/// An SGI a guest asked for by writing ICC_SGI1R_EL1 (or ICC_ASGI1R_EL1/ICC_SGI0R_EL1, which
/// share the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgiRequest {
    /// The SGI, 0..=15.
    pub intid: u8,
    /// Whom it goes to.
    pub targets: SgiTargets,
}

/// Decodes a value written to ICC_SGI1R_EL1 (or ICC_ASGI1R_EL1/ICC_SGI0R_EL1). Every value
/// decodes; reserved bits are ignored.
pub fn decode_sgi1r(value: u64) -> SgiRequest {
    let reg = LocalRegisterCopy::<u64, ICC_SGIR::Register>::new(value);
    // Every field is at most sixteen bits wide: the narrowings keep them whole.
    let targets = if reg.matches_all(ICC_SGIR::IRM::AllButSelf) {
        SgiTargets::AllButSelf
    } else {
        SgiTargets::List {
            aff3: reg.read(ICC_SGIR::AFF3) as u8,
            aff2: reg.read(ICC_SGIR::AFF2) as u8,
            aff1: reg.read(ICC_SGIR::AFF1) as u8,
            rs: reg.read(ICC_SGIR::RS) as u8,
            target_list: reg.read(ICC_SGIR::TARGET_LIST) as u16,
        }
    };
    SgiRequest {
        intid: reg.read(ICC_SGIR::INTID) as u8,
        targets,
    }
}

impl SgiRequest {
    /// The vCPUs of a VM of `vcpu_count` vCPUs this SGI goes to, when `sender` wrote it. Targets
    /// that name no vCPU (a nonzero RS or Aff2/Aff3, an Aff0 beyond the cluster, an index
    /// beyond `vcpu_count`) are skipped, as the GIC ignores PEs that do not exist.
    pub fn targets(&self, sender: VcpuId, vcpu_count: usize) -> SgiTargetIter {
        SgiTargetIter {
            targets: self.targets,
            sender,
            vcpu_count,
            next: 0,
        }
    }
}

/// The iterator [`SgiRequest::targets`] returns; it allocates nothing.
#[derive(Clone, Debug)]
pub struct SgiTargetIter {
    targets: SgiTargets,
    sender: VcpuId,
    vcpu_count: usize,
    /// The next vCPU index (AllButSelf) or TargetList bit (List) to look at.
    next: usize,
}

impl Iterator for SgiTargetIter {
    type Item = VcpuId;

    fn next(&mut self) -> Option<VcpuId> {
        match self.targets {
            SgiTargets::AllButSelf => {
                // vCPU indices are u16; a larger count cannot name more vCPUs.
                let count = self.vcpu_count.min(usize::from(u16::MAX) + 1);
                while self.next < count {
                    let candidate = VcpuId(self.next as u16);
                    self.next += 1;
                    if candidate != self.sender {
                        return Some(candidate);
                    }
                }
                None
            }
            SgiTargets::List {
                aff3,
                aff2,
                aff1,
                rs,
                target_list,
            } => {
                while self.next < usize::from(VCPUS_PER_CLUSTER) {
                    let bit = self.next as u8;
                    self.next += 1;
                    if target_list & (1 << bit) == 0 {
                        continue;
                    }
                    // RS <= 15 and bit <= 15, so Aff0 <= 255.
                    let aff0 = rs * 16 + bit;
                    let affinity = MPIDR::AFF3.val(aff3.into())
                        + MPIDR::AFF2.val(aff2.into())
                        + MPIDR::AFF1.val(aff1.into())
                        + MPIDR::AFF0.val(aff0.into());
                    if let Some(vcpu) = VcpuId::from_mpidr_affinity(affinity.value, self.vcpu_count)
                    {
                        return Some(vcpu);
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use tock_registers::fields::FieldValue;

    fn sgi(fields: FieldValue<u64, ICC_SGIR::Register>) -> u64 {
        fields.value
    }

    fn collect(req: &SgiRequest, sender: u16, count: usize) -> Vec<u16> {
        req.targets(VcpuId(sender), count).map(|v| v.0).collect()
    }

    #[test]
    fn decodes_sysreg_iss() {
        let iss = ISS_SYS::OP0.val(3)
            + ISS_SYS::OP1.val(1)
            + ISS_SYS::CRN.val(12)
            + ISS_SYS::CRM.val(11)
            + ISS_SYS::OP2.val(6)
            + ISS_SYS::RT.val(31)
            + ISS_SYS::DIRECTION::Read;
        let access = SysRegAccess::from_iss(iss.value);
        assert_eq!(access.reg, ICC_ASGI1R_EL1);
        assert_eq!(access.rt, 31);
        assert!(access.read);
        let sgi0 = ISS_SYS::OP0.val(3)
            + ISS_SYS::OP1.val(2)
            + ISS_SYS::CRN.val(12)
            + ISS_SYS::CRM.val(11)
            + ISS_SYS::OP2.val(7);
        let access = SysRegAccess::from_iss(sgi0.value);
        assert_eq!(access.reg, ICC_SGI0R_EL1);
        assert!(!access.read);
    }

    #[test]
    fn shared_cpu_guests_see_no_sve_or_sme() {
        let pfr0 = 0x1101_0000_2222u64 | (1 << 32);
        assert_eq!(
            shared_cpu_id_value(ID_AA64PFR0_EL1, pfr0),
            pfr0 & !(0xf << 32)
        );
        let pfr1 = (2u64 << 24) | 0x21;
        assert_eq!(shared_cpu_id_value(ID_AA64PFR1_EL1, pfr1), 0x21);
        assert_eq!(shared_cpu_id_value(ID_AA64ZFR0_EL1, 0x1234), 0);
        assert_eq!(shared_cpu_id_value(ID_AA64SMFR0_EL1, 0x1234), 0);
        let isar0 = SysRegId::new(3, 0, 0, 6, 0);
        assert_eq!(shared_cpu_id_value(isar0, 0xdead_beef), 0xdead_beef);
    }

    #[test]
    fn id_register_space() {
        assert!(SysRegId::new(3, 0, 0, 1, 0).is_id_register()); // ID_PFR0_EL1
        assert!(SysRegId::new(3, 0, 0, 4, 0).is_id_register()); // ID_AA64PFR0_EL1
        assert!(SysRegId::new(3, 0, 0, 7, 7).is_id_register());
        assert!(!SysRegId::new(3, 0, 0, 0, 5).is_id_register()); // MPIDR_EL1
        assert!(!SysRegId::new(3, 0, 0, 8, 0).is_id_register());
        assert!(!SysRegId::new(3, 1, 0, 4, 0).is_id_register());
        assert!(!SysRegId::new(2, 0, 0, 4, 0).is_id_register());
        assert!(!ICC_SGI1R_EL1.is_id_register());
    }

    #[test]
    fn sgi1r_fields() {
        let value = sgi(ICC_SGIR::AFF3.val(0x12)
            + ICC_SGIR::RS.val(0xf)
            + ICC_SGIR::AFF2.val(0x34)
            + ICC_SGIR::INTID.val(0xb)
            + ICC_SGIR::AFF1.val(0x56)
            + ICC_SGIR::TARGET_LIST.val(0x8001));
        assert_eq!(
            decode_sgi1r(value),
            SgiRequest {
                intid: 11,
                targets: SgiTargets::List {
                    aff3: 0x12,
                    aff2: 0x34,
                    aff1: 0x56,
                    rs: 0xf,
                    target_list: 0x8001
                }
            }
        );
        // IRM = 1 ignores the list.
        let all = decode_sgi1r(sgi(ICC_SGIR::IRM::AllButSelf + ICC_SGIR::TARGET_LIST.val(1)));
        assert_eq!(all.targets, SgiTargets::AllButSelf);
    }

    #[test]
    fn target_lists_across_clusters() {
        // Cluster 0, vCPUs 0, 3 and 15.
        let c0 = decode_sgi1r(sgi(ICC_SGIR::TARGET_LIST.val(1 | 1 << 3 | 1 << 15)));
        assert_eq!(collect(&c0, 0, 40), [0, 3, 15]);
        // Cluster 1 (Aff1 = 1): bits 0 and 2 are vCPUs 16 and 18.
        let c1 = decode_sgi1r(sgi(ICC_SGIR::AFF1.val(1) + ICC_SGIR::TARGET_LIST.val(0b101)));
        assert_eq!(collect(&c1, 0, 40), [16, 18]);
        // Cluster 2 holds vCPUs 32..40 of 40: bit 9 (vCPU 41) does not exist.
        let c2 = decode_sgi1r(sgi(
            ICC_SGIR::AFF1.val(2) + ICC_SGIR::TARGET_LIST.val(1 << 7 | 1 << 9)
        ));
        assert_eq!(collect(&c2, 0, 40), [39]);
        // A cluster beyond the VM, RS != 0 and Aff2 != 0 name nobody.
        let far = decode_sgi1r(sgi(
            ICC_SGIR::AFF1.val(9) + ICC_SGIR::TARGET_LIST.val(0xffff)
        ));
        assert!(collect(&far, 0, 40).is_empty());
        let rs = decode_sgi1r(sgi(ICC_SGIR::RS.val(1) + ICC_SGIR::TARGET_LIST.val(0xffff)));
        assert!(collect(&rs, 0, 40).is_empty());
        let aff2 = decode_sgi1r(sgi(
            ICC_SGIR::AFF2.val(1) + ICC_SGIR::TARGET_LIST.val(0xffff)
        ));
        assert!(collect(&aff2, 0, 40).is_empty());
        // A list may include the sender itself.
        assert_eq!(collect(&c0, 3, 4), [0, 3]);
    }

    #[test]
    fn irm_all_but_self() {
        let all = decode_sgi1r(sgi(ICC_SGIR::IRM::AllButSelf + ICC_SGIR::INTID.val(1)));
        assert_eq!(all.intid, 1);
        assert_eq!(collect(&all, 2, 5), [0, 1, 3, 4]);
        assert_eq!(collect(&all, 0, 1), [] as [u16; 0]);
        assert_eq!(collect(&all, 0, 0), [] as [u16; 0]);
        assert_eq!(collect(&all, 9, 3), [0, 1, 2], "a sender outside the VM");
    }

    #[test]
    fn every_value_decodes() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..10_000 {
            x = x.rotate_left(13).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555;
            let req = decode_sgi1r(x);
            assert!(req.intid < 16);
            assert!(req.targets(VcpuId(0), 512).all(|v| v.index() < 512));
        }
    }
}
