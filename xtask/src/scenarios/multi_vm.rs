//! Several VMs on one machine (`vmboot::config` descriptions in the boot bundle).
//!
//! - `multi-vm`: two Linux guests with different vCPU counts and memory sizes, one sharing a
//!   CPU with the other, plus a malformed description. Each guest reports its own CPU count
//!   and MemTotal; the small one powers off while the other keeps printing ticks; the bad
//!   description is refused with its field and reason while the good VMs run; the monitor's
//!   exit counters, read twice, are non-zero and grow.
//! - `overcommit`: a VM with more vCPUs than the machine has CPUs boots all of them; its
//!   kernel is not in the bundle but placed in the machine's RAM by QEMU's generic loader
//!   (`kernel = { addr, size }`).

use std::path::PathBuf;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, Input, HYPERVISOR_MEM_MIB};

use super::common::vm_output::{check_shape, vm_lines};
use super::common::vms::{self, cpus, linux, linux_files, Source, VmDesc, LINUX_INITRD};
use super::{Scenario, VmsBoot};

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(MultiVm), Box::new(Overcommit)]
}

/// A VM the hypervisor must refuse at boot: its memory is not a multiple of 2 MiB. Text, not a
/// [`VmDesc`]: the check is the parser's answer to a malformed table as a person would write
/// it (only the keys a person writes), not to one a writer on the host produced.
const BROKEN: &str = r#"[[vm]]
name = "broken"
memory = "3M"
kernel = "Image"
"#;

const ALPHA_MIB: u64 = 256;
const BETA_MIB: u64 = 192;
/// Ticks the big VM prints after its test (every half second).
const TICKS: u32 = 24;
/// Printed by the monitor for VM 0's counters.
const ALPHA_STATS: &str = "VM 0 \"alpha\" exits:";

struct MultiVm;

impl Scenario for MultiVm {
    fn name(&self) -> String {
        "multi-vm".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, "", 2, ALPHA_MIB)
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        // Two guests, the second sharing CPU 1 with the first; then one the hypervisor refuses.
        let ticks = format!("console=ttyAMA0 quiet rhyve.test=1 rhyve.ticks={TICKS}");
        let mut config = vms::config(&[
            VmDesc {
                vcpus: 2,
                cpus: cpus(&[0, 1]),
                ..linux("alpha", ALPHA_MIB, &ticks)
            },
            VmDesc {
                cpus: cpus(&[1]),
                ..linux("beta", BETA_MIB, "console=ttyAMA0 quiet rhyve.test=1")
            },
        ]);
        config.push('\n');
        config.push_str(BROKEN);
        Some(VmsBoot {
            config,
            files: linux_files(guest),
            smp: 2,
            mem_mib: ALPHA_MIB + BETA_MIB + HYPERVISOR_MEM_MIB,
        })
    }

    fn inputs(&self) -> Vec<Input> {
        vec![
            Input {
                after: "[alpha] RHYVE-TICK 2",
                delay: Duration::from_millis(100),
                send: "\x1dm",
            },
            Input {
                after: "the monitor (",
                delay: Duration::from_millis(200),
                send: "stats\n",
            },
            Input {
                after: "[alpha] RHYVE-TICK 6",
                delay: Duration::from_millis(100),
                send: "stats\n",
            },
            Input {
                after: "[alpha] RHYVE-TICK 7",
                delay: Duration::from_millis(100),
                send: "list\n",
            },
        ]
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(400)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut f = Vec::new();
        let alpha = vm_lines(console, "alpha");
        let beta = vm_lines(console, "beta");
        check_shape(&alpha, "alpha", 2, ALPHA_MIB, &mut f);
        check_shape(&beta, "beta", 1, BETA_MIB, &mut f);
        let refused = console.lines.iter().any(|l| {
            l.text.contains("configuration: vm \"broken\"")
                && l.text.contains("field \"memory\"")
                && l.text.contains("not a multiple of 2 MiB")
        });
        if !refused {
            f.push("no boot message refusing VM \"broken\" for its field \"memory\"".into());
        }
        if console.find("[broken]").is_some() {
            f.push("the refused VM \"broken\" printed something".into());
        }
        // The small VM powers off; the big one goes on printing.
        let beta_off = console
            .lines
            .iter()
            .position(|l| l.text.contains("rhyve: VM 1: guest powered off"));
        let last_tick = console
            .lines
            .iter()
            .rposition(|l| l.text.starts_with("[alpha] RHYVE-TICK "));
        match (beta_off, last_tick) {
            (Some(b), Some(t)) if t > b => {}
            (None, _) => f.push("VM beta never powered off".into()),
            _ => f.push("VM alpha printed no tick after VM beta powered off".into()),
        }
        if !alpha.iter().any(|l| l.contains("RHYVE-TICKS-DONE")) {
            f.push("VM alpha did not print all its ticks".into());
        }
        // The monitor's counters for alpha, read twice.
        let reads: Vec<u64> = console
            .lines
            .iter()
            .filter_map(|l| l.text.split_once(ALPHA_STATS))
            .map(|(_, counters)| {
                counters
                    .split_whitespace()
                    .filter_map(|w| w.parse::<u64>().ok())
                    .sum()
            })
            .collect();
        match reads.as_slice() {
            [a, b, ..] if *a > 0 && b > a => {}
            [a, b, ..] => f.push(format!(
                "the monitor's exit counters for alpha read {a} then {b}: expected non-zero and growing"
            )),
            _ => f.push(format!(
                "expected two `{ALPHA_STATS}` lines from the monitor, found {}",
                reads.len()
            )),
        }
        if console.find("VM 0 \"alpha\": running").is_none() {
            f.push("the monitor's `list` did not show VM alpha running".into());
        }
        f
    }
}

/// vCPUs of the overcommitted VM, on a machine of half as many CPUs.
const OVER_VCPUS: u32 = 4;
/// Where QEMU's generic loader puts that VM's kernel: above what QEMU places itself (the
/// hypervisor at the RAM base, the bundle at +128 MiB) and below the hypervisor's heap at the
/// top of RAM.
const LOADER_ADDR: u64 = 0x6000_0000;
/// Machine RAM for it: the VM's, the hypervisor's, and room for the preloaded kernel.
const OVER_MACHINE_MIB: u64 = ALPHA_MIB + HYPERVISOR_MEM_MIB + 128;

/// The kernel the generic loader places.
fn loader_kernel() -> PathBuf {
    crate::guest::guest_dir().join("Image")
}

struct Overcommit;

impl Scenario for Overcommit {
    fn name(&self) -> String {
        "overcommit".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, "", OVER_VCPUS, ALPHA_MIB)
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        let size = std::fs::metadata(&guest.kernel).map_or(0, |m| m.len());
        // Its kernel is already in the machine's RAM, where QEMU's loader put it.
        let config = VmDesc {
            vcpus: OVER_VCPUS,
            kernel: Some(Source::Memory {
                addr: LOADER_ADDR,
                size,
            }),
            ..linux("wide", ALPHA_MIB, "console=ttyAMA0 quiet rhyve.test=1")
        }
        .to_toml();
        let files = vec![(LINUX_INITRD.into(), guest.initrd.clone())];
        Some(VmsBoot {
            config,
            files,
            smp: OVER_VCPUS / 2,
            mem_mib: OVER_MACHINE_MIB,
        })
    }

    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-device".into(),
            format!(
                "loader,file={},addr={LOADER_ADDR:#x},force-raw=on",
                loader_kernel().display()
            ),
        ]
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(400)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut f = Vec::new();
        // One VM: its lines come as they are.
        let lines: Vec<String> = console.lines.iter().map(|l| l.text.clone()).collect();
        check_shape(&lines, "wide", OVER_VCPUS, ALPHA_MIB, &mut f);
        let placed = format!("{OVER_VCPUS} vCPUs on CPUs [0, 1, 0, 1]");
        if console.find(&placed).is_none() {
            f.push(format!(
                "rhyve did not report the vCPUs placed two per CPU (`{placed}`)"
            ));
        }
        if !lines.iter().any(|l| l.contains("RHYVE-TEST-DONE")) {
            f.push("the guest's test did not finish".into());
        }
        f
    }
}
