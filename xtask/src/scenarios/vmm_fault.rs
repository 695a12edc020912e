//! `vmm-fault`: a device model fails, the core contains it, the guest sees an error, and a VM
//! the VMM partition does not serve goes on to its init.
//!
//! The hypervisor starts with `rhyve.vmm_fault=pl011-write:41`, so the VMM partition's UART
//! model panics on the guest's 41st UART write. The `vmmfault` test guest (tests/guests, VM
//! "faulty") checks from inside that its writes before that complete, that the failing write
//! and later UART accesses get an injected abort rather than a hang, and that the core's own
//! GIC still answers; it reports by powering off (all held) or asking for a reset (one did
//! not). Beside it, VM "bystander" runs the Debian guest with no device at all (`devices =
//! []`: the VMM does not serve it, its device tree has no UART): its init runs the test mode
//! and powers off, which only a guest that reached its init does. This side checks the core's
//! account of both.

use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, HYPERVISOR_MEM_MIB};
use crate::toolchain;

use super::common::hostile::MEM_MIB;
use super::common::vms::{self, cpus, linux, linux_files, vm, DeviceSet, VmDesc, DEFAULT_DEVICES};
use super::{Scenario, VmsBoot};

/// RAM of the VM the VMM does not serve.
const BYSTANDER_MIB: u64 = 192;

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

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        let config = vms::config(&[
            // Served by the VMM partition, whose UART model is made to fail.
            VmDesc {
                cpus: cpus(&[0]),
                devices: DEFAULT_DEVICES,
                ..vm("faulty", MEM_MIB, "guest")
            },
            // Not served by the VMM at all: no device but the GIC and the timer.
            VmDesc {
                cpus: cpus(&[1]),
                devices: DeviceSet::NONE,
                ..linux("bystander", BYSTANDER_MIB, "rhyve.test=1")
            },
        ]);
        let mut files = linux_files(guest);
        files.push(("guest".into(), toolchain::test_guest_bin("vmmfault")));
        Some(VmsBoot {
            config,
            files,
            smp: 2,
            mem_mib: MEM_MIB + BYSTANDER_MIB + HYPERVISOR_MEM_MIB,
        })
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
        let stopped = console
            .lines
            .iter()
            .position(|l| l.text.contains("VMM partition stopped"));
        let bystander_off = console
            .lines
            .iter()
            .position(|l| l.text.contains("rhyve: VM 1: guest powered off"));
        match (stopped, bystander_off) {
            (Some(s), Some(b)) if b > s => {}
            (_, None) => failures.push(
                "VM bystander (not served by the VMM) did not power off: it never reached its init"
                    .into(),
            ),
            _ => failures.push(
                "VM bystander powered off before the VMM partition failed: nothing shown".into(),
            ),
        }
        if console.find("[bystander]").is_some() {
            failures.push("VM bystander has no console, yet something printed for it".into());
        }
        if console.find("guest asked for a reset").is_some() {
            failures.push("the guest asked for a reset: one of its checks (abort on the failed write, abort afterwards, GIC still answering) failed".into());
        }
        failures
    }
}
