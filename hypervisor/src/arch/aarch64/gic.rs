//! The machine's GICv3: distributor, this CPU's redistributor, its CPU interface (ICC_*),
//! and its virtual CPU interface control (ICH_*) that feeds a guest's list registers.
//!
//! The core keeps IRQs masked at EL2 and polls the CPU interface after an exit or a WFI, so
//! nothing here runs in interrupt context. EOImode is 1: an EOIR write only drops priority,
//! so that an interrupt handed to a guest through a hardware list register stays active until
//! the guest deactivates it (GICv3 4.4).

use super::cpu::{aff2_0, aff3};
use crate::arch::regs::{
    read_sysreg, write_sysreg, ICC_CTLR, ICC_INTID, ICC_SGI1R, ICC_SRE, ICH_HCR,
};
use core::ptr::NonNull;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::LocalRegisterCopy;
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// GICD_CTLR, non-secure view or DS=1 (GICv3 12.9.4).
    GICD_CTLR [
        /// Register write pending.
        RWP OFFSET(31) NUMBITS(1) [],
        /// Affinity routing enabled (ARE_NS, or ARE with DS=1).
        ARE OFFSET(4) NUMBITS(1) [],
        /// Group 1 (non-secure) interrupts enabled.
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) []
    ],
    /// GICD_TYPER (12.9.38).
    GICD_TYPER [
        /// (N+1)*32 INTIDs.
        IT_LINES OFFSET(0) NUMBITS(5) []
    ],
    /// GICR_WAKER (12.11.43).
    GICR_WAKER [
        /// All redistributor children are quiescent.
        CHILDREN_ASLEEP OFFSET(2) NUMBITS(1) [],
        /// This CPU is asleep.
        PROCESSOR_SLEEP OFFSET(1) NUMBITS(1) []
    ]
}

register_bitfields! {u64,
    /// GICR_TYPER (12.11.40).
    GICR_TYPER [
        /// Affinity of the CPU this redistributor serves (Aff3.Aff2.Aff1.Aff0).
        AFFINITY OFFSET(32) NUMBITS(32) [],
        /// Last redistributor of the region.
        LAST OFFSET(4) NUMBITS(1) [],
        /// Virtual LPIs supported: two more 64 KiB frames per redistributor.
        VLPIS OFFSET(1) NUMBITS(1) []
    ],
    /// GICR_TYPER.Affinity_Value's packing of an affinity (12.11.40).
    GICR_AFFINITY [
        /// Aff3.
        AFF3 OFFSET(24) NUMBITS(8) [],
        /// Aff2.Aff1.Aff0.
        AFF2_0 OFFSET(0) NUMBITS(24) []
    ],
    /// GICD_IROUTER<n> (12.9.21).
    GICD_IROUTER [
        /// Aff3 of the target.
        AFF3 OFFSET(32) NUMBITS(8) [],
        /// Aff2..Aff0 of the target.
        AFF2_0 OFFSET(0) NUMBITS(24) []
    ]
}

register_structs! {
    /// The distributor frame.
    GicdRegs {
        (0x0000 => ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x0004 => typer: ReadOnly<u32, GICD_TYPER::Register>),
        (0x0008 => _r0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => _r1),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 1024]),
        (0x0800 => _r2),
        (0x6000 => irouter: [ReadWrite<u64, GICD_IROUTER::Register>; 1024]),
        (0x8000 => @END),
    }
}

register_structs! {
    /// A redistributor's RD_base frame.
    GicrRdRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => iidr: ReadOnly<u32>),
        (0x0008 => typer: ReadOnly<u64, GICR_TYPER::Register>),
        (0x0010 => statusr: ReadWrite<u32>),
        (0x0014 => waker: ReadWrite<u32, GICR_WAKER::Register>),
        (0x0018 => @END),
    }
}

register_structs! {
    /// A redistributor's SGI_base frame (64 KiB after RD_base).
    GicrSgiRegs {
        (0x0000 => _r0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _r1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _r2),
        (0x0180 => icenabler0: ReadWrite<u32>),
        (0x0184 => _r3),
        (0x0380 => icactiver0: ReadWrite<u32>),
        (0x0384 => _r4),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 32]),
        (0x0420 => @END),
    }
}

/// Frame size of the GICv3 register frames.
const FRAME: usize = 0x1_0000;
/// Priority given to every interrupt the core takes (all equal: the core never nests).
const PRIORITY: u8 = 0xa0;
/// ICC_PMR_EL1 value that lets every priority through.
const PMR_ALL: u64 = 0xff;
/// INTIDs 1020..1023 are special (1023: nothing pending).
pub const SPURIOUS_START: u32 = 1020;

/// The distributor.
pub struct Distributor {
    regs: NonNull<GicdRegs>,
}

// SAFETY: the distributor is MMIO shared by every CPU; its registers are designed for
// concurrent access, and the core writes only routing/enable bits, each a single access.
unsafe impl Send for Distributor {}
// SAFETY: as above.
unsafe impl Sync for Distributor {}

impl Distributor {
    /// # Safety
    /// `base` must be the identity-mapped GICD frame from the device tree.
    pub unsafe fn new(base: usize) -> Self {
        Self {
            regs: NonNull::new(base as *mut GicdRegs).expect("GICD base is not null"),
        }
    }

    fn regs(&self) -> &GicdRegs {
        // SAFETY: `regs` points at the device's frame for the life of the hypervisor.
        unsafe { self.regs.as_ref() }
    }

    fn wait_rwp(&self) {
        while self.regs().ctlr.is_set(GICD_CTLR::RWP) {}
    }

    /// Disables every SPI, puts them all in group 1, and turns on affinity routing and group 1.
    pub fn init(&self) {
        let r = self.regs();
        r.ctlr.set(0);
        self.wait_rwp();
        let lines = (r.typer.read(GICD_TYPER::IT_LINES) as usize + 1).min(32);
        for n in 1..lines {
            r.icenabler[n].set(u32::MAX);
            r.igroupr[n].set(u32::MAX);
        }
        for p in r.ipriorityr.iter().take(lines * 32).skip(32) {
            p.set(PRIORITY);
        }
        self.wait_rwp();
        r.ctlr
            .write(GICD_CTLR::ARE::SET + GICD_CTLR::ENABLE_GRP1::SET);
        self.wait_rwp();
    }

    /// Routes SPI `intid` to the CPU with affinity `aff` and enables it.
    pub fn enable_spi(&self, intid: u32, aff: u64) {
        let r = self.regs();
        let n = intid as usize;
        if !(32..1020).contains(&n) {
            return;
        }
        r.irouter[n]
            .write(GICD_IROUTER::AFF3.val(aff3(aff)) + GICD_IROUTER::AFF2_0.val(aff2_0(aff)));
        r.ipriorityr[n].set(PRIORITY);
        r.isenabler[n / 32].set(1 << (n % 32));
    }

    /// Enables SPI `intid` again (routing unchanged).
    pub fn unmask_spi(&self, intid: u32) {
        let n = intid as usize;
        if (32..1020).contains(&n) {
            self.regs().isenabler[n / 32].set(1 << (n % 32));
        }
    }

    /// Disables SPI `intid`; a pending edge stays pending for when it is enabled again.
    pub fn mask_spi(&self, intid: u32) {
        let n = intid as usize;
        if (32..1020).contains(&n) {
            self.regs().icenabler[n / 32].set(1 << (n % 32));
        }
    }
}

/// One CPU's redistributor.
pub struct Redistributor {
    rd: NonNull<GicrRdRegs>,
    sgi: NonNull<GicrSgiRegs>,
}

// SAFETY: each redistributor is used only by its own CPU after discovery.
unsafe impl Send for Redistributor {}

impl Redistributor {
    /// Finds the redistributor serving the CPU with affinity `aff` in the region
    /// `[base, base + size)`, walking it until GICR_TYPER.Last: by `stride` if the tree gives
    /// one (`redistributor-stride`), else by two 64 KiB frames, or four where GICR_TYPER.VLPIS
    /// says the redistributor has the GICv4 virtual LPI frames.
    ///
    /// # Safety
    /// The region must be the identity-mapped GICR region from the device tree.
    pub unsafe fn find(base: usize, size: usize, stride: Option<usize>, aff: u64) -> Option<Self> {
        let packed =
            (GICR_AFFINITY::AFF3.val(aff3(aff)) + GICR_AFFINITY::AFF2_0.val(aff2_0(aff))).value;
        let mut frame = base;
        while frame + 2 * FRAME <= base + size {
            // SAFETY: `frame` lies in the GICR region (caller's contract).
            let rd = unsafe { &*(frame as *const GicrRdRegs) };
            let typer = rd.typer.extract();
            if typer.read(GICR_TYPER::AFFINITY) == packed {
                return Some(Self {
                    rd: NonNull::new(frame as *mut GicrRdRegs)?,
                    sgi: NonNull::new((frame + FRAME) as *mut GicrSgiRegs)?,
                });
            }
            if typer.is_set(GICR_TYPER::LAST) {
                break;
            }
            frame += match stride {
                Some(s) => s.max(2 * FRAME),
                None if typer.is_set(GICR_TYPER::VLPIS) => 4 * FRAME,
                None => 2 * FRAME,
            };
        }
        None
    }

    /// Wakes the redistributor and puts SGIs/PPIs in group 1, all disabled.
    pub fn init(&self) {
        // SAFETY: both frames belong to this CPU's redistributor (found by `find`).
        let (rd, sgi) = unsafe { (self.rd.as_ref(), self.sgi.as_ref()) };
        rd.waker
            .modify_no_read(rd.waker.extract(), GICR_WAKER::PROCESSOR_SLEEP::CLEAR);
        while rd.waker.is_set(GICR_WAKER::CHILDREN_ASLEEP) {}
        sgi.icenabler0.set(u32::MAX);
        sgi.igroupr0.set(u32::MAX);
        for p in sgi.ipriorityr.iter() {
            p.set(PRIORITY);
        }
    }

    /// Clears the active state of SGI or PPI `intid` (< 32) on this CPU: a timer interrupt
    /// handed to a guest through a hardware list register stays active until that guest
    /// deactivates it, which a vCPU that was reset never will.
    pub fn clear_active(&self, intid: u32) {
        // SAFETY: as in `init`.
        let sgi = unsafe { self.sgi.as_ref() };
        sgi.icactiver0.set(1 << (intid % 32));
    }

    /// Enables SGI or PPI `intid` (< 32) on this CPU.
    pub fn enable_private(&self, intid: u32) {
        // SAFETY: as in `init`.
        let sgi = unsafe { self.sgi.as_ref() };
        sgi.isenabler0.set(1 << (intid % 32));
    }
}

/// Turns on this CPU's system-register interface (EL2 and EL1), EOImode 1, group 1, and the
/// virtual CPU interface.
pub fn init_cpu_interface() {
    let sre =
        (ICC_SRE::SRE::SET + ICC_SRE::DFB::SET + ICC_SRE::DIB::SET + ICC_SRE::ENABLE::SET).value;
    write_sysreg!("icc_sre_el2", sre);
    super::cpu::isb();
    write_sysreg!("icc_pmr_el1", PMR_ALL);
    write_sysreg!("icc_bpr1_el1", 0);
    write_sysreg!("icc_ctlr_el1", ICC_CTLR::EOIMODE::SET.value);
    write_sysreg!("icc_igrpen1_el1", 1);
    write_sysreg!("ich_vmcr_el2", 0);
    write_sysreg!("ich_hcr_el2", ICH_HCR::EN::SET.value);
    super::cpu::isb();
}

/// Acknowledges the highest-priority pending interrupt; `None` when nothing is pending.
pub fn acknowledge() -> Option<u32> {
    let iar = LocalRegisterCopy::<u64, ICC_INTID::Register>::new(read_sysreg!("icc_iar1_el1"));
    let intid = iar.read(ICC_INTID::INTID) as u32;
    (intid < SPURIOUS_START).then_some(intid)
}

/// Drops the running priority of `intid` (EOImode 1: it stays active).
pub fn end_of_interrupt(intid: u32) {
    write_sysreg!("icc_eoir1_el1", intid as u64);
}

/// Deactivates `intid`.
pub fn deactivate(intid: u32) {
    write_sysreg!("icc_dir_el1", intid as u64);
}

/// Sends SGI `intid` to the CPU with affinity `aff`.
pub fn send_sgi(intid: u32, aff: u64) {
    let aff0 = aff & 0xff;
    let v = ICC_SGI1R::INTID.val(intid as u64)
        + ICC_SGI1R::RS.val(aff0 / 16)
        + ICC_SGI1R::TARGET_LIST.val(1 << (aff0 % 16))
        + ICC_SGI1R::AFF1.val((aff >> 8) & 0xff)
        + ICC_SGI1R::AFF2.val((aff >> 16) & 0xff)
        + ICC_SGI1R::AFF3.val((aff >> 32) & 0xff);
    super::cpu::dsb_sy();
    write_sysreg!("icc_sgi1r_el1", v.value);
    super::cpu::isb();
}
