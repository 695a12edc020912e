//! `vmm-fault`: a device model fails, the core contains it, the guest sees an error.
//!
//! The hypervisor starts with `rhyve.vmm_fault=pl011-write:41`, so the VMM partition's UART
//! model panics on the guest's 41st UART write. The `vmmfault` test guest (tests/guests)
//! checks from inside that its writes before that complete, that the failing write and later
//! UART accesses get an injected abort rather than a hang, and that the core's own GIC still
//! answers; it reports by powering off (all held) or asking for a reset (one did not). This
//! side checks the core's account of it.

use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::Capture;
use crate::toolchain;

use super::hostile_common::MEM_MIB;
use super::Scenario;

/// The write the UART model fails on.
const FAILING_WRITE: u32 = 41;

/// The scenario.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(VmmFault)]
}

struct VmmFault;

impl Scenario for VmmFault {
    fn name(&self) -> String {
        "vmm-fault".into()
    }

    fn boot(&self, _: &GuestFiles) -> GuestBoot {
        GuestBoot {
            kernel: toolchain::test_guest_bin("vmmfault"),
            initrd: None,
            cmdline: String::new(),
            vcpus: 1,
            mem_mib: MEM_MIB,
        }
    }

    fn hypervisor_args(&self) -> Option<String> {
        Some(format!("rhyve.vmm_fault=pl011-write:{FAILING_WRITE}"))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = Vec::new();
        let mut expect = |marker: String, why: &str| {
            if console.find(&marker).is_none() {
                failures.push(format!("no `{marker}`: {why}"));
            }
        };
        expect(
            format!("VMM partition panicked on CPU 0: fault injection: PL011 model fails on write {FAILING_WRITE}"),
            "the planned fault did not happen, or the core did not report the VMM's panic",
        );
        expect(
            "VMM partition stopped: its guests' devices now fail".into(),
            "the core did not end the partition",
        );
        expect(
            "a device access failed: the VMM partition is down: abort injected".into(),
            "the guest's later UART access was not answered with an abort",
        );
        expect(
            "rhyve: VM 0: guest powered off".into(),
            "the guest did not power off: one of its own checks failed (it asks for a reset then)",
        );
        if console.find("guest asked for a reset").is_some() {
            failures.push("the guest asked for a reset: one of its checks (abort on the failed write, abort afterwards, GIC still answering) failed".into());
        }
        failures
    }
}
