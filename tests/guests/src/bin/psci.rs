//! `psci`: PSCI 1.1 / SMCCC 1.1 over HVC and SMC with bad function IDs and bad arguments, and
//! a secondary vCPU started, stopped and started again. Run with 2 vCPUs.
//!
//! Expected: the PSCI status codes (NOT_SUPPORTED for unknown functions, INVALID_PARAMETERS
//! for absent CPUs or affinity levels, INVALID_ADDRESS for entry points outside guest RAM,
//! ALREADY_ON for a running CPU), and a secondary that really runs its entry point.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use abi::layout::{GICD_BASE, RAM_BASE};
    use tg::rt::psci::{self, fid, hvc, mpidr_of, ret, smc};
    use tg::rt::{delay_ticks, ticks_per_ms, Tester, RAM_END};

    /// PSCI_VERSION's answer: 1.1.
    const PSCI_1_1: u64 = 0x1_0001;
    /// SMCCC_VERSION's answer: 1.1.
    const SMCCC_1_1: u64 = 0x1_0001;
    /// MIGRATE_INFO_TYPE: no Trusted OS to migrate.
    const MIGRATE_NOT_PRESENT: u64 = 2;
    /// AFFINITY_INFO states.
    const AFF_ON: u64 = 0;
    const AFF_OFF: u64 = 1;

    /// Times the secondary's entry ran.
    static RUNS: AtomicU32 = AtomicU32::new(0);
    /// Set by the primary to let a parked secondary call CPU_OFF.
    static RELEASE: AtomicBool = AtomicBool::new(false);

    /// Secondary entry: count the run, then CPU_OFF (by returning).
    fn flag_and_off() {
        RUNS.fetch_add(1, Ordering::AcqRel);
    }

    /// Secondary entry: count the run, then wait for RELEASE.
    fn flag_and_park() {
        RUNS.fetch_add(1, Ordering::AcqRel);
        while !RELEASE.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }

    /// Waits up to `ms` for RUNS to reach `n`.
    fn wait_runs(n: u32, ms: u64) -> u32 {
        for _ in 0..ms {
            if RUNS.load(Ordering::Acquire) >= n {
                break;
            }
            delay_ticks(ticks_per_ms());
        }
        RUNS.load(Ordering::Acquire)
    }

    fn is(t: &mut Tester, case: &str, got: u64, want: u64) {
        t.check(
            case,
            got == want,
            format_args!(
                "x0={:#x} ({}), expected {want:#x} ({})",
                got, got as i64, want as i64
            ),
        );
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let mut t = Tester::new("psci");
        let f = |x: u32| u64::from(x);

        // Versions and discovery, over both conduits.
        is(
            &mut t,
            "version-hvc",
            hvc(f(fid::PSCI_VERSION), 0, 0, 0),
            PSCI_1_1,
        );
        is(
            &mut t,
            "version-smc",
            smc(f(fid::PSCI_VERSION), 0, 0, 0),
            PSCI_1_1,
        );
        is(
            &mut t,
            "smccc-version",
            hvc(f(fid::SMCCC_VERSION), 0, 0, 0),
            SMCCC_1_1,
        );
        is(
            &mut t,
            "migrate-info-type",
            hvc(f(fid::MIGRATE_INFO_TYPE), 0, 0, 0),
            MIGRATE_NOT_PRESENT,
        );
        is(
            &mut t,
            "features-cpu-on",
            hvc(f(fid::PSCI_FEATURES), f(fid::CPU_ON_64), 0, 0),
            ret::SUCCESS,
        );
        is(
            &mut t,
            "features-unknown",
            hvc(f(fid::PSCI_FEATURES), 0x8400_00ff, 0, 0),
            ret::NOT_SUPPORTED,
        );
        is(
            &mut t,
            "arch-features-unknown",
            hvc(f(fid::SMCCC_ARCH_FEATURES), 0x8000_7fff, 0, 0),
            ret::NOT_SUPPORTED,
        );

        // Every function-ID class with a function nobody implements.
        for (case, id) in [
            ("unknown-psci32", 0x8400_00ffu64),
            ("unknown-psci64", 0xc400_00ff),
            ("unknown-arch", 0x8000_ff00),
            ("unknown-cpu-service", 0x8100_0000),
            ("unknown-sip", 0xc200_0000),
            ("unknown-oem", 0x8300_0000),
            ("unknown-standard-hyp", 0xc500_0000),
            ("unknown-vendor-hyp", 0x8600_0000),
            ("unknown-trusted-app", 0xb000_0000),
            ("unknown-trusted-os", 0xbf00_0000),
            ("unknown-yielding", 0x0000_0000),
            ("unknown-all-ones", 0xffff_ffff),
        ] {
            is(
                &mut t,
                case,
                hvc(id, u64::MAX, u64::MAX, u64::MAX),
                ret::NOT_SUPPORTED,
            );
        }
        is(
            &mut t,
            "unknown-smc",
            smc(0xc400_00ff, 0, 0, 0),
            ret::NOT_SUPPORTED,
        );

        // CPU_ON with bad arguments.
        let (entry, stack) = tg::rt::boot::secondary_boot(1, flag_and_off).unwrap_or((0, 0));
        is(
            &mut t,
            "cpu-on-absent-cpu",
            psci::cpu_on(mpidr_of(2), entry, stack),
            ret::INVALID_PARAMETERS,
        );
        is(
            &mut t,
            "cpu-on-absent-aff3",
            psci::cpu_on(0xff_0000_0000, entry, stack),
            ret::INVALID_PARAMETERS,
        );
        is(
            &mut t,
            "cpu-on-garbage-mpidr",
            psci::cpu_on(u64::MAX, entry, stack),
            ret::INVALID_PARAMETERS,
        );
        is(
            &mut t,
            "cpu-on-self",
            psci::cpu_on(mpidr_of(0), entry, stack),
            ret::ALREADY_ON,
        );
        for (case, bad) in [
            ("cpu-on-entry-zero", 0u64),
            ("cpu-on-entry-device", GICD_BASE.0),
            ("cpu-on-entry-below-ram", RAM_BASE.0 - 4),
            ("cpu-on-entry-above-ram", RAM_END),
            ("cpu-on-entry-all-ones", u64::MAX - 3),
        ] {
            is(
                &mut t,
                case,
                psci::cpu_on(mpidr_of(1), bad, stack),
                ret::INVALID_ADDRESS,
            );
        }
        is(
            &mut t,
            "affinity-off-before-start",
            psci::affinity_info(mpidr_of(1), 0),
            AFF_OFF,
        );

        // AFFINITY_INFO with bad arguments.
        is(
            &mut t,
            "affinity-level-1",
            psci::affinity_info(mpidr_of(1), 1),
            ret::INVALID_PARAMETERS,
        );
        is(
            &mut t,
            "affinity-level-garbage",
            psci::affinity_info(mpidr_of(0), u64::MAX),
            ret::INVALID_PARAMETERS,
        );
        is(
            &mut t,
            "affinity-absent-cpu",
            psci::affinity_info(mpidr_of(5), 0),
            ret::INVALID_PARAMETERS,
        );
        is(
            &mut t,
            "affinity-self-on",
            psci::affinity_info(mpidr_of(0), 0),
            AFF_ON,
        );

        // A good CPU_ON: the secondary runs its entry and turns itself off.
        is(
            &mut t,
            "cpu-on-good",
            psci::start_secondary(1, flag_and_off),
            ret::SUCCESS,
        );
        let runs = wait_runs(1, 5000);
        t.check(
            "secondary-ran",
            runs == 1,
            format_args!("runs={runs} (expected 1)"),
        );
        let s = psci::wait_affinity(1, AFF_OFF, 5000);
        is(&mut t, "secondary-off-after-cpu-off", s, AFF_OFF);

        // Again: a CPU that turned itself off can be turned on, and parks this time.
        is(
            &mut t,
            "cpu-on-again",
            psci::start_secondary(1, flag_and_park),
            ret::SUCCESS,
        );
        let runs = wait_runs(2, 5000);
        t.check(
            "secondary-ran-again",
            runs == 2,
            format_args!("runs={runs} (expected 2)"),
        );
        is(
            &mut t,
            "affinity-secondary-on",
            psci::affinity_info(mpidr_of(1), 0),
            AFF_ON,
        );
        is(
            &mut t,
            "cpu-on-running",
            psci::cpu_on(mpidr_of(1), entry, stack),
            ret::ALREADY_ON,
        );
        RELEASE.store(true, Ordering::Release);
        let s = psci::wait_affinity(1, AFF_OFF, 5000);
        is(&mut t, "secondary-off-after-release", s, AFF_OFF);
        t.check(
            "secondary-ran-twice-only",
            RUNS.load(Ordering::Acquire) == 2,
            format_args!("runs={}", RUNS.load(Ordering::Acquire)),
        );
        t.finish()
    }
}
