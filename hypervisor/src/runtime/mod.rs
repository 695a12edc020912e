//! The core's life on the machine: boot on the primary CPU, bring up the others, build the
//! VM, then every CPU runs the vCPU pinned to it.
//!
//! Lock order across the runtime: a CPU's VMM vCPU -> partition stage 2 -> console input
//! ring -> vGIC locks -> console.

pub mod console;
pub mod fault;
pub mod irq;
pub mod memory;
pub mod partition;
pub mod percpu;
pub mod platform;
pub mod ratelimit;
pub mod stats;
pub mod vcpu;
pub mod vm;

use crate::arch::cpu::{self, BootArgs};
use crate::arch::firmware::{self, Conduit};
use crate::arch::gic::{self, Distributor, Redistributor};
use crate::arch::{boot, exception, mmu};
use abi::layout::{MAINTENANCE_INTID, PTIMER_INTID, VTIMER_INTID};
use abi::{VcpuId, VmId};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};
use memory::FreeRam;
use percpu::PerCpu;
use platform::{Platform, MAX_CPUS};
use spin::Once;
use vm::{Power, Vm};
use vmm::bundle::Bundle;

/// Heap for page tables and VM state.
const HEAP_SIZE: u64 = 16 << 20;
/// Stack of each secondary CPU.
const STACK_SIZE: usize = 64 * 1024;

/// What every CPU needs to know about the machine after boot.
pub struct Machine {
    /// MPIDR affinity of each CPU, in device-tree order.
    pub cpu_affs: [u64; MAX_CPUS],
    /// Number of CPUs.
    pub nr_cpus: usize,
    /// The firmware conduit.
    pub conduit: Option<Conduit>,
    /// The console UART's interrupt.
    pub uart_intid: Option<u32>,
    /// The distributor.
    pub gicd: Distributor,
    /// Redistributor regions.
    pub gicr: platform::List<(u64, u64), 4>,
    /// Translation registers for secondaries.
    pub boot_args: BootArgs,
    arch_features: [(u32, i32); 3],
}

impl Machine {
    /// The firmware's SMCCC_ARCH_FEATURES answer for a workaround function, probed at boot.
    pub fn arch_features(&self, fid: u32) -> i32 {
        self.arch_features
            .iter()
            .find(|(f, _)| *f == fid)
            .map_or(psci::PsciStatus::NotSupported as i32, |(_, r)| *r)
    }
}

use crate::psci;

static MACHINE: Once<Machine> = Once::new();
/// The VM (one, until the configuration issue brings several).
pub static VM: Once<Vm> = Once::new();
static ONLINE: AtomicUsize = AtomicUsize::new(0);
/// The firmware conduit, known as soon as the tree is read (power-off needs it early).
static CONDUIT: Once<Conduit> = Once::new();
/// The VMM fault the hypervisor's command line planned (a test hook).
static VMM_FAULT: Once<abi::vmm::FaultPlan> = Once::new();

/// Asks the VMM to (re)create `vm`'s devices.
fn start_devices(cpu: &PerCpu, vm: &Vm) -> Result<(), partition::Down> {
    let p = partition::get().ok_or(partition::Down)?;
    let req = abi::vmm::Request::VmStart {
        vm: vm.id,
        ram_base: vm.ram.ipa,
        ram_size: vm.ram.size,
        fault: VMM_FAULT.get().copied().unwrap_or_default(),
    };
    match p.request(cpu, vm, None, req) {
        Ok(r) if r.status == abi::vmm::Status::Ok => Ok(()),
        _ => Err(partition::Down),
    }
}

/// The machine description (set before any secondary CPU starts).
pub fn machine() -> &'static Machine {
    MACHINE
        .get()
        .expect("machine described before secondaries start")
}

fn fail(msg: core::fmt::Arguments<'_>) -> ! {
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

/// The primary CPU's Rust entry: x0 from the loader (the device tree), and the load base.
#[no_mangle]
pub extern "C" fn primary_main(dtb: usize, image_base: usize) -> ! {
    exception::install_vectors();
    // SAFETY: the firmware passed the device tree's address in x0.
    let (plat, dtb_size) = match unsafe { platform::discover(dtb) } {
        Ok(p) => p,
        Err(_) => fault::halt(),
    };
    if let Some(uart) = plat.uart {
        // SAFETY: the tree's stdout UART; the MMU is off, so its address is usable as is.
        unsafe { console::init(uart) };
    }
    console::init_logger();
    if let Some(c) = plat.psci {
        CONDUIT.call_once(|| c.0);
    }
    log::info!(
        "rhyve {} starting at {:#x} on {} CPUs",
        env!("CARGO_PKG_VERSION"),
        image_base,
        plat.cpus.as_slice().len()
    );
    // SAFETY: primary CPU, MMU off, secondaries not started.
    let boot_args = unsafe { mmu::enable_primary(plat.ram.as_slice()) };
    let mut free = free_ram(&plat, dtb, dtb_size, image_base);
    let Some(heap) = free.carve(HEAP_SIZE, 4096) else {
        fail(format_args!("no RAM for the heap"))
    };
    // SAFETY: carved from free RAM, never used for anything else.
    unsafe { memory::init_heap(heap, HEAP_SIZE) };

    let conduit = plat.psci.map(|c| c.0);
    let machine = describe(&plat, conduit, boot_args);
    let machine = MACHINE.call_once(|| machine);
    machine.gicd.init();
    let cpu0 = init_this_cpu(machine, 0);

    let Some((start, end)) = plat.bundle else {
        fail(format_args!(
            "no boot bundle: pass one as the initrd (QEMU -initrd, or booti's initrd argument)"
        ))
    };
    // SAFETY: the loader placed the bundle at [start, end), which stays reserved for ever.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) };
    let bundle = match Bundle::parse(bytes) {
        Ok(b) => b,
        Err(e) => fail(format_args!("boot bundle refused: {e}")),
    };
    // One VM until the core runs several: the first the configuration describes.
    let descs = vmm::config::parse(bundle.config);
    for e in descs.iter().filter_map(|d| d.as_ref().err()) {
        log::warn!("VM description refused: {e}");
    }
    let mut described = descs.iter().filter_map(|d| d.as_ref().ok());
    let Some(desc) = described.next() else {
        fail(format_args!(
            "the boot bundle describes no VM that can start"
        ))
    };
    if described.next().is_some() {
        log::warn!("only the first VM described, \"{}\", is started", desc.name);
    }
    let nr = machine.nr_cpus;
    let vm = match Vm::build(VmId(0), desc, &bundle, &mut free, &machine.cpu_affs[..nr]) {
        Ok(vm) => VM.call_once(|| vm),
        Err(e) => fail(format_args!("VM 0 not started: {e}")),
    };
    VMM_FAULT.call_once(|| plat.vmm_fault);
    match partition::create(&mut free, cpu0, nr) {
        Ok(_) => {}
        Err(e) => fail(format_args!("{e}")),
    }
    if start_devices(cpu0, vm).is_err() {
        fail(format_args!(
            "VM 0 not started: the VMM partition did not create its devices"
        ));
    }
    if let Some(intid) = machine.uart_intid {
        machine.gicd.enable_spi(intid, cpu0.aff);
        console::enable_rx_interrupt();
    }
    start_secondaries(machine);
    cpu_loop(cpu0)
}

fn free_ram(plat: &Platform, dtb: usize, dtb_size: usize, image_base: usize) -> FreeRam {
    extern "C" {
        static __image_end: u8;
    }
    let image_end = core::ptr::addr_of!(__image_end) as u64;
    let image_size = image_end - image_base as u64;
    let mut taken = platform::List::<(u64, u64), 24>::default();
    taken.push((image_base as u64, image_size));
    taken.push((dtb as u64, dtb_size as u64));
    if let Some((s, e)) = plat.bundle {
        taken.push((s, e - s));
    }
    for &r in plat.reserved.as_slice() {
        taken.push(r);
    }
    FreeRam::new(plat.ram.as_slice(), taken.as_slice())
}

fn describe(plat: &Platform, conduit: Option<Conduit>, boot_args: BootArgs) -> Machine {
    let mut cpu_affs = [0; MAX_CPUS];
    let cpus = plat.cpus.as_slice();
    for (slot, mpidr) in cpu_affs.iter_mut().zip(cpus) {
        *slot = cpu::affinity(*mpidr);
    }
    let mut arch_features = [
        (
            psci::fid::SMCCC_ARCH_WORKAROUND_1,
            psci::PsciStatus::NotSupported as i32,
        ),
        (
            psci::fid::SMCCC_ARCH_WORKAROUND_2,
            psci::PsciStatus::NotSupported as i32,
        ),
        (
            psci::fid::SMCCC_ARCH_WORKAROUND_3,
            psci::PsciStatus::NotSupported as i32,
        ),
    ];
    if let Some(c) = conduit {
        let version = firmware::call(c, firmware::SMCCC_VERSION, 0, 0, 0) as i32;
        if version >= 0x10001 {
            for (fid, answer) in arch_features.iter_mut() {
                *answer =
                    firmware::call(c, firmware::SMCCC_ARCH_FEATURES, *fid as u64, 0, 0) as i32;
            }
        }
    }
    Machine {
        cpu_affs,
        nr_cpus: cpus.len(),
        conduit,
        uart_intid: plat.uart_intid,
        // SAFETY: the tree's GICD frame, identity-mapped as device memory.
        gicd: unsafe { Distributor::new(plat.gicd) },
        gicr: plat.gicr,
        boot_args,
        arch_features,
    }
}

/// Sets up this CPU's redistributor and CPU interfaces; returns its per-CPU record.
fn init_this_cpu(machine: &Machine, index: usize) -> &'static PerCpu {
    let aff = cpu::affinity(cpu::mpidr());
    let redist = machine.gicr.as_slice().iter().find_map(|&(base, size)| {
        // SAFETY: a GICR region from the tree, identity-mapped as device memory.
        unsafe { Redistributor::find(base as usize, size as usize, aff) }
    });
    let Some(redist) = redist else {
        fail(format_args!(
            "CPU {index}: no redistributor for affinity {aff:#x}"
        ))
    };
    redist.init();
    for intid in [
        irq::KICK_SGI,
        MAINTENANCE_INTID.0,
        VTIMER_INTID.0,
        PTIMER_INTID.0,
    ] {
        redist.enable_private(intid);
    }
    gic::init_cpu_interface();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    Box::leak(Box::new(PerCpu { index, aff, redist }))
}

fn start_secondaries(machine: &'static Machine) {
    let Some(conduit) = machine.conduit else {
        log::warn!("no PSCI in the device tree: running on one CPU");
        return;
    };
    let me = cpu::affinity(cpu::mpidr());
    let needed = VM.get().map_or(1, |vm| vm.vcpus.len());
    for (index, &aff) in machine.cpu_affs[..machine.nr_cpus].iter().enumerate() {
        if aff == me || index >= needed {
            continue;
        }
        let stack = Box::leak(alloc::vec![0u8; STACK_SIZE].into_boxed_slice());
        let args = Box::leak(Box::new(BootArgs {
            stack_top: stack.as_ptr() as u64 + STACK_SIZE as u64,
            cpu_index: index as u64,
            ..machine.boot_args
        }));
        cpu::clean_dcache_range(
            args as *const BootArgs as usize,
            core::mem::size_of::<BootArgs>(),
        );
        let r = firmware::call(
            conduit,
            firmware::PSCI_CPU_ON_64,
            aff,
            boot::secondary_entry_addr() as u64,
            args as *const BootArgs as u64,
        );
        if r != 0 {
            log::error!(
                "CPU {index} (affinity {aff:#x}) did not start: PSCI error {}",
                r as i64
            );
        }
    }
}

/// A secondary CPU's Rust entry, MMU on, with its `BootArgs`.
#[no_mangle]
pub extern "C" fn secondary_main(args: &BootArgs) -> ! {
    exception::install_vectors();
    let cpu = init_this_cpu(machine(), args.cpu_index as usize);
    cpu_loop(cpu)
}

/// Every CPU's life after boot: run the vCPU pinned here whenever it is on; otherwise sleep
/// until kicked.
fn cpu_loop(cpu: &'static PerCpu) -> ! {
    loop {
        if let Some(vm) = VM.get() {
            let v = VcpuId(cpu.index as u16);
            if vm.alive.load(Ordering::Acquire)
                && vm.vcpu(v).is_some_and(|s| s.power() == Power::OnPending)
            {
                vcpu::run(cpu, vm, v);
            }
            finish_reset(cpu, vm);
            irq::deliver_input(cpu, vm, None);
            if vm.alive.load(Ordering::Acquire)
                && vm.vcpu(v).is_some_and(|s| s.power() == Power::OnPending)
            {
                continue;
            }
        }
        irq::handle_pending(cpu, None);
        cpu::wfi();
    }
}

/// Called when `vm` powered off or died: stops its vCPUs, and the machine when no VM is left.
pub fn vm_stopped(vm: &Vm) {
    vm.alive.store(false, Ordering::Release);
    stats::print();
    log::info!("VM {} stopped; no VM left: powering off", vm.id.0);
    power_off();
}

/// Called when a vCPU of `vm` asked for a reset: stops every vCPU; the CPU whose vCPU stops
/// last rebuilds the VM (see [`finish_reset`]).
pub fn vm_reset(vm: &Vm, caller: VcpuId) {
    vm.resetting.store(true, Ordering::Release);
    vm.alive.store(false, Ordering::Release);
    let mut kick = crate::vgic::Kick::default();
    for (i, slot) in vm.vcpus.iter().enumerate() {
        // A vCPU started but not yet picked up will not run now.
        if slot.power() == Power::OnPending {
            slot.set_power(Power::Off);
        }
        kick.add(VcpuId(i as u16));
    }
    irq::kick(vm, caller, kick);
}

/// Rebuilds `vm` once a reset was asked for and all its vCPUs are off. Every CPU calls this
/// when its vCPU stops and when it idles; the first to find all vCPUs off does the work.
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
        .and_then(|()| {
            start_devices(cpu, vm)
                .map_err(|_| "the VMM partition did not recreate its devices".into())
        });
    match reloaded {
        Ok(()) => {
            log::info!("VM {}: reset: starting again", vm.id.0);
            vm.alive.store(true, Ordering::Release);
            let mut kick = crate::vgic::Kick::default();
            kick.add(VcpuId(0));
            irq::kick(vm, VcpuId(u16::MAX), kick);
        }
        Err(e) => {
            log::error!("VM {}: reset failed: {e}", vm.id.0);
            vm_stopped(vm);
        }
    }
}
