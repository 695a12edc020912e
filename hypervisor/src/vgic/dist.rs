//! The distributor frame, GICD (IHI 0069 12.9), as a table of register regions.
//!
//! With affinity routing always on, the SGI/PPI part of the banked registers (INTIDs 0-31)
//! is RAZ/WI here: those live in each vCPU's redistributor.

use abi::layout::NR_SPIS;
use abi::{IntId, VcpuId};
use core::sync::atomic::Ordering;
use tock_registers::{register_bitfields, LocalRegisterCopy};

use super::irq::{Bank, IrqField};
use super::region::{self, irq_region, merge64, raz, slice64, wi, Region, Widths};
use super::{spi_index, Kick, Vgic, AFFINITY};

register_bitfields! [u32,
    /// GICD_CTLR with GICD_CTLR.DS = 1 (IHI 0069 12.9.4).
    pub GICD_CTLR [
        EnableGrp0 OFFSET(0) NUMBITS(1) [],
        EnableGrp1 OFFSET(1) NUMBITS(1) [],
        ARE OFFSET(4) NUMBITS(1) [],
        DS OFFSET(6) NUMBITS(1) [],
        RWP OFFSET(31) NUMBITS(1) []
    ],
    /// GICD_TYPER (IHI 0069 12.9.38).
    pub GICD_TYPER [
        ITLinesNumber OFFSET(0) NUMBITS(5) [],
        CPUNumber OFFSET(5) NUMBITS(3) [],
        SecurityExtn OFFSET(10) NUMBITS(1) [],
        MBIS OFFSET(16) NUMBITS(1) [],
        LPIS OFFSET(17) NUMBITS(1) [],
        IDbits OFFSET(19) NUMBITS(5) [],
        A3V OFFSET(24) NUMBITS(1) [],
        No1N OFFSET(25) NUMBITS(1) [],
        RSS OFFSET(26) NUMBITS(1) []
    ],
    /// GICD_IIDR / GICR_IIDR (IHI 0069 12.9.24).
    pub IIDR [
        Implementer OFFSET(0) NUMBITS(12) [],
        Revision OFFSET(12) NUMBITS(4) [],
        Variant OFFSET(16) NUMBITS(4) [],
        ProductID OFFSET(24) NUMBITS(8) []
    ],
    /// GICD_PIDR2 / GICR_PIDR2 (IHI 0069 12.1.13).
    pub PIDR2 [
        ArchRev OFFSET(4) NUMBITS(4) [GICv3 = 3]
    ]
];

/// Offset of GICD_PIDR2 / GICR_PIDR2 in their frames.
pub const PIDR2_OFFSET: u64 = 0xffe8;

/// The IIDR both frames report: Arm's JEP106 code with product 'R' (rhyve).
pub fn iidr() -> u64 {
    let iidr = IIDR::Implementer.val(0x43b) + IIDR::ProductID.val(u32::from(b'R'));
    u64::from(iidr.value)
}

/// The PIDR2 both frames report.
pub fn pidr2() -> u64 {
    u64::from(PIDR2::ArchRev::GICv3.value)
}

/// GICD_CTLR's (EnableGrp0, EnableGrp1) in a stored CTLR value.
pub fn group_enables(ctlr: u32) -> (bool, bool) {
    let ctlr = LocalRegisterCopy::<u32, GICD_CTLR::Register>::new(ctlr);
    (
        ctlr.is_set(GICD_CTLR::EnableGrp0),
        ctlr.is_set(GICD_CTLR::EnableGrp1),
    )
}

/// Start of `GICD_IROUTER<n>`; `IROUTER<n>` is at `IROUTER + 8n` (n < 32 reserved).
const IROUTER: u64 = 0x6000;

/// The GICD register map. Offsets not listed are RAZ/WI.
const REGIONS: &[Region<VcpuId>] = &[
    Region {
        start: 0x0000,
        len: 4,
        widths: Widths::W32,
        read: read_ctlr,
        write: write_ctlr,
    },
    Region {
        start: 0x0004,
        len: 4,
        widths: Widths::W32,
        read: read_typer,
        write: wi,
    },
    Region {
        start: 0x0008,
        len: 4,
        widths: Widths::W32,
        read: |_, _, _, _| iidr(),
        write: wi,
    },
    // TYPER2 (no vPEs, no extended SPIs) and STATUSR.
    Region {
        start: 0x000c,
        len: 8,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    // SETSPI/CLRSPI (no message-based SPIs: GICD_TYPER.MBIS = 0).
    Region {
        start: 0x0040,
        len: 0x20,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    irq_region!(0x0080, 0x80, Widths::W32, IrqField::Group),
    irq_region!(0x0100, 0x80, Widths::W32, IrqField::SetEnable),
    irq_region!(0x0180, 0x80, Widths::W32, IrqField::ClearEnable),
    irq_region!(0x0200, 0x80, Widths::W32, IrqField::SetPending),
    irq_region!(0x0280, 0x80, Widths::W32, IrqField::ClearPending),
    irq_region!(0x0300, 0x80, Widths::W32, IrqField::SetActive),
    irq_region!(0x0380, 0x80, Widths::W32, IrqField::ClearActive),
    irq_region!(0x0400, 0x400, Widths::B_W32, IrqField::Priority),
    // ITARGETSR: RAZ/WI with affinity routing.
    Region {
        start: 0x0800,
        len: 0x400,
        widths: Widths::B_W32,
        read: raz,
        write: wi,
    },
    irq_region!(0x0c00, 0x100, Widths::W32, IrqField::Config),
    // IGRPMODR and NSACR: one security state.
    Region {
        start: 0x0d00,
        len: 0x80,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    Region {
        start: 0x0e00,
        len: 0x100,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    // SGIR: WI with affinity routing (SGIs come from ICC_SGI1R_EL1).
    Region {
        start: 0x0f00,
        len: 4,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    Region {
        start: IROUTER,
        len: 8 * 1020,
        widths: Widths::W32_W64,
        read: read_irouter,
        write: write_irouter,
    },
    Region {
        start: PIDR2_OFFSET,
        len: 4,
        widths: Widths::W32,
        read: |_, _, _, _| pidr2(),
        write: wi,
    },
];

/// A guest read of the distributor.
pub(super) fn read(vgic: &Vgic, accessor: VcpuId, offset: u64, size: u8) -> u64 {
    region::read(REGIONS, vgic, accessor, offset, size)
}

/// A guest write to the distributor.
pub(super) fn write(vgic: &Vgic, accessor: VcpuId, offset: u64, size: u8, value: u64) -> Kick {
    region::write(REGIONS, vgic, accessor, offset, size, value)
}

fn read_ctlr(vgic: &Vgic, _: VcpuId, _: u64, _: u8) -> u64 {
    // DS and ARE are RAO/WI; RWP reads 0: writes take effect at once.
    let fixed = GICD_CTLR::ARE::SET + GICD_CTLR::DS::SET;
    u64::from(vgic.ctlr.load(Ordering::Acquire) | fixed.value)
}

fn write_ctlr(vgic: &Vgic, _: VcpuId, _: u64, _: u8, value: u64) -> Kick {
    let written = LocalRegisterCopy::<u32, GICD_CTLR::Register>::new(value as u32);
    let enables = GICD_CTLR::EnableGrp0.val(written.read(GICD_CTLR::EnableGrp0))
        + GICD_CTLR::EnableGrp1.val(written.read(GICD_CTLR::EnableGrp1));
    let old = vgic.ctlr.swap(enables.value, Ordering::AcqRel);
    let mut kick = Kick::none();
    if old != enables.value {
        // Group enables gate every interrupt of every vCPU. Rare (boot), so be thorough.
        for i in 0..vgic.nr_vcpus {
            let vcpu = VcpuId(i as u16);
            vgic.mark_dirty(vcpu);
            if vgic.has_pending(vcpu) {
                kick.add(vcpu);
            }
        }
    }
    kick
}

fn read_typer(vgic: &Vgic, _: VcpuId, _: u64, _: u8) -> u64 {
    let lines = (IntId::SPI_BASE + NR_SPIS).div_ceil(32) - 1;
    let cpus = vgic.nr_vcpus.saturating_sub(1).min(7) as u32;
    let typer = GICD_TYPER::ITLinesNumber.val(lines)
        + GICD_TYPER::CPUNumber.val(cpus)
        // 10-bit INTIDs (IDbits is the count minus one); no LPIs, no MBIs, one security
        // state, Aff3 always 0 (A3V = 0), target lists reach Aff0 0-15 (RSS = 0).
        + GICD_TYPER::IDbits.val(9);
    u64::from(typer.value)
}

fn read_irouter(vgic: &Vgic, _: VcpuId, off: u64, size: u8) -> u64 {
    let Some(index) = spi_index(IntId((off / 8) as u32)) else {
        return 0;
    };
    let dist = vgic.dist.lock();
    dist.spis
        .get(index)
        .map_or(0, |st| slice64(st.route, off, size))
}

fn write_irouter(vgic: &Vgic, _: VcpuId, off: u64, size: u8, value: u64) -> Kick {
    let mut kick = Kick::none();
    let Some(index) = spi_index(IntId((off / 8) as u32)) else {
        return kick;
    };
    let mut dist = vgic.dist.lock();
    let Some(st) = dist.spis.get_mut(index) else {
        return kick;
    };
    let route =
        LocalRegisterCopy::<u64, AFFINITY::Register>::new(merge64(st.route, off, size, value));
    // Keep only the fields IROUTER has (the rest are RES0).
    let kept = AFFINITY::Aff0.val(route.read(AFFINITY::Aff0))
        + AFFINITY::Aff1.val(route.read(AFFINITY::Aff1))
        + AFFINITY::Aff2.val(route.read(AFFINITY::Aff2))
        + AFFINITY::Aff3.val(route.read(AFFINITY::Aff3))
        + AFFINITY::Interrupt_Routing_Mode.val(route.read(AFFINITY::Interrupt_Routing_Mode));
    if kept.value != st.route {
        // The old target may have it in an LR to give back; the new one may now take it.
        if let Some(old) = vgic.spi_target(st) {
            vgic.mark_dirty(old);
        }
        st.route = kept.value;
        vgic.touch_spi(st, &mut kick);
    }
    kick
}

fn irq_read(vgic: &Vgic, _: VcpuId, field: IrqField, off: u64, size: u8) -> u64 {
    let mut dist = vgic.dist.lock();
    let mut bank = Bank {
        base: IntId::SPI_BASE,
        irqs: &mut dist.spis,
    };
    bank.read(field, off, size)
}

fn irq_write(
    vgic: &Vgic,
    accessor: VcpuId,
    field: IrqField,
    off: u64,
    size: u8,
    value: u64,
) -> Kick {
    let mut kick = Kick::none();
    let mut dist = vgic.dist.lock();
    let mut bank = Bank {
        base: IntId::SPI_BASE,
        irqs: &mut dist.spis,
    };
    bank.write(field, off, size, value, accessor.0, |_, st| {
        vgic.touch_spi(st, &mut kick);
    });
    kick
}
