//! Running a vCPU on its physical CPU: entry, the exit loop, and each exit's answer.
//!
//! The exit path allocates nothing and logs nothing except rate-limited guest misbehaviour.
//! A vCPU alone on its CPU keeps its EL1 system registers, FP/SIMD and timer state in the CPU
//! between exits; only x0-x30, PC and PSTATE are switched. When several vCPUs share a CPU
//! ([`super::sched`]), the scheduler switches the rest when another vCPU takes the CPU.

use super::machine::machine;
use super::percpu::PerCpu;
use super::sched::{Leave, Sched};
use super::stats::Counter;
use super::vm::{Power, VcpuSlot, Vm};
use super::{irq, lifecycle, partition, ratelimit::RateLimit};
use crate::arch::exception::{self, ExitKind, GuestRegs};
use crate::arch::{cpu, el1, el2, firmware, id, timer, tlb, trap};
use crate::exit::{self, Exit, MmioAccess};
use crate::inject::{self, GuestException};
use crate::psci::{self, PsciAction, PsciContext, PsciStatus, VcpuPower};
use crate::sysreg;
use abi::layout::PL011_BASE;
use abi::vmm::Request;
use abi::{GuestPhysAddr, VcpuId};
use core::sync::atomic::Ordering;
use hypervisor::controls;

/// What the run loop does after an exit.
enum Flow {
    Continue,
    Leave(Leave),
}

static WARN_ABORT: RateLimit = RateLimit::new();
static WARN_UNDEF: RateLimit = RateLimit::new();
/// An access the core cannot emulate (no syndrome) is a guest bug or an attack: said once.
static WARN_NO_SYNDROME: RateLimit = RateLimit::once();

/// Clears what a vCPU starting afresh must not inherit from the last one here.
fn reset_cpu_interface(cpu: &PerCpu) {
    // Stale stage-1/2 TLB entries of this VMID on this CPU go before first use.
    tlb::flush_guest_local();
    irq::reset_list_registers();
    // A timer interrupt the previous vCPU here never deactivated would block this one's.
    let host = machine().intids;
    cpu.redist.clear_active(host.virt_timer);
    cpu.redist.clear_active(host.phys_timer);
}

/// Runs vCPU `v` of `vm` on this CPU until it powers off, its VM stops, or (on a shared CPU)
/// it waits or is preempted.
pub fn run(cpu: &PerCpu, sched: &mut Sched, vm: &Vm, v: VcpuId) -> Leave {
    let Some(slot) = vm.vcpu(v) else {
        return Leave::Stopped;
    };
    let fresh = slot.power() == Power::OnPending;
    sched.switch_to(cpu, vm, v, fresh);
    el2::load_guest_controls(&controls::for_guest(
        vm.shared, v, vm.cntvoff, vm.vtcr, vm.vttbr,
    ));
    let mut state = slot.state.lock();
    if fresh {
        el1::reset_for_boot(controls::boot_sctlr());
        reset_cpu_interface(cpu);
        vm.vgic.unload(v);
        state.regs = GuestRegs::default();
        state.regs.x[0] = slot.context.load(Ordering::Acquire);
        state.regs.elr = slot.entry.load(Ordering::Acquire);
        state.regs.spsr = controls::boot_spsr();
        slot.set_power(Power::On);
    }
    sched.arm_timer(Some((vm, v)));
    let regs = &mut state.regs;
    let mut lrs = irq::HwListRegs;
    let leave = loop {
        if !vm.alive.load(Ordering::Acquire) || slot.power() != Power::On {
            break Leave::Stopped;
        }
        if slot.paused() {
            if sched.shared() {
                break Leave::Preempted;
            }
            while slot.paused() && vm.alive.load(Ordering::Acquire) {
                irq::handle_pending(cpu, Some((vm, v)));
                cpu::wfi();
            }
            continue;
        }
        // A kick or the slice's end may have been taken during any exit (an upcall too).
        if sched.shared() && cpu.resched.load(Ordering::Acquire) {
            if sched.should_preempt(cpu, (vm, v)) {
                break Leave::Preempted;
            }
            sched.arm_timer(Some((vm, v)));
        }
        partition::deliver_input(cpu, vm, Some(v));
        if vm.vgic.needs_flush(v) {
            vm.vgic.flush(v, &mut lrs);
        }
        irq::raise_virq_if_due();
        let kind = exception::run(regs);
        irq::lower_virq();
        vm.vgic.sync(v, &mut lrs);
        let flow = match kind {
            ExitKind::Irq | ExitKind::Fiq => {
                slot.count(Counter::Irq);
                flush_uart(cpu, vm, v);
                irq::handle_pending(cpu, Some((vm, v)));
                lifecycle::service(cpu);
                Flow::Continue
            }
            ExitKind::Sync => handle_sync(cpu, sched, vm, v, slot, regs),
            ExitKind::SError => {
                guest_died(vm, v, regs, "an SError (asynchronous external abort)");
                Flow::Leave(Leave::Stopped)
            }
        };
        if let Flow::Leave(l) = flow {
            break l;
        }
    };
    if leave == Leave::Stopped {
        timer::silence_guest_timers();
        if slot.power() == Power::On {
            slot.set_power(Power::Off);
        }
    }
    leave
}

/// A vCPU waits for an interrupt (WFI, or a PSCI CPU_SUSPEND): on a shared CPU it gives the
/// CPU away when another vCPU can use it; otherwise the CPU sleeps until an interrupt.
fn wait_for_interrupt(cpu: &PerCpu, sched: &Sched, vm: &Vm, v: VcpuId, slot: &VcpuSlot) -> Flow {
    flush_uart(cpu, vm, v);
    if !vm.vgic.has_pending(v) {
        if sched.shared() && sched.others_runnable((vm, v)) {
            slot.deadline.store(u64::MAX, Ordering::Release);
            Sched::block(slot);
            return Flow::Leave(Leave::Blocked);
        }
        sched.arm_timer(Some((vm, v)));
        cpu::wfi();
    }
    irq::handle_pending(cpu, Some((vm, v)));
    lifecycle::service(cpu);
    Flow::Continue
}

fn handle_sync(
    cpu: &PerCpu,
    sched: &Sched,
    vm: &Vm,
    v: VcpuId,
    slot: &VcpuSlot,
    regs: &mut GuestRegs,
) -> Flow {
    let trap::Syndrome { esr, far, hpfar } = trap::syndrome();
    let skip = exit::instruction_len(esr);
    match exit::decode(esr, far, hpfar) {
        Exit::Mmio(access) => mmio_exit(cpu, vm, v, slot, regs, &access, far, skip),
        Exit::DataAbortNoSyndrome { ipa, far, write } => {
            WARN_NO_SYNDROME.warn(format_args!(
                "VM {} vCPU {}: access to {} without a syndrome (pair/writeback/SIMD): abort injected",
                vm.id.0, v.0, ipa
            ));
            inject(regs, GuestException::DataAbort { far, write });
        }
        Exit::CacheMaintenance { .. } => regs.elr += skip,
        Exit::StageTwoFetch { far, .. } => {
            if fetch_fault_in_vectors(regs) {
                guest_died(vm, v, regs, "its exception vectors are not in its memory");
                return Flow::Leave(Leave::Stopped);
            }
            inject(regs, GuestException::InstructionAbort { far });
        }
        Exit::PermissionFault {
            far,
            write,
            fetch,
            access,
        } => {
            // A write to flash in read-array mode (mapped read-only): a command for the
            // flash's model. HPFAR_EL2 does not give the address of a permission fault.
            let flash = match (fetch, access) {
                (false, Some(ls)) if vm.flash.is_some() => trap::translate_far(far, write)
                    .map(|ipa| ls.at(GuestPhysAddr(ipa)))
                    .filter(|a| vm.is_flash(a.ipa)),
                _ => None,
            };
            match flash {
                Some(access) => mmio_exit(cpu, vm, v, slot, regs, &access, far, skip),
                None if fetch => inject(regs, GuestException::InstructionAbort { far }),
                None => inject(regs, GuestException::DataAbort { far, write }),
            }
        }
        Exit::Abort(a) => {
            let far = a.far.unwrap_or(0);
            if a.fetch {
                inject(regs, GuestException::InstructionAbort { far });
            } else {
                inject(
                    regs,
                    GuestException::DataAbort {
                        far,
                        write: a.write,
                    },
                );
            }
        }
        Exit::Hvc { .. } => {
            slot.count(Counter::Hvc);
            return psci_call(cpu, sched, vm, v, slot, regs);
        }
        Exit::Smc { .. } => {
            slot.count(Counter::Hvc);
            regs.elr += skip;
            return psci_call(cpu, sched, vm, v, slot, regs);
        }
        Exit::Wfi => {
            slot.count(Counter::Wfi);
            regs.elr += skip;
            return wait_for_interrupt(cpu, sched, vm, v, slot);
        }
        Exit::Wfe => {
            // Trapped only on a shared CPU: the vCPU spins on a lock, perhaps held by a vCPU
            // waiting for this CPU.
            slot.count(Counter::Wfi);
            regs.elr += skip;
            if sched.others_runnable((vm, v)) {
                return Flow::Leave(Leave::Preempted);
            }
        }
        Exit::SysReg(acc) => {
            slot.count(Counter::SysReg);
            if acc.read && acc.reg.is_id_register() {
                if acc.rt != 31 {
                    regs.x[acc.rt as usize] = id_register(acc.reg);
                }
                regs.elr += skip;
            } else if !acc.read && acc.reg == sysreg::ICC_SGI1R_EL1 {
                let value = if acc.rt == 31 {
                    0
                } else {
                    regs.x[acc.rt as usize]
                };
                let kick = vm.vgic.send_sgi(v, value);
                irq::kick(vm, v, kick);
                regs.elr += skip;
            } else if !acc.read
                && (acc.reg == sysreg::ICC_ASGI1R_EL1 || acc.reg == sysreg::ICC_SGI0R_EL1)
            {
                // Group 0 and "other security state" SGIs do not exist for a guest with one
                // security state: ignored, as the GIC architecture does.
                regs.elr += skip;
            } else {
                WARN_UNDEF.warn(format_args!(
                    "VM {} vCPU {}: trapped system register {:?}: UNDEF injected",
                    vm.id.0, v.0, acc.reg
                ));
                inject(regs, GuestException::Undefined);
            }
        }
        Exit::Unknown { ec, iss, .. } => {
            slot.count(Counter::Other);
            WARN_UNDEF.warn(format_args!(
                "VM {} vCPU {}: unexpected trap EC {ec:#x} ISS {iss:#x} at {:#x}: UNDEF injected",
                vm.id.0, v.0, regs.elr
            ));
            inject(regs, GuestException::Undefined);
        }
    }
    Flow::Continue
}

/// Size of an AArch64 exception vector table.
const VECTOR_TABLE_SIZE: u64 = 0x800;

/// Whether the instruction fetch that just faulted was inside the guest's own vector table:
/// injecting the abort would fault again at once, forever. Such a guest is dead.
fn fetch_fault_in_vectors(regs: &GuestRegs) -> bool {
    regs.elr.wrapping_sub(el1::vector_base()) < VECTOR_TABLE_SIZE
}

/// Hands posted console output to the VMM (on a WFI or a timer tick, so that output appears
/// even when the guest writes nothing more).
fn flush_uart(cpu: &PerCpu, vm: &Vm, v: VcpuId) {
    if let Some(p) = partition::get() {
        let _ = p.flush_posted(cpu, vm, Some(v));
    }
}

/// A described load or store to a device: emulated and stepped over, or answered with an
/// abort.
#[allow(clippy::too_many_arguments)]
fn mmio_exit(
    cpu: &PerCpu,
    vm: &Vm,
    v: VcpuId,
    slot: &VcpuSlot,
    regs: &mut GuestRegs,
    access: &MmioAccess,
    far: u64,
    skip: u64,
) {
    slot.count(Counter::Mmio);
    match emulate_mmio(cpu, vm, v, regs, access) {
        Ok(()) => regs.elr += skip,
        Err(why) => {
            if why == MmioError::Unclaimed {
                WARN_ABORT.warn(format_args!(
                    "VM {} vCPU {}: access to {} which nothing emulates: abort injected",
                    vm.id.0, v.0, access.ipa
                ));
            }
            let write = access.write;
            inject(regs, GuestException::DataAbort { far, write });
        }
    }
}

/// UARTDR's offset in the PL011 frame (PL011 TRM 3.3.1).
const UARTDR: u64 = 0x000;
/// UARTFR's offset (PL011 TRM 3.3.3).
const UARTFR: u64 = 0x018;

/// Why an access could not be completed; the guest gets an abort either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MmioError {
    /// No device at that address.
    Unclaimed,
    /// The device's model failed (the VMM answered with an error, or is down: said there).
    DeviceFailed,
}

/// Emulates a described load or store to a device of the core or of the VMM partition.
fn emulate_mmio(
    cpu: &PerCpu,
    vm: &Vm,
    v: VcpuId,
    regs: &mut GuestRegs,
    a: &MmioAccess,
) -> Result<(), MmioError> {
    let size = a.size.bytes() as u8;
    let mask = if size == 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    };
    let store_value = if a.reg == 31 {
        0
    } else {
        regs.x[a.reg as usize] & mask
    };
    let loaded = if crate::vgic::Vgic::handles(a.ipa, vm.vcpus.len()) {
        if a.write {
            let kick = vm.vgic.mmio_write(v, a.ipa, size, store_value);
            irq::kick(vm, v, kick);
            None
        } else {
            Some(vm.vgic.mmio_read(v, a.ipa, size))
        }
    } else if abi::layout::vmm_device(a.ipa)
        && (abi::layout::flash_bank(a.ipa).is_none() || vm.flash.is_some())
    {
        let Some(p) = partition::get() else {
            return Err(MmioError::DeviceFailed);
        };
        // The UART's console fast path (see abi::vmm::UartShadow): a flag read or a data
        // write needs no upcall.
        let uart_off = a.ipa.0.wrapping_sub(PL011_BASE.0);
        if uart_off == UARTFR && !a.write {
            if let Some(fr) = p.uart_flags(vm) {
                if a.reg != 31 {
                    regs.x[a.reg as usize] = u64::from(fr) & mask;
                }
                return Ok(());
            }
        }
        if uart_off == UARTDR && a.write && p.post_uart_tx(cpu, vm, Some(v), store_value as u8) {
            return Ok(());
        }
        let req = Request::Mmio {
            vm: vm.id,
            vcpu: v,
            ipa: a.ipa,
            size,
            write: a.write,
            data: store_value,
        };
        match p.request(cpu, vm, Some(v), req) {
            Ok(resp) if resp.status == abi::vmm::Status::Ok => {
                if resp.flash.valid {
                    vm.set_flash_array(resp.flash.array);
                }
                partition::deliver_input(cpu, vm, Some(v));
                (!a.write).then_some(resp.value)
            }
            _ => return Err(MmioError::DeviceFailed),
        }
    } else {
        return Err(MmioError::Unclaimed);
    };
    if let Some(raw) = loaded {
        let raw = raw & mask;
        let width = if a.sixty_four { 64 } else { 32 };
        let mut value = if a.sign_extend {
            let shift = 64 - size as u32 * 8;
            (((raw << shift) as i64) >> shift) as u64
        } else {
            raw
        };
        if width == 32 {
            value &= u32::MAX as u64;
        }
        if a.reg != 31 {
            regs.x[a.reg as usize] = value;
        }
    }
    Ok(())
}

/// A trapped ID register read (trapped on shared CPUs only): the machine's value, less what
/// such a guest must not use.
fn id_register(reg: sysreg::SysRegId) -> u64 {
    sysreg::shared_cpu_id_value(reg, id::read(reg.crm, reg.op2))
}

fn inject(regs: &mut GuestRegs, exc: GuestException) {
    let e = inject::entry(exc, regs.elr, regs.spsr, el1::vector_base(), true);
    el1::deliver(&e);
    regs.elr = e.pc;
    regs.spsr = e.spsr;
}

struct Psci<'a> {
    vm: &'a Vm,
    caller: VcpuId,
}

impl PsciContext for Psci<'_> {
    fn caller(&self) -> VcpuId {
        self.caller
    }
    fn vcpu_count(&self) -> usize {
        self.vm.vcpus.len()
    }
    fn power_state(&self, v: VcpuId) -> VcpuPower {
        match self.vm.vcpu(v).map(|s| s.power()) {
            Some(Power::On) => VcpuPower::On,
            Some(Power::OnPending) => VcpuPower::OnPending,
            _ => VcpuPower::Off,
        }
    }
    fn is_guest_ram(&self, ipa: GuestPhysAddr) -> bool {
        self.vm.is_ram(ipa)
    }
    fn firmware_arch_features(&self, fid: u32) -> i32 {
        machine().arch_features(fid)
    }
}

fn psci_call(
    cpu: &PerCpu,
    sched: &Sched,
    vm: &Vm,
    v: VcpuId,
    slot: &VcpuSlot,
    regs: &mut GuestRegs,
) -> Flow {
    let call = psci::decode(regs.x[0], regs.x[1], regs.x[2], regs.x[3]);
    let action = psci::handle(&call, &Psci { vm, caller: v });
    match action {
        PsciAction::Return(x0) => regs.x[0] = x0,
        PsciAction::CpuOn {
            target,
            entry,
            context,
        } => {
            let ok = vm
                .vcpu(target)
                .is_some_and(|s| s.request_on(entry.0, context));
            regs.x[0] = if ok {
                PsciStatus::Success.to_x0()
            } else {
                PsciStatus::AlreadyOn.to_x0()
            };
            if ok {
                let mut k = crate::vgic::Kick::default();
                k.add(target);
                irq::kick(vm, v, k);
            }
        }
        PsciAction::CpuOff => {
            slot.set_power(Power::Off);
            return Flow::Leave(Leave::Stopped);
        }
        PsciAction::CpuSuspend { .. } => {
            // Every suspend is a standby, as KVM does: wait for an interrupt, then return
            // SUCCESS (allowed for power-down states too: the caller resumes after the call).
            regs.x[0] = PsciStatus::Success.to_x0();
            return wait_for_interrupt(cpu, sched, vm, v, slot);
        }
        PsciAction::SystemOff => {
            flush_uart(cpu, vm, v);
            log::info!("VM {}: guest powered off", vm.id.0);
            lifecycle::vm_stopped(vm);
            return Flow::Leave(Leave::Stopped);
        }
        PsciAction::SystemReset => {
            flush_uart(cpu, vm, v);
            log::info!("VM {}: guest asked for a reset", vm.id.0);
            lifecycle::vm_reset(vm, v);
            return Flow::Leave(Leave::Stopped);
        }
        PsciAction::ForwardWorkaround(fid) => {
            if let Some(conduit) = machine().conduit {
                firmware::call(conduit, fid, regs.x[1], regs.x[2], regs.x[3]);
            }
        }
    }
    Flow::Continue
}

/// Reports a guest that cannot go on and stops its VM.
pub fn guest_died(vm: &Vm, v: VcpuId, regs: &GuestRegs, why: &str) {
    let s = trap::syndrome();
    log::error!(
        "VM {} vCPU {} died: {why}: ESR_EL2 {:#x} FAR_EL2 {:#x} PC {:#x} PSTATE {:#x}",
        vm.id.0,
        v.0,
        s.esr,
        s.far,
        regs.elr,
        regs.spsr
    );
    for (i, r) in regs.x.chunks(4).enumerate() {
        let n = i * 4;
        match r {
            [a, b, c, d] => log::error!("  x{n:<2} {a:#018x} {b:#018x} {c:#018x} {d:#018x}"),
            [a, b, c] => log::error!("  x{n:<2} {a:#018x} {b:#018x} {c:#018x}"),
            _ => {}
        }
    }
    lifecycle::vm_stopped(vm);
}
