//! The machine's console: the UART the firmware's device tree names as stdout (see
//! [`hypervisor::platform::console`]), driven by its `bsp` driver, the `log` backend that prints `rhyve: ...` lines on it, and the VMs' output
//! kept apart on it by [`hypervisor::console_mux`].
//!
//! Lock order: the multiplexer's lock, then the UART lock, which is a leaf; both held for one
//! line or one chunk of bytes.

use bsp::console::{Config, Console, Uart as _};
use core::fmt::{self, Write};
use hypervisor::console_mux::{ByteSink, Mux};
use spin::Mutex;

/// The machine's UART. Its driver is picked once, at boot; each byte costs one match on the
/// kind.
pub struct Uart(Console);

impl Uart {
    /// The UART `config` describes.
    ///
    /// # Safety
    /// As [`Console::new`]: `config.base` is such a UART's register frame, accessible
    /// (identity-mapped or MMU off), and used by nothing else.
    unsafe fn new(config: &Config) -> Option<Self> {
        // SAFETY: the caller's guarantee.
        unsafe { Console::new(config) }.map(Self)
    }

    fn put(&mut self, byte: u8) {
        self.0.put(byte);
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

/// Starts using the UART `config` describes.
///
/// # Safety
/// `config.base` must be the address of such a UART's register frame, accessible
/// (identity-mapped or MMU off), and used by nothing else.
pub unsafe fn init(config: &Config) {
    // SAFETY: the caller's guarantee.
    if let Some(u) = unsafe { Uart::new(config) } {
        *CONSOLE.lock() = Some(u);
    }
}

/// Writes `args` on the UART `config` describes, without the console's lock or any other
/// state: for a CPU that stops before the console is set up (entered at the wrong exception
/// level, where nothing else of the hypervisor may run).
///
/// # Safety
/// As [`init`].
pub unsafe fn write_unshared(config: &Config, args: fmt::Arguments<'_>) {
    // SAFETY: the caller's guarantee.
    if let Some(mut u) = unsafe { Uart::new(config) } {
        let _ = u.write_fmt(args);
    }
}

/// Enables receive interrupts, for interactive guest input.
pub fn enable_rx_interrupt() {
    set_rx_interrupt(true);
}

/// Turns receive interrupts on or off (off while nobody can take more input).
pub fn set_rx_interrupt(on: bool) {
    if let Some(u) = CONSOLE.lock().as_mut() {
        u.0.set_rx_interrupt(on);
    }
}

/// Passes at most `room` received bytes to `sink`; the rest stay in the UART.
///
/// The receive interrupt is cleared *before* reading: a byte that arrives after the last
/// "empty" check then raises it again. Clearing after would lose that byte's interrupt, and
/// with a one-byte receiver nothing more would ever arrive.
pub fn drain_rx(room: usize, mut sink: impl FnMut(u8)) {
    let mut guard = CONSOLE.lock();
    let Some(u) = guard.as_mut() else { return };
    u.0.clear_rx_interrupt();
    for _ in 0..room {
        match u.0.get() {
            Some(b) => sink(b),
            None => break,
        }
    }
}

static MUX: Mutex<Mux> = Mutex::new(Mux::new());

impl ByteSink for Uart {
    fn put(&mut self, byte: u8) {
        Uart::put(self, byte);
    }
}

/// Names the VMs, by id, for the prefixes of their lines (none with a single VM).
pub fn set_vm_names<'a>(names: impl Iterator<Item = &'a str>) {
    MUX.lock().set_vm_names(names);
}

/// Writes output of VM `vm`, kept apart from the others' (see [`Mux::guest_output`]); `focus`
/// is the VM that has the console input.
pub fn guest_output(vm: usize, focus: usize, bytes: &[u8]) {
    let mut mux = MUX.lock();
    if let Some(u) = CONSOLE.lock().as_mut() {
        mux.guest_output(u, vm, focus, bytes);
    }
}

/// Forgets what VM `vm` left unprinted or broken: it starts afresh (a reset, a restart).
pub fn vm_restarted(vm: usize) {
    MUX.lock().vm_restarted(vm);
}

/// Writes formatted text of the hypervisor's own (the logger, the monitor) on a line of its
/// own.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let mut mux = MUX.lock();
    if let Some(u) = CONSOLE.lock().as_mut() {
        mux.write_own(u, args);
    }
}

/// Writes what the monitor echoes of a typed line: on the hypervisor's own open line (the
/// `rhyve> ` prompt), or on a line of its own if a VM's line is open.
pub fn echo(bytes: &[u8]) {
    let mut mux = MUX.lock();
    if let Some(u) = CONSOLE.lock().as_mut() {
        mux.echo(u, bytes);
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
