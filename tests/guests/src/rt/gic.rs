//! The guest's GICv3: distributor/redistributor offsets, the system-register CPU interface
//! (ICC_* = rhyve's virtual ICV_*), and taking the virtual timer's interrupt (INTID 27) through
//! ICC_IAR1_EL1 / ICC_EOIR1_EL1.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use abi::layout::{gicr_base, GICD_BASE, VTIMER_INTID};

use super::access;

/// GICD register offsets (GICv3 spec IHI 0069, 12.9).
pub mod gicd {
    /// GICD_CTLR.
    pub const CTLR: u64 = 0x0000;
    /// GICD_TYPER.
    pub const TYPER: u64 = 0x0004;
    /// GICD_IIDR.
    pub const IIDR: u64 = 0x0008;
    /// GICD_IGROUPR<n>.
    pub const IGROUPR: u64 = 0x0080;
    /// GICD_ISENABLER<n>.
    pub const ISENABLER: u64 = 0x0100;
    /// GICD_IPRIORITYR<n> (byte-accessible).
    pub const IPRIORITYR: u64 = 0x0400;
    /// GICD_IROUTER<n> (64-bit), for SPIs (n >= 32).
    pub const IROUTER: u64 = 0x6000;
    /// GICD_PIDR2.
    pub const PIDR2: u64 = 0xffe8;
    /// GICD_CTLR.EnableGrp1 (with DS = 1, the one Group 1 enable).
    pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
    /// GICD_CTLR.ARE.
    pub const CTLR_ARE: u32 = 1 << 4;
    /// GICD_CTLR.DS.
    pub const CTLR_DS: u32 = 1 << 6;
}

/// GICR register offsets (IHI 0069, 12.10/12.11): RD_base, and SGI_base = RD_base + 64 KiB.
pub mod gicr {
    /// GICR_CTLR.
    pub const CTLR: u64 = 0x0000;
    /// GICR_TYPER (64-bit).
    pub const TYPER: u64 = 0x0008;
    /// GICR_WAKER.
    pub const WAKER: u64 = 0x0014;
    /// GICR_PIDR2.
    pub const PIDR2: u64 = 0xffe8;
    /// Offset of the SGI_base frame.
    pub const SGI_BASE: u64 = 0x1_0000;
    /// GICR_IGROUPR0 (SGI_base).
    pub const IGROUPR0: u64 = SGI_BASE + 0x0080;
    /// GICR_ISENABLER0 (SGI_base).
    pub const ISENABLER0: u64 = SGI_BASE + 0x0100;
    /// GICR_ICENABLER0 (SGI_base).
    pub const ICENABLER0: u64 = SGI_BASE + 0x0180;
    /// GICR_ICPENDR0 (SGI_base).
    pub const ICPENDR0: u64 = SGI_BASE + 0x0280;
    /// GICR_ICACTIVER0 (SGI_base).
    pub const ICACTIVER0: u64 = SGI_BASE + 0x0380;
    /// GICR_IPRIORITYR<n> (SGI_base, byte-accessible).
    pub const IPRIORITYR: u64 = SGI_BASE + 0x0400;
    /// GICR_TYPER.Last: the last redistributor of the region.
    pub const TYPER_LAST: u64 = 1 << 4;
}

/// The distributor's base.
pub const GICD: u64 = GICD_BASE.0;

/// The RD_base of vCPU `index`'s redistributor.
pub fn gicr(index: usize) -> u64 {
    gicr_base(index).map(|a| a.0).unwrap_or(0)
}

/// INTID the CPU interface returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;
/// The priority the guests give the interrupts they want.
pub const PRIORITY: u8 = 0xa0;
/// CNTV_CTL_EL0.ENABLE.
const CNTV_ENABLE: u64 = 1 << 0;
/// CNTV_CTL_EL0.IMASK.
const CNTV_IMASK: u64 = 1 << 1;

/// 32-bit device store (the GIC never faults on an accepted access).
fn w32(addr: u64, v: u32) {
    // SAFETY: a GIC register of this guest; nothing Rust relies on.
    unsafe { access::write32(addr, u64::from(v)) }
}

/// 32-bit device load.
fn r32(addr: u64) -> u32 {
    // SAFETY: as `w32`.
    unsafe { access::read32(addr) as u32 }
}

/// This CPU interface: priority mask open, Group 1 on.
pub fn cpu_interface_on() {
    crate::write_sysreg!("icc_pmr_el1", 0xff);
    crate::write_sysreg!("icc_igrpen1_el1", 1);
    // SAFETY: a context synchronization barrier; no memory effects.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

/// Acknowledges the highest-priority pending Group 1 interrupt (ICC_IAR1_EL1).
pub fn ack() -> u32 {
    crate::read_sysreg!("icc_iar1_el1") as u32
}

/// Ends (and, with EOImode 0, deactivates) `intid` (ICC_EOIR1_EL1).
pub fn eoi(intid: u32) {
    crate::write_sysreg!("icc_eoir1_el1", u64::from(intid));
}

/// Writes ICC_SGI1R_EL1 (trapped by rhyve, turned into virtual SGIs).
pub fn sgi1r(value: u64) {
    crate::write_sysreg!("s3_0_c12_c11_5", value);
}

/// Minimal re-initialization after the guest has scribbled over its GIC: distributor with
/// Group 1 on, vCPU `index`'s redistributor awake with every SGI/PPI in Group 1, SGIs and
/// `ppis` enabled at [`PRIORITY`], nothing pending or active.
pub fn reinit(index: usize, ppis: u32) {
    w32(GICD + gicd::CTLR, gicd::CTLR_ENABLE_GRP1 | gicd::CTLR_ARE);
    let rd = gicr(index);
    w32(rd + gicr::WAKER, 0);
    w32(rd + gicr::ICENABLER0, u32::MAX);
    w32(rd + gicr::ICPENDR0, u32::MAX);
    w32(rd + gicr::ICACTIVER0, u32::MAX);
    w32(rd + gicr::IGROUPR0, u32::MAX);
    let p = u32::from_ne_bytes([PRIORITY; 4]);
    for n in 0..8 {
        w32(rd + gicr::IPRIORITYR + 4 * n, p);
    }
    w32(rd + gicr::ISENABLER0, 0xffff | ppis);
}

/// Reads back vCPU `index`'s GICR_ISENABLER0.
pub fn enabled0(index: usize) -> u32 {
    r32(gicr(index) + gicr::ISENABLER0)
}

static IRQ_WANTED: AtomicBool = AtomicBool::new(false);
static IRQ_LAST: AtomicU32 = AtomicU32::new(SPURIOUS);
static IRQ_COUNT: AtomicU32 = AtomicU32::new(0);

/// Called by the IRQ vector: acknowledges, records and ends the interrupt; false if no case
/// was waiting for one (the vector then reports it as unexpected).
pub fn handle_irq() -> bool {
    if !IRQ_WANTED.load(Ordering::Relaxed) {
        return false;
    }
    let intid = ack();
    if intid == VTIMER_INTID.0 {
        // Level-sensitive: silence the timer before ending the interrupt.
        crate::write_sysreg!("cntv_ctl_el0", CNTV_ENABLE | CNTV_IMASK);
    }
    if intid != SPURIOUS {
        eoi(intid);
        IRQ_LAST.store(intid, Ordering::Relaxed);
        IRQ_COUNT.fetch_add(1, Ordering::Relaxed);
    }
    true
}

/// Arms the virtual timer `ms` ahead and waits with WFI (up to `timeout_ms` of virtual time)
/// for an interrupt; returns the INTID taken and the number taken, or `None`.
/// The caller has made INTID 27 deliverable ([`reinit`], [`cpu_interface_on`]).
pub fn wait_vtimer(ms: u64, timeout_ms: u64) -> Option<(u32, u32)> {
    let tpm = super::ticks_per_ms();
    IRQ_COUNT.store(0, Ordering::Relaxed);
    IRQ_LAST.store(SPURIOUS, Ordering::Relaxed);
    IRQ_WANTED.store(true, Ordering::Relaxed);
    crate::write_sysreg!("cntv_tval_el0", ms * tpm);
    crate::write_sysreg!("cntv_ctl_el0", CNTV_ENABLE);
    let start = crate::read_sysreg!("cntvct_el0");
    // IRQs stay masked while the count is tested and across WFI, which a pending interrupt
    // ends even when masked; they are opened only after it. Taken between the test and an
    // unmasked WFI, the interrupt would leave the WFI nothing to wake it.
    while IRQ_COUNT.load(Ordering::Relaxed) == 0
        && crate::read_sysreg!("cntvct_el0").wrapping_sub(start) < timeout_ms * tpm
    {
        // SAFETY: waits for an interrupt, then takes what is pending (the vector handles it
        // while IRQ_WANTED is set) and masks IRQs again; no memory effects but the handler's.
        unsafe {
            core::arch::asm!(
                "wfi",
                "msr daifclr, #2",
                "isb",
                "msr daifset, #2",
                options(nostack)
            )
        };
    }
    IRQ_WANTED.store(false, Ordering::Relaxed);
    crate::write_sysreg!("cntv_ctl_el0", 0);
    match IRQ_COUNT.load(Ordering::Relaxed) {
        0 => None,
        n => Some((IRQ_LAST.load(Ordering::Relaxed), n)),
    }
}
