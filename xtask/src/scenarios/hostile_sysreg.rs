//! `hostile-sysreg`: tests/guests/src/bin/sysreg.rs on one vCPU. ICC_SGI1R_EL1 written with
//! garbage (every RS/IRM combination, all ones, absent targets, XZR), the other SGI registers
//! written, write-only registers read, EL2/EL3 registers and unallocated or IMPLEMENTATION
//! DEFINED encodings accessed from EL1. Expects no fault for SGI1R writes and UNDEF (EC 0x00)
//! for the rest.

use super::common::hostile::HostileGuest;
use super::Scenario;

/// Every case the guest must pass.
const CASES: &[&str] = &[
    "sgi1r-rs-irm-combinations",
    "sgi1r-all-ones",
    "sgi1r-zero",
    "sgi1r-res0-bits",
    "sgi1r-xzr",
    "asgi1r-write-ones",
    "asgi1r-write-zero",
    "sgi0r-write-ones",
    "sgi0r-write-zero",
    "sgi1r-read",
    "asgi1r-read",
    "sgi0r-read",
    "eoir1-read",
    "iar1-write",
    "hcr-el2-read",
    "hcr-el2-write",
    "vttbr-el2-read",
    "vbar-el2-write",
    "ich-hcr-el2-read",
    "ich-lr0-el2-write",
    "scr-el3-read",
    "impdef-s3-0-c15-c0-0-read",
    "impdef-s3-7-c15-c15-7-write",
    "impdef-s3-3-c15-c2-0-read",
    "unalloc-s3-1-c11-c0-0-read",
    "unalloc-s3-5-c9-c9-1-write",
    "icc-pmr-roundtrip",
];

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(HostileGuest::new("sysreg", 1, CASES))]
}
