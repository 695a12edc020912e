//! The core's start on the machine: the primary CPU reads the firmware's tree, brings up the
//! console, the heap and the GIC, builds the VMs, starts the other CPUs; then every CPU runs
//! the vCPUs placed on it ([`cpu_loop`]).

use super::lifecycle::{self, fail, service, start_devices};
use super::machine::{self, machine, vms, Machine};
use super::memory::{self, FreeRam};
use super::percpu::PerCpu;
use super::sched::{Leave, Sched};
use super::vm::Power;
use super::{build, console, fault, input, irq, monitor, partition, vcpu};
use crate::arch::cpu::{self, BootArgs};
use crate::arch::firmware::{self, Conduit};
use crate::arch::gic::{self, Distributor, Redistributor};
use crate::arch::{boot, exception, mmu};
use crate::psci;
use abi::VcpuId;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};
use hypervisor::efi::{Handoff, Kept};
use hypervisor::platform::{self, Platform, MAX_CPUS};
use hypervisor::ram::Own;
use vmboot::config;

/// Heap for page tables and VM state.
const HEAP_SIZE: u64 = 16 << 20;
/// Stack of each secondary CPU.
const STACK_SIZE: usize = 64 * 1024;

/// CPUs that have set themselves up.
static ONLINE: AtomicUsize = AtomicUsize::new(0);

/// The primary CPU's Rust entry: x0 from the loader (the device tree), the load base, and the
/// UEFI entry's handoff (`efi`), 0 when a loader started the image as a kernel.
#[no_mangle]
pub extern "C" fn primary_main(dtb: usize, image_base: usize, efi: usize) -> ! {
    // Read first: its page is free RAM to the core.
    // SAFETY: a non-zero `efi` is the address of the Handoff the UEFI entry filled.
    let efi = (efi != 0).then(|| unsafe { Handoff::read(efi) });
    exception::install_vectors();
    squeeze_tree(dtb);
    // SAFETY: the firmware passed the device tree's address in x0; `from_ptr` checks its
    // header before reading the rest.
    let Ok(tree) = (unsafe { fdt::Fdt::from_ptr(dtb as *const u8) }) else {
        // Without a tree nothing names a console to say so on.
        fault::halt()
    };
    // The console first, on its own: whatever else the tree lacks is then said on it.
    let uart = platform::console::find(&tree);
    if let Some(u) = uart {
        // SAFETY: the tree's console UART, of the kind its `compatible` (or `earlycon=`)
        // names; the MMU is off, so its address is usable as is.
        unsafe { console::init(&u.config) };
    }
    console::init_logger();
    if let Some(u) = uart {
        log::info!(
            "console UART: {} at {:#x} (from {})",
            u.config.kind.name(),
            u.config.base,
            u.source.describe()
        );
    }
    let mut plat = match platform::discover(&tree) {
        Ok(p) => p,
        Err(e) => fault::stop(format_args!("rhyve cannot run on this machine: {e}")),
    };
    let kept = match efi {
        None => Kept::default(),
        Some(None) => fault::stop(format_args!(
            "the UEFI entry's handoff is not valid: its magic or bundle range is wrong"
        )),
        Some(Some(h)) => {
            // UEFI's tree names no initrd: the bundle is where the UEFI entry read it.
            plat.bundle = Some((h.bundle_start, h.bundle_end));
            log::info!(
                "booted by UEFI: boot bundle at {:#x}..{:#x}",
                h.bundle_start,
                h.bundle_end
            );
            for &(start, size) in h.kept.as_slice() {
                log::info!(
                    "UEFI keeps {start:#x}..{:#x} (runtime services, reserved): not for guests",
                    start + size
                );
            }
            h.kept
        }
    };
    let dtb_size = tree.total_size();
    if let Some(c) = plat.psci {
        lifecycle::set_conduit(c);
    }
    log::info!(
        "rhyve {} starting at {:#x} on {} CPUs of {}",
        env!("CARGO_PKG_VERSION"),
        image_base,
        plat.cpus.as_slice().len(),
        plat.board
    );
    describe_board(&plat);
    // SAFETY: primary CPU, MMU off, secondaries not started.
    let boot_args = unsafe { mmu::enable_primary(plat.ram.as_slice()) };
    let mut free = free_ram(&plat, dtb, dtb_size, image_base);
    for &(start, size) in kept.as_slice() {
        free.reserve(start, size);
    }
    let Some(heap) = free.carve(HEAP_SIZE, 4096) else {
        fail(format_args!("no RAM for the heap"))
    };
    // SAFETY: carved from free RAM, never used for anything else.
    unsafe { memory::init_heap(heap, HEAP_SIZE) };

    if plat.virq_by_hcr {
        log::warn!(
            "rhyve.virq=hcr: guests' virtual IRQs are raised with HCR_EL2.VI (for a GIC that does not signal them)"
        );
        irq::set_virq_by_hcr(true);
    }
    let conduit = plat.psci;
    let machine = describe(&plat, conduit, boot_args);
    let machine = machine::describe_machine(machine);
    machine.gicd.init();
    let cpu0 = init_this_cpu(machine, 0);
    // Before any of them is enabled: interrupts the irq leaf hands on.
    irq::set_handlers(irq::Handlers {
        uart_rx: monitor::uart_rx,
        host_irq: partition::take_host_irq,
    });

    let nr = machine.nr_cpus;
    let bundle = build::boot_bundle(&plat);
    let descs = config::parse(bundle.config);
    for (addr, size) in build::preloaded(&descs) {
        if addr < heap + HEAP_SIZE && heap < addr.saturating_add(size) {
            fail(format_args!(
                "configuration: preloaded memory {addr:#x}+{size:#x} overlaps the hypervisor's heap at {heap:#x}: load it lower"
            ));
        }
        free.reserve(addr, size);
    }
    let ram = plat.ram.as_slice();
    let vms = build::build_vms(&bundle, descs, &mut free, ram, nr, &machine.cpu_affs[..nr]);
    if vms.is_empty() {
        fail(format_args!("no VM could be built: nothing to run"));
    }
    let vms = machine::set_vms(vms);
    lifecycle::set_vmm_fault(plat.vmm_fault);
    if vms.iter().any(|vm| vm.spec.served) {
        let clock = wall_clock(&plat);
        match partition::create(&mut free, cpu0, nr, plat.virtio_mmio.as_slice(), clock) {
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

/// Largest device tree rhyve reads (a board's is tens of KiB; the spec allows more, no
/// firmware passes it).
const MAX_TREE: usize = 2 << 20;

/// Squeezes the NOP tokens a firmware's edits left out of its tree at `dtb`, in place, before
/// anything reads it (`platform::nops`: the `fdt` crate misreads trees with them).
fn squeeze_tree(dtb: usize) {
    if dtb == 0 || !dtb.is_multiple_of(4) {
        return;
    }
    // SAFETY: the loader passed the tree's address in x0; its 8-byte header (magic and
    // size) is read before anything else, and only a tree that says it is one is used.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, 8) };
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let total = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if magic != 0xd00d_feed || !(8..=MAX_TREE).contains(&total) {
        return;
    }
    // SAFETY: the tree's own `totalsize` bytes, in RAM the loader handed over with it; no
    // other code runs yet, so nothing else reads or writes them.
    let blob = unsafe { core::slice::from_raw_parts_mut(dtb as *mut u8, total) };
    // A tree that does not read is left as it is, and reported by what reads it next.
    let _ = platform::nops::squeeze_nops(blob);
}

/// The primary CPU's Rust entry when the loader entered the image at an exception level other
/// than EL2 (`el`, from CurrentEL): nothing of the hypervisor may run there, but the console
/// can still say why rhyve stops. It touches no system register and no shared state.
#[no_mangle]
pub extern "C" fn primary_wrong_el(dtb: usize, el: u64) -> ! {
    let why = match el {
        3 => "the firmware jumped to it from its secure monitor level; it must drop to non-secure EL2 first",
        1 => "the firmware or loader left EL2 before starting it (QEMU needs -M virt,virtualization=on; U-Boot must not switch to EL1)",
        _ => "no loader starts an image there",
    };
    squeeze_tree(dtb);
    // SAFETY: as in `primary_main`: x0 from the loader, its header checked first.
    if let Ok(tree) = unsafe { fdt::Fdt::from_ptr(dtb as *const u8) } {
        if let Some(u) = platform::console::find(&tree) {
            // SAFETY: the tree's console UART; the MMU is off (the boot protocol) and this
            // CPU is the only one running.
            unsafe {
                console::write_unshared(
                    &u.config,
                    format_args!(
                        "\nrhyve: error: rhyve must be entered at EL2 (entered at EL{el}): {why}; halting\n"
                    ),
                )
            };
        }
    }
    fault::halt()
}

/// The machine's time of day: its RTC's seconds, read once here (its frame identity-mapped as
/// device memory, as every address outside RAM is), paired with the physical counter. Guests'
/// RTCs run from it. Without an RTC the time starts at 0 (1970), and the log says so.
fn wall_clock(plat: &Platform) -> abi::vmm::WallClock {
    // SAFETY: the frame of the tree's `arm,pl031` node; reading RTCDR has no side effect.
    let seconds = plat
        .rtc
        .and_then(|base| unsafe { bsp::pl031::read_seconds(base as usize) });
    let clock = abi::vmm::WallClock {
        seconds: seconds.map_or(0, u64::from),
        count: crate::arch::timer::now(),
        frequency: crate::arch::timer::frequency(),
    };
    match seconds {
        Some(s) => log::info!("machine time: {s} s since 1970 (its PL031 RTC)"),
        None => log::warn!("the machine has no PL031 RTC: guests' clocks start at 1970"),
    }
    clock
}

/// What the log says of the board before anything depends on it: what a port checks first.
/// Also settles the counter's frequency when the firmware left CNTFRQ_EL0 at 0.
fn describe_board(plat: &Platform) {
    for r in plat.ram.as_slice() {
        log::info!("RAM {:#x}..{:#x}", r.start, r.start + r.size);
    }
    for &(s, size) in plat.reserved.as_slice() {
        log::info!("reserved {:#x}..{:#x}", s, s + size);
    }
    if plat.reserved_dynamic > 0 {
        log::info!(
            "{} /reserved-memory pool(s) without reg left alone: the OS that boots allocates them",
            plat.reserved_dynamic
        );
    }
    if let Some(q) = plat.quirk {
        log::info!("board quirk ({}): {}", q.compatible, q.why);
    }
    let i = plat.intids;
    log::info!(
        "GICv3 at {:#x}, {} redistributor region(s); maintenance INTID {}, timers: EL1 phys {}, virt {}, EL2 {}",
        plat.gicd,
        plat.gicr.as_slice().len(),
        i.maintenance,
        i.phys_timer,
        i.virt_timer,
        i.hyp_timer
    );
    if crate::arch::timer::frequency() == 0 {
        let Some(f) = plat.timer_frequency else {
            fail(format_args!(
                "CNTFRQ_EL0 is 0 and the timer node has no clock-frequency: the counter's rate is unknown"
            ))
        };
        log::warn!("CNTFRQ_EL0 is 0: the counter runs at {f} Hz, as the tree's timer node says");
        crate::arch::timer::set_tree_frequency(f);
    }
}

fn free_ram(plat: &Platform, dtb: usize, dtb_size: usize, image_base: usize) -> FreeRam {
    extern "C" {
        static __image_end: u8;
    }
    let image_end = core::ptr::addr_of!(__image_end) as u64;
    let own = Own {
        image: (image_base as u64, image_end - image_base as u64),
        tree: (dtb as u64, dtb_size as u64),
    };
    FreeRam::for_machine(plat, own)
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
        gicr_stride: plat.gicr_stride,
        intids: plat.intids,
        boot_args,
        arch_features,
    }
}

/// Sets up this CPU's redistributor and CPU interfaces; returns its per-CPU record.
fn init_this_cpu(machine: &Machine, index: usize) -> &'static PerCpu {
    let aff = cpu::affinity(cpu::mpidr());
    let stride = machine.gicr_stride.map(|s| s as usize);
    let redist = machine.gicr.as_slice().iter().find_map(|&(base, size)| {
        // SAFETY: a GICR region from the tree, identity-mapped as device memory.
        unsafe { Redistributor::find(base as usize, size as usize, stride, aff) }
    });
    let Some(redist) = redist else {
        fail(format_args!(
            "CPU {index}: no redistributor for affinity {aff:#x}"
        ))
    };
    redist.init();
    let host = machine.intids;
    for intid in [
        irq::KICK_SGI,
        host.maintenance,
        host.virt_timer,
        host.phys_timer,
        host.hyp_timer,
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
        if let Some(vm) = vms().get(input::focus_vm()) {
            partition::deliver_input(cpu, vm, None);
        }
        sched.idle(cpu);
    }
}
