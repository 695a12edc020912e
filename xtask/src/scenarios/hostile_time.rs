//! `hostile-time`: a vCPU that never yields must not stop another VM's vCPUs.
//!
//! VM "spin" runs tests/guests/src/bin/spin.rs: it masks every interrupt and spins for ever
//! without trapping. VM "linux" is the Debian guest with `rhyve.test=1`. Both are restricted
//! to CPU 0 of a two-CPU machine, so they time-share it and only rhyve's own timer can take
//! the CPU from the spinner. The checks: both VMs were placed on CPU 0; the spinner started
//! with IRQs masked; the Linux guest reports its CPU count, finishes its test (which sleeps
//! and waits on timers) and powers off by itself; the monitor, reached while the spinner
//! holds CPU 0, lists the spinner's vCPU running on CPU 0 and counts IRQ exits for it (the
//! preemptions) and no WFI or HVC (it never gave the CPU away). The spinner never ends, so
//! the harness powers the machine off from the monitor once Linux is done.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, Input, HYPERVISOR_MEM_MIB};
use crate::toolchain;

use super::common::hostile::MEM_MIB as SPIN_MIB;
use super::common::vm_output::{check_shape, vm_lines};
use super::common::vms::{self, cpus, linux, linux_files, vm, VmDesc};
use super::{Scenario, VmsBoot};

/// RAM of the Linux VM.
const LINUX_MIB: u64 = 192;
/// What rhyve prints when the Linux VM (id 1) powers itself off.
const LINUX_OFF: &str = "rhyve: VM 1: guest powered off";
/// The monitor's answer to `poweroff`, alone on its line.
const MONITOR_POWEROFF: &str = "powering off";
/// The monitor's exit counters for the spinner.
const SPIN_STATS: &str = "VM 0 \"spin\" exits:";
/// The monitor's `list` header for the spinner.
const SPIN_LISTED: &str = "VM 0 \"spin\": running";
/// Its one vCPU, as `list` shows it.
const SPIN_VCPU: &str = "vCPU 0 on CPU 0: running";

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(HostileTime)]
}

struct HostileTime;

impl Scenario for HostileTime {
    fn name(&self) -> String {
        "hostile-time".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, "", 1, LINUX_MIB)
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        // A spinner that never traps and a Linux guest, both on CPU 0 of two.
        let config = vms::config(&[
            VmDesc {
                cpus: cpus(&[0]),
                ..vm("spin", SPIN_MIB, "spin")
            },
            VmDesc {
                cpus: cpus(&[0]),
                ..linux("linux", LINUX_MIB, "console=ttyAMA0 quiet rhyve.test=1")
            },
        ]);
        let mut files = linux_files(guest);
        files.push(("spin".into(), toolchain::test_guest_bin("spin")));
        Some(VmsBoot {
            config,
            files,
            smp: 2,
            mem_mib: SPIN_MIB + LINUX_MIB + HYPERVISOR_MEM_MIB,
        })
    }

    fn inputs(&self) -> Vec<Input> {
        vec![
            // Linux's init runs: CPU 0 has been time-shared for its whole boot.
            Input {
                after: "[linux] RHYVE-INIT-START",
                delay: Duration::from_millis(100),
                send: "\x1dm",
            },
            Input {
                after: "the monitor (",
                delay: Duration::from_millis(200),
                send: "list\n",
            },
            Input {
                after: "VM 1 \"linux\":",
                delay: Duration::from_millis(200),
                send: "stats\n",
            },
            // The spinner never ends: the machine is powered off from the monitor.
            Input {
                after: LINUX_OFF,
                delay: Duration::from_millis(200),
                send: "poweroff\n",
            },
        ]
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(400)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        check(console)
    }
}

/// The counters of a monitor `stats` line after `marker`: `name value` pairs.
fn counters(line: &str, marker: &str) -> Option<BTreeMap<String, u64>> {
    let (_, rest) = line.split_once(marker)?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    words
        .chunks(2)
        .map(|p| match p {
            [name, value] => value.parse().ok().map(|v| (name.to_string(), v)),
            _ => None,
        })
        .collect()
}

fn check(console: &Capture) -> Vec<String> {
    let mut f = Vec::new();
    let text: Vec<&str> = console.lines.iter().map(|l| l.text.as_str()).collect();
    let position = |marker: &str| text.iter().position(|l| l.contains(marker));

    for (id, name) in [(0, "spin"), (1, "linux")] {
        let placed = format!("VM {id} \"{name}\": 1 vCPUs on CPUs [0],");
        if position(&placed).is_none() {
            f.push(format!(
                "rhyve did not report VM {name} placed on CPU 0 (`{placed}`)"
            ));
        }
    }

    let spin = vm_lines(console, "spin");
    match spin.iter().find(|l| l.starts_with("RHYVE-SPIN start")) {
        None => f.push("the spinner did not print its start line".into()),
        Some(l) if !l.contains("irq-masked=true") => {
            f.push(format!("the spinner did not mask IRQs: `{l}`"))
        }
        Some(_) => {}
    }
    if spin.len() > 1 {
        f.push(format!(
            "the spinner printed more than its start line: {spin:?}"
        ));
    }

    // The Linux guest ran to its end on the CPU the spinner holds.
    let linux = vm_lines(console, "linux");
    check_shape(&linux, "linux", 1, LINUX_MIB, &mut f);
    if !linux.iter().any(|l| l.contains("RHYVE-TEST-DONE")) {
        f.push("the Linux guest's test did not finish: the spinner starved it".into());
    }
    let linux_off = position(LINUX_OFF);
    let poweroff = text.iter().position(|l| l.trim() == MONITOR_POWEROFF);
    match (linux_off, poweroff) {
        (None, _) => f.push(format!(
            "the Linux guest did not power off (no `{LINUX_OFF}`)"
        )),
        (Some(_), None) => f.push("the monitor's `poweroff` did not answer".into()),
        (Some(l), Some(p)) if p < l => {
            f.push("the machine was powered off before the Linux guest finished".into())
        }
        _ => {}
    }
    for gone in ["rhyve: VM 0: guest", "VM 0 \"spin\" stopped"] {
        if let Some(l) = position(gone) {
            f.push(format!("the spinner should never end: `{}`", text[l]));
        }
    }

    // The monitor, reached while the spinner holds CPU 0: its vCPU is running there...
    match position(SPIN_LISTED) {
        None => f.push(format!("the monitor's `list` did not show `{SPIN_LISTED}`")),
        Some(at) => {
            let vcpu = text[at + 1..]
                .iter()
                .filter(|l| !l.starts_with('['))
                .take_while(|l| !l.starts_with("VM "))
                .any(|l| l.contains(SPIN_VCPU));
            if !vcpu {
                f.push(format!(
                    "the monitor's `list` did not show the spinner's `{SPIN_VCPU}`"
                ));
            }
        }
    }
    // ...taken from it by interrupts only, never given away.
    match text.iter().find_map(|l| counters(l, SPIN_STATS)) {
        None => f.push(format!("no `{SPIN_STATS}` line from the monitor's `stats`")),
        Some(c) => {
            let get = |k: &str| c.get(k).copied();
            if get("irq").unwrap_or(0) == 0 {
                f.push(format!(
                    "the spinner shows no IRQ exit: rhyve never preempted it ({c:?})"
                ));
            }
            if get("wfi") != Some(0) || get("hvc") != Some(0) {
                f.push(format!(
                    "the spinner shows WFI or HVC exits, but it never yields ({c:?})"
                ));
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(text: &str) -> Capture {
        Capture::from_text(text)
    }

    const GOOD: &str = "\
rhyve: VM 0 \"spin\": 1 vCPUs on CPUs [0], 32 MiB RAM at host 0x4e000000, entry 0x40080000, device tree 0x40000000
rhyve: VM 1 \"linux\": 1 vCPUs on CPUs [0], 192 MiB RAM at host 0x50000000, entry 0x40200000, device tree 0x40000000
[spin] RHYVE-SPIN start daif=0x3c0 irq-masked=true
[linux] RHYVE-INIT-START
rhyve: console: the monitor (`help` lists its commands; Ctrl-] then a VM id leaves)
rhyve> list
VM 0 \"spin\": running, 32 MiB, 1 vCPUs
[linux] RHYVE-NPROC 1
  vCPU 0 on CPU 0: running
VM 1 \"linux\": running, 192 MiB, 1 vCPUs
  vCPU 0 on CPU 0: running
rhyve> stats
VM 0 \"spin\" exits: mmio 44 hvc 0 sysreg 0 wfi 0 irq 1210 timer 0 kick 0 other 0
VM 1 \"linux\" exits: mmio 900 hvc 12 sysreg 80 wfi 700 irq 1500 timer 1400 kick 0 other 0
[linux] RHYVE-MEMTOTAL MemTotal:         168852 kB
[linux] RHYVE-TEST-DONE
rhyve: VM 1: guest powered off
rhyve: VM 1 \"linux\" stopped
rhyve> poweroff
powering off
rhyve: exits: mmio 1 hvc 1 sysreg 1 wfi 1 irq 1 timer 1 kick 1 other 1
";

    #[test]
    fn a_time_shared_run_passes() {
        assert_eq!(check(&capture(GOOD)), Vec::<String>::new());
    }

    #[test]
    fn a_starved_guest_fails() {
        let f = check(&capture(
            &GOOD
                .replace("[linux] RHYVE-TEST-DONE\n", "")
                .replace("rhyve: VM 1: guest powered off\n", ""),
        ));
        assert!(f.iter().any(|f| f.contains("spinner starved it")), "{f:?}");
        assert!(f.iter().any(|f| f.contains("did not power off")), "{f:?}");
    }

    #[test]
    fn a_spinner_never_preempted_or_yielding_fails() {
        let f = check(&capture(&GOOD.replace("irq 1210", "irq 0")));
        assert!(f.iter().any(|f| f.contains("never preempted")), "{f:?}");
        let f = check(&capture(&GOOD.replace("wfi 0 irq 1210", "wfi 3 irq 1210")));
        assert!(f.iter().any(|f| f.contains("never yields")), "{f:?}");
    }

    #[test]
    fn a_spinner_not_listed_running_or_not_sharing_fails() {
        let f = check(&capture(&GOOD.replacen(
            "  vCPU 0 on CPU 0: running",
            "  vCPU 0 on CPU 0: waiting",
            1,
        )));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("spinner's `vCPU 0"), "{f:?}");
        let f = check(&capture(&GOOD.replace(
            "\"linux\": 1 vCPUs on CPUs [0]",
            "\"linux\": 1 vCPUs on CPUs [1]",
        )));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("VM linux placed on CPU 0"), "{f:?}");
    }

    #[test]
    fn a_machine_powered_off_early_or_a_spinner_that_ends_fails() {
        let early = GOOD.replace("rhyve: VM 1: guest powered off\n", "")
            + "rhyve: VM 1: guest powered off\n";
        let f = check(&capture(&early));
        assert!(
            f.iter()
                .any(|f| f.contains("before the Linux guest finished")),
            "{f:?}"
        );
        let f = check(&capture(&GOOD.replace(
            "rhyve: VM 1 \"linux\" stopped",
            "rhyve: VM 0: guest powered off",
        )));
        assert!(f.iter().any(|f| f.contains("never end")), "{f:?}");
    }

    #[test]
    fn counters_parse_pairs() {
        let c = counters("x VM 0 \"spin\" exits: irq 3 wfi 0", SPIN_STATS).unwrap();
        assert_eq!(c.get("irq"), Some(&3));
        assert_eq!(c.get("wfi"), Some(&0));
        assert!(counters("VM 0 \"spin\" exits: irq x", SPIN_STATS).is_none());
    }
}
