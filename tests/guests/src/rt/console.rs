//! Console output through the guest's PL011 (0x0900_0000), polled.

use core::fmt;

use abi::layout::PL011_BASE;

/// UARTDR, the data register.
const DR: u64 = 0x000;
/// UARTFR, the flag register.
const FR: u64 = 0x018;
/// UARTFR.TXFF: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;

/// A writer to the PL011.
pub struct Console;

impl Console {
    fn put(b: u8) {
        let base = PL011_BASE.0 as usize;
        // SAFETY: the PL011 frame is the guest's UART; with the MMU off these are device
        // accesses to it, which never fault.
        unsafe {
            while core::ptr::read_volatile((base + FR as usize) as *const u32) & FR_TXFF != 0 {}
            core::ptr::write_volatile((base + DR as usize) as *mut u32, u32::from(b));
        }
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            Self::put(b);
        }
        Ok(())
    }
}

/// Prints one line.
pub fn line(args: fmt::Arguments) {
    use fmt::Write;
    let _ = Console.write_fmt(args);
    let _ = Console.write_str("\n");
}
