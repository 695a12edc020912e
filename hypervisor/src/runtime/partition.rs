//! The VMM partition: the device models, deprivileged at EL1 with a stage-2 view of their own.
//!
//! One VMM vCPU per physical CPU, entered by synchronous upcall: a guest exit for a device
//! the VMM models switches this CPU's EL1 state and stage 2 to the VMM, hands it the request
//! as the return of its WAIT call, runs it until its next WAIT (serving the calls it makes
//! meanwhile, each checked by [`crate::vmmcall::check`]), and switches back. Any other
//! exception the VMM takes, or its PANIC call, ends the partition: the core logs it, every
//! later request fails at once, and the guests see their devices abort instead of hanging.
//!
//! Lock order: a VM's UART flush lock -> a CPU's VMM vCPU lock -> the stage-2 lock -> (a VM's
//! posted-bytes lock, vGIC locks, console). The flush lock is never taken inside an upcall.

use super::machine::{machine, vms};
use super::memory::{FreeRam, GuestRam};
use super::percpu::PerCpu;
use super::ratelimit::RateLimit;
use super::vm::Vm;
use super::{console, input, irq};
use crate::arch::el1::El1State;
use crate::arch::exception::{self, ExitKind, GuestRegs};
use crate::arch::stage2::{Stage2, BLOCK_SIZE, PAGE_SIZE};
use crate::arch::{timer, tlb, trap};
use crate::exit::{self, Exit};
use crate::hostdev::{self, HostDevice, Transport};
use crate::vmmcall::{self, Served, ServedVm, VmmCall};
use abi::vmm::{self as vabi, Request, Response, Status};
use abi::{HostPhysAddr, VcpuId, VmId};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use hypervisor::controls;
use hypervisor::platform::VirtioMmioNode;
use hypervisor::platform::MAX_CPUS;
use spin::{Mutex, Once};

/// The VMM image, built for EL1 and embedded at build time (see hypervisor/build.rs).
static IMAGE: &[u8] = include_bytes!(env!("RHYVE_VMM_IMAGE"));
/// The partition's stage-2 VMID (guests use 1 + their VM id).
const VMID: u8 = 255;

/// Why the partition stopped.
#[derive(Clone, Copy, Debug)]
pub struct Down;

/// One physical CPU's VMM vCPU.
struct VmmCpu {
    regs: GuestRegs,
    el1: El1State,
    started: bool,
}

/// The VMM partition.
pub struct Partition {
    stage2: Mutex<Stage2>,
    vttbr: u64,
    vtcr: u64,
    hcr: u64,
    alive: AtomicBool,
    mapped: [AtomicBool; vabi::MAX_VMS],
    cpus: Vec<Mutex<VmmCpu>>,
    /// Host-physical address of the partition's RAM (for its devices' DMA).
    ram_pa: u64,
    /// The machine's time of day, read at boot.
    clock: vabi::WallClock,
    /// The machine's devices it drives (`hostdev`), each mapped at its page of the VMM's view.
    host: [HostDevice; vabi::MAX_HOST_DEVICES],
    host_len: usize,
    /// A host device's interrupt fired and is masked until the VMM has seen it.
    host_irq: [AtomicBool; vabi::MAX_HOST_DEVICES],
}

/// Whether host device `d`'s interrupt goes to the VMM: the network card's, whose received
/// frames arrive whenever they do. The disk is polled: its requests complete inside the
/// upcall that makes them.
fn irq_to_vmm(d: &HostDevice) -> Option<u32> {
    (d.device_id == hostdev::device_id::NET)
        .then_some(d.transport.intid)
        .flatten()
}

static PARTITION: Once<Partition> = Once::new();
static WARN_DOWN: RateLimit = RateLimit::once();

/// The partition, once created.
pub fn get() -> Option<&'static Partition> {
    PARTITION.get()
}

/// The machine's devices the VMM will drive, read from their frames (identity-mapped as
/// device memory at EL2).
fn host_devices(nodes: &[VirtioMmioNode]) -> ([HostDevice; vabi::MAX_HOST_DEVICES], usize) {
    let mut transports = [Transport::default(); hypervisor::platform::MAX_VIRTIO_MMIO];
    let n = nodes.len().min(transports.len());
    for (t, node) in transports.iter_mut().zip(&nodes[..n]) {
        *t = Transport {
            base: node.base,
            size: node.size,
            intid: node.intid,
        };
    }
    hostdev::select(&transports[..n], |base, off| {
        // SAFETY: a register of a virtio-mmio frame the firmware's tree names, identity-mapped
        // as device memory; reading MagicValue, Version and DeviceID has no side effect.
        unsafe { core::ptr::read_volatile((base + off) as *const u32) }
    })
}

/// Where host device `d`'s frame is in the VMM's view, at page `index`.
fn host_frame(index: usize, d: &HostDevice) -> Option<u64> {
    Some(vabi::host_device_page(index)?.0 + d.transport.base % PAGE_SIZE)
}

/// Creates the partition: its RAM, its stage 2 (its RAM and the pages of the machine's virtio
/// devices it drives, from `virtio`), its image; then starts its vCPU on this CPU (CPU 0) and
/// runs it to its first WAIT.
pub fn create(
    free: &mut FreeRam,
    cpu: &PerCpu,
    nr_cpus: usize,
    virtio: &[VirtioMmioNode],
    clock: vabi::WallClock,
) -> Result<&'static Partition, &'static str> {
    let size = vabi::VMM_RAM_SIZE;
    let pa = free
        .carve(size, BLOCK_SIZE)
        .ok_or("no RAM for the VMM partition")?;
    let mut ram = GuestRam {
        ipa: vabi::VMM_RAM_BASE,
        pa: HostPhysAddr(pa),
        size,
    };
    let mut stage2 = Stage2::new().map_err(|_| "VMM stage-2 tables")?;
    stage2
        .map_ram(vabi::VMM_RAM_BASE, HostPhysAddr(pa), size)
        .map_err(|_| "VMM stage-2 mapping")?;
    let (host, host_len) = host_devices(virtio);
    for (i, d) in host[..host_len].iter().enumerate() {
        let page = vabi::host_device_page(i).ok_or("VMM host device page")?;
        // The page holds the frame; on QEMU virt it also holds its neighbours' (0x200 apart),
        // which are virtio transports too: a stage 2 cannot map less than a page.
        let pa = HostPhysAddr(d.transport.base - d.transport.base % PAGE_SIZE);
        stage2
            .map_device_page(page, pa)
            .map_err(|_| "VMM stage-2 device mapping")?;
        log::info!(
            "VMM partition drives virtio device {} at {:#x}",
            d.device_id,
            d.transport.base
        );
    }
    vmboot::memory::GuestMemory::write(&mut ram, vabi::VMM_RAM_BASE, IMAGE)
        .map_err(|_| "VMM image larger than its RAM")?;
    crate::arch::cpu::invalidate_icache();
    let p = PARTITION.call_once(|| Partition {
        vttbr: stage2.vttbr(VMID),
        vtcr: stage2.vtcr(),
        stage2: Mutex::new(stage2),
        hcr: controls::vmm_hcr(),
        alive: AtomicBool::new(true),
        mapped: [const { AtomicBool::new(false) }; vabi::MAX_VMS],
        ram_pa: pa,
        clock,
        host,
        host_len,
        host_irq: [const { AtomicBool::new(false) }; vabi::MAX_HOST_DEVICES],
        cpus: (0..nr_cpus.min(MAX_CPUS))
            .map(|_| {
                Mutex::new(VmmCpu {
                    regs: GuestRegs::default(),
                    el1: El1State::default(),
                    started: false,
                })
            })
            .collect(),
    });
    p.upcall(cpu, None, None)
        .map_err(|_| "the VMM partition failed to start")?;
    log::info!(
        "VMM partition: {} KiB image, {} MiB at host {:#x}, at EL1",
        IMAGE.len() / 1024,
        size >> 20,
        pa
    );
    Ok(p)
}

/// The VMs the partition serves: every VM built with devices. A call may name any of them,
/// not only the one whose request is being answered: the VMM's network switch hands one
/// VM's frames to another and raises that VM's line.
struct ServedBy;

/// Served VM `id`, if there is one.
fn served_vm(id: VmId) -> Option<&'static Vm> {
    vms().get(id.0 as usize).filter(|v| v.spec.served)
}

impl Served for ServedBy {
    fn vm(&self, vm: VmId) -> Option<ServedVm> {
        served_vm(vm).map(|v| ServedVm {
            vcpus: v.vcpus.len(),
        })
    }
}

impl Partition {
    /// Routes the interrupts of the host devices the VMM hears from to CPU `aff` (at boot).
    pub fn enable_host_irqs(&self, gicd: &crate::arch::gic::Distributor, aff: u64) {
        for d in &self.host[..self.host_len] {
            if let Some(intid) = irq_to_vmm(d) {
                gicd.enable_spi(intid, aff);
            }
        }
    }

    /// Called for every physical interrupt: if `intid` is a host device's, masks it, notes it
    /// for [`Self::deliver_host_irqs`] and returns true.
    pub fn take_host_irq(&self, gicd: &crate::arch::gic::Distributor, intid: u32) -> bool {
        let found = self.host[..self.host_len]
            .iter()
            .position(|d| irq_to_vmm(d) == Some(intid));
        let Some(i) = found else {
            return false;
        };
        gicd.mask_spi(intid);
        self.host_irq[i].store(true, Ordering::Release);
        true
    }

    /// Hands each noted host device interrupt to the VMM, in the name of `vm`, and unmasks it
    /// once the VMM has answered (it has acknowledged the device by then). Never inside an
    /// upcall: called where the exit path looks for console input.
    pub fn deliver_host_irqs(
        &self,
        cpu: &PerCpu,
        gicd: &crate::arch::gic::Distributor,
        vm: &Vm,
        running: Option<VcpuId>,
    ) {
        for (i, pending) in self.host_irq.iter().enumerate().take(self.host_len) {
            // A load first: this runs on every exit, and a swap would write the line.
            if !pending.load(Ordering::Acquire) || !pending.swap(false, Ordering::AcqRel) {
                continue;
            }
            let req = Request::HostIrq {
                vm: vm.id,
                index: i as u8,
            };
            let _ = self.request(cpu, vm, running, req);
            if let Some(intid) = irq_to_vmm(&self.host[i]) {
                gicd.unmask_spi(intid);
            }
        }
    }

    /// Whether the partition still runs.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Hands `req` to the VMM on this CPU and returns its answer. `vm` is the VM the request
    /// concerns; `running` the guest vCPU whose exit this is, if any (interrupts taken
    /// meanwhile are its).
    pub fn request(
        &self,
        cpu: &PerCpu,
        vm: &Vm,
        running: Option<VcpuId>,
        req: Request,
    ) -> Result<Response, Down> {
        self.flush_posted(cpu, vm, running)?;
        self.call(cpu, vm, running, req)
    }

    /// Hands `vm`'s posted UART bytes to the VMM, if there are any.
    pub fn flush_posted(&self, cpu: &PerCpu, vm: &Vm, running: Option<VcpuId>) -> Result<(), Down> {
        if vm.uart_posted.lock().len == 0 {
            return Ok(());
        }
        let _order = vm.uart_flush.lock();
        let (len, bytes) = {
            let mut posted = vm.uart_posted.lock();
            if posted.len == 0 {
                return Ok(());
            }
            let out = (posted.len, vabi::pack::<4>(&posted.bytes[..posted.len]));
            posted.len = 0;
            out
        };
        let req = Request::UartTx {
            vm: vm.id,
            len: len as u8,
            bytes,
        };
        self.call(cpu, vm, running, req).map(|_| ())
    }

    /// Posts a guest write to its UART data register, if the VMM's shadow allows it; false if
    /// the write must go to the VMM now.
    pub fn post_uart_tx(&self, cpu: &PerCpu, vm: &Vm, running: Option<VcpuId>, byte: u8) -> bool {
        let shadow = vabi::UartShadow::from_reg(vm.uart_shadow.load(Ordering::Acquire));
        if !shadow.valid || !shadow.post_tx {
            return false;
        }
        let full = {
            let mut posted = vm.uart_posted.lock();
            if posted.len == posted.bytes.len() {
                return false;
            }
            let n = posted.len;
            posted.bytes[n] = byte;
            posted.len += 1;
            posted.len == posted.bytes.len()
        };
        if full {
            let _ = self.flush_posted(cpu, vm, running);
        }
        true
    }

    /// The UART flag register as the VMM last reported it, if it may be used.
    pub fn uart_flags(&self, vm: &Vm) -> Option<u16> {
        let shadow = vabi::UartShadow::from_reg(vm.uart_shadow.load(Ordering::Acquire));
        shadow.valid.then_some(shadow.fr)
    }

    /// One request to the VMM, keeping `vm`'s UART shadow up to date.
    fn call(
        &self,
        cpu: &PerCpu,
        vm: &Vm,
        running: Option<VcpuId>,
        req: Request,
    ) -> Result<Response, Down> {
        if !self.alive() {
            vm.uart_shadow.store(0, Ordering::Release);
            WARN_DOWN.warn(format_args!(
                "VM {}: a device access failed: the VMM partition is down: abort injected",
                vm.id.0
            ));
            return Err(Down);
        }
        let r = self.upcall(cpu, Some((vm, running)), Some(req));
        let shadow = r.map_or(vabi::UartShadow::NONE, |resp| resp.uart);
        vm.uart_shadow.store(shadow.to_reg(), Ordering::Release);
        r
    }

    fn upcall(
        &self,
        cpu: &PerCpu,
        ctx: Option<(&Vm, Option<VcpuId>)>,
        req: Option<Request>,
    ) -> Result<Response, Down> {
        let Some(slot) = self.cpus.get(cpu.index) else {
            return Err(Down);
        };
        let mut me = slot.lock();
        let saved = El1State::save();
        if !me.started {
            me.el1 = El1State::fresh(controls::boot_sctlr(), self.hcr, self.vttbr, self.vtcr);
            me.regs = GuestRegs::default();
            me.regs.x[0] = cpu.index as u64;
            me.regs.elr = vabi::VMM_RAM_BASE.0;
            me.regs.spsr = controls::boot_spsr();
        }
        me.el1.restore();
        // Stale translations of the partition's VMID on this CPU go (its stage 2 may have
        // changed since it last ran here).
        tlb::flush_guest_local();
        let mut result = Ok(Response::ok(0));
        if !me.started {
            result = self.run(cpu, &mut me.regs, ctx);
            me.started = result.is_ok();
        }
        if let (Ok(_), Some(req)) = (result, req) {
            me.regs.x[..8].copy_from_slice(&req.to_regs());
            result = self.run(cpu, &mut me.regs, ctx);
        }
        me.el1 = El1State::save();
        saved.restore();
        result
    }

    /// Runs the VMM vCPU until its next WAIT.
    fn run(
        &self,
        cpu: &PerCpu,
        regs: &mut GuestRegs,
        ctx: Option<(&Vm, Option<VcpuId>)>,
    ) -> Result<Response, Down> {
        loop {
            match exception::run(regs) {
                ExitKind::Irq | ExitKind::Fiq => {
                    irq::handle_pending(cpu, ctx.and_then(|(vm, v)| v.map(|v| (vm, v))));
                }
                ExitKind::SError => return self.fail(cpu, regs, "an SError", true),
                ExitKind::Sync => {
                    let s = trap::syndrome();
                    let exit = exit::decode(s.esr, s.far, s.hpfar);
                    if !matches!(exit, Exit::Hvc { .. }) {
                        return self.fail(
                            cpu,
                            regs,
                            "an exception it cannot take (a fault in a device model?)",
                            true,
                        );
                    }
                    let mut x = [0u64; 8];
                    x.copy_from_slice(&regs.x[..8]);
                    match vmmcall::check(&x, &ServedBy) {
                        Ok(VmmCall::Wait(resp)) => {
                            if let Some((vm, _)) = ctx {
                                print_console(vm, &resp);
                            }
                            return Ok(resp);
                        }
                        Ok(VmmCall::Panic { len, msg }) => {
                            let mut buf = [0u8; vabi::PANIC_CHUNK];
                            let n = vabi::unpack(msg, len, &mut buf);
                            let text = core::str::from_utf8(&buf[..n]).unwrap_or("(not UTF-8)");
                            log::error!("VMM partition panicked on CPU {}: {text}", cpu.index);
                            return self.fail(cpu, regs, "it panicked", false);
                        }
                        Ok(VmmCall::Version) => {
                            regs.x[0] = Status::Ok.to_reg();
                            regs.x[1] = vabi::VERSION;
                        }
                        Ok(VmmCall::HostInfo) => {
                            regs.x[0] = Status::Ok.to_reg();
                            regs.x[1] = self.ram_pa;
                        }
                        Ok(VmmCall::Clock) => {
                            let [seconds, count, frequency] = self.clock.to_regs();
                            regs.x[0] = Status::Ok.to_reg();
                            regs.x[1] = seconds;
                            regs.x[2] = count;
                            regs.x[3] = frequency;
                            regs.x[4] = timer::now();
                        }
                        Ok(VmmCall::HostDevice { index }) => {
                            let found = self.host[..self.host_len]
                                .get(index)
                                .and_then(|d| Some((d, host_frame(index, d)?)));
                            match found {
                                Some((d, frame)) => {
                                    regs.x[0] = Status::Ok.to_reg();
                                    regs.x[1] = u64::from(d.device_id);
                                    regs.x[2] = frame;
                                    regs.x[3] = d.transport.size.min(PAGE_SIZE);
                                    regs.x[4] = u64::from(irq_to_vmm(d).is_some());
                                }
                                None => regs.x[0] = Status::InvalidArgument.to_reg(),
                            }
                        }
                        Ok(call) => regs.x[0] = self.serve(ctx, call).to_reg(),
                        Err(status) => regs.x[0] = status.to_reg(),
                    }
                }
            }
        }
    }

    /// Carries out a checked call other than WAIT and PANIC, on the VM it names (checked to be
    /// served); `ctx` is the request being answered, if any.
    fn serve(&self, ctx: Option<(&Vm, Option<VcpuId>)>, call: VmmCall) -> Status {
        let target = match call {
            VmmCall::SetIrq { vm, .. }
            | VmmCall::MapGuest { vm, .. }
            | VmmCall::UnmapGuest { vm }
            | VmmCall::ConsoleWrite { vm, .. }
            | VmmCall::VcpuCtl { vm, .. } => vm,
            VmmCall::Version
            | VmmCall::Wait(_)
            | VmmCall::Panic { .. }
            | VmmCall::HostInfo
            | VmmCall::Clock
            | VmmCall::HostDevice { .. } => return Status::InvalidArgument,
        };
        // Outside a request (at its boot) the VMM acts on no VM.
        if ctx.is_none() {
            return Status::InvalidVm;
        }
        let Some(vm) = served_vm(target) else {
            return Status::InvalidVm;
        };
        // The vCPU whose exit this is needs no kick: it looks at its interrupts on the way back.
        let me = ctx
            .filter(|(c, _)| c.id == vm.id)
            .and_then(|(_, running)| running)
            .unwrap_or(VcpuId(u16::MAX));
        match call {
            VmmCall::SetIrq { intid, level, .. } => {
                let kick = vm.vgic.set_spi_level(intid, level);
                irq::kick(vm, me, kick);
                Status::Ok
            }
            VmmCall::MapGuest { vm: id, window } => {
                let Some(flag) = self.mapped.get(id.0 as usize) else {
                    return Status::InvalidVm;
                };
                if flag.load(Ordering::Acquire) {
                    return Status::Ok;
                }
                // Its RAM and, after it, its variable flash (which the VMM's model programs).
                let size = vm.vmm_window_size();
                if size > vabi::GUEST_WINDOW_SIZE {
                    return Status::InvalidArgument;
                }
                match self.stage2.lock().map_ram(window, vm.ram.pa, size) {
                    Ok(()) => {
                        flag.store(true, Ordering::Release);
                        Status::Ok
                    }
                    Err(_) => Status::InvalidAddress,
                }
            }
            VmmCall::UnmapGuest { .. } => Status::NotSupported,
            VmmCall::ConsoleWrite { len, bytes, .. } => {
                let mut buf = [0u8; vabi::CONSOLE_CHUNK];
                let n = vabi::unpack(bytes, len, &mut buf);
                console::guest_output(vm.id.0 as usize, input::focus_vm(), &buf[..n]);
                Status::Ok
            }
            VmmCall::VcpuCtl { vcpu, run, .. } => {
                if let Some(slot) = vm.vcpu(vcpu) {
                    slot.set_paused(!run);
                    let mut k = crate::vgic::Kick::default();
                    k.add(vcpu);
                    irq::kick(vm, me, k);
                }
                Status::Ok
            }
            VmmCall::Version
            | VmmCall::Wait(_)
            | VmmCall::Panic { .. }
            | VmmCall::HostInfo
            | VmmCall::Clock
            | VmmCall::HostDevice { .. } => Status::InvalidArgument,
        }
    }

    /// Ends the partition after a fault.
    fn fail(
        &self,
        cpu: &PerCpu,
        regs: &GuestRegs,
        why: &str,
        syndrome: bool,
    ) -> Result<Response, Down> {
        self.alive.store(false, Ordering::Release);
        if syndrome {
            let s = trap::syndrome();
            log::error!(
                "VMM partition failed on CPU {}: {why}: ESR {:#x} FAR {:#x} PC {:#x}",
                cpu.index,
                s.esr,
                s.far,
                regs.elr
            );
        } else {
            log::error!(
                "VMM partition failed on CPU {}: {why} at PC {:#x}",
                cpu.index,
                regs.elr
            );
        }
        log::error!(
            "VMM partition stopped: its guests' devices now fail; the core and VMs it does not serve go on"
        );
        Err(Down)
    }
}

/// Prints the console output a response for `vm` carries.
fn print_console(vm: &Vm, resp: &Response) {
    if resp.console_len == 0 {
        return;
    }
    let mut buf = [0u8; vabi::RESPONSE_CONSOLE_CHUNK];
    let n = vabi::unpack(resp.console, resp.console_len as usize, &mut buf);
    console::guest_output(vm.id.0 as usize, input::focus_vm(), &buf[..n]);
}

/// Hands the VMM what waits for it on behalf of `vm`: the machine's devices' interrupts, and
/// the bytes typed for `vm` (to its UART, as far as its FIFO takes them).
pub fn deliver_input(cpu: &PerCpu, vm: &Vm, running: Option<VcpuId>) {
    // The machine's devices' interrupts go to the VMM in the name of a VM it serves.
    if let Some(p) = get() {
        if vm.spec.served {
            p.deliver_host_irqs(cpu, &machine().gicd, vm, running);
        } else if let Some(other) = vms().iter().find(|v| v.spec.served) {
            p.deliver_host_irqs(cpu, &machine().gicd, other, None);
        }
    }
    let served = vm.spec.served;
    input::deliver(vm.id.0 as usize, |len, bytes| {
        let p = get().filter(|_| served)?;
        let req = Request::ConsoleInput {
            vm: vm.id,
            len,
            bytes,
        };
        // Without a VMM nobody can read them: they are dropped.
        Some(
            p.request(cpu, vm, running, req)
                .map_or(len as usize, |r| (r.value as usize).min(len as usize)),
        )
    });
}

/// The interrupt handler for the machine's devices the VMM drives ([`super::irq::Handlers`]):
/// whether `intid` was one of theirs.
pub fn take_host_irq(intid: u32) -> bool {
    get().is_some_and(|p| p.take_host_irq(&machine().gicd, intid))
}
