//! `sysreg`: the system registers rhyve traps, written with garbage, and encodings no guest
//! may use.
//!
//! Expected: writes of ICC_SGI1R_EL1 (every RS/IRM combination, all ones, targets that do not
//! exist) are taken and dropped or delivered, never faulting; ICC_ASGI1R_EL1 and
//! ICC_SGI0R_EL1 writes are ignored; a read of a write-only SGI register, the EL2 and EL3
//! registers, and unallocated or IMPLEMENTATION DEFINED encodings are UNDEFINED (EC 0x00),
//! whether rhyve or the CPU answers.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use tg::esr::Expect;
    use tg::rt::exception::trap;
    use tg::rt::{gic, Tester};
    use tg::sgi;
    use tg::{read_sysreg, write_sysreg};

    /// An MRS that must be UNDEFINED; the ELR must be the MRS itself.
    macro_rules! undef_read {
        ($t:expr, $case:literal, $reg:literal) => {
            $t.expect_trap($case, Expect::undef(), || read_sysreg!($reg))
        };
    }
    /// An MSR that must be UNDEFINED.
    macro_rules! undef_write {
        ($t:expr, $case:literal, $reg:literal) => {
            $t.expect_trap($case, Expect::undef(), || write_sysreg!($reg, u64::MAX))
        };
    }

    fn ignored_or_undef(t: &mut Tester, case: &str, tr: Option<tg::esr::Trap>) {
        match tr {
            None => t.check(case, true, format_args!("ignored (no exception)")),
            Some(x) => t.check(
                case,
                x.esr.ec() == tg::esr::ec::UNKNOWN,
                format_args!("{:?} (UNDEF is acceptable, nothing else)", x.esr),
            ),
        };
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let mut t = Tester::new("sysreg");

        // ICC_SGI1R_EL1 garbage: every RS and IRM, all target bits, absent affinities.
        let mut n = 0u32;
        let ((), tr) = trap(|| {
            for rs in 0..16u8 {
                for irm in [false, true] {
                    for intid in [0u8, 7, 15] {
                        gic::sgi1r(sgi::targeted(intid, irm, rs, [0, 0, 0], 0xffff));
                        gic::sgi1r(sgi::targeted(intid, irm, rs, [0xff, 0xff, 0xff], 0xffff));
                        gic::sgi1r(sgi::targeted(intid, irm, rs, [0x12, 0x34, 0x56], 0x8001));
                        n += 3;
                    }
                }
            }
        });
        t.check(
            "sgi1r-rs-irm-combinations",
            tr.is_none(),
            format_args!("{n} writes, exception: {:?}", tr.map(|x| x.esr)),
        );
        let ((), tr) = trap(|| gic::sgi1r(u64::MAX));
        t.check(
            "sgi1r-all-ones",
            tr.is_none(),
            format_args!("exception: {:?}", tr.map(|x| x.esr)),
        );
        let ((), tr) = trap(|| gic::sgi1r(0));
        t.check(
            "sgi1r-zero",
            tr.is_none(),
            format_args!("exception: {:?}", tr.map(|x| x.esr)),
        );
        let ((), tr) = trap(|| write_sysreg!("s3_0_c12_c11_5", 0x0000_ffff_ff00_ffffu64 ^ 0x5a5a));
        t.check(
            "sgi1r-res0-bits",
            tr.is_none(),
            format_args!("exception: {:?}", tr.map(|x| x.esr)),
        );
        let ((), tr) = trap(|| {
            // SAFETY: a write of XZR (register 31) to ICC_SGI1R_EL1; no memory effects.
            unsafe { core::arch::asm!("msr s3_0_c12_c11_5, xzr", options(nostack)) }
        });
        t.check(
            "sgi1r-xzr",
            tr.is_none(),
            format_args!("exception: {:?}", tr.map(|x| x.esr)),
        );
        // ICC_ASGI1R_EL1 / ICC_SGI0R_EL1 (Group 1 for the other Security state, Group 0): no
        // such SGIs for a guest with one Security state. rhyve ignores a trapped write; QEMU's
        // CPU may refuse it first with UNDEF. Either way nothing is generated and the guest
        // goes on; anything else fails.
        for (case, value) in [("asgi1r-write-ones", u64::MAX), ("asgi1r-write-zero", 0)] {
            let ((), tr) = trap(|| write_sysreg!("s3_1_c12_c11_6", value));
            ignored_or_undef(&mut t, case, tr);
        }
        for (case, value) in [("sgi0r-write-ones", u64::MAX), ("sgi0r-write-zero", 0)] {
            let ((), tr) = trap(|| write_sysreg!("s3_2_c12_c11_7", value));
            ignored_or_undef(&mut t, case, tr);
        }

        // Write-only registers read: UNDEFINED.
        undef_read!(t, "sgi1r-read", "s3_0_c12_c11_5");
        undef_read!(t, "asgi1r-read", "s3_1_c12_c11_6");
        undef_read!(t, "sgi0r-read", "s3_2_c12_c11_7");
        undef_read!(t, "eoir1-read", "s3_0_c12_c12_1");
        // Read-only register written: ICC_IAR1_EL1.
        undef_write!(t, "iar1-write", "s3_0_c12_c12_0");

        // The hypervisor's and the firmware's registers from EL1.
        undef_read!(t, "hcr-el2-read", "s3_4_c1_c1_0");
        undef_write!(t, "hcr-el2-write", "s3_4_c1_c1_0");
        undef_read!(t, "vttbr-el2-read", "s3_4_c2_c1_0");
        undef_write!(t, "vbar-el2-write", "s3_4_c12_c0_0");
        undef_read!(t, "ich-hcr-el2-read", "s3_4_c12_c11_0");
        undef_write!(t, "ich-lr0-el2-write", "s3_4_c12_c12_0");
        undef_read!(t, "scr-el3-read", "s3_6_c1_c1_0");

        // Unallocated and IMPLEMENTATION DEFINED encodings.
        undef_read!(t, "impdef-s3-0-c15-c0-0-read", "s3_0_c15_c0_0");
        undef_write!(t, "impdef-s3-7-c15-c15-7-write", "s3_7_c15_c15_7");
        undef_read!(t, "impdef-s3-3-c15-c2-0-read", "s3_3_c15_c2_0");
        undef_read!(t, "unalloc-s3-1-c11-c0-0-read", "s3_1_c11_c0_0");
        undef_write!(t, "unalloc-s3-5-c9-c9-1-write", "s3_5_c9_c9_1");

        // The guest's own CPU interface still answers after all that (ICV_PMR_EL1 round trip).
        let ((), tr) = trap(|| write_sysreg!("icc_pmr_el1", 0xf0));
        let pmr = read_sysreg!("icc_pmr_el1");
        t.check(
            "icc-pmr-roundtrip",
            tr.is_none() && pmr == 0xf0,
            format_args!(
                "ICC_PMR_EL1={pmr:#x} (expected 0xf0), exception: {:?}",
                tr.map(|x| x.esr)
            ),
        );
        t.finish()
    }
}
