//! The devices the VMM models for each VM it serves, and the answer to each request.
//!
//! Lock order: one VM's devices at a time; no other lock is held with it.

use super::hvc;
use abi::layout::{PL011_BASE, PL011_INTID, PL011_SIZE};
use abi::vmm::{
    pack, unpack, FaultPlan, Request, Response, UartShadow, MAX_VMS, RESPONSE_CONSOLE_CHUNK,
    UART_TX_CHUNK,
};
use abi::VmId;
use spin::{Mutex, Once};
use vmm::pl011::Pl011;

/// One VM's devices.
struct VmDevices {
    uart: Pl011,
    /// The UART line as the core last heard it.
    uart_level: bool,
    /// Test hook: the write on which the UART model panics.
    panic_on_write: Option<u32>,
    writes: u32,
}

static VMS: Once<[Mutex<Option<VmDevices>>; MAX_VMS]> = Once::new();

/// Prepares the device table (CPU 0, at boot).
pub fn init() {
    VMS.call_once(|| core::array::from_fn(|_| Mutex::new(None)));
}

fn slot(vm: VmId) -> Option<&'static Mutex<Option<VmDevices>>> {
    VMS.get()?.get(vm.0 as usize)
}

/// UARTDR's offset (PL011 TRM 3.3.1).
const UARTDR: u64 = 0x000;

/// Answers one request.
pub fn handle(req: Request) -> Response {
    match req {
        Request::VmStart { vm, fault, .. } => start(vm, fault),
        Request::Mmio {
            vm,
            ipa,
            write,
            data,
            ..
        } => with_vm(vm, |dev| {
            let Some(off) = ipa.0.checked_sub(PL011_BASE.0).filter(|o| *o < PL011_SIZE) else {
                return Response::error();
            };
            let mut resp = Response::ok(0);
            if write {
                let mut out = [0u8; RESPONSE_CONSOLE_CHUNK];
                let mut n = 0;
                uart_write(dev, off, data as u32, &mut |b| {
                    if n < out.len() {
                        out[n] = b;
                        n += 1;
                    }
                });
                resp.console_len = n as u8;
                resp.console = pack(&out[..n]);
            } else {
                resp.value = dev.uart.read(off) as u64;
            }
            resp
        }),
        Request::UartTx { vm, len, bytes } => with_vm(vm, |dev| {
            let mut data = [0u8; UART_TX_CHUNK];
            let n = unpack(bytes, len as usize, &mut data);
            let mut out = [0u8; UART_TX_CHUNK];
            let mut m = 0;
            for b in &data[..n] {
                uart_write(dev, UARTDR, u32::from(*b), &mut |o| {
                    if m < out.len() {
                        out[m] = o;
                        m += 1;
                    }
                });
            }
            hvc::console_write(vm, &out[..m]);
            Response::ok(0)
        }),
        Request::ConsoleInput { vm, len, bytes } => with_vm(vm, |dev| {
            let mut taken = 0u64;
            for i in 0..len {
                if !dev.uart.push_rx((bytes >> (i * 8)) as u8) {
                    break;
                }
                taken += 1;
            }
            Response::ok(taken)
        }),
    }
}

/// Runs `f` on `vm`'s devices, then brings the core up to date: the UART's interrupt line
/// and the shadow of its state the core answers from.
fn with_vm(vm: VmId, f: impl FnOnce(&mut VmDevices) -> Response) -> Response {
    let Some(slot) = slot(vm) else {
        return Response::error();
    };
    let mut guard = slot.lock();
    let Some(dev) = guard.as_mut() else {
        return Response::error();
    };
    let mut resp = f(dev);
    update_line(vm, dev);
    resp.uart = UartShadow {
        valid: true,
        post_tx: !dev.uart.tx_has_visible_effect() && dev.panic_on_write.is_none(),
        fr: dev.uart.flags() as u16,
    };
    resp
}

/// One guest write to the UART (the fault-injection hook counts it).
fn uart_write(dev: &mut VmDevices, off: u64, value: u32, tx: &mut dyn FnMut(u8)) {
    dev.writes = dev.writes.wrapping_add(1);
    if dev.panic_on_write == Some(dev.writes) {
        panic!("fault injection: PL011 model fails on write {}", dev.writes);
    }
    dev.uart.write(off, value, tx);
}

/// (Re)creates VM `vm`'s devices and maps its RAM (for the devices that will do DMA).
fn start(vm: VmId, fault: FaultPlan) -> Response {
    let Some(slot) = slot(vm) else {
        return Response::error();
    };
    *slot.lock() = Some(VmDevices {
        uart: Pl011::new(),
        uart_level: false,
        panic_on_write: fault.pl011_panic_on_write(),
        writes: 0,
    });
    match hvc::map_guest(vm) {
        Some(abi::vmm::Status::Ok) => Response::ok(0),
        _ => Response::error(),
    }
}

fn update_line(vm: VmId, dev: &mut VmDevices) {
    let level = dev.uart.irq_level();
    if level != dev.uart_level {
        dev.uart_level = level;
        let _ = hvc::set_irq(vm, PL011_INTID, level);
    }
}
