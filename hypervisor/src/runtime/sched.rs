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

use super::irq;
use super::machine::{machine, vms};
use super::percpu::PerCpu;
use super::vm::{Power, VcpuSlot, Vm};
use crate::arch::{timer, tlb};
use abi::VcpuId;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use hypervisor::sched_policy::{self as policy, timer_deadline, RoundRobin, VcpuView};

/// How long a vCPU runs before another vCPU of its CPU gets a turn, in counter ticks per
/// second divided by this (10 ms).
const SLICES_PER_SECOND: u64 = 100;

/// One physical CPU's scheduler; lives on that CPU's stack.
pub struct Sched {
    /// The vCPUs placed here: (VM index, vCPU).
    list: Vec<(usize, VcpuId)>,
    /// Whose turn it is.
    rr: RoundRobin,
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
    timer::now()
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
            rr: RoundRobin::new(),
            slice_end: 0,
            slice: timer::frequency() / SLICES_PER_SECOND,
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

    /// What the policy sees of the `k`th vCPU here at `now` (`irq`: whether to ask the vGIC for
    /// a pending interrupt, which only a blocked vCPU's runnability needs). A vCPU of a VM that
    /// stopped is turned off here (only its own CPU may), so that the VM's reset can go on.
    fn view(&self, k: usize, now: u64, irq: bool) -> VcpuView {
        let Some((vm, v, slot)) = self.slot(k) else {
            return VcpuView {
                alive: false,
                power: Power::Off,
                paused: false,
                blocked: false,
                deadline: u64::MAX,
                irq_pending: false,
            };
        };
        let alive = vm.alive.load(Ordering::Acquire);
        if !alive && slot.power() != Power::Off {
            slot.set_power(Power::Off);
        }
        let blocked = slot.blocked.load(Ordering::Acquire);
        let deadline = slot.deadline.load(Ordering::Acquire);
        VcpuView {
            alive,
            power: slot.power(),
            paused: slot.paused(),
            blocked,
            deadline,
            irq_pending: irq && blocked && now < deadline && vm.vgic.has_pending(v),
        }
    }

    /// Every vCPU's view, taken as the policy asks.
    fn views(&self, now: u64, irq: bool) -> impl Iterator<Item = VcpuView> + '_ {
        (0..self.list.len()).map(move |k| self.view(k, now, irq))
    }

    /// The index here of vCPU `v` of `vm`.
    fn index(&self, vm: &Vm, v: VcpuId) -> Option<usize> {
        self.list
            .iter()
            .position(|&(i, w)| i == vm.id.0 as usize && w == v)
    }

    /// The next vCPU to run, round robin over the runnable ones.
    pub fn pick(&mut self) -> Option<(&'static Vm, VcpuId)> {
        let t = now();
        let mut rr = self.rr;
        let k = rr.pick(self.list.len(), |k| self.view(k, t, true).runnable(t));
        self.rr = rr;
        let (vm, v, slot) = self.slot(k?)?;
        slot.blocked.store(false, Ordering::Release);
        Some((vm, v))
    }

    /// Whether a vCPU other than `cur` could use this CPU now.
    pub fn others_runnable(&self, cur: (&Vm, VcpuId)) -> bool {
        let t = now();
        let cur = self.index(cur.0, cur.1).unwrap_or(usize::MAX);
        policy::others_runnable(self.views(t, true), cur, t)
    }

    /// Whether the running vCPU `cur` should give the CPU up now: it was told to look (a
    /// kick or the EL2 timer), and the policy says another vCPU should have it.
    pub fn should_preempt(&self, cpu: &PerCpu, cur: (&Vm, VcpuId)) -> bool {
        if !self.shared() || !cpu.resched.swap(false, Ordering::AcqRel) {
            return false;
        }
        let t = now();
        let cur = self.index(cur.0, cur.1).unwrap_or(usize::MAX);
        policy::should_preempt(self.views(t, true), cur, t >= self.slice_end, t)
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
        // Another vCPU of the same VM coming here must not use the leaving one's TLB entries,
        // whose local invalidations it did not see.
        tlb::flush_guest_local();
        let host = machine().intids;
        cpu.redist.clear_active(host.virt_timer);
        cpu.redist.clear_active(host.phys_timer);
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
        let cur = cur.map(|(vm, v)| self.index(vm, v).unwrap_or(usize::MAX));
        timer::set_hyp_deadline(policy::wake_at(
            self.views(t, false),
            cur,
            self.slice_end,
            t,
        ));
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
        self.views(t, true).any(|v| v.runnable(t)).then_some(())
    }
}
