//! Calls to the core (`hvc #0`, function ID in w0, arguments in x1-x7; see `abi::vmm`).

use abi::vmm::{call, pack, Response, Status, CONSOLE_CHUNK, PANIC_CHUNK};
use abi::{IntId, VmId};
use core::arch::asm;
use core::fmt::{self, Write};

/// Makes a call; returns x0-x7.
fn hvc(fid: u32, args: [u64; 7]) -> [u64; 8] {
    let mut r = [
        fid as u64, args[0], args[1], args[2], args[3], args[4], args[5], args[6],
    ];
    // SAFETY: an HVC to the core, which only reads and writes x0-x7 of this vCPU (SMCCC
    // preserves x8-x30); no memory of ours is touched.
    unsafe {
        asm!("hvc #0",
            inout("x0") r[0], inout("x1") r[1], inout("x2") r[2], inout("x3") r[3],
            inout("x4") r[4], inout("x5") r[5], inout("x6") r[6], inout("x7") r[7],
            options(nostack))
    };
    r
}

/// Answers the current request with `response` and waits for the next; returns its
/// registers.
pub fn wait(response: Response) -> [u64; 8] {
    let r = response.to_regs();
    hvc(call::WAIT, [r[0], r[1], r[2], r[3], r[4], r[5], 0])
}

/// Sets an SPI line of `vm`.
pub fn set_irq(vm: VmId, intid: IntId, level: bool) -> Option<Status> {
    Status::from_reg(
        hvc(
            call::SET_IRQ,
            [vm.0 as u64, intid.0 as u64, level as u64, 0, 0, 0, 0],
        )[0],
    )
}

/// Maps `vm`'s RAM at its window.
pub fn map_guest(vm: VmId) -> Option<Status> {
    let window = abi::vmm::guest_window(vm)?;
    Status::from_reg(hvc(call::MAP_GUEST, [vm.0 as u64, window.0, 0, 0, 0, 0, 0])[0])
}

/// The ABI version the core speaks.
pub fn version() -> Option<u64> {
    let r = hvc(call::VERSION, [0; 7]);
    (Status::from_reg(r[0]) == Some(Status::Ok)).then_some(r[1])
}

/// The host-physical address of the VMM's RAM base.
pub fn host_info() -> Option<u64> {
    let r = hvc(call::HOST_INFO, [0; 7]);
    (Status::from_reg(r[0]) == Some(Status::Ok)).then_some(r[1])
}

/// The machine's time of day and the counter now, from the core ([`call::CLOCK`]).
pub fn clock() -> Option<(abi::vmm::WallClock, u64)> {
    let r = hvc(call::CLOCK, [0; 7]);
    (Status::from_reg(r[0]) == Some(Status::Ok))
        .then(|| (abi::vmm::WallClock::from_regs([r[1], r[2], r[3]]), r[4]))
}

/// The description of host device `index` (x0-x7 of HOST_DEVICE), if there is one.
pub fn host_device(index: u64) -> Option<[u64; 8]> {
    let r = hvc(call::HOST_DEVICE, [index, 0, 0, 0, 0, 0, 0]);
    (Status::from_reg(r[0]) == Some(Status::Ok)).then_some(r)
}

/// Console output for `vm`, in chunks.
pub fn console_write(vm: VmId, bytes: &[u8]) {
    for chunk in bytes.chunks(CONSOLE_CHUNK) {
        let r: [u64; 4] = pack(chunk);
        hvc(
            call::CONSOLE_WRITE,
            [vm.0 as u64, chunk.len() as u64, r[0], r[1], r[2], r[3], 0],
        );
    }
}

/// A message buffer for [`panic`].
struct Msg {
    buf: [u8; PANIC_CHUNK],
    len: usize,
}

impl Write for Msg {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Tells the core this partition cannot go on. Never returns.
pub fn panic(args: fmt::Arguments<'_>) -> ! {
    let mut m = Msg {
        buf: [0; PANIC_CHUNK],
        len: 0,
    };
    let _ = m.write_fmt(args);
    let r: [u64; 6] = pack(&m.buf[..m.len]);
    loop {
        hvc(
            call::PANIC,
            [m.len as u64, r[0], r[1], r[2], r[3], r[4], r[5]],
        );
    }
}
