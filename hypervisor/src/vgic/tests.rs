//! Host tests of the vGIC: a fake set of list registers, Linux's GICv3 driver bring-up, and
//! delivery scenarios, ending in a pseudo-random sweep of every register.

use alloc::vec;
use alloc::vec::Vec;

use abi::layout::{GICD_BASE, GICR_BASE, GICR_STRIDE, MAX_VCPUS, NR_SPIS};
use abi::{GuestPhysAddr, IntId, VcpuId};
use tock_registers::LocalRegisterCopy;

use super::lr::ICH_LR;
use super::{Kick, ListRegs, Vgic};

// GICD offsets.
const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IIDR: u64 = 0x0008;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ISPENDR: u64 = 0x0200;
const GICD_ICACTIVER: u64 = 0x0380;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0c00;
const GICD_IROUTER: u64 = 0x6000;
const PIDR2: u64 = 0xffe8;
// GICR RD_base offsets.
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
// GICR SGI_base offsets (from the SGI frame).
const SGI_FRAME: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = 0x0080;
const GICR_ISENABLER0: u64 = 0x0100;
const GICR_ICENABLER0: u64 = 0x0180;
const GICR_ICACTIVER0: u64 = 0x0380;
const GICR_IPRIORITYR0: u64 = 0x0400;
const GICR_ICFGR0: u64 = 0x0c00;

const CTLR_ENABLE_G0: u64 = 1 << 0;
const CTLR_ENABLE_G1: u64 = 1 << 1;
const CTLR_ARE: u64 = 1 << 4;
const CTLR_DS: u64 = 1 << 6;
const CTLR_RWP: u64 = 1 << 31;
const WAKER_PROCESSOR_SLEEP: u64 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u64 = 1 << 2;
const DEFAULT_PRIO: u64 = 0xa0a0_a0a0;

fn gicd(off: u64) -> GuestPhysAddr {
    GuestPhysAddr(GICD_BASE.0 + off)
}

fn rd(vcpu: usize, off: u64) -> GuestPhysAddr {
    GuestPhysAddr(GICR_BASE.0 + GICR_STRIDE * vcpu as u64 + off)
}

fn sgi_base(vcpu: usize, off: u64) -> GuestPhysAddr {
    rd(vcpu, SGI_FRAME + off)
}

/// `ICH_LR<n>_EL2` as a test reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lr {
    intid: u64,
    state: u64,
    priority: u64,
    group1: bool,
    hw: bool,
    pintid: u64,
    eoi: bool,
}

const INVALID: u64 = 0;
const PENDING: u64 = 1;
const ACTIVE: u64 = 2;
const PENDING_ACTIVE: u64 = 3;

fn decode(raw: u64) -> Lr {
    let lr = LocalRegisterCopy::<u64, ICH_LR::Register>::new(raw);
    let hw = lr.is_set(ICH_LR::HW);
    Lr {
        intid: lr.read(ICH_LR::vINTID),
        state: lr.read(ICH_LR::State),
        priority: lr.read(ICH_LR::Priority),
        group1: lr.is_set(ICH_LR::Group),
        hw,
        pintid: if hw { lr.read(ICH_LR::pINTID) } else { 0 },
        eoi: !hw && lr.is_set(ICH_LR::EOI),
    }
}

/// List registers in a Vec, behaving as ICH_LR/ELRSR/EISR do, with the guest's side modelled
/// by `ack` and `complete`.
struct FakeListRegs {
    lrs: Vec<u64>,
    underflow: bool,
    writes: usize,
}

impl FakeListRegs {
    fn new(n: usize) -> Self {
        Self {
            lrs: vec![0; n],
            underflow: false,
            writes: 0,
        }
    }

    fn lr(&self, n: usize) -> Lr {
        decode(self.lrs[n])
    }

    fn set_state(&mut self, n: usize, state: u64) {
        let mut lr = LocalRegisterCopy::<u64, ICH_LR::Register>::new(self.lrs[n]);
        lr.modify(ICH_LR::State.val(state));
        self.lrs[n] = lr.get();
    }

    /// Valid LRs, as (INTID, state), sorted by INTID.
    fn valid(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = (0..self.lrs.len())
            .map(|n| self.lr(n))
            .filter(|lr| lr.state != INVALID)
            .map(|lr| (lr.intid, lr.state))
            .collect();
        v.sort();
        v
    }

    /// The LR holding `intid` in some state.
    fn find(&self, intid: u32) -> Option<usize> {
        (0..self.lrs.len()).find(|&n| {
            let lr = self.lr(n);
            lr.state != INVALID && lr.intid == u64::from(intid)
        })
    }

    /// The guest acknowledges LR n (reads ICC_IAR1_EL1): pending -> active.
    fn ack(&mut self, n: usize) {
        assert_eq!(self.lr(n).state, PENDING, "ack of a non-pending LR {n}");
        self.set_state(n, ACTIVE);
    }

    /// The guest acknowledges (if pending) and then deactivates LR n (ICC_EOIR1_EL1 with
    /// EOImode = 0): pending -> invalid, active -> invalid, pending+active -> pending.
    fn complete(&mut self, n: usize) {
        let state = self.lr(n).state;
        assert_ne!(state, INVALID, "complete of an empty LR {n}");
        self.set_state(
            n,
            if state == PENDING_ACTIVE {
                PENDING
            } else {
                INVALID
            },
        );
    }

    /// Completes the LR holding `intid`.
    fn complete_intid(&mut self, intid: u32) {
        let n = self
            .find(intid)
            .unwrap_or_else(|| panic!("INTID {intid} in no LR"));
        self.complete(n);
    }
}

impl ListRegs for FakeListRegs {
    fn count(&self) -> usize {
        self.lrs.len()
    }

    fn read(&self, n: usize) -> u64 {
        self.lrs[n]
    }

    fn write(&mut self, n: usize, value: u64) {
        self.writes += 1;
        self.lrs[n] = value;
    }

    /// ICH_ELRSR_EL2: State 0 and (HW = 1 or EOI = 0) (IHI 0069 12.4.6).
    fn empty_mask(&self) -> u64 {
        (0..self.lrs.len())
            .filter(|&n| {
                let lr = self.lr(n);
                lr.state == INVALID && (lr.hw || !lr.eoi)
            })
            .fold(0, |m, n| m | 1 << n)
    }

    fn eoi_mask(&self) -> u64 {
        (0..self.lrs.len())
            .filter(|&n| {
                let lr = self.lr(n);
                lr.state == INVALID && lr.eoi
            })
            .fold(0, |m, n| m | 1 << n)
    }

    fn set_underflow_irq(&mut self, on: bool) {
        self.underflow = on;
    }
}

/// What the core does around an exit: sync after it and flush before re-entry, both only if
/// the vGIC says so.
fn exit_and_enter(vgic: &Vgic, vcpu: usize, lrs: &mut FakeListRegs) {
    let vcpu = VcpuId(vcpu as u16);
    if vgic.needs_flush(vcpu) {
        vgic.sync(vcpu, lrs);
        vgic.flush(vcpu, lrs);
    }
}

fn kicked(kick: Kick) -> Vec<u16> {
    kick.iter().map(|v| v.0).collect()
}

fn r32(vgic: &Vgic, ipa: GuestPhysAddr) -> u64 {
    vgic.mmio_read(VcpuId(0), ipa, 4)
}

fn w32(vgic: &Vgic, ipa: GuestPhysAddr, value: u64) -> Kick {
    vgic.mmio_write(VcpuId(0), ipa, 4, value)
}

/// Linux's drivers/irqchip/irq-gic-v3.c bring-up: gic_dist_init on the boot CPU, then
/// gic_cpu_init (gic_enable_redist + gic_cpu_config) on every CPU.
fn linux_init(vgic: &Vgic, nr_vcpus: usize) {
    let typer = r32(vgic, gicd(GICD_TYPER));
    let lines = 32 * ((typer & 0x1f) + 1);
    assert_eq!(lines, u64::from(32 + NR_SPIS));
    assert_eq!((typer >> 19) & 0x1f, 9, "IDbits: 10-bit INTIDs");
    assert_eq!(typer & (1 << 17), 0, "no LPIs");
    assert_eq!(r32(vgic, gicd(PIDR2)) & 0xf0, 0x30, "GICv3");

    let _ = w32(vgic, gicd(GICD_CTLR), 0);
    assert_eq!(r32(vgic, gicd(GICD_CTLR)) & CTLR_RWP, 0);
    for i in (32..lines).step_by(32) {
        let reg = i / 8;
        let _ = w32(vgic, gicd(GICD_IGROUPR + reg), 0xffff_ffff);
        let _ = w32(vgic, gicd(GICD_ICACTIVER + reg), 0xffff_ffff);
        let _ = w32(vgic, gicd(GICD_ICENABLER + reg), 0xffff_ffff);
    }
    for i in (32..lines).step_by(16) {
        let _ = w32(vgic, gicd(GICD_ICFGR + i / 4), 0);
    }
    for i in (32..lines).step_by(4) {
        let _ = w32(vgic, gicd(GICD_IPRIORITYR + i), DEFAULT_PRIO);
    }
    let _ = w32(
        vgic,
        gicd(GICD_CTLR),
        CTLR_ARE | CTLR_ENABLE_G1 | CTLR_ENABLE_G0,
    );
    assert_eq!(r32(vgic, gicd(GICD_CTLR)) & CTLR_RWP, 0);
    let boot_affinity = VcpuId(0).mpidr_affinity();
    for i in 32..lines {
        let _ = vgic.mmio_write(VcpuId(0), gicd(GICD_IROUTER + 8 * i), 8, boot_affinity);
    }

    for v in 0..nr_vcpus {
        let me = VcpuId(v as u16);
        assert_eq!(vgic.mmio_read(me, rd(v, PIDR2), 4) & 0xf0, 0x30);
        let typer = vgic.mmio_read(me, rd(v, GICR_TYPER), 8);
        assert_eq!(
            typer >> 32,
            me.mpidr_affinity(),
            "gic_populate_rdist finds itself"
        );
        let waker = vgic.mmio_read(me, rd(v, GICR_WAKER), 4);
        assert_ne!(waker & WAKER_CHILDREN_ASLEEP, 0, "asleep out of reset");
        let _ = vgic.mmio_write(me, rd(v, GICR_WAKER), 4, waker & !WAKER_PROCESSOR_SLEEP);
        assert_eq!(
            vgic.mmio_read(me, rd(v, GICR_WAKER), 4) & WAKER_CHILDREN_ASLEEP,
            0
        );

        let _ = vgic.mmio_write(me, sgi_base(v, GICR_IGROUPR0), 4, 0xffff_ffff);
        let _ = vgic.mmio_write(me, sgi_base(v, GICR_ICACTIVER0), 4, 0xffff_ffff);
        let _ = vgic.mmio_write(me, sgi_base(v, GICR_ICENABLER0), 4, 0xffff_0000);
        let _ = vgic.mmio_write(me, sgi_base(v, GICR_ISENABLER0), 4, 0x0000_ffff);
        for i in (0..32).step_by(4) {
            let _ = vgic.mmio_write(me, sgi_base(v, GICR_IPRIORITYR0 + i), 4, DEFAULT_PRIO);
        }
    }
}

/// Enables SPI `intid` through GICD_ISENABLER.
fn enable_spi(vgic: &Vgic, intid: u32) -> Kick {
    let reg = u64::from(intid / 32) * 4;
    w32(vgic, gicd(GICD_ISENABLER + reg), 1 << (intid % 32))
}

fn set_priority(vgic: &Vgic, intid: u32, priority: u8) {
    let _ = vgic.mmio_write(
        VcpuId(0),
        gicd(GICD_IPRIORITYR + u64::from(intid)),
        1,
        u64::from(priority),
    );
}

#[test]
fn linux_init_then_level_spi_round_trip() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    assert_eq!(
        r32(&vgic, gicd(GICD_CTLR)),
        CTLR_ARE | CTLR_DS | CTLR_ENABLE_G1 | CTLR_ENABLE_G0
    );
    let uart = IntId::spi(1);
    let _ = enable_spi(&vgic, uart.0);
    set_priority(&vgic, uart.0, 0x80);

    let mut lrs0 = FakeListRegs::new(4);
    let mut lrs1 = FakeListRegs::new(4);
    exit_and_enter(&vgic, 0, &mut lrs0);
    exit_and_enter(&vgic, 1, &mut lrs1);
    assert!(lrs0.valid().is_empty() && lrs1.valid().is_empty());

    let kick = vgic.set_spi_level(uart, true);
    assert_eq!(kicked(kick), [0], "routed to the boot CPU");
    assert!(vgic.needs_flush(VcpuId(0)));
    exit_and_enter(&vgic, 0, &mut lrs0);
    let n = lrs0.find(uart.0).expect("UART interrupt in an LR");
    let lr = lrs0.lr(n);
    assert_eq!(lr.state, PENDING);
    assert_eq!(lr.priority, 0x80);
    assert!(lr.group1);
    assert!(!lr.hw);
    assert!(lr.eoi, "level: EOI maintenance so the line is re-sampled");
    assert!(!lrs0.underflow);
    exit_and_enter(&vgic, 1, &mut lrs1);
    assert!(lrs1.valid().is_empty(), "not routed to vCPU 1");

    // The guest handles it but the device still asserts the line.
    lrs0.complete(n);
    assert_eq!(lrs0.eoi_mask(), 1 << n);
    assert!(vgic.needs_flush(VcpuId(0)));
    exit_and_enter(&vgic, 0, &mut lrs0);
    assert_eq!(lrs0.eoi_mask(), 0, "the LR was zeroed, clearing ICH_EISR");
    assert_eq!(
        lrs0.valid(),
        [(u64::from(uart.0), PENDING)],
        "pending again"
    );

    // This time the driver drains the device, which lowers the line before the EOI.
    lrs0.ack(lrs0.find(uart.0).unwrap());
    let _ = vgic.set_spi_level(uart, false);
    lrs0.complete_intid(uart.0);
    exit_and_enter(&vgic, 0, &mut lrs0);
    assert!(lrs0.valid().is_empty());
    assert_eq!(lrs0.eoi_mask(), 0);
    assert!(!vgic.needs_flush(VcpuId(0)), "nothing left to do");
    assert!(!vgic.has_pending(VcpuId(0)));
}

#[test]
fn level_spi_lowered_before_ack_is_withdrawn() {
    let vgic = Vgic::new(1);
    linux_init(&vgic, 1);
    let irq = IntId::spi(5);
    let _ = enable_spi(&vgic, irq.0);
    let mut lrs = FakeListRegs::new(4);
    let _ = vgic.set_spi_level(irq, true);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(lrs.find(irq.0).is_some());
    let _ = vgic.set_spi_level(irq, false);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(
        lrs.valid().is_empty(),
        "a level interrupt no longer asserted leaves its LR"
    );
}

#[test]
fn sgis_to_a_target_list_and_to_all_but_self() {
    let vgic = Vgic::new(20);
    linux_init(&vgic, 20);
    let mut lrs: Vec<_> = (0..20).map(|_| FakeListRegs::new(4)).collect();
    for (v, l) in lrs.iter_mut().enumerate() {
        exit_and_enter(&vgic, v, l);
    }

    // SGI 3 to Aff1 = 0, Aff0 = 1 and 3: TargetList bits 1 and 3.
    let kick = vgic.send_sgi(VcpuId(0), 3 << 24 | 0b1010);
    assert_eq!(kicked(kick), [1, 3]);
    // SGI 5 to Aff1 = 1, Aff0 = 1 (vCPU 17), and Aff0 = 7 there (vCPU 23: absent).
    let kick = vgic.send_sgi(VcpuId(0), 5 << 24 | 1 << 16 | (1 << 1 | 1 << 7));
    assert_eq!(kicked(kick), [17]);
    // RS = 1 reaches Aff0 16-31, which no vCPU has.
    assert!(vgic.send_sgi(VcpuId(0), 1 << 44 | 1).is_empty());

    for (v, l) in lrs.iter_mut().enumerate() {
        exit_and_enter(&vgic, v, l);
    }
    assert_eq!(lrs[1].valid(), [(3, PENDING)]);
    assert_eq!(lrs[3].valid(), [(3, PENDING)]);
    assert_eq!(lrs[17].valid(), [(5, PENDING)]);
    assert!(lrs[0].valid().is_empty() && lrs[2].valid().is_empty());
    let n = lrs[1].find(3).unwrap();
    assert!(!lrs[1].lr(n).eoi, "edge: no maintenance needed");
    assert!(!lrs[1].lr(n).hw);

    // IRM = 1: everyone but the sender (vCPU 2).
    let kick = vgic.send_sgi(VcpuId(2), 1 << 40 | 7 << 24);
    let expected: Vec<u16> = (0..20).filter(|&v| v != 2).collect();
    assert_eq!(kicked(kick), expected);
    for (v, l) in lrs.iter_mut().enumerate() {
        exit_and_enter(&vgic, v, l);
        assert_eq!(l.find(7).is_some(), v != 2, "vCPU {v}");
    }
}

#[test]
fn sgi_to_a_group0_sgi_is_not_forwarded() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    let _ = vgic.mmio_write(VcpuId(1), sgi_base(1, GICR_IGROUPR0), 4, 0xffff_fffe);
    assert!(
        vgic.send_sgi(VcpuId(0), 0b10).is_empty(),
        "SGI 0 is group 0 on vCPU 1"
    );
    assert!(!vgic.has_pending(VcpuId(1)));
}

#[test]
fn more_pending_than_lrs_underflows_then_all_delivered_by_priority() {
    let vgic = Vgic::new(1);
    linux_init(&vgic, 1);
    let mut lrs = FakeListRegs::new(4);
    exit_and_enter(&vgic, 0, &mut lrs);
    // Six edge SPIs with priorities that do not follow their numbers.
    let prios = [
        (40u32, 0x60u8),
        (41, 0x20),
        (42, 0xa0),
        (43, 0x40),
        (44, 0x80),
        (45, 0x10),
    ];
    for (intid, prio) in prios {
        let _ = w32(
            &vgic,
            gicd(GICD_ICFGR + u64::from(intid / 16) * 4),
            0xaaaa_aaaa,
        );
        set_priority(&vgic, intid, prio);
        let _ = enable_spi(&vgic, intid);
        let _ = vgic.set_spi_level(IntId(intid), true);
        let _ = vgic.set_spi_level(IntId(intid), false);
    }
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(lrs.underflow, "six pending, four LRs");
    let first: Vec<u64> = lrs.valid().iter().map(|&(i, _)| i).collect();
    assert_eq!(first, [40, 41, 43, 45], "the four highest priorities");

    // The guest takes them in priority order, as its CPU interface would.
    let mut order = Vec::new();
    while !lrs.valid().is_empty() {
        assert!(order.len() < 6, "delivered more than was raised: {order:?}");
        let n = (0..4)
            .filter(|&n| lrs.lr(n).state != INVALID)
            .min_by_key(|&n| lrs.lr(n).priority)
            .unwrap();
        order.push(lrs.lr(n).intid);
        lrs.complete(n);
        exit_and_enter(&vgic, 0, &mut lrs);
    }
    assert_eq!(order, [45, 41, 43, 40, 44, 42]);
    assert!(!lrs.underflow);
    assert!(!vgic.needs_flush(VcpuId(0)));
}

#[test]
fn disabled_interrupt_waits_for_enable() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    let irq = IntId::spi(10);
    let _ = vgic.mmio_write(VcpuId(0), gicd(GICD_IROUTER + 8 * u64::from(irq.0)), 8, 1);
    let mut lrs = FakeListRegs::new(4);
    assert!(
        vgic.set_spi_level(irq, true).is_empty(),
        "disabled: nobody to kick"
    );
    exit_and_enter(&vgic, 1, &mut lrs);
    assert!(lrs.valid().is_empty());
    assert!(!vgic.has_pending(VcpuId(1)));
    // Pending in GICD_ISPENDR all the same.
    let pend = r32(&vgic, gicd(GICD_ISPENDR + 4 * u64::from(irq.0 / 32)));
    assert_ne!(pend & 1 << (irq.0 % 32), 0);

    assert_eq!(kicked(enable_spi(&vgic, irq.0)), [1]);
    assert!(vgic.has_pending(VcpuId(1)));
    exit_and_enter(&vgic, 1, &mut lrs);
    assert_eq!(lrs.valid(), [(u64::from(irq.0), PENDING)]);

    // Group enables gate delivery too.
    let _ = w32(&vgic, gicd(GICD_CTLR), CTLR_ARE);
    exit_and_enter(&vgic, 1, &mut lrs);
    assert!(lrs.valid().is_empty(), "group 1 disabled: withdrawn");
    let kick = w32(&vgic, gicd(GICD_CTLR), CTLR_ENABLE_G1);
    assert_eq!(kicked(kick), [1]);
    exit_and_enter(&vgic, 1, &mut lrs);
    assert_eq!(lrs.valid(), [(u64::from(irq.0), PENDING)]);
}

#[test]
fn irouter_to_missing_affinity_keeps_it_pending_undelivered() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    let irq = IntId::spi(20);
    let irouter = gicd(GICD_IROUTER + 8 * u64::from(irq.0));
    let _ = enable_spi(&vgic, irq.0);
    for bogus in [0x0500u64, 0x02, 0x1_0000, 0x10, 0xff_0000_0000] {
        let _ = vgic.mmio_write(VcpuId(0), irouter, 8, bogus);
        assert_eq!(vgic.mmio_read(VcpuId(0), irouter, 8), bogus);
        let kick = vgic.set_spi_level(irq, true);
        assert!(kick.is_empty(), "{bogus:#x}");
        let mut lrs: Vec<_> = (0..2).map(|_| FakeListRegs::new(4)).collect();
        for (v, l) in lrs.iter_mut().enumerate() {
            exit_and_enter(&vgic, v, l);
            assert!(l.valid().is_empty());
            assert!(!vgic.has_pending(VcpuId(v as u16)));
        }
    }
    // Rerouted to vCPU 1 one 32-bit half at a time: Aff3 still 0xff after the low half.
    let kick = vgic.mmio_write(VcpuId(0), irouter, 4, 1);
    assert!(kick.is_empty());
    assert_eq!(vgic.mmio_read(VcpuId(0), irouter, 8), 0xff_0000_0001);
    let kick = vgic.mmio_write(VcpuId(0), GuestPhysAddr(irouter.0 + 4), 4, 0);
    assert_eq!(vgic.mmio_read(VcpuId(0), irouter, 8), 1);
    assert_eq!(
        kicked(kick),
        [1],
        "pending all along: delivered once routable"
    );
    let mut lrs = FakeListRegs::new(4);
    exit_and_enter(&vgic, 1, &mut lrs);
    assert_eq!(lrs.valid(), [(u64::from(irq.0), PENDING)]);

    // 1-of-N routing: vCPU 1 gives it back at its next flush, vCPU 0 takes it.
    let _ = vgic.mmio_write(VcpuId(0), irouter, 8, 1 << 31);
    assert_eq!(vgic.mmio_read(VcpuId(0), irouter, 8), 1 << 31);
    let mut lrs0 = FakeListRegs::new(4);
    exit_and_enter(&vgic, 0, &mut lrs0);
    assert!(lrs0.valid().is_empty(), "still in vCPU 1's LR");
    exit_and_enter(&vgic, 1, &mut lrs);
    assert!(lrs.valid().is_empty());
    assert!(vgic.needs_flush(VcpuId(0)));
    exit_and_enter(&vgic, 0, &mut lrs0);
    assert_eq!(lrs0.valid(), [(u64::from(irq.0), PENDING)]);
}

#[test]
fn vgic_is_shared_between_cpus() {
    fn assert_sync_send<T: Sync + Send>() {}
    assert_sync_send::<Vgic>();
}

#[test]
fn mapped_timer_ppi_uses_hw_bit() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    let vtimer = IntId::ppi(11);
    assert_eq!(vtimer.0, 27);
    let mut lrs = FakeListRegs::new(4);
    exit_and_enter(&vgic, 1, &mut lrs);
    // Not yet enabled by the guest: held, not delivered.
    assert!(vgic.inject_mapped(VcpuId(1), vtimer, vtimer).is_empty());
    exit_and_enter(&vgic, 1, &mut lrs);
    assert!(lrs.valid().is_empty());
    // The guest's timer driver enables its PPI.
    let kick = vgic.mmio_write(VcpuId(1), sgi_base(1, GICR_ISENABLER0), 4, 1 << 27);
    assert_eq!(kicked(kick), [1]);
    exit_and_enter(&vgic, 1, &mut lrs);
    let n = lrs.find(27).unwrap();
    let lr = lrs.lr(n);
    assert!(lr.hw);
    assert_eq!(lr.pintid, 27);
    assert_eq!(lr.state, PENDING);
    assert_eq!(lr.priority, 0xa0);
    // The guest acknowledges; an exit in between keeps it in its LR, active.
    lrs.ack(n);
    exit_and_enter(&vgic, 1, &mut lrs);
    assert_eq!(lrs.lr(n).state, ACTIVE);
    assert!(lrs.lr(n).hw);
    lrs.complete(n);
    assert_eq!(lrs.eoi_mask(), 0, "no EOI maintenance for HW interrupts");
    exit_and_enter(&vgic, 1, &mut lrs);
    assert!(lrs.valid().is_empty());
    assert!(!vgic.needs_flush(VcpuId(1)));
    // Fires again after the guest deactivated it; the core injects before syncing.
    let _ = vgic.inject_mapped(VcpuId(1), vtimer, vtimer);
    exit_and_enter(&vgic, 1, &mut lrs);
    assert!(lrs.lr(lrs.find(27).unwrap()).hw);
    // Not a PPI: ignored.
    assert!(vgic.inject_mapped(VcpuId(1), IntId(3), vtimer).is_empty());
    assert!(vgic.inject_mapped(VcpuId(9), vtimer, vtimer).is_empty());
    assert!(vgic
        .inject_mapped(VcpuId(1), vtimer, IntId::spi(1))
        .is_empty());
}

#[test]
fn mapped_ppi_takes_the_machines_number_as_pintid() {
    // A board whose tree numbers the EL1 virtual timer PPI 12 (INTID 28): the guest still
    // sees its own 27, and deactivating it deactivates the machine's 28.
    let vgic = Vgic::new(1);
    linux_init(&vgic, 1);
    let mut lrs = FakeListRegs::new(4);
    let _ = vgic.mmio_write(VcpuId(0), sgi_base(0, GICR_ISENABLER0), 4, 1 << 27);
    let _ = vgic.inject_mapped(VcpuId(0), IntId::ppi(11), IntId::ppi(12));
    exit_and_enter(&vgic, 0, &mut lrs);
    let lr = lrs.lr(lrs.find(27).unwrap());
    assert!(lr.hw);
    assert_eq!(lr.pintid, 28);
}

#[test]
fn edge_refired_while_active_becomes_pending_and_active() {
    let vgic = Vgic::new(1);
    linux_init(&vgic, 1);
    let mut lrs = FakeListRegs::new(4);
    let _ = vgic.send_sgi(VcpuId(0), 1 << 24 | 1);
    exit_and_enter(&vgic, 0, &mut lrs);
    let n = lrs.find(1).unwrap();
    lrs.ack(n);
    let kick = vgic.send_sgi(VcpuId(0), 1 << 24 | 1);
    assert_eq!(kicked(kick), [0]);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert_eq!(
        lrs.lr(n).state,
        PENDING_ACTIVE,
        "same LR, now pending and active"
    );
    lrs.complete(n);
    assert_eq!(lrs.lr(n).state, PENDING);
    lrs.complete(n);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(lrs.valid().is_empty());
}

#[test]
fn gicr_typer_last_and_processor_number() {
    let vgic = Vgic::new(18);
    for v in 0..18 {
        let typer = vgic.mmio_read(VcpuId(0), rd(v, GICR_TYPER), 8);
        assert_eq!((typer >> 8) & 0xffff, v as u64, "Processor_Number");
        assert_eq!(typer & (1 << 4) != 0, v == 17, "Last on vCPU {v}");
        assert_eq!(typer & 1, 0, "PLPIS");
        let aff = typer >> 32;
        assert_eq!(aff & 0xff, v as u64 % 16, "Aff0");
        assert_eq!((aff >> 8) & 0xff, v as u64 / 16, "Aff1");
        let lo = vgic.mmio_read(VcpuId(0), rd(v, GICR_TYPER), 4);
        let hi = vgic.mmio_read(VcpuId(0), rd(v, GICR_TYPER + 4), 4);
        assert_eq!(hi << 32 | lo, typer, "32-bit halves");
    }
    assert!(Vgic::handles(rd(17, 0xfffc), 18));
    assert!(Vgic::handles(sgi_base(17, 0xfffc), 18));
    assert!(!Vgic::handles(rd(18, 0), 18));
    assert!(Vgic::handles(gicd(0xfffc), 18));
    assert!(!Vgic::handles(gicd(0x1_0000), 18));
    assert_eq!(vgic.mmio_read(VcpuId(0), rd(18, GICR_TYPER), 8), 0);
    assert_ne!(vgic.mmio_read(VcpuId(0), rd(3, 0x4), 4), 0, "GICR_IIDR");
    assert_ne!(vgic.mmio_read(VcpuId(0), gicd(GICD_IIDR), 4), 0);
}

#[test]
fn ipriorityr_byte_access() {
    let vgic = Vgic::new(1);
    let intid = 33u64;
    let _ = vgic.mmio_write(VcpuId(0), gicd(GICD_IPRIORITYR + intid), 1, 0x57);
    assert_eq!(
        vgic.mmio_read(VcpuId(0), gicd(GICD_IPRIORITYR + intid), 1),
        0x50,
        "5 bits"
    );
    assert_eq!(r32(&vgic, gicd(GICD_IPRIORITYR + 32)), 0x5000);
    let _ = w32(&vgic, gicd(GICD_IPRIORITYR + 32), 0x1122_3348);
    assert_eq!(
        vgic.mmio_read(VcpuId(0), gicd(GICD_IPRIORITYR + 35), 1),
        0x10
    );
    assert_eq!(
        vgic.mmio_read(VcpuId(0), gicd(GICD_IPRIORITYR + 32), 1),
        0x48
    );
    // Halfwords are not allowed: RAZ/WI.
    assert_eq!(vgic.mmio_read(VcpuId(0), gicd(GICD_IPRIORITYR + 32), 2), 0);
    let _ = vgic.mmio_write(VcpuId(0), gicd(GICD_IPRIORITYR + 32), 2, 0xffff);
    assert_eq!(r32(&vgic, gicd(GICD_IPRIORITYR + 32)), 0x1020_3048);
    // SGI/PPI priorities live in the redistributor; the GICD copy is RAZ/WI.
    let _ = vgic.mmio_write(VcpuId(0), gicd(GICD_IPRIORITYR + 27), 1, 0x80);
    assert_eq!(vgic.mmio_read(VcpuId(0), gicd(GICD_IPRIORITYR + 27), 1), 0);
    let _ = vgic.mmio_write(VcpuId(0), sgi_base(0, GICR_IPRIORITYR0 + 27), 1, 0x80);
    assert_eq!(
        vgic.mmio_read(VcpuId(0), sgi_base(0, GICR_IPRIORITYR0 + 24), 4),
        0x8000_0000
    );
}

#[test]
fn icfgr_sgis_edge_read_only_ppis_writable() {
    let vgic = Vgic::new(1);
    let icfgr0 = sgi_base(0, GICR_ICFGR0);
    let icfgr1 = sgi_base(0, GICR_ICFGR0 + 4);
    assert_eq!(r32(&vgic, icfgr0), 0xaaaa_aaaa);
    let _ = w32(&vgic, icfgr0, 0);
    assert_eq!(r32(&vgic, icfgr0), 0xaaaa_aaaa);
    assert_eq!(r32(&vgic, icfgr1), 0, "PPIs reset level");
    let _ = w32(&vgic, icfgr1, 0xffff_ffff);
    assert_eq!(r32(&vgic, icfgr1), 0xaaaa_aaaa, "Int_config[0] is RES0");
    assert_eq!(r32(&vgic, gicd(GICD_ICFGR)), 0, "GICD's SGI part: RAZ");
}

#[test]
fn needs_flush_tracks_changes_and_live_lrs() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    let mut lrs = FakeListRegs::new(4);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(!vgic.needs_flush(VcpuId(0)));
    let writes = lrs.writes;
    exit_and_enter(&vgic, 0, &mut lrs);
    assert_eq!(lrs.writes, writes, "skipped");
    // A change for vCPU 1 leaves vCPU 0 alone.
    let _ = vgic.send_sgi(VcpuId(0), 0b10);
    assert!(!vgic.needs_flush(VcpuId(0)));
    assert!(vgic.needs_flush(VcpuId(1)));
    // An interrupt in an LR keeps the flag up until the guest is done with it.
    let _ = vgic.send_sgi(VcpuId(1), 0b01);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(vgic.needs_flush(VcpuId(0)), "LR in use: sync needed");
    lrs.complete_intid(0);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(!vgic.needs_flush(VcpuId(0)));
    assert!(!vgic.needs_flush(VcpuId(99)), "no such vCPU");
}

#[test]
fn flush_without_sync_loses_nothing() {
    let vgic = Vgic::new(1);
    linux_init(&vgic, 1);
    let mut lrs = FakeListRegs::new(2);
    let _ = vgic.send_sgi(VcpuId(0), 1 << 24 | 1);
    vgic.flush(VcpuId(0), &mut lrs);
    lrs.ack(lrs.find(1).unwrap());
    vgic.flush(VcpuId(0), &mut lrs);
    assert_eq!(lrs.valid(), [(1, ACTIVE)]);
}

#[test]
fn kick_set() {
    let mut k = Kick::none();
    assert!(k.is_empty());
    k.add(VcpuId(0));
    k.add(VcpuId(64));
    k.add(VcpuId(MAX_VCPUS as u16 - 1));
    k.add(VcpuId(u16::MAX));
    assert!(k.contains(VcpuId(64)) && !k.contains(VcpuId(63)));
    assert_eq!(kicked(k), [0, 64, MAX_VCPUS as u16 - 1]);
    let mut j = Kick::none();
    j.add(VcpuId(5));
    j.merge(k);
    assert_eq!(kicked(j), [0, 5, 64, MAX_VCPUS as u16 - 1]);
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn value(&mut self) -> u64 {
        match self.next() % 4 {
            0 => 0,
            1 => u64::MAX,
            _ => self.next(),
        }
    }
}

/// No interrupt is in two list registers at once (across all vCPUs, for SPIs).
fn assert_lrs_consistent(lrs: &[FakeListRegs]) {
    let mut spis = Vec::new();
    for (v, l) in lrs.iter().enumerate() {
        let valid = l.valid();
        for pair in valid.windows(2) {
            assert_ne!(
                pair[0].0, pair[1].0,
                "INTID {} twice on vCPU {v}",
                pair[0].0
            );
        }
        spis.extend(valid.iter().map(|&(i, _)| i).filter(|&i| i >= 32));
    }
    let n = spis.len();
    spis.sort();
    spis.dedup();
    assert_eq!(spis.len(), n, "an SPI in two vCPUs' LRs");
}

#[test]
fn random_sweep_of_every_register_never_panics() {
    const NR: usize = 3;
    let vgic = Vgic::new(NR);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut lrs: Vec<_> = (0..NR).map(|_| FakeListRegs::new(4)).collect();
    let frames = [gicd(0), rd(0, 0), rd(1, 0), rd(2, 0), rd(3, 0)];
    let mut delivered = 0;
    for round in 0..2 {
        for frame in frames {
            for off in (0..0x2_0000u64).step_by(if round == 0 { 4 } else { 1 }) {
                let ipa = GuestPhysAddr(frame.0 + off);
                let size = [1u8, 2, 4, 8][(rng.next() % 4) as usize];
                let accessor = VcpuId((rng.next() % 4) as u16);
                let _ = vgic.mmio_read(accessor, ipa, size);
                let value = rng.value();
                let _ = vgic.mmio_write(accessor, ipa, size, value);
                let _ = vgic.mmio_read(accessor, ipa, size);
                if off % 64 == 0 {
                    let v = (rng.next() % NR as u64) as usize;
                    let intid = IntId((rng.next() % 1100) as u32);
                    let _ = vgic.set_spi_level(intid, rng.next().is_multiple_of(2));
                    let _ = vgic.inject_mapped(VcpuId(v as u16), intid, intid);
                    let _ = vgic.send_sgi(VcpuId(v as u16), rng.value());
                    let l = &mut lrs[v];
                    let n = (rng.next() % 4) as usize;
                    if l.lr(n).state != INVALID {
                        l.complete(n);
                    }
                    exit_and_enter(&vgic, v, l);
                    delivered += l.valid().len();
                    let _ = vgic.has_pending(VcpuId(v as u16));
                    assert_lrs_consistent(&lrs);
                }
            }
        }
    }
    assert!(
        delivered > 100,
        "the sweep should drive real deliveries, got {delivered}"
    );
    // Odd sizes and addresses at the edges of the map.
    for size in [0u8, 3, 5, 16, 255] {
        let _ = vgic.mmio_write(VcpuId(0), gicd(0), size, u64::MAX);
        assert_eq!(vgic.mmio_read(VcpuId(0), gicd(0x4), size), 0);
    }
    for ipa in [
        0,
        u64::MAX,
        GICD_BASE.0 - 1,
        GICR_BASE.0 + GICR_STRIDE * 200,
    ] {
        let _ = vgic.mmio_write(VcpuId(u16::MAX), GuestPhysAddr(ipa), 8, u64::MAX);
        assert_eq!(vgic.mmio_read(VcpuId(u16::MAX), GuestPhysAddr(ipa), 8), 0);
    }
    // The guest completes everything; the vGIC converges to empty LRs.
    for _ in 0..64 {
        for (v, l) in lrs.iter_mut().enumerate() {
            for n in 0..4 {
                if l.lr(n).state != INVALID {
                    l.complete(n);
                }
            }
            exit_and_enter(&vgic, v, l);
        }
    }
    assert_lrs_consistent(&lrs);
}

#[test]
fn zero_and_too_many_vcpus() {
    let vgic = Vgic::new(0);
    let mut lrs = FakeListRegs::new(4);
    vgic.flush(VcpuId(0), &mut lrs);
    vgic.sync(VcpuId(0), &mut lrs);
    assert!(vgic.send_sgi(VcpuId(0), 1 << 40).is_empty());
    assert!(vgic.set_spi_level(IntId::spi(0), true).is_empty());
    let vgic = Vgic::new(10_000);
    assert_eq!(vgic.nr_vcpus(), MAX_VCPUS);
}

#[test]
fn higher_priority_arrival_displaces_a_pending_lr_without_losing_it() {
    let vgic = Vgic::new(1);
    linux_init(&vgic, 1);
    let mut lrs = FakeListRegs::new(2);
    // Two low-priority SGIs fill both LRs.
    for sgi in [1u64, 2] {
        let _ = vgic.mmio_write(VcpuId(0), sgi_base(0, GICR_IPRIORITYR0 + sgi), 1, 0xc0);
        let _ = vgic.send_sgi(VcpuId(0), sgi << 24 | 1);
    }
    exit_and_enter(&vgic, 0, &mut lrs);
    assert_eq!(lrs.valid(), [(1, PENDING), (2, PENDING)]);
    assert!(!lrs.underflow);
    // A more urgent SGI arrives: it takes the LR of the least urgent one.
    let _ = vgic.mmio_write(VcpuId(0), sgi_base(0, GICR_IPRIORITYR0 + 9), 1, 0x20);
    let _ = vgic.send_sgi(VcpuId(0), 9 << 24 | 1);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert_eq!(lrs.valid(), [(1, PENDING), (9, PENDING)]);
    assert!(lrs.underflow);
    assert!(vgic.has_pending(VcpuId(0)));
    lrs.complete_intid(9);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert_eq!(
        lrs.valid(),
        [(1, PENDING), (2, PENDING)],
        "SGI 2 was kept pending"
    );
}

#[test]
fn reset_forgets_configuration_and_pending_state() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    let uart = IntId::spi(1);
    let _ = enable_spi(&vgic, uart.0);
    let _ = vgic.set_spi_level(uart, true);
    assert!(vgic.has_pending(VcpuId(0)));

    vgic.reset();
    assert_eq!(
        r32(&vgic, gicd(GICD_CTLR)) & (CTLR_ENABLE_G1 | CTLR_ENABLE_G0),
        0
    );
    assert!(
        !vgic.has_pending(VcpuId(0)),
        "a reset VM has nothing pending"
    );
    let mut lrs0 = FakeListRegs::new(4);
    exit_and_enter(&vgic, 0, &mut lrs0);
    assert!(lrs0.valid().is_empty());

    // It works again once the guest re-initialises it.
    linux_init(&vgic, 2);
    let _ = enable_spi(&vgic, uart.0);
    let _ = vgic.set_spi_level(uart, true);
    exit_and_enter(&vgic, 0, &mut lrs0);
    assert!(lrs0.find(uart.0).is_some());
}

/// Found by the vgic_mmio fuzzer: an ISACTIVER write from an accessor that is not a vCPU of
/// the VM made it an interrupt's owner and came back in the kick.
#[test]
fn accessor_outside_the_vm_is_ignored() {
    let vgic = Vgic::new(3);
    linux_init(&vgic, 3);
    let isactiver_spis = gicd(0x0300 + 4);
    let kick = vgic.mmio_write(VcpuId(3), isactiver_spis, 4, u64::from(u32::MAX));
    assert!(kick.is_empty(), "kick names {:?}", kicked(kick));
    assert_eq!(vgic.mmio_read(VcpuId(3), isactiver_spis, 4), 0);
    assert_eq!(r32(&vgic, isactiver_spis), 0, "nothing was activated");
}

/// Two vCPUs time-share one CPU's list registers: the leaving vCPU's interrupts (one active,
/// one pending) survive the registers being cleared for the other, and come back on its
/// next entry in the same states; the other never sees them.
#[test]
fn unload_and_reload_on_a_shared_cpu_keeps_pending_and_active() {
    let vgic = Vgic::new(2);
    linux_init(&vgic, 2);
    let mut cpu = FakeListRegs::new(4);
    // vCPU 0 gets SGIs 1 and 2, acknowledges 1 (active) and leaves 2 pending.
    let kick = vgic.send_sgi(VcpuId(1), 1 << 24 | 0b1);
    assert_eq!(kicked(kick), [0]);
    let _ = vgic.send_sgi(VcpuId(1), 2 << 24 | 0b1);
    exit_and_enter(&vgic, 0, &mut cpu);
    let n1 = cpu.find(1).unwrap();
    cpu.ack(n1);
    assert_eq!(cpu.valid(), [(1, ACTIVE), (2, PENDING)]);
    // vCPU 0 leaves the CPU: synced, registers cleared, unloaded.
    vgic.sync(VcpuId(0), &mut cpu);
    cpu.lrs.iter_mut().for_each(|l| *l = 0);
    vgic.unload(VcpuId(0));
    assert!(vgic.has_pending(VcpuId(0)));
    // vCPU 1 runs on the same registers and sees nothing of vCPU 0's.
    vgic.unload(VcpuId(1));
    exit_and_enter(&vgic, 1, &mut cpu);
    assert!(cpu.valid().is_empty());
    vgic.sync(VcpuId(1), &mut cpu);
    cpu.lrs.iter_mut().for_each(|l| *l = 0);
    // vCPU 0 comes back: both interrupts, in their states.
    exit_and_enter(&vgic, 0, &mut cpu);
    assert_eq!(cpu.valid(), [(1, ACTIVE), (2, PENDING)]);
    cpu.complete_intid(1);
    exit_and_enter(&vgic, 0, &mut cpu);
    assert_eq!(cpu.valid(), [(2, PENDING)]);
}

/// ICH_VMCR_EL2 with Group 1 enabled and priority mask `pmr`.
fn vmcr(pmr: u64, group1: bool) -> u64 {
    pmr << 24 | u64::from(group1) << 1
}

#[test]
fn a_virtual_irq_is_signalled_for_a_deliverable_pending_lr_only() {
    use super::lr::signals_virtual_irq;
    let vgic = Vgic::new(1);
    linux_init(&vgic, 1);
    let mut cpu = FakeListRegs::new(4);
    assert!(
        !signals_virtual_irq(&cpu, vmcr(0xf0, true)),
        "nothing in the LRs"
    );
    let _ = vgic.send_sgi(VcpuId(0), 1 << 24 | 0b1);
    exit_and_enter(&vgic, 0, &mut cpu);
    assert_eq!(cpu.valid(), [(1, PENDING)]);
    assert!(signals_virtual_irq(&cpu, vmcr(0xf0, true)));
    // Masked: Group 1 off, or the priority mask at or above the interrupt's.
    assert!(!signals_virtual_irq(&cpu, vmcr(0xf0, false)));
    assert!(!signals_virtual_irq(&cpu, vmcr(0x00, true)));
    // Acknowledged (active): nothing to signal until another is pending.
    let n = cpu.find(1).unwrap();
    cpu.ack(n);
    assert!(!signals_virtual_irq(&cpu, vmcr(0xf0, true)));
}
