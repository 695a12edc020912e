//! `hostile-memory`: tests/guests/src/bin/memory.rs on one vCPU. The guest fills all of its
//! RAM but its own image with a pattern and reads it back (including the IPAs where rhyve's
//! image lies in the host's map: the guest sees its own values there), then touches the IPAs
//! around its RAM and expects an injected synchronous external abort for each.

use super::hostile_common::HostileGuest;
use super::Scenario;

/// Every case the guest must pass.
const CASES: &[&str] = &[
    "dtb-at-x0",
    "hv-window-not-hypervisor",
    "ram-below-image",
    "ram-above-image",
    "hv-window-own-memory",
    "ram-last-word",
    "below-ram-read",
    "below-ram-write",
    "ram-end-read",
    "ram-end-write",
    "ram-end-2m-read",
    "ram-end-2m-write",
    "ram-plus-1g-read",
    "ram-plus-1g-write",
    "high-ram-read",
    "high-ram-write",
    "ram-intact-after-holes",
];

/// The scenario.
pub fn scenario() -> Box<dyn Scenario> {
    Box::new(HostileGuest {
        class: "memory",
        vcpus: 1,
        cases: CASES,
    })
}
