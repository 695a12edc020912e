//! The machine's console: a polled PL011 driver for the UART the firmware's device tree names
//! as stdout, the `log` backend that prints `rhyve: ...` lines on it, and the VMs' output
//! kept apart on it.
//!
//! With several VMs, every line a VM prints starts with its name in brackets (`[alpha] `),
//! and a line of one source is ended before another source prints: the hypervisor's own
//! lines and the other VMs' never land in the middle of a VM's line. A VM's lines are held
//! until complete, except those of the VM that has the console input (its prompt must
//! show); when one of those is broken by other output, its rest comes on a line that starts
//! `[alpha]+ `, so the VM's own text can be put back together. With one VM its output goes
//! through as it is.
//!
//! Lock order: the line lock, then the UART lock, which is a leaf; both held for one line or
//! one chunk of bytes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::ptr::NonNull;
use spin::{Mutex, Once};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// UARTFR (PL011 TRM 3.3.3).
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) []
    ],
    /// UARTIMSC / UARTICR (3.3.10, 3.3.13).
    INT [
        /// Receive timeout.
        RT OFFSET(6) NUMBITS(1) [],
        /// Receive.
        RX OFFSET(4) NUMBITS(1) []
    ],
    /// UARTDR (3.3.1).
    DR [
        /// The character.
        DATA OFFSET(0) NUMBITS(8) []
    ]
}

register_structs! {
    Pl011Regs {
        (0x000 => dr: ReadWrite<u32, DR::Register>),
        (0x004 => _r0),
        (0x018 => fr: ReadOnly<u32, FR::Register>),
        (0x01c => _r1),
        (0x038 => imsc: ReadWrite<u32, INT::Register>),
        (0x03c => _r2),
        (0x044 => icr: WriteOnly<u32, INT::Register>),
        (0x048 => @END),
    }
}

/// The machine's UART.
pub struct Uart {
    regs: NonNull<Pl011Regs>,
}

// SAFETY: the UART is only used under the console lock.
unsafe impl Send for Uart {}

impl Uart {
    fn regs(&self) -> &Pl011Regs {
        // SAFETY: `regs` is the identity-mapped PL011 frame from the device tree.
        unsafe { self.regs.as_ref() }
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn put(&self, byte: u8) {
        while self.regs().fr.is_set(FR::TXFF) {}
        self.regs().dr.write(DR::DATA.val(byte as u32));
    }

    /// Takes one received byte, if any.
    pub fn get(&self) -> Option<u8> {
        if self.regs().fr.is_set(FR::RXFE) {
            None
        } else {
            Some(self.regs().dr.read(DR::DATA) as u8)
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Option<Uart>> = Mutex::new(None);

/// Starts using the PL011 at `base`.
///
/// # Safety
/// `base` must be the address of a PL011 frame, accessible (identity-mapped or MMU off).
pub unsafe fn init(base: usize) {
    if let Some(regs) = NonNull::new(base as *mut Pl011Regs) {
        *CONSOLE.lock() = Some(Uart { regs });
    }
}

/// Enables receive interrupts, for interactive guest input.
pub fn enable_rx_interrupt() {
    set_rx_interrupt(true);
}

/// Turns receive interrupts on or off (off while nobody can take more input).
pub fn set_rx_interrupt(on: bool) {
    if let Some(u) = CONSOLE.lock().as_ref() {
        if on {
            u.regs().imsc.write(INT::RX::SET + INT::RT::SET);
        } else {
            u.regs().imsc.set(0);
        }
    }
}

/// Passes at most `room` received bytes to `sink`; the rest stay in the UART.
///
/// The receive interrupt is cleared *before* reading: a byte that arrives after the last
/// "empty" check then raises it again. Clearing after would lose that byte's interrupt, and
/// with a one-byte receiver nothing more would ever arrive.
pub fn drain_rx(room: usize, mut sink: impl FnMut(u8)) {
    let guard = CONSOLE.lock();
    let Some(u) = guard.as_ref() else { return };
    u.regs().icr.write(INT::RX::SET + INT::RT::SET);
    for _ in 0..room {
        match u.get() {
            Some(b) => sink(b),
            None => break,
        }
    }
}

/// Longest part of a VM's line held back while it is being written.
const LINE_BUF: usize = 160;

/// Who printed last, whether its line is finished, and each VM's unfinished line.
struct Line {
    /// The VM whose line is open (None: the hypervisor).
    owner: Option<usize>,
    /// The last byte printed ended a line.
    at_start: bool,
    /// Each VM's output not printed yet (several VMs only), at most [`LINE_BUF`] bytes.
    held: Vec<Vec<u8>>,
    /// Each VM's line that other output broke.
    broken: Vec<bool>,
}

impl Line {
    /// Ends the open line, if any, before other output; a VM's line is marked broken.
    fn end_open_line(&mut self, u: &Uart) {
        if !self.at_start {
            u.put(b'\r');
            u.put(b'\n');
            self.at_start = true;
            if let Some(b) = self.owner.and_then(|o| self.broken.get_mut(o)) {
                *b = true;
            }
        }
    }
}

static LINE: Mutex<Line> = Mutex::new(Line {
    owner: None,
    at_start: true,
    held: Vec::new(),
    broken: Vec::new(),
});
static NAMES: Once<Vec<String>> = Once::new();

/// Names the VMs, by id, for the prefixes of their lines (none with a single VM).
pub fn set_vm_names<'a>(names: impl Iterator<Item = &'a str>) {
    let names: Vec<String> = names.map(String::from).collect();
    let mut line = LINE.lock();
    line.held = names.iter().map(|_| Vec::with_capacity(LINE_BUF)).collect();
    line.broken = alloc::vec![false; names.len()];
    drop(line);
    NAMES.call_once(|| names);
}

/// Prints `data` of VM `vm` (prefixed with `name` at the start of a line, if given).
fn emit(u: &Uart, line: &mut Line, vm: usize, name: Option<&str>, data: &[u8]) {
    for &b in data {
        if let Some(name) = name {
            if line.owner != Some(vm) {
                line.end_open_line(u);
            }
            let broken = line.broken.get(vm).copied().unwrap_or(false);
            if line.at_start && broken && (b == b'\r' || b == b'\n') {
                // Other output already ended this VM's broken line, and all that is left
                // of it is its end: printing that would make an empty line, and the `+`
                // would then mark the VM's next line as a continuation.
                if b == b'\n' {
                    if let Some(f) = line.broken.get_mut(vm) {
                        *f = false;
                    }
                }
                continue;
            }
            if line.at_start && b != b'\r' && b != b'\n' {
                u.put(b'[');
                name.bytes().for_each(|c| u.put(c));
                u.put(b']');
                if let Some(broken) = line.broken.get_mut(vm) {
                    if core::mem::take(broken) {
                        u.put(b'+');
                    }
                }
                u.put(b' ');
            }
        }
        u.put(b);
        line.owner = Some(vm);
        if b == b'\n' {
            line.at_start = true;
        } else if b != b'\r' {
            line.at_start = false;
        }
    }
}

/// Writes output of VM `vm`: as it is when it is the only VM. With several, whole lines
/// with its name in front; the unfinished end of a line waits for the rest, except for the
/// VM that has the console input (`focus`), whose prompt must show.
pub fn guest_output(vm: usize, focus: usize, bytes: &[u8]) {
    let name = NAMES
        .get()
        .filter(|n| n.len() > 1)
        .and_then(|n| n.get(vm))
        .map(String::as_str);
    let mut line = LINE.lock();
    let guard = CONSOLE.lock();
    let Some(u) = guard.as_ref() else { return };
    let Some(name) = name else {
        emit(u, &mut line, vm, None, bytes);
        return;
    };
    let mut held = match line.held.get_mut(vm) {
        Some(h) => core::mem::take(h),
        None => return,
    };
    for &b in bytes {
        held.push(b);
        if b == b'\n' || held.len() == LINE_BUF {
            emit(u, &mut line, vm, Some(name), &held);
            held.clear();
        }
    }
    if vm == focus && !held.is_empty() {
        emit(u, &mut line, vm, Some(name), &held);
        held.clear();
    }
    if let Some(h) = line.held.get_mut(vm) {
        *h = held;
    }
}

/// Forgets what VM `vm` left unprinted or broken: it starts afresh (a reset, a restart).
pub fn vm_restarted(vm: usize) {
    let mut line = LINE.lock();
    if let Some(h) = line.held.get_mut(vm) {
        h.clear();
    }
    if let Some(b) = line.broken.get_mut(vm) {
        *b = false;
    }
}

/// Writes formatted text of the hypervisor's own (the logger, the monitor) on a line of its
/// own.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let mut line = LINE.lock();
    if let Some(u) = CONSOLE.lock().as_mut() {
        line.end_open_line(u);
        let mut w = Tracked {
            uart: u,
            last: b'\n',
        };
        let _ = w.write_fmt(args);
        line.owner = None;
        line.at_start = w.last == b'\n';
    }
}

/// Writes what the monitor echoes of a typed line: on the hypervisor's own open line (the
/// `rhyve> ` prompt), or on a line of its own if a VM's line is open.
pub fn echo(bytes: &[u8]) {
    let mut line = LINE.lock();
    if let Some(u) = CONSOLE.lock().as_mut() {
        if line.owner.is_some() {
            line.end_open_line(u);
        }
        for &b in bytes {
            if b == b'\n' {
                u.put(b'\r');
            }
            u.put(b);
        }
        line.owner = None;
        if let Some(&last) = bytes.last() {
            line.at_start = last == b'\n';
        }
    }
}

/// The UART, remembering the last byte written.
struct Tracked<'a> {
    uart: &'a mut Uart,
    last: u8,
}

impl Write for Tracked<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(b) = s.bytes().last() {
            self.last = b;
        }
        self.uart.write_str(s)
    }
}

/// Writes formatted text without waiting for the lock: the panic path must print even if the
/// panicking CPU held it.
pub fn force_write_fmt(args: fmt::Arguments<'_>) {
    if CONSOLE.is_locked() {
        // SAFETY: only used when the hypervisor is about to halt; output interleaved with
        // the holder's is better than no report at all.
        unsafe { CONSOLE.force_unlock() };
    }
    if let Some(u) = CONSOLE.lock().as_mut() {
        let _ = u.write_fmt(args);
    }
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        write_fmt(format_args!("rhyve: {}{}\n", level, record.args()));
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the logger.
pub fn init_logger() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
