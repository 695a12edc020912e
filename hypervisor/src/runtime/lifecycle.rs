//! A VM's life after boot: its devices (re)created by the VMM, stopping, resetting and
//! restarting it, and the machine powering off when no VM is left.
//!
//! Resets are carried out by whichever CPU first finds all of a VM's vCPUs off
//! ([`service`]), outside interrupt handling.

use super::machine::vms;
use super::percpu::PerCpu;
use super::vm::{Power, Vm};
use super::{console, fault, irq, partition, stats};
use crate::arch::firmware::{self, Conduit};
use abi::VcpuId;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Once;

/// A VM reset or start is waiting for a CPU to carry it out.
static SERVICE: AtomicBool = AtomicBool::new(false);
/// The firmware conduit, known as soon as the tree is read (power-off needs it early).
static CONDUIT: Once<Conduit> = Once::new();
/// The VMM fault the hypervisor's command line planned (a test hook).
static VMM_FAULT: Once<abi::vmm::FaultPlan> = Once::new();

/// Records how the firmware is reached, for [`power_off`].
pub fn set_conduit(c: Conduit) {
    CONDUIT.call_once(|| c);
}

/// Records the VMM fault the hypervisor's command line planned.
pub fn set_vmm_fault(plan: abi::vmm::FaultPlan) {
    VMM_FAULT.call_once(|| plan);
}

/// Asks the VMM to (re)create `vm`'s devices (nothing for a VM it does not serve).
pub fn start_devices(cpu: &PerCpu, vm: &Vm) -> Result<(), partition::Down> {
    if !vm.spec.served {
        return Ok(());
    }
    let p = partition::get().ok_or(partition::Down)?;
    let req = abi::vmm::Request::VmStart {
        vm: vm.id,
        ram_base: vm.ram.ipa,
        ram_size: vm.ram.size,
        fault: VMM_FAULT.get().copied().unwrap_or_default(),
        devices: vm.spec.devices,
        disk: vm.spec.disk,
        mac: vm.spec.mac,
    };
    match p.request(cpu, vm, None, req) {
        Ok(r) if r.status == abi::vmm::Status::Ok => {}
        _ => return Err(partition::Down),
    }
    let Some(slice) = vm.spec.vars.filter(|_| vm.flash.is_some()) else {
        return Ok(());
    };
    match p.request(
        cpu,
        vm,
        None,
        abi::vmm::Request::VarsStore { vm: vm.id, slice },
    ) {
        Ok(r) if r.status == abi::vmm::Status::Ok => Ok(()),
        // The VMM could not read the store: the variables would not be kept, so the VM
        // does not start rather than lose what it writes.
        Ok(_) => {
            log::error!(
                "VM {}: its variable store (sectors {}+{} of the machine's disk) cannot be read or written",
                vm.id.0,
                slice.start,
                slice.sectors
            );
            Err(partition::Down)
        }
        Err(e) => Err(e),
    }
}

/// Reports why the machine cannot go on, and powers it off.
pub fn fail(msg: core::fmt::Arguments<'_>) -> ! {
    log::error!("{msg}");
    power_off()
}

/// Powers the machine off through PSCI (QEMU exits); halts if that is not possible.
pub fn power_off() -> ! {
    if let Some(c) = CONDUIT.get() {
        firmware::call(*c, firmware::PSCI_SYSTEM_OFF, 0, 0, 0);
    }
    log::error!("cannot power off: halting");
    fault::halt()
}

/// Carries out VM resets and starts that wait for their vCPUs to stop (any CPU may: the
/// first to find a VM's vCPUs all off does it).
pub fn service(cpu: &PerCpu) {
    // A load first: this runs on every interrupt exit, and a swap would write the line.
    if !SERVICE.load(Ordering::Acquire) || !SERVICE.swap(false, Ordering::AcqRel) {
        return;
    }
    let mut waiting = false;
    for vm in vms() {
        finish_reset(cpu, vm);
        waiting |= vm.resetting.load(Ordering::Acquire);
    }
    if waiting {
        SERVICE.store(true, Ordering::Release);
    }
}

/// Kicks the CPU of every vCPU of `vm`, so that each looks at the VM's state again.
fn kick_all(vm: &Vm) {
    let mut kick = crate::vgic::Kick::default();
    for i in 0..vm.vcpus.len() {
        kick.add(VcpuId(i as u16));
    }
    irq::kick(vm, VcpuId(u16::MAX), kick);
}

/// Whether every VM is done: none runs, none is being reset, none waits to be started. The
/// machine then has nothing left to do.
fn all_done() -> bool {
    vms().iter().all(|vm| {
        !vm.alive.load(Ordering::Acquire)
            && !vm.resetting.load(Ordering::Acquire)
            && vm.started.load(Ordering::Acquire)
    })
}

/// Called when `vm` powered off or died: stops its vCPUs; powers the machine off when no
/// VM is left to run.
pub fn vm_stopped(vm: &Vm) {
    stop_vm(vm);
    if all_done() {
        stats::print();
        log::info!("VM {} stopped; no VM left: powering off", vm.id.0);
        power_off();
    }
    log::info!("VM {} \"{}\" stopped", vm.id.0, vm.spec.name);
}

/// Stops `vm`'s vCPUs (each on its own CPU, which turns it off).
pub fn stop_vm(vm: &Vm) {
    vm.alive.store(false, Ordering::Release);
    for slot in vm.vcpus.iter() {
        // A vCPU started but not yet picked up will not run now.
        if slot.power() == Power::OnPending {
            slot.set_power(Power::Off);
        }
    }
    kick_all(vm);
}

/// Called when a vCPU of `vm` asked for a reset (or the monitor did): stops every vCPU; the
/// first CPU to find them all off rebuilds the VM (see [`finish_reset`]).
pub fn vm_reset(vm: &Vm, _caller: VcpuId) {
    vm.started.store(true, Ordering::Release);
    vm.resetting.store(true, Ordering::Release);
    SERVICE.store(true, Ordering::Release);
    stop_vm(vm);
}

/// Rebuilds `vm` once a reset was asked for and all its vCPUs are off.
fn finish_reset(cpu: &PerCpu, vm: &Vm) {
    if !vm.resetting.load(Ordering::Acquire) || vm.vcpus.iter().any(|s| s.power() != Power::Off) {
        return;
    }
    if vm
        .resetting
        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let reloaded = vm
        .reload()
        .map_err(|e| alloc::format!("{e}"))
        .and_then(|boot| {
            start_devices(cpu, vm)
                .map(|()| boot)
                .map_err(|_| "the VMM partition did not recreate its devices".into())
        });
    match reloaded {
        Ok(boot) => {
            console::vm_restarted(vm.id.0 as usize);
            log::info!("VM {} \"{}\": starting", vm.id.0, vm.spec.name);
            // Alive first: until then the vCPU's CPU turns a vCPU about to start off.
            vm.alive.store(true, Ordering::Release);
            vm.start_boot_vcpu(&boot);
            kick_all(vm);
        }
        Err(e) => {
            log::error!("VM {} \"{}\": start failed: {e}", vm.id.0, vm.spec.name);
            vm_stopped(vm);
        }
    }
}
