//! The devices the VMM models for each VM it serves, and the answer to each request.
//!
//! A VM has the devices of its [`DeviceSet`] (from its VmStart): the PL011, the PL031 and
//! virtio-mmio slots at the fixed places `VirtioKind::slot` gives, the same the loader described in the
//! guest's device tree. Guest RAM is reached only through the VM's [`WindowMemory`].
//!
//! Lock order: one VM's devices -> the switch -> a device of the machine (`super::host`);
//! another VM's devices only by `try_lock` (see `super::net`).

use super::console::PortOut;
use super::disk::GuestDisk;
use super::entropy::Rndr;
use super::guest_mem::{WindowFlash, WindowMemory};
use super::hvc;
use super::net::NetPort;
use super::vars::VarsFlash;
use abi::layout::{
    flash_bank, FLASH_BANK_SIZE, PL011_BASE, PL011_INTID, PL011_SIZE, PL031_BASE, PL031_INTID,
    PL031_SIZE, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SLOTS, VIRTIO_MMIO_STRIDE,
};
use abi::vmm::{
    pack, unpack, DeviceSet, DiskSlice, FaultPlan, FlashView, Request, Response, Status,
    UartShadow, VirtioKind, MAX_VMS, RESPONSE_CONSOLE_CHUNK, UART_TX_CHUNK,
};
use abi::{GuestPhysAddr, VmId};
use spin::{Mutex, Once};
use vmm::cfi_flash::{Blank, CfiFlash, Geometry, Protection};
use vmm::pl011::Pl011;
use vmm::pl031::{self, Pl031};
use vmm::virtio::blk::VirtioBlk;
use vmm::virtio::console::VirtioConsole;
use vmm::virtio::mmio::{self, MmioSlot};
use vmm::virtio::net::{MacAddr, VirtioNet, MAX_QUEUE_PAIRS};
use vmm::virtio::rng::{EntropyError, EntropySource, VirtioRng};
use vmm::virtio::MmioTransport;

/// The name of virtio-console port 1 (`/dev/virtio-ports/NAME` with udev; `/dev/vport0p1`
/// without).
const PORT1_NAME: &str = "rhyve.port1";

/// A VM's UART.
struct Uart {
    model: Pl011,
    /// The line as the core last heard it.
    level: bool,
    /// Test hook: the write on which the UART model panics.
    panic_on_write: Option<u32>,
    writes: u32,
}

/// A VM's RTC.
struct Rtc {
    model: Pl031,
    /// The line as the core last heard it.
    level: bool,
}

/// A firmware VM's flash: QEMU virt's two banks.
struct Flash {
    /// Bank 0, the firmware's: write-protected. The core maps the firmware's blocks for direct
    /// reads; the model answers commands, and reads of the rest (zeros, as QEMU gives them).
    firmware: CfiFlash<Blank>,
    /// Bank 1, the variables', in the host memory after the VM's RAM (and on the machine's
    /// disk if the VM keeps it there).
    vars: CfiFlash<VarsFlash>,
}

impl Flash {
    fn new(vm: VmId, ram_size: u64) -> Option<Self> {
        let g = Geometry::QEMU_VIRT;
        let blank = Blank {
            size: g.size(),
            fill: 0,
        };
        Some(Self {
            firmware: CfiFlash::new(g, blank, Protection::WriteProtected).ok()?,
            vars: CfiFlash::new(
                g,
                VarsFlash::new(WindowFlash::new(vm, ram_size, FLASH_BANK_SIZE)?),
                Protection::Writable,
            )
            .ok()?,
        })
    }

    /// Which banks read as their array now: the core maps those for direct reads.
    fn view(&self) -> FlashView {
        FlashView {
            valid: true,
            array: [self.firmware.in_read_array(), self.vars.in_read_array()],
        }
    }
}

/// The machine's time of day, as the core tells it. The VMM asks at each reading rather than
/// reading the counter itself: at EL1 CNTPCT is readable only if the core's CNTHCTL_EL2 says
/// so, which an upcall does not set, and CNTVCT carries the offset of whichever guest ran
/// last. A guest reads its RTC rarely (at boot, for `hwclock`), so one more call costs little.
struct MachineClock;

impl pl031::Clock for MachineClock {
    fn now(&mut self) -> u64 {
        // Without an answer (a core that cannot say) the time is 1970, as on a machine
        // without an RTC.
        hvc::clock().map_or(0, |(clock, count)| clock.seconds_at(count))
    }
}

/// Entropy for a VM's virtio-rng: RNDR when the CPU has it, else the machine's own
/// virtio-rng; with neither, none (the guest's requests wait).
struct Entropy(Option<Rndr>);

impl EntropySource for Entropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        if let Some(r) = &mut self.0 {
            return r.fill(buf);
        }
        let mut rng = super::host::RNG.lock();
        let rng = rng.as_mut().ok_or(EntropyError::Failed)?;
        // The device may give fewer bytes than asked: ask until the buffer is full.
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get_mut(done..).ok_or(EntropyError::Failed)?;
            match rng.request_entropy(rest) {
                Ok(n) if n > 0 => done += n,
                _ => return Err(EntropyError::NotReady),
            }
        }
        Ok(())
    }
}

/// One VM's devices.
struct VmDevices {
    mem: WindowMemory,
    flash: Option<Flash>,
    uart: Option<Uart>,
    rtc: Option<Rtc>,
    console: Option<MmioTransport<VirtioConsole<PortOut>>>,
    blk: Option<MmioTransport<VirtioBlk<GuestDisk>>>,
    net: Option<MmioTransport<VirtioNet<NetPort>>>,
    rng: Option<MmioTransport<VirtioRng<Entropy>>>,
    /// Each virtio slot's line as the core last heard it, by [`VirtioKind::ALL`] index.
    levels: [bool; VirtioKind::ALL.len()],
}

impl VmDevices {
    /// The virtio slot of `kind`, if the VM has it, and the VM's RAM beside it.
    fn slot(&mut self, kind: VirtioKind) -> Option<(&mut dyn MmioSlot, &mut WindowMemory)> {
        let slot: &mut dyn MmioSlot = match kind {
            VirtioKind::Console => self.console.as_mut()?,
            VirtioKind::Blk => self.blk.as_mut()?,
            VirtioKind::Net => self.net.as_mut()?,
            VirtioKind::Rng => self.rng.as_mut()?,
        };
        Some((slot, &mut self.mem))
    }
}

static VMS: Once<[Mutex<Option<VmDevices>>; MAX_VMS]> = Once::new();

/// Prepares the device table (CPU 0, at boot), and takes the switch's frames for the VMs.
pub fn init() {
    VMS.call_once(|| core::array::from_fn(|_| Mutex::new(None)));
    super::net::set_delivery(deliver_frame);
}

fn table_slot(vm: VmId) -> Option<&'static Mutex<Option<VmDevices>>> {
    VMS.get()?.get(vm.0 as usize)
}

/// UARTDR's offset (PL011 TRM 3.3.1).
const UARTDR: u64 = 0x000;

/// Answers one request.
pub fn handle(req: Request) -> Response {
    super::net::poll_without_irq();
    match req {
        Request::VmStart {
            vm,
            ram_base,
            ram_size,
            fault,
            devices,
            disk,
            mac,
        } => start(
            vm,
            ram_base,
            ram_size,
            fault,
            devices,
            disk,
            MacAddr::for_vm(vm.0, mac),
        ),
        Request::Mmio {
            vm,
            ipa,
            size,
            write,
            data,
            ..
        } => with_vm(vm, |dev| mmio(dev, ipa, size, write, data)),
        Request::UartTx { vm, len, bytes } => with_vm(vm, |dev| {
            let Some(uart) = dev.uart.as_mut() else {
                return Response::error();
            };
            let mut data = [0u8; UART_TX_CHUNK];
            let n = unpack(bytes, len as usize, &mut data);
            let mut out = [0u8; UART_TX_CHUNK];
            let mut m = 0;
            for b in &data[..n] {
                uart_write(uart, UARTDR, u32::from(*b), &mut |o| {
                    if m < out.len() {
                        out[m] = o;
                        m += 1;
                    }
                });
            }
            hvc::console_write(vm, &out[..m]);
            Response::ok(0)
        }),
        Request::VarsStore { vm, slice } => with_vm(vm, |dev| {
            let attached = dev
                .flash
                .as_mut()
                .is_some_and(|f| f.vars.backing_mut().attach(slice).is_ok());
            if attached {
                Response::ok(0)
            } else {
                Response::error()
            }
        }),
        Request::HostIrq { .. } => {
            super::net::host_irq();
            Response::ok(0)
        }
        Request::ConsoleInput { vm, len, bytes } => with_vm(vm, |dev| {
            let mut data = [0u8; 8];
            let n = unpack([bytes], usize::from(len), &mut data);
            Response::ok(console_input(dev, &data[..n]) as u64)
        }),
    }
}

/// A guest load or store to one of the VM's devices.
fn mmio(dev: &mut VmDevices, ipa: GuestPhysAddr, size: u8, write: bool, data: u64) -> Response {
    if let Some((bank, off)) = flash_bank(ipa) {
        let Some(flash) = dev.flash.as_mut() else {
            return Response::error();
        };
        let mut resp = Response::ok(0);
        match (bank, write) {
            (0, true) => flash.firmware.write(off, size, data),
            (0, false) => resp.value = flash.firmware.read(off, size),
            (_, true) => flash.vars.write(off, size, data),
            (_, false) => resp.value = flash.vars.read(off, size),
        }
        resp.flash = flash.view();
        return resp;
    }
    if let Some(off) = ipa.0.checked_sub(PL011_BASE.0).filter(|o| *o < PL011_SIZE) {
        let Some(uart) = dev.uart.as_mut() else {
            return Response::error();
        };
        let mut resp = Response::ok(0);
        if write {
            let mut out = [0u8; RESPONSE_CONSOLE_CHUNK];
            let mut n = 0;
            uart_write(uart, off, data as u32, &mut |b| {
                if n < out.len() {
                    out[n] = b;
                    n += 1;
                }
            });
            resp.console_len = n as u8;
            resp.console = pack(&out[..n]);
        } else {
            resp.value = uart.model.read(off) as u64;
        }
        return resp;
    }
    if let Some(off) = ipa.0.checked_sub(PL031_BASE.0).filter(|o| *o < PL031_SIZE) {
        let Some(rtc) = dev.rtc.as_mut() else {
            return Response::error();
        };
        if write {
            rtc.model.write(off, data as u32, &mut MachineClock);
            return Response::ok(0);
        }
        return Response::ok(u64::from(rtc.model.read(off, &mut MachineClock)));
    }
    let Some(off) = ipa
        .0
        .checked_sub(VIRTIO_MMIO_BASE.0)
        .filter(|o| *o < VIRTIO_MMIO_STRIDE * VIRTIO_MMIO_SLOTS)
    else {
        return Response::error();
    };
    let (index, reg) = (off / VIRTIO_MMIO_STRIDE, off % VIRTIO_MMIO_STRIDE);
    let Some(kind) = u32::try_from(index).ok().and_then(VirtioKind::at_slot) else {
        return Response::error();
    };
    if !mmio::access_valid(reg, size) {
        return Response::error();
    }
    let Some((slot, mem)) = dev.slot(kind) else {
        return Response::error();
    };
    if write {
        slot.write(reg, size, data, mem);
        Response::ok(0)
    } else {
        Response::ok(slot.read(reg, size))
    }
}

/// Hands a frame from the switch to `vm`'s network card. `wait`: block for the VM's devices
/// (no other lock held); otherwise give up if another CPU has them (see `super::net`).
pub fn deliver_frame(vm: VmId, frame: &[u8], wait: bool) {
    let Some(slot) = table_slot(vm) else {
        return;
    };
    let guard = if wait {
        Some(slot.lock())
    } else {
        slot.try_lock()
    };
    let Some(mut guard) = guard else {
        return;
    };
    let Some(dev) = guard.as_mut() else {
        return;
    };
    let Some(net) = dev.net.as_mut() else {
        return;
    };
    if net.device_mut().inject_rx(frame) {
        net.poll(&mut dev.mem);
    }
    update_lines(vm, dev);
}

/// Bytes typed for the VM: to its UART when it has one, else to its virtio console (hvc0).
/// Returns how many were taken.
fn console_input(dev: &mut VmDevices, bytes: &[u8]) -> usize {
    if let Some(uart) = dev.uart.as_mut() {
        return bytes.iter().take_while(|b| uart.model.push_rx(**b)).count();
    }
    let Some(console) = dev.console.as_mut() else {
        return 0;
    };
    let n = console.device_mut().push_input(0, bytes);
    console.poll(&mut dev.mem);
    n
}

/// Runs `f` on `vm`'s devices, then brings the core up to date: the devices' interrupt lines
/// and the shadow of the UART's state the core answers from.
fn with_vm(vm: VmId, f: impl FnOnce(&mut VmDevices) -> Response) -> Response {
    let Some(slot) = table_slot(vm) else {
        return Response::error();
    };
    let mut guard = slot.lock();
    let Some(dev) = guard.as_mut() else {
        return Response::error();
    };
    let mut resp = f(dev);
    if let Some(rtc) = dev.rtc.as_mut().filter(|r| r.model.waiting()) {
        // The model has no timer: an armed, unmasked match is checked at each request of its
        // VM (only then, so the clock costs no call otherwise).
        rtc.model.poll(&mut MachineClock);
    }
    if let Some(net) = dev.net.as_mut() {
        // Replies to what the guest just sent may be in already: take them now rather than
        // at the card's interrupt.
        let mut got = false;
        super::net::drain(Some(vm), |frame| got |= net.device_mut().inject_rx(frame));
        if got {
            net.poll(&mut dev.mem);
        }
    }
    update_lines(vm, dev);
    resp.uart = match &dev.uart {
        Some(uart) => UartShadow {
            valid: true,
            post_tx: !uart.model.tx_has_visible_effect() && uart.panic_on_write.is_none(),
            fr: uart.model.flags() as u16,
        },
        None => UartShadow::NONE,
    };
    resp
}

/// One guest write to the UART (the fault-injection hook counts it).
fn uart_write(uart: &mut Uart, off: u64, value: u32, tx: &mut dyn FnMut(u8)) {
    uart.writes = uart.writes.wrapping_add(1);
    if uart.panic_on_write == Some(uart.writes) {
        panic!(
            "fault injection: PL011 model fails on write {}",
            uart.writes
        );
    }
    uart.model.write(off, value, tx);
}

/// (Re)creates VM `vm`'s devices: maps its RAM (for the virtio devices' rings and buffers),
/// then makes each device of `set`.
fn start(
    vm: VmId,
    ram_base: GuestPhysAddr,
    ram_size: u64,
    fault: FaultPlan,
    set: DeviceSet,
    disk: DiskSlice,
    mac: MacAddr,
) -> Response {
    let Some(slot) = table_slot(vm) else {
        return Response::error();
    };
    if hvc::map_guest(vm) != Some(Status::Ok) {
        return Response::error();
    }
    let Some(mem) = WindowMemory::new(vm, ram_base, ram_size) else {
        return Response::error();
    };
    let flash = if set.contains(DeviceSet::FLASH) {
        match Flash::new(vm, ram_size) {
            Some(f) => Some(f),
            None => return Response::error(),
        }
    } else {
        None
    };
    let has = |kind: VirtioKind| set.has_virtio(kind);
    let devices = VmDevices {
        mem,
        flash,
        uart: set.contains(DeviceSet::PL011).then(|| Uart {
            model: Pl011::new(),
            level: false,
            panic_on_write: fault.pl011_panic_on_write(),
            writes: 0,
        }),
        rtc: set.contains(DeviceSet::PL031).then(|| Rtc {
            model: Pl031::new(),
            level: false,
        }),
        console: has(VirtioKind::Console).then(|| {
            MmioTransport::new(VirtioConsole::new(
                PortOut::console(vm),
                PortOut::tagged(vm, 1),
                PORT1_NAME,
            ))
        }),
        blk: has(VirtioKind::Blk)
            .then(|| MmioTransport::new(VirtioBlk::new(GuestDisk::new(vm, disk)))),
        net: has(VirtioKind::Net).then(|| {
            MmioTransport::new(VirtioNet::with_queue_pairs(
                NetPort::new(vm),
                mac,
                MAX_QUEUE_PAIRS,
            ))
        }),
        rng: has(VirtioKind::Rng)
            .then(|| MmioTransport::new(VirtioRng::new(Entropy(Rndr::probe())))),
        levels: [false; VirtioKind::ALL.len()],
    };
    let mut guard = slot.lock();
    if let Some(old) = guard.as_mut() {
        // The reset VM's lines start low again; lower what the old devices left raised.
        lower_lines(vm, old);
    }
    *guard = Some(devices);
    Response::ok(0)
}

/// Tells the core about every interrupt line that changed. A line the core refused to set
/// (a request in another VM's name: see `super::net`) is tried again next time.
fn update_lines(vm: VmId, dev: &mut VmDevices) {
    let set = |intid, level| hvc::set_irq(vm, intid, level) == Some(Status::Ok);
    if let Some(uart) = dev.uart.as_mut() {
        let level = uart.model.irq_level();
        if level != uart.level && set(PL011_INTID, level) {
            uart.level = level;
        }
    }
    if let Some(rtc) = dev.rtc.as_mut() {
        let level = rtc.model.irq_level();
        if level != rtc.level && set(PL031_INTID, level) {
            rtc.level = level;
        }
    }
    for (i, kind) in VirtioKind::ALL.into_iter().enumerate() {
        let Some(level) = dev.slot(kind).map(|(s, _)| s.irq_level()) else {
            continue;
        };
        if level != dev.levels[i] && set(kind.intid(), level) {
            dev.levels[i] = level;
        }
    }
}

/// Lowers every line the devices hold raised.
fn lower_lines(vm: VmId, dev: &mut VmDevices) {
    if let Some(uart) = dev.uart.as_mut().filter(|u| u.level) {
        uart.level = false;
        let _ = hvc::set_irq(vm, PL011_INTID, false);
    }
    if let Some(rtc) = dev.rtc.as_mut().filter(|r| r.level) {
        rtc.level = false;
        let _ = hvc::set_irq(vm, PL031_INTID, false);
    }
    for (i, kind) in VirtioKind::ALL.into_iter().enumerate() {
        if dev.levels[i] {
            dev.levels[i] = false;
            let _ = hvc::set_irq(vm, kind.intid(), false);
        }
    }
}
