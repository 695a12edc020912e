//! `sysreg_sgi1r`: ICC_SGI1R_EL1 values through `hypervisor::sysreg::decode_sgi1r` and its
//! target iterator, checked against the vGIC's own decoding of the same register
//! (`Vgic::send_sgi`), plus `SysRegAccess::from_iss` on any ISS.
//!
//! Invariants: the SGI is 0..=15; the iterator terminates, yields only vCPUs below the
//! count, in increasing order, never the sender for IRM = 1, and exactly the vCPUs the spec's
//! affinity rule names; the vGIC makes pending (and kicks) exactly those vCPUs; the
//! system-register ISS fields are in range, bits above 24 are ignored, and the fields encode
//! back to the ISS.

use abi::layout::{GICD_BASE, GICR_BASE, GICR_STRIDE};
use abi::{GuestPhysAddr, VcpuId};
use arbitrary::Unstructured;
use hypervisor::sysreg::{decode_sgi1r, SgiTargets, SysRegAccess};
use hypervisor::vgic::Vgic;

/// vCPU indices are u16: no count names more vCPUs than this.
const MAX_INDEX: usize = 1 << 16;
/// The vGIC cross-check runs for VMs up to this size (it builds a vGIC each time).
const VGIC_CHECK_MAX: usize = 40;

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(value), Ok(sender), Ok(count_pick), Ok(iss)) = (
        u.arbitrary::<u64>(),
        u.arbitrary::<u16>(),
        u.arbitrary::<u32>(),
        u.arbitrary::<u64>(),
    ) else {
        return;
    };
    // Mostly small VMs (where the vGIC cross-check runs), sometimes anything at all.
    let count = match count_pick >> 29 {
        0 => usize::MAX - (count_pick as usize & 0xff),
        1 => count_pick as usize & 0x1_ffff,
        _ => count_pick as usize % (VGIC_CHECK_MAX + 1),
    };
    let sender = match count {
        1..=VGIC_CHECK_MAX => VcpuId(sender % (count as u16 + 1)),
        _ => VcpuId(sender),
    };
    check_sgi(value, sender, count);
    check_iss(iss);
}

fn expected_list_target(value: u64, bit: u64, count: usize) -> Option<u16> {
    let aff1 = (value >> 16) & 0xff;
    let aff2 = (value >> 32) & 0xff;
    let rs = (value >> 44) & 0xf;
    let aff3 = (value >> 48) & 0xff;
    let aff0 = rs * 16 + bit;
    // QEMU virt numbering: 16 vCPUs per Aff1 cluster, Aff2 = Aff3 = 0.
    if aff2 != 0 || aff3 != 0 || aff0 >= 16 {
        return None;
    }
    let index = aff1 * 16 + aff0;
    (index < count as u64).then_some(index as u16)
}

fn check_sgi(value: u64, sender: VcpuId, count: usize) {
    let req = decode_sgi1r(value);
    assert!(req.intid < 16);
    assert_eq!(u64::from(req.intid), (value >> 24) & 0xf);
    let irm = value & (1 << 40) != 0;
    assert_eq!(matches!(req.targets, SgiTargets::AllButSelf), irm);

    let mut iter = req.targets(sender, count);
    let mut yielded = 0usize;
    let mut last: Option<u16> = None;
    let mut small: Vec<u16> = Vec::new();
    let limit = count.min(MAX_INDEX);
    for v in iter.by_ref().take(MAX_INDEX + 1) {
        yielded += 1;
        assert!(v.index() < count, "target {v:?} beyond {count} vCPUs");
        assert!(last.is_none_or(|l| v.0 > l), "targets not increasing");
        last = Some(v.0);
        if irm {
            assert_ne!(v, sender, "IRM=1 targets the sender");
        }
        if small.len() < VGIC_CHECK_MAX + 1 {
            small.push(v.0);
        }
    }
    assert!(yielded <= limit, "{yielded} targets of {count} vCPUs");
    assert!(iter.next().is_none(), "the target iterator does not end");

    let expected: Vec<u16> = if irm {
        let self_counted = usize::from(sender.index() < limit);
        assert_eq!(yielded, limit - self_counted, "IRM=1 target count");
        (0..limit)
            .filter(|&i| i != sender.index())
            .take(VGIC_CHECK_MAX + 1)
            .map(|i| i as u16)
            .collect()
    } else {
        (0..16)
            .filter(|b| value & (1 << b) != 0)
            .filter_map(|b| expected_list_target(value, b, count))
            .collect()
    };
    assert_eq!(
        small, expected,
        "targets of {value:#x} from {sender:?} of {count} vCPUs"
    );

    if (1..=VGIC_CHECK_MAX).contains(&count) {
        check_against_vgic(value, sender, count, &small);
    }
}

/// The vGIC decodes ICC_SGI1R_EL1 itself: with every SGI enabled and Group 1 on, the vCPUs
/// it kicks are the targets.
fn check_against_vgic(value: u64, sender: VcpuId, count: usize, targets: &[u16]) {
    let vgic = Vgic::new(count);
    // GICD_CTLR.EnableGrp1 (bit 1); the SGIs reset to Group 1.
    let _ = vgic.mmio_write(VcpuId(0), GICD_BASE, 4, 1 << 1);
    for i in 0..count {
        // GICR_ISENABLER0, in the SGI_base frame (64 KiB into the redistributor).
        let isenabler0 = GuestPhysAddr(GICR_BASE.raw() + GICR_STRIDE * i as u64 + 0x1_0100);
        let _ = vgic.mmio_write(VcpuId(i as u16), isenabler0, 4, 0xffff);
    }
    let kick = vgic.send_sgi(sender, value);
    let kicked: Vec<u16> = kick.iter().map(|v| v.0).collect();
    assert_eq!(
        kicked, targets,
        "vGIC and sysreg decode ICC_SGI1R_EL1 {value:#x} differently (sender {sender:?}, {count} vCPUs)"
    );
}

fn check_iss(iss: u64) {
    let a = SysRegAccess::from_iss(iss);
    assert_eq!(
        a,
        SysRegAccess::from_iss(iss & 0x1ff_ffff),
        "bits above ISS"
    );
    let r = a.reg;
    assert!(r.op0 <= 3 && r.op1 <= 7 && r.crn <= 15 && r.crm <= 15 && r.op2 <= 7 && a.rt <= 31);
    // ISS layout for EC 0x18: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt [9:5],
    // CRm [4:1], Direction [0].
    let encoded = u64::from(r.op0) << 20
        | u64::from(r.op2) << 17
        | u64::from(r.op1) << 14
        | u64::from(r.crn) << 10
        | u64::from(a.rt) << 5
        | u64::from(r.crm) << 1
        | u64::from(a.read);
    assert_eq!(encoded, iss & 0x3f_ffff, "fields do not encode back");
    assert_eq!(
        r.is_id_register(),
        r.op0 == 3 && r.op1 == 0 && r.crn == 0 && (1..=7).contains(&r.crm)
    );
}
