//! Physical interrupts taken while a guest runs or a CPU idles, and the list registers.
//!
//! IRQs stay masked at EL2: the core polls ICC_IAR1_EL1 after an IRQ exit or a WFI. The
//! guest's timer PPIs are handed to it as hardware interrupts (the guest's deactivation
//! deactivates the physical one); everything else is deactivated here.
//!
//! A leaf of the runtime: the console's receive interrupt and the machine's devices' go to the
//! [`Handlers`] boot registered, so this module depends on neither the monitor nor the VMM
//! partition, which both call it.

/// Where interrupts this module does not handle itself go.
pub struct Handlers {
    /// The console UART received something.
    pub uart_rx: fn(),
    /// One of the machine's devices the VMM drives raised `intid`; whether it was one.
    pub host_irq: fn(u32) -> bool,
}

static HANDLERS: Once<Handlers> = Once::new();

/// Registers the handlers (once, at boot, before interrupts are enabled).
pub fn set_handlers(h: Handlers) {
    HANDLERS.call_once(|| h);
}

use super::machine::{machine, vms};
use super::percpu::PerCpu;
use super::vm::{Power, Vm};
use crate::arch::{cpuif, el2, gic, timer};
use crate::vgic::{Kick, ListRegs};
use abi::layout::{PTIMER_INTID, VTIMER_INTID};
use abi::{IntId, VcpuId};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Once;

/// The SGI one CPU sends another to make it look at its vCPU's pending interrupts or power
/// state.
pub const KICK_SGI: u32 = 8;

/// The physical list registers of this CPU.
pub struct HwListRegs;

impl ListRegs for HwListRegs {
    fn count(&self) -> usize {
        cpuif::list_registers()
    }
    fn read(&self, n: usize) -> u64 {
        cpuif::read_lr(n)
    }
    fn write(&mut self, n: usize, value: u64) {
        cpuif::write_lr(n, value);
    }
    fn empty_mask(&self) -> u64 {
        cpuif::empty_lrs()
    }
    fn eoi_mask(&self) -> u64 {
        cpuif::eoi_lrs()
    }
    fn set_underflow_irq(&mut self, on: bool) {
        use crate::arch::regs::ICH_HCR;
        let v = if on {
            ICH_HCR::EN::SET + ICH_HCR::UIE::SET
        } else {
            ICH_HCR::EN::SET
        };
        cpuif::set_control(v.value);
    }
}

/// Whether the core raises the guest's virtual IRQ itself, with HCR_EL2.VI, instead of
/// relying on the GIC to signal it from the list registers: for a machine whose GIC does not
/// (`rhyve.virq=hcr`; QEMU 10.0.0-10.0.2's imx8mp-evk leaves its GIC's virtual IRQ output
/// unconnected). Set once at boot.
static VIRQ_BY_HCR: AtomicBool = AtomicBool::new(false);

/// Turns [`VIRQ_BY_HCR`] on (at boot, before any guest runs).
pub fn set_virq_by_hcr(on: bool) {
    VIRQ_BY_HCR.store(on, Ordering::Release);
}

/// Before entering the guest, with [`VIRQ_BY_HCR`]: raises its virtual IRQ while a list
/// register holds an interrupt it would take, and asks for the no-pending maintenance
/// interrupt, so that its acknowledge (the LR going active) exits and [`lower_virq`] drops
/// the line again: it must not stay up once nothing is pending.
pub fn raise_virq_if_due() {
    if !VIRQ_BY_HCR.load(Ordering::Relaxed) {
        return;
    }
    use crate::arch::regs::ICH_HCR;
    let due = crate::vgic::signals_virtual_irq(&HwListRegs, cpuif::machine_control());
    let npie = ICH_HCR::NPIE::SET.value;
    let hcr = cpuif::control();
    cpuif::set_control(if due { hcr | npie } else { hcr & !npie });
    el2::set_virtual_irq(due);
}

/// After an exit, with [`VIRQ_BY_HCR`]: the virtual IRQ and the no-pending maintenance
/// interrupt down, so neither fires at EL2 while the core works; the next entry decides again.
pub fn lower_virq() {
    if !VIRQ_BY_HCR.load(Ordering::Relaxed) {
        return;
    }
    use crate::arch::regs::ICH_HCR;
    cpuif::set_control(cpuif::control() & !ICH_HCR::NPIE::SET.value);
    el2::set_virtual_irq(false);
}

/// Clears this CPU's list registers and active-priority state for a vCPU starting afresh.
pub fn reset_list_registers() {
    let mut l = HwListRegs;
    for n in 0..l.count() {
        l.write(n, 0);
    }
    cpuif::reset_state();
}

/// Sends a kick to the CPU of every vCPU in `kick` other than `me`.
pub fn kick(vm: &Vm, me: VcpuId, kick: Kick) {
    for v in kick.iter() {
        if v != me {
            if let Some(slot) = vm.vcpu(v) {
                super::stats::count(super::stats::Counter::KickSent);
                gic::send_sgi(KICK_SGI, slot.pcpu_aff);
            }
        }
    }
}

/// Takes every pending physical interrupt. `running` is the vCPU this CPU is running, if any;
/// without one, the guest timers' interrupts go to the vCPU loaded on the CPU, if any.
pub fn handle_pending(cpu: &PerCpu, running: Option<(&Vm, VcpuId)>) {
    while let Some(intid) = gic::acknowledge() {
        gic::end_of_interrupt(intid);
        let host = machine().intids;
        // The guest's timer PPI behind the machine's (the guest keeps QEMU virt's numbers).
        let guest_timer = if intid == host.virt_timer {
            Some(VTIMER_INTID)
        } else if intid == host.phys_timer {
            Some(PTIMER_INTID)
        } else {
            None
        };
        if let Some(guest_intid) = guest_timer {
            // The timers are those of the vCPU loaded here, also while the core works for
            // another VM (its start, an upcall on its behalf): while it is on, theirs to
            // take, not to be silenced.
            let owner = running.or_else(|| {
                let (i, v) = cpu.loaded()?;
                let vm = vms().get(i)?;
                (vm.vcpu(v)?.power() == Power::On).then_some((vm, v))
            });
            if let Some((vm, v)) = owner {
                // Stays active until the guest deactivates the virtual one.
                if let Some(slot) = vm.vcpu(v) {
                    slot.count(super::stats::Counter::TimerInjected);
                }
                let k = vm.vgic.inject_mapped(v, guest_intid, IntId(intid));
                kick(vm, v, k);
                continue;
            }
            // No guest to give it to: silence the timer that fired.
            timer::silence_guest_timers();
        } else if intid == host.hyp_timer {
            // Silenced until re-armed; the CPU's scheduler looks again.
            timer::set_hyp_deadline(None);
            cpu.resched.store(true, Ordering::Release);
        } else if intid == KICK_SGI {
            cpu.resched.store(true, Ordering::Release);
        } else if Some(intid) == machine().uart_intid {
            if let Some(h) = HANDLERS.get() {
                (h.uart_rx)();
            }
        } else if HANDLERS.get().is_some_and(|h| (h.host_irq)(intid)) {
            // Masked until the VMM has seen it (`deliver_input`).
        } else if intid != host.maintenance {
            log::warn!("CPU {}: unexpected interrupt {intid}", cpu.index);
        }
        gic::deactivate(intid);
    }
}
