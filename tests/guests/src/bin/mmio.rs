//! `mmio`: loads and stores of every width to the emulated GICv3 distributor/redistributor and
//! PL011, aligned and not; the forms with no syndrome (ISV = 0: pair, writeback, exclusive) on
//! emulated regions; and accesses and instruction fetches to IPAs where nothing is (flash, the
//! virtio slots, PCIe space, above RAM, the top of and beyond the 40-bit IPA space).
//!
//! Expected: the emulated register values (unknown offsets and unsupported widths read as zero,
//! writes ignored); an injected synchronous external abort (EC 0x25/0x21, FSC 0x10) for an
//! access with no syndrome or to a hole; for an address beyond the IPA/PA size, whatever abort
//! the CPU itself raises at EL1.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use abi::layout::{PL011_BASE, PL031_BASE, VIRTIO_MMIO_BASE};
    use tg::esr::{ec, fsc, Expect};
    use tg::rt::access::*;
    use tg::rt::exception::trap;
    use tg::rt::gic::{gicd, gicr, gicr as gicr_base, GICD};
    use tg::rt::{Tester, RAM_END};

    const UART: u64 = PL011_BASE.0;
    const RTC: u64 = PL031_BASE.0;
    /// RTCDR and RTCLR (PL031 TRM table 3-1).
    const RTCDR: u64 = 0x000;
    const RTCLR: u64 = 0x008;
    /// UARTFR, UARTFR.TXFE, UARTIMSC, UARTPeriphID0, UARTPCellID0.
    const FR: u64 = 0x018;
    const FR_TXFE: u64 = 1 << 7;
    const IMSC: u64 = 0x038;
    const PERIPH_ID0: u64 = 0xfe0;
    const PCELL_ID0: u64 = 0xff0;
    /// GICD_IIDR as rhyve reports it: implementer 0x43b (Arm), product 'R'.
    const RHYVE_IIDR: u64 = 0x5200_043b;
    /// The SPI whose priority and routing the cases use.
    const SPI: u64 = 40;

    /// An unaligned access to a device: the architecture says alignment fault at EL1 (Device
    /// memory, which is all memory with the MMU off); QEMU's TCG does not check, so the access
    /// reaches rhyve, whose register tables refuse a misaligned access: it reads as zero.
    fn unaligned(t: &mut Tester, case: &str, f: impl FnOnce() -> u64) {
        let (v, tr) = trap(f);
        match tr {
            Some(tr) if tr.esr.ec() == ec::DABT_SAME && tr.esr.fsc() == fsc::ALIGNMENT => t.check(
                case,
                true,
                format_args!("alignment fault at EL1: {:?}", tr.esr),
            ),
            Some(tr) => t.check(
                case,
                false,
                format_args!(
                    "{:?} far={:#x}; expected an alignment fault or zero",
                    tr.esr, tr.far
                ),
            ),
            None => t.check(
                case,
                v == 0,
                format_args!("value={v:#x} (expected 0: refused, RAZ)"),
            ),
        };
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let mut t = Tester::new("mmio");
        // SAFETY: every probe below touches device registers of this guest or IPA holes, nothing
        // Rust relies on; faults are recovered by the armed handler.
        unsafe {
            // --- GICD: the emulated values, per width.
            t.expect_value(
                "gicd-ctlr-r32",
                || read32(GICD + gicd::CTLR),
                |v| v as u32 & (gicd::CTLR_ARE | gicd::CTLR_DS) == gicd::CTLR_ARE | gicd::CTLR_DS,
                "ARE and DS set",
            );
            t.expect_value(
                "gicd-typer-r32",
                || read32(GICD + gicd::TYPER),
                |v| v & 0x1f == 8 && (v >> 5) & 7 == 0,
                "ITLinesNumber 8, CPUNumber 0",
            );
            t.expect_value(
                "gicd-iidr-r32",
                || read32(GICD + gicd::IIDR),
                |v| v == RHYVE_IIDR,
                "0x5200043b",
            );
            t.expect_value(
                "gicd-pidr2-r32",
                || read32(GICD + gicd::PIDR2),
                |v| (v >> 4) & 0xf == 3,
                "ArchRev 3 (GICv3)",
            );
            t.expect_value(
                "gicd-pidr2-r8",
                || read8(GICD + gicd::PIDR2),
                |v| v == 0,
                "0: byte access to a word register",
            );
            t.expect_value(
                "gicd-typer-r16",
                || read16(GICD + gicd::TYPER),
                |v| v == 0,
                "0: halfword access to a word register",
            );
            t.expect_value(
                "gicd-ctlr-r64",
                || read64(GICD + gicd::CTLR),
                |v| v == 0,
                "0: doubleword access to a word register",
            );
            let prio = GICD + gicd::IPRIORITYR + SPI;
            write8(prio, 0xa0);
            t.expect_value(
                "gicd-ipriorityr-w8-r8",
                || read8(prio),
                |v| v == 0xa0,
                "0xa0",
            );
            t.expect_value(
                "gicd-ipriorityr-r32",
                || read32(prio & !3),
                |v| v & 0xff == 0xa0,
                "0xa0 in byte 0",
            );
            t.expect_value(
                "gicd-ipriorityr-sx8",
                || read8_sx(prio),
                |v| v == 0xffff_ffff_ffff_ffa0,
                "0xa0 sign-extended",
            );
            write16(prio, 0x1111);
            t.expect_value(
                "gicd-ipriorityr-w16-ignored",
                || read8(prio),
                |v| v == 0xa0,
                "0xa0: halfword write ignored",
            );
            let irouter = GICD + gicd::IROUTER + 8 * SPI;
            write64(irouter, 0);
            t.expect_value("gicd-irouter-w64-r64", || read64(irouter), |v| v == 0, "0");
            t.expect_value(
                "gicd-irouter-r32-high",
                || read32(irouter + 4),
                |v| v == 0,
                "0",
            );
            t.expect_value(
                "gicd-unknown-r32",
                || read32(GICD + 0xe000),
                |v| v == 0,
                "0 (RAZ)",
            );
            t.expect_no_trap("gicd-unknown-w32", || write32(GICD + 0xe000, 0xffff_ffff));
            unaligned(&mut t, "gicd-unaligned-r32", || {
                read32(GICD + gicd::TYPER + 2)
            });
            unaligned(&mut t, "gicd-unaligned-r16", || {
                read16(GICD + gicd::TYPER + 1)
            });
            unaligned(&mut t, "gicd-unaligned-r64", || {
                read64(GICD + gicd::IROUTER + 8 * SPI + 4)
            });

            // --- GICR: this vCPU's frames, and the frames of a vCPU that does not exist.
            let rd = gicr_base(0);
            t.expect_value(
                "gicr-typer-r64",
                || read64(rd + gicr::TYPER),
                |v| v & gicr::TYPER_LAST != 0 && v >> 32 == 0 && (v >> 8) & 0xffff == 0,
                "Last, affinity 0, processor 0",
            );
            t.expect_value(
                "gicr-typer-r32-high",
                || read32(rd + gicr::TYPER + 4),
                |v| v == 0,
                "affinity 0",
            );
            t.expect_value(
                "gicr-pidr2-r32",
                || read32(rd + gicr::PIDR2),
                |v| (v >> 4) & 0xf == 3,
                "ArchRev 3",
            );
            t.expect_value("gicr-pidr2-r8", || read8(rd + gicr::PIDR2), |v| v == 0, "0");
            write32(rd + gicr::WAKER, 0);
            t.expect_value(
                "gicr-waker-rw",
                || read32(rd + gicr::WAKER),
                |v| v & 0b110 == 0,
                "awake: ProcessorSleep and ChildrenAsleep clear",
            );
            let p27 = rd + gicr::IPRIORITYR + 27;
            write8(p27, 0x80);
            t.expect_value(
                "gicr-ipriorityr-w8-r8",
                || read8(p27),
                |v| v == 0x80,
                "0x80",
            );
            unaligned(&mut t, "gicr-unaligned-r32", || {
                read32(rd + gicr::TYPER + 1)
            });
            let absent = gicr_base(1);
            t.expect_trap(
                "gicr-absent-vcpu-r32",
                Expect::injected_dabt(absent, false),
                || read32(absent),
            );
            t.expect_trap(
                "gicr-absent-vcpu-w32",
                Expect::injected_dabt(absent + gicr::WAKER, true),
                || write32(absent + gicr::WAKER, 0),
            );
            let last = 0x08ff_fffc;
            t.expect_trap(
                "gicr-region-end-r32",
                Expect::injected_dabt(last, false),
                || read32(last),
            );

            // --- PL011.
            t.expect_value(
                "pl011-fr-r32",
                || read32(UART + FR),
                |v| v & FR_TXFE != 0,
                "TXFE",
            );
            t.expect_value(
                "pl011-periphid0-r8",
                || read8(UART + PERIPH_ID0),
                |v| v == 0x11,
                "0x11",
            );
            t.expect_value(
                "pl011-periphid0-r16",
                || read16(UART + PERIPH_ID0),
                |v| v == 0x11,
                "0x11",
            );
            t.expect_value(
                "pl011-periphid0-r32",
                || read32(UART + PERIPH_ID0),
                |v| v == 0x11,
                "0x11",
            );
            t.expect_value(
                "pl011-periphid0-r64",
                || read64(UART + PERIPH_ID0),
                |v| v == 0x11,
                "0x11 (the model answers the register at that offset)",
            );
            let cell = [0x0d, 0xf0, 0x05, 0xb1];
            t.expect_value(
                "pl011-cellid-r32",
                || {
                    (0..4).fold(0, |acc, i| {
                        acc | read32(UART + PCELL_ID0 + 4 * i) << (8 * i)
                    })
                },
                |v| v == u64::from(u32::from_le_bytes(cell)),
                "0x0d 0xf0 0x05 0xb1",
            );
            write32(UART + IMSC, 0xffff_ffff);
            t.expect_value(
                "pl011-imsc-ones",
                || read32(UART + IMSC),
                |v| v == 0x7ff,
                "0x7ff",
            );
            write32(UART + IMSC, 0);
            t.expect_value("pl011-imsc-zero", || read32(UART + IMSC), |v| v == 0, "0");
            t.expect_no_trap("pl011-dr-w8", || write8(UART, u64::from(b'\n')));
            t.expect_value(
                "pl011-unknown-r32",
                || read32(UART + 0x100),
                |v| v == 0,
                "0 (RAZ)",
            );
            unaligned(&mut t, "pl011-unaligned-r32", || {
                read32(UART + PERIPH_ID0 + 2)
            });
            let next = UART + 0x1000;
            t.expect_trap(
                "pl011-next-page-r32",
                Expect::injected_dabt(next, false),
                || read32(next),
            );

            // --- PL031: the guest sets its own clock and nothing else.
            t.expect_value(
                "pl031-periphid-r32",
                || {
                    (0..4).fold(0, |acc, i| {
                        acc | read32(RTC + PERIPH_ID0 + 4 * i) << (8 * i)
                    })
                },
                |v| v == 0x0014_1031,
                "0x00141031",
            );
            t.expect_value(
                "pl031-dr-r32",
                || read32(RTC + RTCDR),
                |v| v > 0,
                "the machine's time (not 0)",
            );
            write32(RTC + RTCLR, 1000);
            t.expect_value(
                "pl031-lr-w32-dr",
                || read32(RTC + RTCDR),
                |v| (1000..1100).contains(&v),
                "1000 and a little (the loaded time, running)",
            );
            t.expect_value(
                "pl031-unknown-r32",
                || read32(RTC + 0x100),
                |v| v == 0,
                "0 (RAZ)",
            );
            let next = RTC + 0x1000;
            t.expect_trap(
                "pl031-next-page-r32",
                Expect::injected_dabt(next, false),
                || read32(next),
            );

            // --- No syndrome (ISV = 0) on emulated regions: an injected abort.
            t.expect_trap("gicd-ldp", Expect::injected_dabt(GICD, false), || ldp(GICD));
            t.expect_trap(
                "gicd-stp",
                Expect::injected_dabt(GICD + 0xe000, true),
                || stp(GICD + 0xe000, 0),
            );
            t.expect_trap(
                "pl011-ldr-postindex",
                Expect::injected_dabt(UART + FR, false),
                || read32_post(UART + FR),
            );
            t.expect_trap(
                "gicd-str-preindex",
                Expect::injected_dabt(GICD + 0xe000, true),
                || write64_pre(GICD + 0xe000, 0),
            );
            t.expect_trap(
                "gicd-ldxr",
                Expect::injected_dabt(GICD + gicd::TYPER, false),
                || ldxr32(GICD + gicd::TYPER),
            );
            // A store-exclusive with no exclusive monitor armed (the LDXR above aborted) may
            // fail without any access: then it must report failure (status 1) and nothing
            // reaches the device; if it does reach rhyve, ISV = 0 gets the injected abort.
            let (status, tr) = trap(|| stxr32(UART + IMSC, 0x7ff));
            let imsc = read32(UART + IMSC);
            match tr {
                None => t.check(
                    "pl011-stxr",
                    status == 1 && imsc == 0,
                    format_args!(
                    "no exception, status={status:#x} IMSC={imsc:#x} (expected 1 and 0: no store)"),
                ),
                Some(_) => t.check(
                    "pl011-stxr",
                    Expect::injected_dabt(UART + IMSC, true).check(tr).is_ok(),
                    format_args!("{:?}", tr.map(|x| x.esr)),
                ),
            };

            // --- Holes: nothing at these IPAs.
            let holes: [(&str, &str, u64); 5] = [
                ("flash-r64", "flash-w64", 0),
                ("virtio-r64", "virtio-w64", VIRTIO_MMIO_BASE.0),
                ("pcie-mmio-r64", "pcie-mmio-w64", 0x1000_0000),
                ("above-ram-r64", "above-ram-w64", RAM_END),
                ("ipa-top-r64", "ipa-top-w64", (1 << 40) - 8),
            ];
            for (r, w, a) in holes {
                t.expect_trap(r, Expect::injected_dabt(a, false), || read64(a));
                t.expect_trap(w, Expect::injected_dabt(a, true), || {
                    write64(a, 0x5555_aaaa)
                });
            }
            // Beyond the 40-bit IPA space and beyond any PA size: the CPU's own abort at EL1.
            for (case, a) in [
                ("beyond-ipa-r64", 1u64 << 40),
                ("beyond-pa-r64", 1u64 << 52),
                ("all-ones-r64", u64::MAX - 7),
            ] {
                t.expect_trap(case, Expect::any_dabt(), || read64(a));
            }
            t.expect_trap("beyond-ipa-w64", Expect::any_dabt(), || write64(1 << 40, 0));

            // --- Instruction fetches from holes and devices.
            for (case, a) in [
                ("fetch-virtio", VIRTIO_MMIO_BASE.0),
                ("fetch-flash", 0),
                ("fetch-gicd", GICD),
                ("fetch-above-ram", RAM_END),
            ] {
                t.expect_trap(case, Expect::injected_iabt(a), || fetch(a));
            }
            let any_iabt = Expect {
                ec: ec::IABT_SAME,
                fsc: None,
                wnr: None,
                far: None,
            };
            t.expect_trap("fetch-beyond-ipa", any_iabt, || fetch(1 << 40));
        }
        t.finish()
    }
}
