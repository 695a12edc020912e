//! Physical interrupts taken while a guest runs or a CPU idles, and the list registers.
//!
//! IRQs stay masked at EL2: the core polls ICC_IAR1_EL1 after an IRQ exit or a WFI. The
//! guest's timer PPIs are handed to it as hardware interrupts (the guest's deactivation
//! deactivates the physical one); everything else is deactivated here.

use super::percpu::PerCpu;
use super::vm::Vm;
use super::{console, machine, vcpu};
use crate::arch::gic;
use crate::arch::regs::{read_sysreg, write_sysreg};
use crate::vgic::{Kick, ListRegs};
use abi::layout::{MAINTENANCE_INTID, PTIMER_INTID, VTIMER_INTID};
use abi::{IntId, VcpuId};

/// The SGI one CPU sends another to make it look at its vCPU's pending interrupts or power
/// state.
pub const KICK_SGI: u32 = 8;

/// The physical list registers of this CPU.
pub struct HwListRegs;

macro_rules! lr_access {
    ($n:expr, $read:expr, $($i:literal),*) => {
        match $n {
            $($i => if let Some(v) = $read {
                write_sysreg!(concat!("ich_lr", $i, "_el2"), v); 0
            } else {
                read_sysreg!(concat!("ich_lr", $i, "_el2"))
            },)*
            _ => 0,
        }
    };
}

fn lr(n: usize, write: Option<u64>) -> u64 {
    lr_access!(n, write, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

/// ICH_VTR_EL2.ListRegs field: number of list registers minus one.
const VTR_LIST_REGS: u64 = 0x1f;

impl ListRegs for HwListRegs {
    fn count(&self) -> usize {
        (read_sysreg!("ich_vtr_el2") & VTR_LIST_REGS) as usize + 1
    }
    fn read(&self, n: usize) -> u64 {
        lr(n, None)
    }
    fn write(&mut self, n: usize, value: u64) {
        lr(n, Some(value));
    }
    fn empty_mask(&self) -> u64 {
        read_sysreg!("ich_elrsr_el2")
    }
    fn eoi_mask(&self) -> u64 {
        read_sysreg!("ich_eisr_el2")
    }
    fn set_underflow_irq(&mut self, on: bool) {
        use crate::arch::regs::ICH_HCR;
        let v = if on {
            ICH_HCR::EN::SET + ICH_HCR::UIE::SET
        } else {
            ICH_HCR::EN::SET
        };
        write_sysreg!("ich_hcr_el2", v.value);
    }
}

/// Clears this CPU's list registers and active-priority state for a vCPU starting afresh.
pub fn reset_list_registers() {
    let mut l = HwListRegs;
    for n in 0..l.count() {
        l.write(n, 0);
    }
    write_sysreg!("ich_ap0r0_el2", 0);
    write_sysreg!("ich_ap1r0_el2", 0);
    write_sysreg!("ich_vmcr_el2", 0);
    l.set_underflow_irq(false);
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

/// Takes every pending physical interrupt. `running` is the vCPU this CPU is running, if any.
pub fn handle_pending(cpu: &PerCpu, running: Option<(&Vm, VcpuId)>) {
    while let Some(intid) = gic::acknowledge() {
        gic::end_of_interrupt(intid);
        if intid == VTIMER_INTID.0 || intid == PTIMER_INTID.0 {
            if let Some((vm, v)) = running {
                // Stays active until the guest deactivates the virtual one.
                super::stats::count(super::stats::Counter::TimerInjected);
                let k = vm.vgic.inject_mapped(v, IntId(intid));
                kick(vm, v, k);
                continue;
            }
            // No guest to give it to: silence the timer that fired.
            write_sysreg!("cntv_ctl_el0", 0);
            write_sysreg!("cntp_ctl_el0", 0);
        } else if Some(intid) == machine().uart_intid {
            console_input(running);
        } else if intid != KICK_SGI && intid != MAINTENANCE_INTID.0 {
            log::warn!("CPU {}: unexpected interrupt {intid}", cpu.index);
        }
        gic::deactivate(intid);
    }
}

/// Moves typed characters into the guest's UART.
fn console_input(running: Option<(&Vm, VcpuId)>) {
    let Some(vm) = super::VM.get() else {
        console::drain_rx(|_| true);
        return;
    };
    let me = running.map(|(_, v)| v).unwrap_or(VcpuId(u16::MAX));
    let mut uart = vm.uart.lock();
    console::drain_rx(|b| uart.model.push_rx(b));
    vcpu::update_uart_line(vm, me, &mut uart);
}
