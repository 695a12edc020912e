//! `hostile-gic`: tests/guests/src/bin/gic.rs on two vCPUs. All-ones and all-zeros over every
//! GICD offset and both vCPUs' GICR frames, absent SPIs and LPIs enabled, SPIs routed to
//! absent affinities, SGI floods to self, to all others and to absent CPUs; then a minimal
//! re-initialization must bring SGIs to vCPU 1 and the virtual timer's INTID 27 to vCPU 0.

use super::common::hostile::HostileGuest;
use super::Scenario;

/// Every case the guest must pass.
const CASES: &[&str] = &[
    "gicd-typer-2-cpus",
    "secondary-started",
    "gicd-sweep-ones",
    "gicd-sweep-zeros",
    "gicr-own-sweep-ones",
    "gicr-own-sweep-zeros",
    "gicr-other-sweep-ones",
    "gicr-other-sweep-zeros",
    "gicd-alive-after-sweep",
    "gicr-alive-after-sweep",
    "secondary-alive-after-sweep",
    "enable-absent-spis",
    "pend-absent-spis",
    "enable-lpis-refused",
    "irouter-absent-affinity",
    "irouter-irm-garbage",
    "spi-pending-routed-nowhere",
    "reinit",
    "sgi-flood-others",
    "sgi-flood-self",
    "sgi-flood-absent",
    "secondary-alive-after-floods",
    "vtimer-after-abuse",
    "secondary-off",
];

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(HostileGuest::new("gic", 2, CASES))]
}
