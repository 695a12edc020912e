//! The core's life on the machine: boot on the primary CPU, bring up the others, build the
//! VMs the boot bundle describes, then every CPU runs the vCPUs placed on it.
//!
//! Lock order across the runtime: a vCPU's context -> a CPU's VMM vCPU -> partition stage 2
//! -> console input rings -> vGIC locks -> console.

pub mod console;
pub mod fault;
pub mod irq;
pub mod memory;
pub mod monitor;
pub mod partition;
pub mod percpu;
pub mod ratelimit;
pub mod sched;
pub mod stats;
pub mod vcpu;
pub mod vm;

use crate::arch::cpu::{self, BootArgs};
use crate::arch::firmware::{self, Conduit};
use crate::arch::gic::{self, Distributor, Redistributor};
use crate::arch::{boot, exception, mmu};
use abi::layout::{HTIMER_INTID, MAINTENANCE_INTID, PTIMER_INTID, VTIMER_INTID};
use abi::vmm::DeviceSet;
use abi::{VcpuId, VmId};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use hypervisor::platform::{self, Platform, MAX_CPUS};
use memory::FreeRam;
use percpu::PerCpu;
use sched::{Leave, Sched};
use spin::Once;
use vm::{Power, Vm, VmSpec};
use vmboot::bundle::Bundle;
use vmboot::config::{self, Source, VmDesc};

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

use crate::{placement, psci};

static MACHINE: Once<Machine> = Once::new();
/// The VMs, by id.
static VMS: Once<Vec<Vm>> = Once::new();
static ONLINE: AtomicUsize = AtomicUsize::new(0);
/// A VM reset or start is waiting for a CPU to carry it out.
static SERVICE: AtomicBool = AtomicBool::new(false);
/// The firmware conduit, known as soon as the tree is read (power-off needs it early).
static CONDUIT: Once<Conduit> = Once::new();
/// The VMM fault the hypervisor's command line planned (a test hook).
static VMM_FAULT: Once<abi::vmm::FaultPlan> = Once::new();

/// The VMs, by id (empty until they are built).
pub fn vms() -> &'static [Vm] {
    VMS.get().map_or(&[], |v| v.as_slice())
}

/// Asks the VMM to (re)create `vm`'s devices (nothing for a VM it does not serve).
fn start_devices(cpu: &PerCpu, vm: &Vm) -> Result<(), partition::Down> {
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
    // SAFETY: the firmware passed the device tree's address in x0; `from_ptr` checks its
    // header before reading the rest.
    let (plat, dtb_size) = match unsafe { fdt::Fdt::from_ptr(dtb as *const u8) } {
        Ok(tree) => match platform::discover(&tree) {
            Ok(p) => (p, tree.total_size()),
            Err(_) => fault::halt(),
        },
        Err(_) => fault::halt(),
    };
    if let (Some(uart), Some(kind)) = (plat.uart, plat.uart_kind) {
        // SAFETY: the tree's stdout UART, of the kind its `compatible` names; the MMU is off,
        // so its address is usable as is.
        unsafe { console::init(kind, uart) };
    }
    console::init_logger();
    if let Some(c) = plat.psci {
        CONDUIT.call_once(|| c);
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

    let conduit = plat.psci;
    let machine = describe(&plat, conduit, boot_args);
    let machine = MACHINE.call_once(|| machine);
    machine.gicd.init();
    let cpu0 = init_this_cpu(machine, 0);

    let nr = machine.nr_cpus;
    let bundle = boot_bundle(&plat);
    let descs = config::parse(bundle.config);
    for (addr, size) in preloaded(&descs) {
        if addr < heap + HEAP_SIZE && heap < addr.saturating_add(size) {
            fail(format_args!(
                "configuration: preloaded memory {addr:#x}+{size:#x} overlaps the hypervisor's heap at {heap:#x}: load it lower"
            ));
        }
        free.reserve(addr, size);
    }
    let ram = plat.ram.as_slice();
    let vms = build_vms(&bundle, descs, &mut free, ram, nr, &machine.cpu_affs[..nr]);
    if vms.is_empty() {
        fail(format_args!("no VM could be built: nothing to run"));
    }
    let vms = VMS.call_once(|| vms);
    VMM_FAULT.call_once(|| plat.vmm_fault);
    if vms.iter().any(|vm| vm.spec.served) {
        match partition::create(&mut free, cpu0, nr, plat.virtio_mmio.as_slice()) {
            Ok(p) => p.enable_host_irqs(&machine.gicd, cpu0.aff),
            Err(e) => log::error!("{e}: the VMs it would serve do not start"),
        }
    }
    for vm in vms.iter().filter(|vm| vm.started.load(Ordering::Acquire)) {
        if start_devices(cpu0, vm).is_err() {
            log::error!(
                "VM {} \"{}\" not started: the VMM partition did not create its devices",
                vm.id.0,
                vm.spec.name
            );
            vm.alive.store(false, Ordering::Release);
            vm.started.store(false, Ordering::Release);
            if let Some(s) = vm.vcpu(VcpuId(0)) {
                s.set_power(Power::Off);
            }
        }
    }
    console::set_vm_names(vms.iter().map(|vm| vm.spec.name.as_str()));
    if let Some(intid) = machine.uart_intid {
        machine.gicd.enable_spi(intid, cpu0.aff);
        console::enable_rx_interrupt();
    }
    start_secondaries(machine);
    cpu_loop(cpu0)
}

/// The boot bundle, found where the loader put it.
fn boot_bundle(plat: &Platform) -> Bundle<'static> {
    let Some((start, end)) = plat.bundle else {
        fail(format_args!(
            "no boot bundle: pass one as the initrd (QEMU -initrd, or booti's initrd argument)"
        ))
    };
    // SAFETY: the loader placed the bundle at [start, end), which stays reserved for ever.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) };
    match Bundle::parse(bytes) {
        Ok(b) => b,
        Err(e) => fail(format_args!("boot bundle refused: {e}")),
    }
}

/// The memory of kernels and initrds a description says are already in RAM (placed by QEMU's
/// generic loader, or a boot loader): kept out of the RAM handed out.
fn preloaded(descs: &[Result<VmDesc, config::ConfigError>]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for d in descs.iter().flatten() {
        for src in core::iter::once(&d.kernel).chain(d.initrd.as_ref()) {
            if let Source::Memory { addr, size } = *src {
                out.push((addr, size));
            }
        }
    }
    out
}

/// The bytes `src` names: a file of the bundle, or memory a loader filled (which must be RAM
/// of the machine and clear of the hypervisor's own).
fn source_bytes(
    bundle: &Bundle<'static>,
    src: &Source,
    field: &str,
    ram: &[crate::arch::mmu::RamRange],
) -> Result<&'static [u8], String> {
    match src {
        Source::Bundle(name) => bundle.file(name).ok_or_else(|| {
            alloc::format!("field \"{field}\": no file \"{name}\" in the boot bundle")
        }),
        Source::Memory { addr, size } => {
            let end = addr.checked_add(*size);
            let inside = end.is_some_and(|e| {
                ram.iter()
                    .any(|r| *addr >= r.start && e <= r.start + r.size)
            });
            if !inside || *size == 0 {
                return Err(alloc::format!(
                    "field \"{field}\": {addr:#x}+{size:#x} is not in the machine's RAM"
                ));
            }
            // SAFETY: RAM of the machine that `preloaded` kept out of every allocation; the
            // loader that filled it is done, and nothing writes it from now on.
            Ok(unsafe { core::slice::from_raw_parts(*addr as *const u8, *size as usize) })
        }
    }
}

/// Builds every VM the bundle's configuration describes; one that cannot be built is reported
/// with its reason and the others go on.
fn build_vms(
    bundle: &Bundle<'static>,
    descs: Vec<Result<VmDesc, config::ConfigError>>,
    free: &mut FreeRam,
    ram: &[crate::arch::mmu::RamRange],
    nr_cpus: usize,
    affs: &[u64],
) -> Vec<Vm> {
    let mut load = [0usize; MAX_CPUS];
    let mut placed = Vec::new();
    for d in descs {
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                log::error!("configuration: {e}: that VM is not started");
                continue;
            }
        };
        let kernel = source_bytes(bundle, &d.kernel, "kernel", ram);
        let initrd = d
            .initrd
            .as_ref()
            .map(|s| source_bytes(bundle, s, "initrd", ram))
            .transpose();
        let (kernel, initrd) = match (kernel, initrd) {
            (Ok(k), Ok(i)) => (k, i),
            (Err(e), _) | (_, Err(e)) => {
                log::error!(
                    "configuration: vm \"{}\": {e}: that VM is not started",
                    d.name
                );
                continue;
            }
        };
        let Some(placement) = placement::place(d.vcpus, d.cpus, nr_cpus, &mut load) else {
            log::error!(
                "configuration: vm \"{}\": field \"cpus\": none of those CPUs exists (the machine has {nr_cpus}): that VM is not started",
                d.name
            );
            continue;
        };
        // The parser refused any VM whose writable slice overlaps another's.
        let disk = d.disk_slice();
        let spec = VmSpec {
            served: d.devices != DeviceSet::NONE,
            name: d.name,
            vcpus: d.vcpus,
            mem_size: d.mem_size,
            kernel,
            initrd,
            cmdline: d.cmdline,
            autostart: d.autostart,
            devices: d.devices,
            disk,
            mac: d.mac,
        };
        placed.push((spec, placement));
    }
    let mut vms = Vec::new();
    for (spec, placement) in placed {
        let shared = placement::shares_a_cpu(&placement, &load);
        let id = VmId(vms.len() as u16);
        let name = spec.name.clone();
        match Vm::build(id, spec, free, &placement, affs, shared) {
            Ok(vm) => vms.push(vm),
            Err(e) => {
                for &c in &placement {
                    load[c] -= 1;
                }
                log::error!("VM \"{name}\" not started: {e}");
            }
        }
    }
    vms
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
        HTIMER_INTID.0,
    ] {
        redist.enable_private(intid);
    }
    gic::init_cpu_interface();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    Box::leak(Box::new(PerCpu::new(index, aff, redist)))
}

fn start_secondaries(machine: &'static Machine) {
    let Some(conduit) = machine.conduit else {
        log::warn!("no PSCI in the device tree: running on one CPU");
        return;
    };
    let me = cpu::affinity(cpu::mpidr());
    let used = |index: usize| {
        vms()
            .iter()
            .any(|vm| vm.vcpus.iter().any(|s| s.pcpu == index))
    };
    for (index, &aff) in machine.cpu_affs[..machine.nr_cpus].iter().enumerate() {
        if aff == me || !used(index) {
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

/// Every CPU's life after boot: run the vCPUs placed here as its scheduler picks them;
/// sleep when none can run.
fn cpu_loop(cpu: &'static PerCpu) -> ! {
    let mut sched = Sched::new(cpu.index);
    loop {
        service(cpu);
        if let Some((vm, v)) = sched.pick() {
            if vcpu::run(cpu, &mut sched, vm, v) == Leave::Stopped {
                service(cpu);
            }
            continue;
        }
        if let Some(vm) = vms().get(monitor::focus_vm()) {
            irq::deliver_input(cpu, vm, None);
        }
        sched.idle(cpu);
    }
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
        .and_then(|()| {
            start_devices(cpu, vm)
                .map_err(|_| "the VMM partition did not recreate its devices".into())
        });
    match reloaded {
        Ok(()) => {
            console::vm_restarted(vm.id.0 as usize);
            log::info!("VM {} \"{}\": starting", vm.id.0, vm.spec.name);
            vm.alive.store(true, Ordering::Release);
            kick_all(vm);
        }
        Err(e) => {
            log::error!("VM {} \"{}\": start failed: {e}", vm.id.0, vm.spec.name);
            vm_stopped(vm);
        }
    }
}
