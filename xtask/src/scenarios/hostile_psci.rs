//! `hostile-psci`: tests/guests/src/bin/psci.rs on two vCPUs. PSCI/SMCCC over HVC and SMC:
//! every function-ID class with unknown functions, CPU_ON and AFFINITY_INFO with bad
//! arguments, and a secondary started, stopped by CPU_OFF and started again. Expects the PSCI
//! status codes and a secondary that really runs.

use super::common::hostile::HostileGuest;
use super::Scenario;

/// Every case the guest must pass.
const CASES: &[&str] = &[
    "version-hvc",
    "version-smc",
    "smccc-version",
    "migrate-info-type",
    "features-cpu-on",
    "features-unknown",
    "arch-features-unknown",
    "unknown-psci32",
    "unknown-psci64",
    "unknown-arch",
    "unknown-cpu-service",
    "unknown-sip",
    "unknown-oem",
    "unknown-standard-hyp",
    "unknown-vendor-hyp",
    "unknown-trusted-app",
    "unknown-trusted-os",
    "unknown-yielding",
    "unknown-all-ones",
    "unknown-smc",
    "cpu-on-absent-cpu",
    "cpu-on-absent-aff3",
    "cpu-on-garbage-mpidr",
    "cpu-on-self",
    "cpu-on-entry-zero",
    "cpu-on-entry-device",
    "cpu-on-entry-below-ram",
    "cpu-on-entry-above-ram",
    "cpu-on-entry-all-ones",
    "affinity-off-before-start",
    "affinity-level-1",
    "affinity-level-garbage",
    "affinity-absent-cpu",
    "affinity-self-on",
    "cpu-on-good",
    "secondary-ran",
    "secondary-off-after-cpu-off",
    "cpu-on-again",
    "secondary-ran-again",
    "affinity-secondary-on",
    "cpu-on-running",
    "secondary-off-after-release",
    "secondary-ran-twice-only",
];

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(HostileGuest::new("psci", 2, CASES))]
}
