//! The list registers: the [`ListRegs`] interface the core implements over ICH_*_EL2, the
//! `ICH_LR<n>_EL2` layout, and `flush` / `sync`, which move interrupts between the vGIC's
//! model and a vCPU's list registers (IHI 0069 12.4.10 ff.; KVM's vgic_flush_lr_state /
//! vgic_fold_lr_state).
//!
//! The model is KVM's: the vGIC's per-interrupt state is the authority, a flush writes the
//! best candidates into the list registers, and the next sync folds what the guest did with
//! them back. An interrupt still pending or active is written again by the next flush, in the
//! same list register when it still has one.

use core::sync::atomic::Ordering;

use abi::{IntId, VcpuId};
use tock_registers::{register_bitfields, LocalRegisterCopy};

use super::irq::IrqState;
use super::{CpuState, Dist, Vgic};

/// Most list registers ICH_VTR_EL2.ListRegs can describe (a 4-bit count minus one).
pub const MAX_LRS: usize = 16;

register_bitfields! [u64,
    /// `ICH_LR<n>_EL2` (IHI 0069 12.4.10).
    pub ICH_LR [
        vINTID OFFSET(0) NUMBITS(32) [],
        /// Physical INTID, when HW = 1.
        pINTID OFFSET(32) NUMBITS(13) [],
        /// When HW = 0: raise a maintenance interrupt when the guest deactivates it.
        EOI OFFSET(41) NUMBITS(1) [],
        Priority OFFSET(48) NUMBITS(8) [],
        Group OFFSET(60) NUMBITS(1) [],
        HW OFFSET(61) NUMBITS(1) [],
        State OFFSET(62) NUMBITS(2) [
            Invalid = 0,
            Pending = 1,
            Active = 2,
            PendingActive = 3
        ]
    ]
];

register_bitfields! [u64,
    /// `ICH_VMCR_EL2` (IHI 0069 12.4.21): the guest's own CPU interface controls.
    pub ICH_VMCR [
        /// ICV_PMR_EL1: interrupts of this priority or lower (numerically higher) are masked.
        VPMR OFFSET(24) NUMBITS(8) [],
        /// ICV_IGRPEN1_EL1: Group 1 interrupts enabled.
        VENG1 OFFSET(1) NUMBITS(1) [],
        /// ICV_IGRPEN0_EL1: Group 0 interrupts enabled.
        VENG0 OFFSET(0) NUMBITS(1) []
    ]
];

/// Whether the virtual CPU interface would signal a virtual IRQ to the guest for these list
/// registers and `vmcr` (ICH_VMCR_EL2): one of them pending (not also active) in an enabled
/// group, above the guest's priority mask. Its running priority is not looked at: a guest
/// that takes interrupts with PSTATE.I set (Linux) does not nest them.
///
/// For a machine whose GIC does not signal the virtual IRQ itself: the core then raises it
/// with HCR_EL2.VI while this holds (`runtime::irq`).
pub fn signals_virtual_irq(lrs: &dyn ListRegs, vmcr: u64) -> bool {
    let vmcr = LocalRegisterCopy::<u64, ICH_VMCR::Register>::new(vmcr);
    let mask = vmcr.read(ICH_VMCR::VPMR);
    let empty = lrs.empty_mask();
    (0..lrs.count().min(MAX_LRS))
        .filter(|k| empty & (1 << k) == 0)
        .map(|k| LocalRegisterCopy::<u64, ICH_LR::Register>::new(lrs.read(k)))
        .any(|lr| {
            let enabled = if lr.is_set(ICH_LR::Group) {
                vmcr.is_set(ICH_VMCR::VENG1)
            } else {
                vmcr.is_set(ICH_VMCR::VENG0)
            };
            lr.read_as_enum(ICH_LR::State) == Some(ICH_LR::State::Value::Pending)
                && enabled
                && lr.read(ICH_LR::Priority) < mask
        })
}

/// A vCPU's list registers and the controls around them. The core implements it over
/// ICH_*_EL2 on the vCPU's own physical CPU; tests fake it.
pub trait ListRegs {
    /// Number of list registers (ICH_VTR_EL2.ListRegs + 1).
    fn count(&self) -> usize;
    /// `ICH_LR<n>_EL2`.
    fn read(&self, n: usize) -> u64;
    /// Writes `ICH_LR<n>_EL2`.
    fn write(&mut self, n: usize, value: u64);
    /// ICH_ELRSR_EL2: bit n set when LR n holds no interrupt (and no pending EOI maintenance).
    fn empty_mask(&self) -> u64;
    /// ICH_EISR_EL2: bit n set when LR n's interrupt was deactivated with EOI = 1.
    fn eoi_mask(&self) -> u64;
    /// ICH_HCR_EL2.UIE: a maintenance interrupt when at most one LR is valid.
    fn set_underflow_irq(&mut self, on: bool);
}

/// An interrupt of one vCPU's view: one of its own SGIs/PPIs, or an SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Irq {
    Private(u16),
    Spi(u16),
}

impl Irq {
    fn from_intid(intid: u16) -> Self {
        if IntId(u32::from(intid)).is_private() {
            Self::Private(intid)
        } else {
            Self::Spi(intid - IntId::SPI_BASE as u16)
        }
    }

    fn state<'a>(self, dist: &'a mut Dist, cpu: &'a mut CpuState) -> Option<&'a mut IrqState> {
        match self {
            Self::Private(i) => cpu.private.get_mut(usize::from(i)),
            Self::Spi(i) => dist.spis.get_mut(usize::from(i)),
        }
    }
}

/// A candidate for a list register. Orders active interrupts first (they must be in an LR for
/// the guest to deactivate them), then by priority (lower value first), then by INTID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    not_active: bool,
    priority: u8,
    intid: u16,
}

/// The best `cap` candidates seen, in order; a fixed array, as the exit path cannot allocate.
struct Best {
    items: [Option<Candidate>; MAX_LRS],
    cap: usize,
}

impl Best {
    fn new(cap: usize) -> Self {
        Self {
            items: [None; MAX_LRS],
            cap: cap.min(MAX_LRS),
        }
    }

    fn offer(&mut self, candidate: Candidate) {
        let slots = &mut self.items[..self.cap];
        // First place whose occupant is worse (or empty); shift the rest down by one.
        let Some(at) = slots.iter().position(|c| c.is_none_or(|c| candidate < c)) else {
            return;
        };
        slots[at..].rotate_right(1);
        slots[at] = Some(candidate);
    }

    fn iter(&self) -> impl Iterator<Item = Candidate> + '_ {
        self.items.iter().flatten().copied()
    }
}

impl Vgic {
    /// Before entering `vcpu`: writes its highest-priority deliverable interrupts (and those
    /// it has active) into its list registers, rewriting the ones already there, and asks for
    /// an underflow maintenance interrupt when they do not all fit. Folds the list registers
    /// back first if `sync` was not called since the last flush.
    pub fn flush(&self, vcpu: VcpuId, lrs: &mut dyn ListRegs) {
        let Some(cpu) = self.cpus.get(vcpu.index()) else {
            return;
        };
        let mut dist = self.dist.lock();
        let mut state = cpu.state.lock();
        if cpu.lrs_live.load(Ordering::Acquire) {
            self.fold(vcpu, &mut dist, &mut state, lrs);
        }
        // Cleared under both locks, before reading the state: a change made after this
        // point sets it again (and its writer kicks us).
        cpu.dirty.store(false, Ordering::Release);

        let nr = lrs.count().min(MAX_LRS);
        let (grp0, grp1) = self.group_enables();
        let mut best = Best::new(nr);
        let mut wanted = 0usize;
        let mut offer = |st: &IrqState, intid: u16| {
            wanted += 1;
            best.offer(Candidate {
                not_active: !st.active,
                priority: st.priority,
                intid,
            });
        };
        for (i, st) in state.private.iter().enumerate() {
            if st.active || st.deliverable(grp0, grp1) {
                offer(st, i as u16);
            }
        }
        for (i, st) in dist.spis.iter().enumerate() {
            let mine = if st.owner.is_some_and(|o| o != vcpu.0) {
                false // still in another vCPU's LRs until it syncs
            } else if st.active {
                st.active_on == vcpu.0
            } else {
                st.deliverable(grp0, grp1) && self.spi_target(st) == Some(vcpu)
            };
            if mine {
                offer(st, i as u16 + IntId::SPI_BASE as u16);
            }
        }

        // Keep each interrupt in the LR it had; newcomers take the free ones.
        let prev = state.lr_intid;
        let mut slots: [Option<u16>; MAX_LRS] = [None; MAX_LRS];
        let mut newcomers: [Option<u16>; MAX_LRS] = [None; MAX_LRS];
        for (c, newcomer) in best.iter().zip(newcomers.iter_mut()) {
            match (0..nr).find(|&k| prev[k] == Some(c.intid)) {
                Some(k) => slots[k] = Some(c.intid),
                None => *newcomer = Some(c.intid),
            }
        }
        for intid in newcomers.iter().flatten() {
            if let Some(k) = (0..nr).find(|&k| slots[k].is_none()) {
                slots[k] = Some(*intid);
            }
        }

        let mut live = false;
        for k in 0..nr {
            match slots[k].and_then(|intid| {
                Some((intid, Irq::from_intid(intid).state(&mut dist, &mut state)?))
            }) {
                Some((intid, st)) => {
                    let pending = st.deliverable(grp0, grp1) && !(st.hw && st.active);
                    lrs.write(k, lr_value(st, intid, pending));
                    st.owner = Some(vcpu.0);
                    st.lr_pending = pending;
                    if pending && st.latched() {
                        // The LR holds this edge now; a new one while it is there latches again.
                        st.latch = false;
                    }
                    live = true;
                }
                None => {
                    slots[k] = None;
                    if prev[k].is_some() || !state.lrs_cleared {
                        lrs.write(k, 0);
                    }
                }
            }
        }
        state.lr_intid = slots;
        state.lrs_cleared = true;
        cpu.lrs_live.store(live, Ordering::Release);
        lrs.set_underflow_irq(wanted > nr);

        // An SPI we gave back because it was rerouted: its new target must look again.
        for intid in prev.iter().flatten() {
            if let Irq::Spi(i) = Irq::from_intid(*intid) {
                if let Some(st) = dist.spis.get(usize::from(i)) {
                    if st.owner.is_none() && !st.active {
                        if let Some(target) = self.spi_target(st) {
                            self.mark_dirty(target);
                        }
                    }
                }
            }
        }
    }

    /// After an exit from `vcpu`: folds the state of its list registers back into the vGIC
    /// (an interrupt the guest completed leaves its LR; one still pending or active stays
    /// for the next flush). Cheap when the last flush left no LR in use.
    pub fn sync(&self, vcpu: VcpuId, lrs: &mut dyn ListRegs) {
        let Some(cpu) = self.cpus.get(vcpu.index()) else {
            return;
        };
        if !cpu.lrs_live.load(Ordering::Acquire) {
            return;
        }
        let mut dist = self.dist.lock();
        let mut state = cpu.state.lock();
        if cpu.lrs_live.load(Ordering::Acquire) {
            self.fold(vcpu, &mut dist, &mut state, lrs);
        }
    }

    /// Folds each list register the last flush wrote back into the interrupt's state.
    fn fold(&self, vcpu: VcpuId, dist: &mut Dist, state: &mut CpuState, lrs: &mut dyn ListRegs) {
        let Some(cpu) = self.cpus.get(vcpu.index()) else {
            return;
        };
        let nr = lrs.count().min(MAX_LRS);
        let empty = lrs.empty_mask();
        for k in 0..MAX_LRS {
            let Some(intid) = state.lr_intid[k] else {
                continue;
            };
            let raw = if k < nr && empty & (1 << k) == 0 {
                lrs.read(k)
            } else {
                0
            };
            let lr = LocalRegisterCopy::<u64, ICH_LR::Register>::new(raw);
            let (pending, active) = match lr.read_as_enum(ICH_LR::State) {
                Some(ICH_LR::State::Value::Pending) => (true, false),
                Some(ICH_LR::State::Value::Active) => (false, true),
                Some(ICH_LR::State::Value::PendingActive) => (true, true),
                _ => (false, false),
            };
            if !pending && !active {
                state.lr_intid[k] = None;
                if k < nr && lr.is_set(ICH_LR::EOI) && !lr.is_set(ICH_LR::HW) {
                    // Frees the LR in ICH_ELRSR and clears its ICH_EISR bit, which would
                    // otherwise keep the maintenance interrupt asserted.
                    lrs.write(k, 0);
                }
            }
            let Some(st) = Irq::from_intid(intid).state(dist, state) else {
                continue;
            };
            if st.owner != Some(vcpu.0) {
                continue;
            }
            st.owner = None;
            st.lr_pending = false;
            if st.latched() {
                // Not yet acknowledged: still pending. Not pending in the LR: the latch may
                // have been set again since the flush, by a new edge or injection; keep it.
                st.latch |= pending;
            } else if !pending {
                // A level interrupt the guest acknowledged: an ISPENDR latch is consumed; the
                // line, if still high, makes it pending again.
                st.latch = false;
            }
            st.active = active;
            if active {
                st.active_on = vcpu.0;
            }
            if st.hw && !active && !st.latch {
                // The physical interrupt was deactivated with the virtual one.
                st.hw = false;
            }
        }
        cpu.lrs_live.store(false, Ordering::Release);
        // The next flush must rewrite what is still in the LRs and pick up what was freed.
        cpu.dirty.store(true, Ordering::Release);
    }
}

/// The `ICH_LR<n>_EL2` value that presents `st` (INTID `intid`) to the guest.
fn lr_value(st: &IrqState, intid: u16, pending: bool) -> u64 {
    let lr_state = match (pending, st.active) {
        (true, true) => ICH_LR::State::PendingActive,
        (true, false) => ICH_LR::State::Pending,
        (false, true) => ICH_LR::State::Active,
        (false, false) => ICH_LR::State::Invalid,
    };
    let mut lr = ICH_LR::vINTID.val(u64::from(intid))
        + ICH_LR::Priority.val(u64::from(st.priority))
        + ICH_LR::Group.val(u64::from(st.group1))
        + lr_state;
    if st.hw {
        // The guest's deactivation deactivates the machine's interrupt behind it.
        lr += ICH_LR::HW::SET + ICH_LR::pINTID.val(u64::from(st.pintid));
    } else if !st.edge {
        // Level: a maintenance interrupt on deactivation lets the core re-sample the line.
        lr += ICH_LR::EOI::SET;
    }
    lr.value
}
