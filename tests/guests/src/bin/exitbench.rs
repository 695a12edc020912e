//! `exitbench`: the round trip of one exit, from a guest's point of view, in guest counter
//! ticks (CNTVCT_EL0), for each path an exit can take:
//!
//! - `null`: an HVC the core answers at once (PSCI_VERSION);
//! - `core-device`: a load from the emulated GIC distributor, emulated in the core;
//! - `vmm-device`: a load from the UART's interrupt mask register, which the VMM partition
//!   answers (an upcall: the CPU switches to the VMM and back);
//! - `vmm-fast-path`: a load from the UART's flag register, answered by the core from the
//!   VMM's shadow without an upcall.
//!
//! Prints one `RHYVE-BENCH <path> ticks=<mean> ns=<mean>` line per path and powers off.
//! `cargo xtask bench` runs it; it is a measurement, not a test.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use abi::layout::{GICD_BASE, PL011_BASE};
    use tg::rt::access::read32;
    use tg::rt::console::line;
    use tg::rt::gic::gicd;
    use tg::rt::psci::{fid, hvc, system_off};

    /// Round trips per path.
    const ROUNDS: u64 = 2000;
    /// UARTIMSC and UARTFR (PL011 TRM 3.3).
    const UARTIMSC: u64 = PL011_BASE.0 + 0x38;
    const UARTFR: u64 = PL011_BASE.0 + 0x18;
    const NS_PER_S: u64 = 1_000_000_000;

    fn counter() -> u64 {
        let v: u64;
        // SAFETY: reads the virtual counter after an ISB, so earlier exits are complete.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack))
        };
        v
    }

    fn frequency() -> u64 {
        let v: u64;
        // SAFETY: reads the counter frequency; no side effects.
        unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
        v
    }

    fn measure(name: &str, f: impl Fn()) {
        f();
        let start = counter();
        for _ in 0..ROUNDS {
            f();
        }
        let ticks = (counter() - start) / ROUNDS;
        let ns = ticks * NS_PER_S / frequency().max(1);
        line(format_args!("RHYVE-BENCH {name} ticks={ticks} ns={ns}"));
    }

    #[no_mangle]
    fn tg_main() -> ! {
        measure("null", || {
            hvc(u64::from(fid::PSCI_VERSION), 0, 0, 0);
        });
        measure("core-device", || {
            // SAFETY: a load from an emulated device register with no side effects.
            unsafe { read32(GICD_BASE.0 + gicd::PIDR2) };
        });
        measure("vmm-device", || {
            // SAFETY: as above.
            unsafe { read32(UARTIMSC) };
        });
        measure("vmm-fast-path", || {
            // SAFETY: as above.
            unsafe { read32(UARTFR) };
        });
        line(format_args!("RHYVE-BENCH-DONE"));
        system_off()
    }
}
