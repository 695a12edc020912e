//! Which vCPU each physical CPU runs.
//!
//! Every vCPU is placed on one physical CPU when its VM is built (from the CPUs its
//! description allows, the least loaded first) and never moves: a vCPU never migrates, so
//! its TLB entries, its local invalidations and its timer stay with one CPU. A CPU with one
//! vCPU runs it as if it owned the CPU: nothing of its state is switched, WFI sleeps in
//! place. A CPU with several time-shares them, round robin: a vCPU runs until it waits
//! (WFI, or WFE, trapped then) while another can run, or until its slice ends (the EL2
//! physical timer preempts it, so a guest spinning with interrupts masked cannot starve
//! another), or until a vCPU it shares the CPU with is woken by an interrupt. The state of
//! the vCPU leaving the CPU is saved ([`crate::arch::context`]); one waiting in WFI off its
//! CPU is woken by an interrupt made pending for it (its CPU is kicked) or by its own timer's
//! deadline, which the EL2 timer watches.

use super::percpu::PerCpu;
use super::vm::{Power, VcpuSlot, Vm};
use super::{irq, vms};
use crate::arch::regs::{read_sysreg, write_sysreg};
use aarch64_cpu::registers::{CNTHP_CTL_EL2, CNTV_CTL_EL0};
use abi::layout::{PTIMER_INTID, VTIMER_INTID};
use abi::VcpuId;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use tock_registers::interfaces::Writeable;
use tock_registers::LocalRegisterCopy;

/// How long a vCPU runs before another vCPU of its CPU gets a turn, in counter ticks per
/// second divided by this (10 ms).
const SLICES_PER_SECOND: u64 = 100;

/// One physical CPU's scheduler; lives on that CPU's stack.
pub struct Sched {
    /// The vCPUs placed here: (VM index, vCPU).
    list: Vec<(usize, VcpuId)>,
    /// Where the round robin looks first.
    next: usize,
    /// When the running vCPU's slice ends (physical counter).
    slice_end: u64,
    slice: u64,
}

/// Why a vCPU left its CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leave {
    /// It is off (CPU_OFF, its VM stopped or is resetting).
    Stopped,
    /// It waits for an interrupt, and another vCPU can use the CPU.
    Blocked,
    /// Its slice ended, another vCPU woke, or the VMM paused it.
    Preempted,
}

fn now() -> u64 {
    read_sysreg!("cntpct_el0")
}

/// The physical counter value at which a timer with control `ctl` and compare value `cval`
/// (offset by `offset` from the physical counter) fires, if it is armed.
fn timer_deadline(ctl: u64, cval: u64, offset: u64) -> u64 {
    let ctl = LocalRegisterCopy::<u64, CNTV_CTL_EL0::Register>::new(ctl);
    if ctl.is_set(CNTV_CTL_EL0::ENABLE) && !ctl.is_set(CNTV_CTL_EL0::IMASK) {
        cval.saturating_add(offset)
    } else {
        u64::MAX
    }
}

impl Sched {
    /// The scheduler of CPU `index`: every vCPU of every VM placed on it.
    pub fn new(index: usize) -> Self {
        let mut list = Vec::new();
        for (i, vm) in vms().iter().enumerate() {
            for (v, slot) in vm.vcpus.iter().enumerate() {
                if slot.pcpu == index {
                    list.push((i, VcpuId(v as u16)));
                }
            }
        }
        Self {
            list,
            next: 0,
            slice_end: 0,
            slice: read_sysreg!("cntfrq_el0") / SLICES_PER_SECOND,
        }
    }

    /// Whether this CPU time-shares several vCPUs.
    #[inline]
    pub fn shared(&self) -> bool {
        self.list.len() > 1
    }

    fn slot(&self, k: usize) -> Option<(&'static Vm, VcpuId, &'static VcpuSlot)> {
        let (i, v) = *self.list.get(k)?;
        let vm = vms().get(i)?;
        Some((vm, v, vm.vcpu(v)?))
    }

    /// Whether vCPU `v` of `vm` can run now. A vCPU of a VM that stopped is turned off here
    /// (only its own CPU may), so that the VM's reset can go on.
    fn runnable(vm: &Vm, v: VcpuId, slot: &VcpuSlot, now: u64) -> bool {
        if !vm.alive.load(Ordering::Acquire) {
            if slot.power() != Power::Off {
                slot.set_power(Power::Off);
            }
            return false;
        }
        if slot.paused() {
            return false;
        }
        match slot.power() {
            Power::Off => false,
            Power::OnPending => true,
            Power::On => {
                !slot.blocked.load(Ordering::Acquire)
                    || now >= slot.deadline.load(Ordering::Acquire)
                    || vm.vgic.has_pending(v)
            }
        }
    }

    /// The next vCPU to run, round robin over the runnable ones.
    pub fn pick(&mut self) -> Option<(&'static Vm, VcpuId)> {
        let n = self.list.len();
        let t = now();
        let mut found = None;
        for step in 0..n {
            let k = (self.next + step) % n;
            let Some((vm, v, slot)) = self.slot(k) else {
                continue;
            };
            if Self::runnable(vm, v, slot, t) && found.is_none() {
                found = Some((k, vm, v));
            }
        }
        let (k, vm, v) = found?;
        self.next = (k + 1) % n;
        if let Some(slot) = vm.vcpu(v) {
            slot.blocked.store(false, Ordering::Release);
        }
        Some((vm, v))
    }

    /// Whether a vCPU other than `cur` could use this CPU now.
    pub fn others_runnable(&self, cur: (&Vm, VcpuId)) -> bool {
        let t = now();
        (0..self.list.len()).any(|k| {
            self.slot(k).is_some_and(|(vm, v, slot)| {
                !(vm.id == cur.0.id && v == cur.1) && Self::runnable(vm, v, slot, t)
            })
        })
    }

    /// Whether the running vCPU `cur` should give the CPU up now: it was told to look (a
    /// kick or the EL2 timer), and another vCPU can run while `cur`'s slice is over, or
    /// another vCPU that waited for an interrupt has one now (it runs at once, as an
    /// interactive task would).
    pub fn should_preempt(&self, cpu: &PerCpu, cur: (&Vm, VcpuId)) -> bool {
        if !self.shared() || !cpu.resched.swap(false, Ordering::AcqRel) {
            return false;
        }
        let t = now();
        let slice_over = t >= self.slice_end;
        (0..self.list.len()).any(|k| {
            self.slot(k).is_some_and(|(vm, v, slot)| {
                !(vm.id == cur.0.id && v == cur.1)
                    && (slice_over || slot.blocked.load(Ordering::Acquire))
                    && Self::runnable(vm, v, slot, t)
            })
        })
    }

    /// Prepares the CPU for `vm`'s vCPU `v`: saves the state of the vCPU that was live here
    /// and loads `v`'s (a vCPU starting afresh gets a clean state instead). Returns whether
    /// the state is `v`'s already (nothing to load).
    pub fn switch_to(&mut self, cpu: &PerCpu, vm: &Vm, v: VcpuId, fresh: bool) {
        let me = (vm.id.0 as usize, v);
        if cpu.loaded() == Some(me) && !fresh {
            return;
        }
        if let Some((i, w)) = cpu.take_loaded() {
            if let Some(prev) = vms().get(i) {
                self.unload(cpu, prev, w);
            }
        }
        if let Some(slot) = vm.vcpu(v) {
            let st = slot.state.lock();
            if fresh {
                crate::arch::context::CpuContext::default().restore();
            } else {
                st.cpu.restore();
            }
        }
        cpu.set_loaded(me.0, me.1);
        self.slice_end = now().saturating_add(self.slice);
    }

    /// Takes vCPU `v` of `prev` off the CPU: its state saved if it is still on, its timers
    /// stopped, its list registers cleared (the vGIC has folded them back).
    fn unload(&mut self, cpu: &PerCpu, prev: &Vm, v: VcpuId) {
        let Some(slot) = prev.vcpu(v) else { return };
        let mut st = slot.state.lock();
        st.cpu.save();
        let (vctl, vcval) = st.cpu.vtimer();
        let (pctl, pcval) = st.cpu.ptimer();
        let deadline =
            timer_deadline(vctl, vcval, prev.cntvoff).min(timer_deadline(pctl, pcval, 0));
        slot.deadline.store(deadline, Ordering::Release);
        drop(st);
        // SAFETY: drops this VMID's stage-1 and stage-2 entries on this CPU: another vCPU of
        // the same VM coming here must not use the leaving one's, whose local invalidations
        // it did not see.
        unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
        cpu.redist.clear_active(VTIMER_INTID.0);
        cpu.redist.clear_active(PTIMER_INTID.0);
        irq::reset_list_registers();
        prev.vgic.unload(v);
    }

    /// Marks the running vCPU as waiting for an interrupt (it leaves with [`Leave::Blocked`]).
    pub fn block(slot: &VcpuSlot) {
        slot.blocked.store(true, Ordering::Release);
    }

    /// Arms the EL2 timer for what this CPU must not miss while `cur` runs or the CPU
    /// sleeps: the end of `cur`'s slice when another vCPU is waiting for the CPU, and the
    /// earliest timer deadline of a vCPU blocked off the CPU. Nothing on an unshared CPU.
    pub fn arm_timer(&self, cur: Option<(&Vm, VcpuId)>) {
        if !self.shared() {
            return;
        }
        let t = now();
        let mut at = u64::MAX;
        for k in 0..self.list.len() {
            let Some((vm, v, slot)) = self.slot(k) else {
                continue;
            };
            if cur.is_some_and(|(c, cv)| c.id == vm.id && cv == v) {
                continue;
            }
            if !vm.alive.load(Ordering::Acquire) || slot.power() == Power::Off {
                continue;
            }
            if slot.blocked.load(Ordering::Acquire) {
                at = at.min(slot.deadline.load(Ordering::Acquire));
            } else if cur.is_some() {
                at = at.min(self.slice_end.max(t));
            }
        }
        if at == u64::MAX {
            CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::CLEAR);
        } else {
            write_sysreg!("cnthp_cval_el2", at);
            CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::SET + CNTHP_CTL_EL2::IMASK::CLEAR);
        }
    }
}

impl Sched {
    /// Nothing can run here: saves the state of the vCPU that was live (its timers must not
    /// fire while no vCPU owns the CPU), watches the deadlines of the blocked ones, and
    /// sleeps until an interrupt.
    pub fn idle(&mut self, cpu: &PerCpu) {
        if let Some((i, w)) = cpu.take_loaded() {
            if let Some(vm) = vms().get(i) {
                self.unload(cpu, vm, w);
            }
        }
        self.arm_timer(None);
        irq::handle_pending(cpu, None);
        if self.pick_peek().is_none() {
            crate::arch::cpu::wfi();
        }
        irq::handle_pending(cpu, None);
    }

    /// Whether some vCPU here could run, without choosing it.
    fn pick_peek(&self) -> Option<()> {
        let t = now();
        (0..self.list.len())
            .any(|k| {
                self.slot(k)
                    .is_some_and(|(vm, v, slot)| Self::runnable(vm, v, slot, t))
            })
            .then_some(())
    }
}

/// The EL2 timer fired: silenced until re-armed; the CPU's scheduler looks again.
pub fn htimer_fired(cpu: &PerCpu) {
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::CLEAR);
    cpu.resched.store(true, Ordering::Release);
}
