//! Physical interrupts taken while a guest runs or a CPU idles, and the list registers.
//!
//! IRQs stay masked at EL2: the core polls ICC_IAR1_EL1 after an IRQ exit or a WFI. The
//! guest's timer PPIs are handed to it as hardware interrupts (the guest's deactivation
//! deactivates the physical one); everything else is deactivated here.

use super::percpu::PerCpu;
use super::vm::{Power, Vm};
use super::{console, machine, monitor, partition, sched};
use crate::arch::{cpuif, gic, timer};
use crate::vgic::{Kick, ListRegs};
use abi::layout::{HTIMER_INTID, MAINTENANCE_INTID, PTIMER_INTID, VTIMER_INTID};
use abi::vmm::{Request, MAX_VMS};
use abi::{IntId, VcpuId};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

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
        if intid == VTIMER_INTID.0 || intid == PTIMER_INTID.0 {
            // The timers are those of the vCPU loaded here, also while the core works for
            // another VM (its start, an upcall on its behalf): while it is on, theirs to
            // take, not to be silenced.
            let owner = running.or_else(|| {
                let (i, v) = cpu.loaded()?;
                let vm = super::vms().get(i)?;
                (vm.vcpu(v)?.power() == Power::On).then_some((vm, v))
            });
            if let Some((vm, v)) = owner {
                // Stays active until the guest deactivates the virtual one.
                if let Some(slot) = vm.vcpu(v) {
                    slot.count(super::stats::Counter::TimerInjected);
                }
                let k = vm.vgic.inject_mapped(v, IntId(intid));
                kick(vm, v, k);
                continue;
            }
            // No guest to give it to: silence the timer that fired.
            timer::silence_guest_timers();
        } else if intid == HTIMER_INTID.0 {
            sched::htimer_fired(cpu);
        } else if intid == KICK_SGI {
            cpu.resched.store(true, Ordering::Release);
        } else if Some(intid) == machine().uart_intid {
            console_input();
        } else if partition::get().is_some_and(|p| p.take_host_irq(&machine().gicd, intid)) {
            // Masked until the VMM has seen it (`deliver_input`).
        } else if intid != MAINTENANCE_INTID.0 {
            log::warn!("CPU {}: unexpected interrupt {intid}", cpu.index);
        }
        gic::deactivate(intid);
    }
}

/// Typed bytes not yet taken by a guest's UART (its FIFO was full, or they arrived while the
/// VMM was busy): kept here so that nothing typed is lost.
struct InputRing {
    buf: [u8; INPUT_RING],
    head: usize,
    len: usize,
}

const INPUT_RING: usize = 256;

/// One ring per VM: input typed for one VM never reaches another.
static INPUT: [Mutex<InputRing>; MAX_VMS] = [const {
    Mutex::new(InputRing {
        buf: [0; INPUT_RING],
        head: 0,
        len: 0,
    })
}; MAX_VMS];
static INPUT_WAITING: [AtomicBool; MAX_VMS] = [const { AtomicBool::new(false) }; MAX_VMS];
static DELIVERING: AtomicBool = AtomicBool::new(false);

impl InputRing {
    fn push(&mut self, b: u8) -> bool {
        if self.len == INPUT_RING {
            return false;
        }
        self.buf[(self.head + self.len) % INPUT_RING] = b;
        self.len += 1;
        true
    }

    /// Up to 8 bytes from the front, packed, and how many.
    fn peek8(&self) -> (u8, u64) {
        let n = self.len.min(8);
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.buf[(self.head + i) % INPUT_RING]) << (i * 8);
        }
        (n as u8, v)
    }

    fn pop(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % INPUT_RING;
        self.len -= n;
    }
}

/// Takes typed bytes off the machine's UART: escapes and monitor keys to the monitor, the
/// rest into the input ring of the VM that has the console; the VM gets them at the next
/// [`deliver_input`] (never from here: this may run inside a VMM upcall).
fn console_input() {
    let focus = monitor::focus_vm();
    let room = INPUT
        .get(focus)
        .map_or(INPUT_RING, |r| INPUT_RING - r.lock().len);
    // Taken off the UART first: the monitor prints, which needs the console's lock.
    let mut typed = [0u8; INPUT_RING];
    let mut n = 0;
    console::drain_rx(room, |b| {
        typed[n] = b;
        n += 1;
    });
    let mut full = false;
    for &b in &typed[..n] {
        monitor::feed(b, |vm, b| {
            if let (Some(ring), Some(waiting)) = (INPUT.get(vm), INPUT_WAITING.get(vm)) {
                let mut ring = ring.lock();
                ring.push(b);
                full |= ring.len == INPUT_RING;
                waiting.store(true, Ordering::Release);
            }
        });
    }
    if full {
        // Leave the rest in the UART and stop its interrupt until the guest reads.
        console::set_rx_interrupt(false);
    }
}

/// Hands bytes typed for `vm` to its UART, in the VMM, as far as its FIFO takes them.
///
/// The ring's lock is never held across the upcall: an interrupt taken while the VMM runs
/// may add bytes to it (see [`console_input`]). One CPU delivers at a time.
pub fn deliver_input(cpu: &PerCpu, vm: &Vm, running: Option<VcpuId>) {
    // The machine's devices' interrupts go to the VMM in the name of a VM it serves.
    if let Some(p) = partition::get() {
        if vm.spec.served {
            p.deliver_host_irqs(cpu, &machine().gicd, vm, running);
        } else if let Some(other) = super::vms().iter().find(|v| v.spec.served) {
            p.deliver_host_irqs(cpu, &machine().gicd, other, None);
        }
    }
    let i = vm.id.0 as usize;
    let (Some(ring), Some(waiting)) = (INPUT.get(i), INPUT_WAITING.get(i)) else {
        return;
    };
    if !waiting.load(Ordering::Acquire) || DELIVERING.swap(true, Ordering::AcqRel) {
        return;
    }
    match partition::get() {
        Some(p) if vm.spec.served => loop {
            let (len, bytes) = {
                let ring = ring.lock();
                if ring.len == 0 {
                    break;
                }
                ring.peek8()
            };
            let req = Request::ConsoleInput {
                vm: vm.id,
                len,
                bytes,
            };
            // Without a VMM nobody can read them: drop them.
            let taken = p
                .request(cpu, vm, running, req)
                .map_or(len as usize, |r| (r.value as usize).min(len as usize));
            ring.lock().pop(taken);
            if taken < len as usize {
                break;
            }
        },
        // Nothing reads a console here: what was typed is dropped.
        _ => {
            let mut ring = ring.lock();
            let n = ring.len;
            ring.pop(n);
        }
    }
    let ring = ring.lock();
    if ring.len < INPUT_RING {
        console::set_rx_interrupt(true);
    }
    waiting.store(ring.len > 0, Ordering::Release);
    drop(ring);
    DELIVERING.store(false, Ordering::Release);
}
