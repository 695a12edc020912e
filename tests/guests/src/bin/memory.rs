//! `memory`: the guest writes a pattern over all of its RAM except its own image and reads it
//! back; reads and writes IPAs where rhyve's own image lies in the host's physical map (QEMU
//! virt loads it at 0x4020_0000: in the guest's IPA space that is ordinary guest RAM, and the
//! guest must see its own values there, never rhyve's); then touches the IPAs around RAM, which
//! must give an injected synchronous external abort.
//!
//! Last, it sweeps stores and loads over every IPA where the rest of the host's RAM lies: from
//! the end of its own RAM up to the end of the machine's RAM, which the scenario passes on the
//! command line (`tg.host-ram-end=<address>`). Other VMs' RAM, the VMM partition and rhyve's
//! heap live there in the host's physical map; in this guest's IPA space nothing does, so each
//! access must be an injected abort, and no load may return data.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use abi::layout::RAM_BASE;
    use tg::esr::Expect;
    use tg::params;
    use tg::rt::access::{read32, read64, write64, SENTINEL};
    use tg::rt::exception::trap;
    use tg::rt::{boot, image_extent, Tester, RAM_END};

    /// Where QEMU virt puts rhyve's image in host physical memory (`-kernel` at RAM + 2 MiB).
    const HOST_HYPERVISOR: u64 = 0x4020_0000;
    /// The arm64 Image header's magic ("ARM\x64", at offset 0x38), which rhyve's image has.
    const IMAGE_MAGIC: u64 = 0x644d_5241;
    /// The device tree's magic, 0xd00dfeed, as a little-endian 32-bit load sees it.
    const FDT_MAGIC_LE: u64 = 0xedfe_0dd0;
    /// The command-line key that gives the end of the host's RAM (QEMU's RAM starts at the
    /// same address as guest RAM, so `[RAM_END, end)` is all of it beyond this guest's).
    const HOST_RAM_END_KEY: &str = "tg.host-ram-end";
    /// Spacing of the sweep: over the 480 MiB beyond this guest's RAM in the hostile-memory
    /// machine, 7680 stores and as many loads (about 0.1 s under TCG), and every 2 MiB block
    /// another VM's RAM could be mapped with is hit 32 times.
    const SWEEP_STEP: u64 = 64 << 10;
    /// What the sweep stores: a VM that finds this in its RAM was written by this guest.
    const POISON: u64 = 0xbad0_bad0_bad0_bad0;

    fn pattern(addr: u64, seed: u64) -> u64 {
        addr.rotate_left(17) ^ seed
    }

    /// Fills `[from, to)` with the pattern and checks it; returns the first bad address.
    fn fill_and_check(from: u64, to: u64, seed: u64) -> Option<(u64, u64)> {
        let mut a = from;
        while a < to {
            // SAFETY: guest RAM outside this program's image: nothing Rust relies on.
            unsafe { write64(a, pattern(a, seed)) };
            a += 8;
        }
        let mut a = from;
        while a < to {
            // SAFETY: as above.
            let v = unsafe { read64(a) };
            if v != pattern(a, seed) {
                return Some((a, v));
            }
            a += 8;
        }
        None
    }

    /// One access per [`SWEEP_STEP`] over `[from, to)`, stores or loads, each of which must be
    /// the injected abort; a load must also leave its register as it was ([`SENTINEL`]). Ends
    /// at the first access that is not.
    fn sweep(t: &mut Tester, case: &str, from: u64, to: u64, write: bool) {
        let mut count = 0u64;
        let mut a = from;
        while a < to {
            // SAFETY: no RAM of this guest there: the access aborts (recovered).
            let (v, got) = trap(|| unsafe {
                if write {
                    write64(a, POISON);
                    SENTINEL
                } else {
                    read64(a)
                }
            });
            if let Err(m) = Expect::injected_dabt(a, write).check(got) {
                match got {
                    None => t.check(
                        case,
                        false,
                        format_args!(
                            "{a:#x}: no exception: the access went through, after {count} good"
                        ),
                    ),
                    Some(g) => t.check(
                        case,
                        false,
                        format_args!(
                            "{a:#x}: {m}: got {:?} far={:#x}, after {count} good",
                            g.esr, g.far
                        ),
                    ),
                };
                return;
            }
            if v != SENTINEL {
                t.check(
                    case,
                    false,
                    format_args!("{a:#x}: aborted but the load returned {v:#x}"),
                );
                return;
            }
            count += 1;
            a += SWEEP_STEP;
        }
        let what = if write { "stores" } else { "loads" };
        t.check(
            case,
            count > 0,
            format_args!(
                "[{from:#x}, {to:#x}): {count} {what} every {:#x}, each an injected abort",
                SWEEP_STEP
            ),
        );
    }

    fn report(t: &mut Tester, case: &str, from: u64, to: u64, seed: u64) {
        match fill_and_check(from, to, seed) {
            None => t.check(case, true, format_args!("[{from:#x}, {to:#x}) reads back")),
            Some((a, v)) => t.check(
                case,
                false,
                format_args!("{a:#x} reads {v:#x}, wrote {:#x}", pattern(a, seed)),
            ),
        };
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let mut t = Tester::new("memory");
        let (img_start, img_end) = image_extent();
        let dtb = boot::dtb();
        // Read before the fill below overwrites the device tree.
        let host_ram_end = boot::with_bootargs(|args| params::param_u64(args?, HOST_RAM_END_KEY));

        // The device tree rhyve built is where x0 said, above this image as QEMU's `-kernel`
        // puts it (checked before the fill overwrites it).
        t.expect_value(
            "dtb-at-x0",
            // SAFETY: guest RAM (the device tree).
            || unsafe { read32(dtb) },
            |v| dtb >= img_end && boot::dtb_room(dtb).is_some() && v == FDT_MAGIC_LE,
            "x0 above the image, in RAM, holding 0xd00dfeed",
        );
        // Before anything is written there: rhyve's image must not show through.
        t.expect_value(
            "hv-window-not-hypervisor",
            // SAFETY: guest RAM.
            || unsafe { read32(HOST_HYPERVISOR + 0x38) },
            |v| v != IMAGE_MAGIC,
            "not rhyve's Image magic",
        );
        report(
            &mut t,
            "ram-below-image",
            RAM_BASE.0,
            img_start,
            0x5a5a_a5a5_0f0f_f0f0,
        );
        report(
            &mut t,
            "ram-above-image",
            img_end,
            RAM_END,
            0xa5a5_5a5a_f0f0_0f0f,
        );
        // A second pass with another seed over the window where rhyve lives in the host map:
        // the values are the guest's own.
        report(
            &mut t,
            "hv-window-own-memory",
            HOST_HYPERVISOR,
            HOST_HYPERVISOR + (2 << 20),
            0x1234_5678_9abc_def0,
        );
        t.expect_value(
            "ram-last-word",
            // SAFETY: the last word of guest RAM (filled above).
            || unsafe { read64(RAM_END - 8) },
            |v| v == pattern(RAM_END - 8, 0xa5a5_5a5a_f0f0_0f0f),
            "the pattern",
        );

        // Outside RAM: an abort, whichever direction.
        let holes: [(&str, &str, u64); 5] = [
            ("below-ram-read", "below-ram-write", RAM_BASE.0 - 8),
            ("ram-end-read", "ram-end-write", RAM_END),
            ("ram-end-2m-read", "ram-end-2m-write", RAM_END + (2 << 20)),
            (
                "ram-plus-1g-read",
                "ram-plus-1g-write",
                RAM_BASE.0 + (1 << 30),
            ),
            ("high-ram-read", "high-ram-write", 0x1_0000_0000),
        ];
        for (r, w, a) in holes {
            // SAFETY: no RAM there: the access aborts (recovered).
            t.expect_trap(r, Expect::injected_dabt(a, false), || unsafe { read64(a) });
            // SAFETY: as above.
            t.expect_trap(w, Expect::injected_dabt(a, true), || unsafe {
                write64(a, 0xbad0_bad0_bad0_bad0)
            });
        }
        // The RAM next to the holes is unchanged by the refused stores.
        t.expect_value(
            "ram-intact-after-holes",
            // SAFETY: guest RAM.
            || unsafe { read64(RAM_END - 8) },
            |v| v == pattern(RAM_END - 8, 0xa5a5_5a5a_f0f0_0f0f),
            "the pattern",
        );

        // The rest of the host's RAM, where other VMs and rhyve live.
        let end = host_ram_end.unwrap_or(0);
        let given = t.check(
            "host-ram-end-given",
            end > RAM_END && end % 8 == 0,
            format_args!("{HOST_RAM_END_KEY}={end:#x} (expected a word above {RAM_END:#x})"),
        );
        if given {
            sweep(&mut t, "host-ram-store-sweep", RAM_END, end, true);
            sweep(&mut t, "host-ram-load-sweep", RAM_END, end, false);
            let last = end - 8;
            // SAFETY: as in `sweep`.
            t.expect_trap(
                "host-ram-last-word-write",
                Expect::injected_dabt(last, true),
                || unsafe { write64(last, POISON) },
            );
            // SAFETY: as above.
            t.expect_trap(
                "host-ram-last-word-read",
                Expect::injected_dabt(last, false),
                || unsafe { read64(last) },
            );
        }
        t.expect_value(
            "ram-intact-after-sweep",
            // SAFETY: guest RAM.
            || unsafe { read64(RAM_END - 8) },
            |v| v == pattern(RAM_END - 8, 0xa5a5_5a5a_f0f0_0f0f),
            "the pattern",
        );
        t.finish()
    }
}
