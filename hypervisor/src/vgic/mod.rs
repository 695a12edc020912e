//! The virtual GICv3: distributor and redistributors emulated behind stage-2 data aborts,
//! the guest's CPU interface being the real ICV_* registers fed through `ICH_LR<n>_EL2`.
//!
//! This is the generic part: a state machine the host tests. The core supplies the list
//! registers of the vCPU's own CPU through [`ListRegs`] and sends the physical kicks
//! [`Kick`] asks for.
//!
//! Model (IHI 0069): one security state (GICD_CTLR.DS = 1), affinity routing always on
//! (ARE = 1), no LPIs or ITS, SGIs/PPIs banked per vCPU in its redistributor, SPIs 32 to
//! 32 + [`NR_SPIS`] in the distributor.
//!
//! # Lock order
//! 1. `Vgic::dist`: the SPIs' state.
//! 2. One `Cpu::state`: a vCPU's SGIs/PPIs and the bookkeeping of its list registers.
//!
//! Take `dist` before a vCPU lock; never hold two vCPU locks at once (an SGI to many vCPUs
//! takes their locks one after the other). `flush`, `sync` and `has_pending` hold `dist` and
//! the vCPU's lock; MMIO to a redistributor and `send_sgi` take only vCPU locks;
//! `set_spi_level` and MMIO to SPI registers take only `dist`. GICD_CTLR's enables and the
//! per-vCPU `dirty` / `lrs_live` flags are atomics, used under any lock or none.
//!
//! Nothing here allocates after [`Vgic::new`], and nothing a guest writes can panic it.

mod dist;
mod irq;
mod lr;
mod redist;
mod region;
mod sgi;
#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use abi::layout::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE, MAX_VCPUS, NR_SPIS};
use abi::{GuestPhysAddr, IntId, VcpuId};
use spin::Mutex;
use tock_registers::{register_bitfields, LocalRegisterCopy};

use irq::{IrqState, NR_PRIVATE};
pub use lr::{signals_virtual_irq, ListRegs, ICH_LR, MAX_LRS};

register_bitfields! [u64,
    /// An affinity as `GICD_IROUTER<n>` holds it (IHI 0069 12.9.22), which is also MPIDR_EL1's
    /// layout of the affinity fields.
    pub AFFINITY [
        Aff0 OFFSET(0) NUMBITS(8) [],
        Aff1 OFFSET(8) NUMBITS(8) [],
        Aff2 OFFSET(16) NUMBITS(8) [],
        /// IROUTER only: 1 = any participating PE (1 of N).
        Interrupt_Routing_Mode OFFSET(31) NUMBITS(1) [],
        Aff3 OFFSET(32) NUMBITS(8) []
    ]
];

const KICK_WORDS: usize = MAX_VCPUS.div_ceil(64);

/// The vCPUs whose physical CPU must be kicked (sent a physical SGI) so that they exit and
/// pick up newly deliverable interrupts. May contain the vCPU that caused it; the core
/// filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use = "the vCPUs in a Kick must be kicked or they may sleep on a pending interrupt"]
pub struct Kick {
    bits: [u64; KICK_WORDS],
}

impl Kick {
    /// Nobody to kick.
    pub const fn none() -> Self {
        Self {
            bits: [0; KICK_WORDS],
        }
    }

    /// Adds `vcpu` (ignored if beyond [`MAX_VCPUS`]).
    pub fn add(&mut self, vcpu: VcpuId) {
        if let Some(word) = self.bits.get_mut(vcpu.index() / 64) {
            *word |= 1 << (vcpu.index() % 64);
        }
    }

    /// Whether `vcpu` is to be kicked.
    pub fn contains(&self, vcpu: VcpuId) -> bool {
        self.bits
            .get(vcpu.index() / 64)
            .is_some_and(|word| word & (1 << (vcpu.index() % 64)) != 0)
    }

    /// Whether there is nobody to kick.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Adds everyone in `other`.
    pub fn merge(&mut self, other: Kick) {
        for (a, b) in self.bits.iter_mut().zip(other.bits) {
            *a |= b;
        }
    }

    /// The vCPUs to kick, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = VcpuId> + '_ {
        (0..MAX_VCPUS)
            .map(|i| VcpuId(i as u16))
            .filter(|&v| self.contains(v))
    }
}

/// The distributor's own state: the SPIs.
struct Dist {
    /// SPI `i` is INTID 32 + i.
    spis: Box<[IrqState]>,
}

/// One vCPU's banked state.
struct CpuState {
    /// SGIs 0-15 and PPIs 16-31.
    private: [IrqState; NR_PRIVATE],
    /// GICR_WAKER.ProcessorSleep.
    sleep: bool,
    /// INTID in each list register as the last flush left it.
    lr_intid: [Option<u16>; MAX_LRS],
    /// Whether the list registers have been zeroed once (their reset value is UNKNOWN).
    lrs_cleared: bool,
}

struct Cpu {
    state: Mutex<CpuState>,
    /// State affecting this vCPU changed since its last flush.
    dirty: AtomicBool,
    /// The last flush left interrupts in list registers that no sync has folded back yet.
    lrs_live: AtomicBool,
}

/// Where in the vGIC's frames an address falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// GICD, at this offset.
    Dist(u64),
    /// A vCPU's RD_base frame.
    Rd(VcpuId, u64),
    /// A vCPU's SGI_base frame.
    Sgi(VcpuId, u64),
}

/// Size of one redistributor frame (RD_base, then SGI_base).
const GICR_FRAME: u64 = 0x1_0000;

/// A VM's virtual GICv3. `Sync`: each vCPU's physical CPU calls it concurrently.
pub struct Vgic {
    nr_vcpus: usize,
    /// GICD_CTLR's writable bits (EnableGrp0, EnableGrp1).
    ctlr: AtomicU32,
    dist: Mutex<Dist>,
    cpus: Box<[Cpu]>,
}

impl Vgic {
    /// A vGIC in its reset state for `nr_vcpus` vCPUs (clamped to [`MAX_VCPUS`]). The only
    /// allocation the vGIC makes.
    pub fn new(nr_vcpus: usize) -> Self {
        let nr_vcpus = nr_vcpus.min(MAX_VCPUS);
        let spis = (0..NR_SPIS).map(|_| IrqState::new(false)).collect();
        let cpus: Vec<Cpu> = (0..nr_vcpus)
            .map(|_| Cpu {
                state: Mutex::new(CpuState {
                    private: core::array::from_fn(|i| IrqState::new(IntId(i as u32).is_sgi())),
                    sleep: true,
                    lr_intid: [None; MAX_LRS],
                    lrs_cleared: false,
                }),
                dirty: AtomicBool::new(true),
                lrs_live: AtomicBool::new(false),
            })
            .collect();
        Self {
            nr_vcpus,
            ctlr: AtomicU32::new(0),
            dist: Mutex::new(Dist { spis }),
            cpus: cpus.into_boxed_slice(),
        }
    }

    /// Puts every register and interrupt back in its reset state, for a VM reset. Only
    /// while no vCPU of the VM runs: list registers are not touched (each vCPU clears its own
    /// when it starts).
    pub fn reset(&self) {
        let mut dist = self.dist.lock();
        for st in dist.spis.iter_mut() {
            *st = IrqState::new(false);
        }
        for cpu in self.cpus.iter() {
            let mut state = cpu.state.lock();
            state.private = core::array::from_fn(|i| IrqState::new(IntId(i as u32).is_sgi()));
            state.sleep = true;
            state.lr_intid = [None; MAX_LRS];
            state.lrs_cleared = false;
            cpu.dirty.store(true, Ordering::Release);
            cpu.lrs_live.store(false, Ordering::Release);
        }
        self.ctlr.store(0, Ordering::Release);
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.nr_vcpus
    }

    /// Whether `ipa` is inside the distributor or one of the redistributors of a VM with
    /// `nr_vcpus` vCPUs.
    pub fn handles(ipa: GuestPhysAddr, nr_vcpus: usize) -> bool {
        Self::locate(ipa, nr_vcpus).is_some()
    }

    fn locate(ipa: GuestPhysAddr, nr_vcpus: usize) -> Option<Frame> {
        let a = ipa.raw();
        if let Some(off) = a.checked_sub(GICD_BASE.raw()).filter(|&o| o < GICD_SIZE) {
            return Some(Frame::Dist(off));
        }
        let off = a.checked_sub(GICR_BASE.raw())?;
        let index = off / GICR_STRIDE;
        if index >= nr_vcpus.min(MAX_VCPUS) as u64 {
            return None;
        }
        let vcpu = VcpuId(index as u16);
        let within = off % GICR_STRIDE;
        Some(if within < GICR_FRAME {
            Frame::Rd(vcpu, within)
        } else {
            Frame::Sgi(vcpu, within - GICR_FRAME)
        })
    }

    /// A guest load of `size` bytes (1, 2, 4, 8) from `ipa` in the vGIC's frames. Accesses
    /// the register does not allow, and unknown offsets, read as zero.
    pub fn mmio_read(&self, accessor: VcpuId, ipa: GuestPhysAddr, size: u8) -> u64 {
        if accessor.index() >= self.nr_vcpus {
            // Only a vCPU of this VM can access its GIC; nothing may name another.
            return 0;
        }
        match Self::locate(ipa, self.nr_vcpus) {
            Some(Frame::Dist(off)) => dist::read(self, accessor, off, size),
            Some(Frame::Rd(vcpu, off)) => redist::read_rd(self, vcpu, off, size),
            Some(Frame::Sgi(vcpu, off)) => redist::read_sgi(self, vcpu, off, size),
            None => 0,
        }
    }

    /// A guest store of `size` bytes of `value` to `ipa`. Accesses the register does not
    /// allow, unknown offsets, and accessors that are not vCPUs of this VM are ignored.
    pub fn mmio_write(&self, accessor: VcpuId, ipa: GuestPhysAddr, size: u8, value: u64) -> Kick {
        if accessor.index() >= self.nr_vcpus {
            // Writes record their accessor (an activated interrupt's owner); an accessor that is
            // not a vCPU of this VM must not end up in the state or in a kick.
            return Kick::none();
        }
        match Self::locate(ipa, self.nr_vcpus) {
            Some(Frame::Dist(off)) => dist::write(self, accessor, off, size, value),
            Some(Frame::Rd(vcpu, off)) => redist::write_rd(self, vcpu, off, size, value),
            Some(Frame::Sgi(vcpu, off)) => redist::write_sgi(self, vcpu, off, size, value),
            None => Kick::none(),
        }
    }

    /// Sets the input line of SPI `intid` (a device's interrupt). A level-sensitive SPI is
    /// pending while the line is high; an edge-triggered one latches pending on a rising
    /// edge. Anything but an implemented SPI is ignored.
    pub fn set_spi_level(&self, intid: IntId, level: bool) -> Kick {
        let mut kick = Kick::none();
        let Some(index) = spi_index(intid) else {
            return kick;
        };
        let mut dist = self.dist.lock();
        let Some(st) = dist.spis.get_mut(index) else {
            return kick;
        };
        let before = st.pending();
        if st.edge && level && !st.line {
            st.latch = true;
        }
        st.line = level;
        if st.pending() != before || st.latch {
            self.touch_spi(st, &mut kick);
        }
        kick
    }

    /// Makes the guest's PPI `intid` (e.g. the virtual timer, 27) pending on `vcpu` after the
    /// core acknowledged the machine's `pintid` behind it: it goes in a list register with
    /// HW = 1 and pINTID = `pintid`, so the guest's deactivation deactivates the physical
    /// interrupt.
    pub fn inject_mapped(&self, vcpu: VcpuId, intid: IntId, pintid: IntId) -> Kick {
        let mut kick = Kick::none();
        if !intid.is_private() || intid.is_sgi() || !pintid.is_private() || pintid.is_sgi() {
            return kick;
        }
        let Some(cpu) = self.cpus.get(vcpu.index()) else {
            return kick;
        };
        let mut state = cpu.state.lock();
        if let Some(st) = state.private.get_mut(intid.0 as usize) {
            st.hw = true;
            st.pintid = pintid.0 as u16;
            st.latch = true;
            self.touch_private(vcpu, st, &mut kick);
        }
        kick
    }

    /// Whether `vcpu` has an interrupt to deliver that is not already being handled (the
    /// core asks before letting a WFI sleep). Call after `sync`.
    pub fn has_pending(&self, vcpu: VcpuId) -> bool {
        let Some(cpu) = self.cpus.get(vcpu.index()) else {
            return false;
        };
        let (grp0, grp1) = self.group_enables();
        let dist = self.dist.lock();
        let state = cpu.state.lock();
        let v = vcpu.0;
        let waiting = |st: &IrqState| {
            (st.owner == Some(v) && st.lr_pending && !st.active)
                || (st.owner.is_none() && !st.active && st.deliverable(grp0, grp1))
        };
        state.private.iter().any(waiting)
            || dist
                .spis
                .iter()
                .any(|st| waiting(st) && (st.owner == Some(v) || self.spi_target(st) == Some(vcpu)))
    }

    /// Whether `vcpu` needs `sync` / `flush` around its next entry: state affecting it
    /// changed, or its list registers hold interrupts whose progress must be folded back.
    /// One or two atomic loads: the exit path calls it to skip the locks.
    pub fn needs_flush(&self, vcpu: VcpuId) -> bool {
        self.cpus.get(vcpu.index()).is_some_and(|cpu| {
            cpu.dirty.load(Ordering::Acquire) || cpu.lrs_live.load(Ordering::Acquire)
        })
    }

    /// `vcpu` left its physical CPU, whose list registers were then cleared (after a `sync`):
    /// its next `flush` must write again what it still has pending or active.
    pub fn unload(&self, vcpu: VcpuId) {
        self.mark_dirty(vcpu);
    }

    /// GICD_CTLR.EnableGrp0 and EnableGrp1.
    fn group_enables(&self) -> (bool, bool) {
        dist::group_enables(self.ctlr.load(Ordering::Acquire))
    }

    /// The vCPU an SPI's IROUTER sends it to, if any: for 1-of-N routing vCPU 0; for a
    /// target affinity that matches no vCPU, none (the interrupt stays pending).
    fn spi_target(&self, st: &IrqState) -> Option<VcpuId> {
        let route = LocalRegisterCopy::<u64, AFFINITY::Register>::new(st.route);
        if route.is_set(AFFINITY::Interrupt_Routing_Mode) {
            return (self.nr_vcpus > 0).then_some(VcpuId(0));
        }
        let aff = AFFINITY::Aff0.val(route.read(AFFINITY::Aff0))
            + AFFINITY::Aff1.val(route.read(AFFINITY::Aff1))
            + AFFINITY::Aff2.val(route.read(AFFINITY::Aff2))
            + AFFINITY::Aff3.val(route.read(AFFINITY::Aff3));
        VcpuId::from_mpidr_affinity(aff.value, self.nr_vcpus)
    }

    /// Marks `vcpu` for a flush.
    fn mark_dirty(&self, vcpu: VcpuId) {
        if let Some(cpu) = self.cpus.get(vcpu.index()) {
            cpu.dirty.store(true, Ordering::Release);
        }
    }

    /// Records that SPI `st` changed: every vCPU it concerns re-flushes, and its target is
    /// kicked if it is now deliverable. Called with `dist` held.
    fn touch_spi(&self, st: &IrqState, kick: &mut Kick) {
        if let Some(owner) = st.owner {
            self.mark_dirty(VcpuId(owner));
        }
        if st.active {
            self.mark_dirty(VcpuId(st.active_on));
        }
        if let Some(target) = self.spi_target(st) {
            self.mark_dirty(target);
            let (grp0, grp1) = self.group_enables();
            if st.deliverable(grp0, grp1) {
                // It is delivered where it already sits (an LR, or active), else to its target.
                kick.add(match st.owner {
                    Some(owner) => VcpuId(owner),
                    None if st.active => VcpuId(st.active_on),
                    None => target,
                });
            }
        }
    }

    /// Records that `vcpu`'s private interrupt `st` changed. Called with its lock held.
    fn touch_private(&self, vcpu: VcpuId, st: &IrqState, kick: &mut Kick) {
        self.mark_dirty(vcpu);
        let (grp0, grp1) = self.group_enables();
        if st.deliverable(grp0, grp1) {
            kick.add(vcpu);
        }
    }
}

/// Index into `Dist::spis` of `intid`, if it is an implemented SPI.
fn spi_index(intid: IntId) -> Option<usize> {
    let index = intid.0.checked_sub(IntId::SPI_BASE)?;
    (index < NR_SPIS).then_some(index as usize)
}
