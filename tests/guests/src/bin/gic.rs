//! `gic`: abuse of the virtual GICv3 from inside. Run with 2 vCPUs: vCPU 1 spins acknowledging
//! SGIs while vCPU 0 writes all-ones then all-zeros to every 32-bit offset of the distributor
//! and of both vCPUs' redistributor frames, enables interrupts that do not exist, routes an
//! SPI to affinities that do not exist, and floods SGIs to itself, to all others and to absent
//! CPUs. Then it re-initializes the GIC minimally and proves the machine still works: SGIs
//! reach vCPU 1, and the virtual timer's interrupt (INTID 27) arrives through ICC_IAR1_EL1.
//!
//! Expected: no access faults (every GICD/GICR offset of an existing vCPU is emulated: unknown
//! ones RAZ/WI), absent interrupts stay disabled, the guest and rhyve stay responsive.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use abi::layout::{GICD_SIZE, GICR_STRIDE, VTIMER_INTID};
    use tg::rt::access::{read32, read64, write32, write64};
    use tg::rt::gic::{self, gicd, gicr, GICD, SPURIOUS};
    use tg::rt::{delay_ticks, psci, ticks_per_ms, Tester};
    use tg::sgi;

    /// SGIs the flood uses: to others, to self, to absent CPUs.
    const SGI_OTHERS: u8 = 1;
    const SGI_SELF: u8 = 2;
    const SGI_ABSENT: u8 = 3;
    /// Writes per flood.
    const FLOOD: u32 = 4000;
    /// The SPI the routing cases use.
    const SPI: u64 = 40;
    /// GICD_ISPENDR / GICD_ICPENDR / GICD_ICENABLER.
    const GICD_ISPENDR: u64 = 0x0200;
    const GICD_ICPENDR: u64 = 0x0280;
    const GICD_ICENABLER: u64 = 0x0180;
    /// GICR_CTLR.EnableLPIs.
    const GICR_CTLR_ENABLE_LPIS: u64 = 1;

    static READY: AtomicBool = AtomicBool::new(false);
    static STOP: AtomicBool = AtomicBool::new(false);
    static HEARTBEAT: AtomicU32 = AtomicU32::new(0);
    static SGI_SEEN: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];

    /// vCPU 1: acknowledge and end whatever arrives, count SGIs, until told to stop.
    fn spinner() {
        gic::cpu_interface_on();
        READY.store(true, Ordering::Release);
        while !STOP.load(Ordering::Acquire) {
            HEARTBEAT.fetch_add(1, Ordering::Relaxed);
            let intid = gic::ack();
            if intid != SPURIOUS {
                if let Some(c) = SGI_SEEN.get(intid as usize) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                gic::eoi(intid);
            }
        }
    }

    /// Waits up to `ms` for `cond`.
    fn wait(ms: u64, cond: impl Fn() -> bool) -> bool {
        for _ in 0..ms {
            if cond() {
                return true;
            }
            delay_ticks(ticks_per_ms());
        }
        cond()
    }

    /// Writes `value` to every 32-bit offset of `[base, base + len)`.
    fn sweep(t: &mut Tester, case: &str, base: u64, len: u64, value: u32) {
        t.expect_no_trap(case, || {
            let mut off = 0;
            while off < len {
                // SAFETY: a GIC frame of this guest: emulated, nothing Rust relies on.
                unsafe { write32(base + off, u64::from(value)) };
                off += 4;
            }
        });
    }

    fn heartbeat_moves() -> bool {
        let h = HEARTBEAT.load(Ordering::Relaxed);
        wait(2000, || HEARTBEAT.load(Ordering::Relaxed) != h)
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let mut t = Tester::new("gic");
        gic::cpu_interface_on();
        // SAFETY: every access below is to a GIC register of this guest.
        unsafe {
            t.expect_value(
                "gicd-typer-2-cpus",
                || read32(GICD + gicd::TYPER),
                |v| (v >> 5) & 7 == 1,
                "CPUNumber 1",
            );
        }
        let r = psci::start_secondary(1, spinner);
        let ready = r == 0 && wait(5000, || READY.load(Ordering::Acquire));
        t.check("secondary-started", ready, format_args!("CPU_ON x0={r:#x}"));

        // Scribble over everything.
        sweep(&mut t, "gicd-sweep-ones", GICD, GICD_SIZE, u32::MAX);
        sweep(&mut t, "gicd-sweep-zeros", GICD, GICD_SIZE, 0);
        sweep(
            &mut t,
            "gicr-own-sweep-ones",
            gic::gicr(0),
            GICR_STRIDE,
            u32::MAX,
        );
        sweep(&mut t, "gicr-own-sweep-zeros", gic::gicr(0), GICR_STRIDE, 0);
        sweep(
            &mut t,
            "gicr-other-sweep-ones",
            gic::gicr(1),
            GICR_STRIDE,
            u32::MAX,
        );
        sweep(
            &mut t,
            "gicr-other-sweep-zeros",
            gic::gicr(1),
            GICR_STRIDE,
            0,
        );
        // SAFETY: as above.
        unsafe {
            t.expect_value(
                "gicd-alive-after-sweep",
                || read32(GICD + gicd::PIDR2),
                |v| (v >> 4) & 0xf == 3,
                "ArchRev 3",
            );
            t.expect_value(
                "gicr-alive-after-sweep",
                || read64(gic::gicr(1) + gicr::TYPER),
                |v| v & gicr::TYPER_LAST != 0 && (v >> 8) & 0xffff == 1,
                "vCPU 1's frame: Last, processor 1",
            );
        }
        let alive = heartbeat_moves();
        t.check(
            "secondary-alive-after-sweep",
            alive,
            format_args!("heartbeat {}", HEARTBEAT.load(Ordering::Relaxed)),
        );

        // Interrupts that do not exist: SPIs above the 256 implemented (INTIDs 288..1019) and
        // LPIs.
        // SAFETY: as above.
        unsafe {
            t.expect_value(
                "enable-absent-spis",
                || {
                    let mut any = 0;
                    for n in 9..32 {
                        write32(GICD + gicd::ISENABLER + 4 * n, u64::from(u32::MAX));
                        any |= read32(GICD + gicd::ISENABLER + 4 * n);
                    }
                    any
                },
                |v| v == 0,
                "0: nothing above INTID 287 can be enabled",
            );
            t.expect_value(
                "pend-absent-spis",
                || {
                    let mut any = 0;
                    for n in 9..32 {
                        write32(GICD + GICD_ISPENDR + 4 * n, u64::from(u32::MAX));
                        any |= read32(GICD + GICD_ISPENDR + 4 * n);
                    }
                    any
                },
                |v| v == 0,
                "0",
            );
            t.expect_value(
                "enable-lpis-refused",
                || {
                    write32(gic::gicr(0) + gicr::CTLR, GICR_CTLR_ENABLE_LPIS);
                    read32(gic::gicr(0) + gicr::CTLR)
                },
                |v| v & GICR_CTLR_ENABLE_LPIS == 0,
                "EnableLPIs stays 0 (no LPIs)",
            );

            // Routing to affinities that do not exist, then making that SPI pending.
            let irouter = GICD + gicd::IROUTER + 8 * SPI;
            t.expect_value(
                "irouter-absent-affinity",
                || {
                    write64(irouter, 0xff_00ff_ffff);
                    read64(irouter)
                },
                |_| true,
                "any value, no fault",
            );
            t.expect_value(
                "irouter-irm-garbage",
                || {
                    write64(irouter, u64::MAX);
                    read64(irouter)
                },
                |_| true,
                "any value, no fault",
            );
            t.expect_no_trap("spi-pending-routed-nowhere", || {
                write32(
                    GICD + gicd::CTLR,
                    u64::from(gicd::CTLR_ENABLE_GRP1 | gicd::CTLR_ARE),
                );
                write32(GICD + gicd::IGROUPR + 4, u64::from(u32::MAX));
                write64(irouter, 0xff_00ff_ffff);
                write32(GICD + gicd::ISENABLER + 4, 1 << (SPI - 32));
                write32(GICD + GICD_ISPENDR + 4, 1 << (SPI - 32));
                delay_ticks(10 * ticks_per_ms());
                write32(GICD + GICD_ICENABLER + 4, 1 << (SPI - 32));
                write32(GICD + GICD_ICPENDR + 4, 1 << (SPI - 32));
                write64(irouter, 0);
            });
        }

        // Minimal re-initialization: the distributor on, both redistributors awake with SGIs
        // (and, on vCPU 0, the virtual timer's PPI) enabled in Group 1.
        gic::reinit(1, 0);
        gic::reinit(0, 1 << VTIMER_INTID.0);
        // Drain whatever the scribbling left pending here.
        let mut drained = 0;
        loop {
            let i = gic::ack();
            if i == SPURIOUS || drained > 64 {
                break;
            }
            gic::eoi(i);
            drained += 1;
        }
        let en = gic::enabled0(0);
        t.check(
            "reinit",
            en == 0xffff | 1 << VTIMER_INTID.0 && drained <= 64,
            format_args!("ISENABLER0={en:#x}, {drained} stale interrupts drained"),
        );

        // SGI floods.
        let before = SGI_SEEN[SGI_OTHERS as usize].load(Ordering::Relaxed);
        for _ in 0..FLOOD {
            gic::sgi1r(sgi::all_but_self(SGI_OTHERS));
        }
        let got = wait(5000, || {
            SGI_SEEN[SGI_OTHERS as usize].load(Ordering::Relaxed) > before
        });
        t.check(
            "sgi-flood-others",
            got,
            format_args!(
                "{FLOOD} SGIs to all but self; vCPU 1 took {}",
                SGI_SEEN[SGI_OTHERS as usize].load(Ordering::Relaxed) - before
            ),
        );
        for _ in 0..FLOOD {
            gic::sgi1r(sgi::targeted(SGI_SELF, false, 0, [0, 0, 0], 1));
        }
        let mut own = 0;
        let mut other = 0;
        loop {
            let i = gic::ack();
            if i == SPURIOUS || own + other > 64 {
                break;
            }
            if i == u32::from(SGI_SELF) {
                own += 1
            } else {
                other += 1
            }
            gic::eoi(i);
        }
        t.check(
            "sgi-flood-self",
            own >= 1 && other == 0,
            format_args!("{FLOOD} SGIs to self; took SGI {SGI_SELF} {own} times, {other} others"),
        );
        for _ in 0..FLOOD {
            gic::sgi1r(sgi::targeted(SGI_ABSENT, false, 0, [0, 0, 5], 0xffff));
            gic::sgi1r(sgi::targeted(
                SGI_ABSENT,
                false,
                15,
                [0xff, 0xff, 0],
                0xffff,
            ));
        }
        let ack = gic::ack();
        let stray = SGI_SEEN[SGI_ABSENT as usize].load(Ordering::Relaxed);
        t.check(
            "sgi-flood-absent",
            ack == SPURIOUS && stray == 0,
            format_args!(
                "{} SGIs to absent CPUs; self acks {ack}, vCPU 1 took {stray}",
                2 * FLOOD
            ),
        );
        let alive = heartbeat_moves();
        t.check(
            "secondary-alive-after-floods",
            alive,
            format_args!("heartbeat {}", HEARTBEAT.load(Ordering::Relaxed)),
        );

        // The virtual timer still interrupts.
        match gic::wait_vtimer(10, 5000) {
            Some((intid, n)) => t.check(
                "vtimer-after-abuse",
                intid == VTIMER_INTID.0,
                format_args!("took INTID {intid} ({n} interrupt(s)), expected 27"),
            ),
            None => t.check(
                "vtimer-after-abuse",
                false,
                format_args!("no interrupt within 5 s"),
            ),
        };

        STOP.store(true, Ordering::Release);
        let s = psci::wait_affinity(1, 1, 5000);
        t.check(
            "secondary-off",
            s == 1,
            format_args!("AFFINITY_INFO={s:#x} (expected 1, OFF)"),
        );
        t.finish()
    }
}
