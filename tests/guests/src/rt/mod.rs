//! The bare-metal runtime of a test guest: boot stub and vectors ([`boot`], [`exception`]),
//! console ([`console`]), reporting ([`tester`]), PSCI ([`psci`]), raw accesses that may fault
//! ([`access`]), and the GIC CPU interface, redistributor and virtual timer ([`gic`]).
//!
//! A guest binary defines `#[no_mangle] extern "Rust" fn tg_main() -> !`; the boot stub calls
//! it on vCPU 0 with the stack set, .bss zeroed and the vectors installed.

pub mod access;
pub mod boot;
pub mod console;
pub mod exception;
pub mod gic;
pub mod psci;
pub mod tester;

pub use tester::Tester;

/// Reads a system register by name or `S<op0>_<op1>_C<n>_C<m>_<op2>` encoding.
#[macro_export]
macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading a system register changes no memory Rust can see; no `nomem`, so the
        // read stays ordered with the trap-expectation flags around it.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nostack)) };
        v
    }};
}

/// Writes a system register by name or encoding.
#[macro_export]
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let v: u64 = $value;
        // SAFETY: the guest owns its EL1 state; writing a system register changes no memory
        // Rust can see.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack)) };
    }};
}

/// Size of guest RAM every test-guest scenario gives its guest (xtask's hostile scenarios use
/// the same number), so a guest knows where its RAM ends without parsing the device tree.
pub const RAM_SIZE: u64 = 32 << 20;
/// First byte after guest RAM.
pub const RAM_END: u64 = abi::layout::RAM_BASE.0 + RAM_SIZE;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The guest image's extent in RAM, `[start, end)` (end page-aligned, .bss included).
pub fn image_extent() -> (u64, u64) {
    (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}

/// Spins for about `ticks` of the virtual counter.
pub fn delay_ticks(ticks: u64) {
    let start = read_sysreg!("cntvct_el0");
    while read_sysreg!("cntvct_el0").wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Virtual counter ticks per millisecond.
pub fn ticks_per_ms() -> u64 {
    (read_sysreg!("cntfrq_el0") / 1000).max(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    tester::fatal(format_args!("panic: {info}"))
}
