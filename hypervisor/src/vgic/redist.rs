//! The redistributor frames, GICR (IHI 0069 12.10, 12.11): per vCPU an RD_base frame
//! (control, identification, power) and an SGI_base frame (the vCPU's SGIs and PPIs).

use abi::VcpuId;
use tock_registers::{register_bitfields, LocalRegisterCopy};

use super::dist::{iidr, pidr2, PIDR2_OFFSET};
use super::irq::{Bank, IrqField};
use super::region::{self, irq_region, raz, slice64, wi, Region, Widths};
use super::{Kick, Vgic, AFFINITY};

register_bitfields! [u64,
    /// GICR_TYPER (IHI 0069 12.10.33).
    pub GICR_TYPER [
        PLPIS OFFSET(0) NUMBITS(1) [],
        VLPIS OFFSET(1) NUMBITS(1) [],
        DirectLPI OFFSET(3) NUMBITS(1) [],
        Last OFFSET(4) NUMBITS(1) [],
        Processor_Number OFFSET(8) NUMBITS(16) [],
        /// `Affinity_Value[7:0]` (Aff0); `[15:8]` Aff1, and so on.
        Aff0 OFFSET(32) NUMBITS(8) [],
        Aff1 OFFSET(40) NUMBITS(8) [],
        Aff2 OFFSET(48) NUMBITS(8) [],
        Aff3 OFFSET(56) NUMBITS(8) []
    ]
];

register_bitfields! [u32,
    /// GICR_WAKER (IHI 0069 12.10.40).
    pub GICR_WAKER [
        ProcessorSleep OFFSET(1) NUMBITS(1) [],
        ChildrenAsleep OFFSET(2) NUMBITS(1) []
    ]
];

/// RD_base. Offsets not listed are RAZ/WI.
const RD_REGIONS: &[Region<VcpuId>] = &[
    // CTLR: EnableLPIs is 0 without LPIs; RWP reads 0. STATUSR follows TYPER.
    Region {
        start: 0x0000,
        len: 4,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    Region {
        start: 0x0004,
        len: 4,
        widths: Widths::W32,
        read: |_, _, _, _| iidr(),
        write: wi,
    },
    Region {
        start: 0x0008,
        len: 8,
        widths: Widths::W32_W64,
        read: read_typer,
        write: wi,
    },
    Region {
        start: 0x0010,
        len: 4,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    Region {
        start: 0x0014,
        len: 4,
        widths: Widths::W32,
        read: read_waker,
        write: write_waker,
    },
    // PROPBASER, PENDBASER: no LPIs.
    Region {
        start: 0x0070,
        len: 16,
        widths: Widths::W32_W64,
        read: raz,
        write: wi,
    },
    Region {
        start: PIDR2_OFFSET,
        len: 4,
        widths: Widths::W32,
        read: |_, _, _, _| pidr2(),
        write: wi,
    },
];

/// SGI_base. Offsets not listed are RAZ/WI.
const SGI_REGIONS: &[Region<VcpuId>] = &[
    irq_region!(0x0080, 4, Widths::W32, IrqField::Group),
    irq_region!(0x0100, 4, Widths::W32, IrqField::SetEnable),
    irq_region!(0x0180, 4, Widths::W32, IrqField::ClearEnable),
    irq_region!(0x0200, 4, Widths::W32, IrqField::SetPending),
    irq_region!(0x0280, 4, Widths::W32, IrqField::ClearPending),
    irq_region!(0x0300, 4, Widths::W32, IrqField::SetActive),
    irq_region!(0x0380, 4, Widths::W32, IrqField::ClearActive),
    irq_region!(0x0400, 0x20, Widths::B_W32, IrqField::Priority),
    // ICFGR0 (SGIs) reads edge and ignores writes; ICFGR1 (PPIs) is writable, which the
    // spec leaves IMPLEMENTATION DEFINED (12.11.7) and KVM also does. Mapped timer PPIs are
    // delivered with HW = 1 whatever it says.
    irq_region!(0x0c00, 8, Widths::W32, IrqField::Config),
    // IGRPMODR0 and NSACR: one security state.
    Region {
        start: 0x0d00,
        len: 4,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
    Region {
        start: 0x0e00,
        len: 4,
        widths: Widths::W32,
        read: raz,
        write: wi,
    },
];

/// A guest read of `vcpu`'s RD_base frame.
pub(super) fn read_rd(vgic: &Vgic, vcpu: VcpuId, offset: u64, size: u8) -> u64 {
    region::read(RD_REGIONS, vgic, vcpu, offset, size)
}

/// A guest write to `vcpu`'s RD_base frame.
pub(super) fn write_rd(vgic: &Vgic, vcpu: VcpuId, offset: u64, size: u8, value: u64) -> Kick {
    region::write(RD_REGIONS, vgic, vcpu, offset, size, value)
}

/// A guest read of `vcpu`'s SGI_base frame.
pub(super) fn read_sgi(vgic: &Vgic, vcpu: VcpuId, offset: u64, size: u8) -> u64 {
    region::read(SGI_REGIONS, vgic, vcpu, offset, size)
}

/// A guest write to `vcpu`'s SGI_base frame.
pub(super) fn write_sgi(vgic: &Vgic, vcpu: VcpuId, offset: u64, size: u8, value: u64) -> Kick {
    region::write(SGI_REGIONS, vgic, vcpu, offset, size, value)
}

fn read_typer(vgic: &Vgic, vcpu: VcpuId, off: u64, size: u8) -> u64 {
    let aff = LocalRegisterCopy::<u64, AFFINITY::Register>::new(vcpu.mpidr_affinity());
    let last = vcpu.index() + 1 == vgic.nr_vcpus;
    let typer = GICR_TYPER::Aff0.val(aff.read(AFFINITY::Aff0))
        + GICR_TYPER::Aff1.val(aff.read(AFFINITY::Aff1))
        + GICR_TYPER::Aff2.val(aff.read(AFFINITY::Aff2))
        + GICR_TYPER::Aff3.val(aff.read(AFFINITY::Aff3))
        + GICR_TYPER::Processor_Number.val(u64::from(vcpu.0))
        + GICR_TYPER::Last.val(u64::from(last));
    slice64(typer.value, off, size)
}

fn read_waker(vgic: &Vgic, vcpu: VcpuId, _: u64, _: u8) -> u64 {
    let Some(cpu) = vgic.cpus.get(vcpu.index()) else {
        return 0;
    };
    let sleep = u32::from(cpu.state.lock().sleep);
    // Waking is instantaneous: ChildrenAsleep mirrors ProcessorSleep.
    let waker = GICR_WAKER::ProcessorSleep.val(sleep) + GICR_WAKER::ChildrenAsleep.val(sleep);
    u64::from(waker.value)
}

fn write_waker(vgic: &Vgic, vcpu: VcpuId, _: u64, _: u8, value: u64) -> Kick {
    if let Some(cpu) = vgic.cpus.get(vcpu.index()) {
        let waker = LocalRegisterCopy::<u32, GICR_WAKER::Register>::new(value as u32);
        cpu.state.lock().sleep = waker.is_set(GICR_WAKER::ProcessorSleep);
    }
    Kick::none()
}

fn irq_read(vgic: &Vgic, vcpu: VcpuId, field: IrqField, off: u64, size: u8) -> u64 {
    let Some(cpu) = vgic.cpus.get(vcpu.index()) else {
        return 0;
    };
    let mut state = cpu.state.lock();
    Bank {
        base: 0,
        irqs: &mut state.private,
    }
    .read(field, off, size)
}

fn irq_write(vgic: &Vgic, vcpu: VcpuId, field: IrqField, off: u64, size: u8, value: u64) -> Kick {
    let mut kick = Kick::none();
    let Some(cpu) = vgic.cpus.get(vcpu.index()) else {
        return kick;
    };
    let mut state = cpu.state.lock();
    let mut bank = Bank {
        base: 0,
        irqs: &mut state.private,
    };
    bank.write(field, off, size, value, vcpu.0, |_, st| {
        vgic.touch_private(vcpu, st, &mut kick);
    });
    kick
}
