//! `marker`: a VM whose RAM is the evidence. It fills all of its RAM but its own image with a
//! pattern derived from each address, says so, then re-reads the whole pattern every
//! [`PERIOD_MS`] (sleeping on the virtual timer in between) and prints one line per pass. A
//! value another VM managed to store into this VM's RAM, whatever host address that RAM has,
//! shows up as a bad pass. It never powers off: the harness ends the machine.
//!
//! Lines:
//! ```text
//! RHYVE-MARKER ready [<start>, <end>) ... bytes=<N> period-ms=<P>
//! RHYVE-MARKER intact pass=<n>
//! RHYVE-MARKER BAD pass=<n> at=<address> read=<value> want=<value>
//! ```
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use abi::layout::{RAM_BASE, VTIMER_INTID};
    use tg::rt::access::{read64, write64};
    use tg::rt::console::line;
    use tg::rt::{gic, image_extent, RAM_END};

    /// Time between two checks of the pattern.
    const PERIOD_MS: u64 = 250;
    /// Mixed into every word: "MARKER__" in ASCII, so a word of this VM is recognizable.
    const SEED: u64 = 0x4d41_524b_4552_5f5f;

    /// The word at `addr`: different at every address, so a store of any one value, or a
    /// copy of the pattern from elsewhere, cannot go unnoticed.
    fn pattern(addr: u64) -> u64 {
        addr.rotate_left(23) ^ SEED
    }

    /// The marked RAM: everything but this program's image.
    fn ranges() -> [(u64, u64); 2] {
        let (start, end) = image_extent();
        [(RAM_BASE.0, start), (end, RAM_END)]
    }

    fn fill() -> u64 {
        let mut bytes = 0;
        for (from, to) in ranges() {
            let mut a = from;
            while a < to {
                // SAFETY: guest RAM outside this program's image: nothing Rust relies on.
                unsafe { write64(a, pattern(a)) };
                a += 8;
            }
            bytes += to - from;
        }
        bytes
    }

    /// The first word that does not hold the pattern: its address and value.
    fn first_bad() -> Option<(u64, u64)> {
        for (from, to) in ranges() {
            let mut a = from;
            while a < to {
                // SAFETY: as in `fill`.
                let v = unsafe { read64(a) };
                if v != pattern(a) {
                    return Some((a, v));
                }
                a += 8;
            }
        }
        None
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let bytes = fill();
        let [(a0, a1), (b0, b1)] = ranges();
        line(format_args!(
            "RHYVE-MARKER ready [{a0:#x}, {a1:#x}) [{b0:#x}, {b1:#x}) bytes={bytes} period-ms={PERIOD_MS}"
        ));
        // The virtual timer's PPI, the only interrupt this guest takes, wakes it between passes.
        gic::reinit(0, 1 << VTIMER_INTID.0);
        gic::cpu_interface_on();
        let mut pass: u64 = 0;
        loop {
            pass += 1;
            match first_bad() {
                None => line(format_args!("RHYVE-MARKER intact pass={pass}")),
                Some((at, v)) => line(format_args!(
                    "RHYVE-MARKER BAD pass={pass} at={at:#x} read={v:#x} want={:#x}",
                    pattern(at)
                )),
            }
            gic::wait_vtimer(PERIOD_MS, 2 * PERIOD_MS);
        }
    }
}
