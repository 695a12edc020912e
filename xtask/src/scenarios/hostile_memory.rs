//! `hostile-memory`: tests/guests/src/bin/memory.rs on one vCPU, beside a VM whose RAM is
//! marked. The guest fills all of its RAM but its own image with a pattern and reads it back
//! (including the IPAs where rhyve's image lies in the host's map: the guest sees its own
//! values there), touches the IPAs around its RAM, then sweeps stores and loads over every
//! IPA where the rest of the host's RAM lies, and expects an injected synchronous external
//! abort for each.
//!
//! Three VMs, each on a CPU of its own:
//! - "marker" (tests/guests/src/bin/marker.rs) starts at boot, fills its RAM with a pattern
//!   and re-checks all of it every 250 ms, one line per pass; it never stops.
//! - "hostile", the memory guest, is started from the monitor once the marker is ready. Its
//!   command line gives the end of the machine's RAM (`tg.host-ram-end`), so its sweep covers
//!   the marker's RAM wherever rhyve put it in the host's map.
//! - "after", the well-behaved Debian guest, is started from the monitor once the hostile VM
//!   stopped, as in every hostile scenario.
//!
//! The checks: every case of the memory guest passes and its sweeps covered the range the
//! harness gave, which holds the marker's RAM as rhyve reports it; the marker never reports a
//! changed word and reports intact passes made wholly after the hostile VM stopped; the
//! after-guest reaches its init and powers off; the monitor still lists the marker running.
//! Then the harness powers the machine off from the monitor (the marker never stops), and
//! QEMU must exit 0.

use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, Input, HYPERVISOR_MEM_MIB};
use crate::toolchain;

use super::common::hostile::{self, AFTER_INIT, AFTER_MIB, MEM_MIB};
use super::common::vm_output::{vm_lines, vm_lines_at};
use super::common::vms::{self, cpus, linux_files, vm, VmDesc};
use super::Scenario;
use super::VmsBoot;

/// The memory guest's class.
const CLASS: &str = "memory";

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
    "host-ram-end-given",
    "host-ram-store-sweep",
    "host-ram-load-sweep",
    "host-ram-last-word-write",
    "host-ram-last-word-read",
    "ram-intact-after-sweep",
];
/// The cases whose PASS line names the range swept.
const SWEEPS: [&str; 2] = ["host-ram-store-sweep", "host-ram-load-sweep"];

/// Where QEMU virt's RAM starts in the host's physical map. Guest RAM starts at the same
/// address in each VM's IPA space, so the host's RAM beyond a test guest's own is
/// `[GUEST_RAM_END, HOST_RAM_END)` of its IPAs.
const HOST_RAM_BASE: u64 = 0x4000_0000;
/// The machine's RAM: the marker, the hostile guest, the after-guest and rhyve.
const MACHINE_MIB: u64 = MEM_MIB + MEM_MIB + AFTER_MIB + HYPERVISOR_MEM_MIB;
/// The end of the machine's RAM, handed to the memory guest.
const HOST_RAM_END: u64 = HOST_RAM_BASE + (MACHINE_MIB << 20);
/// The end of a test guest's RAM, where its sweep starts.
const GUEST_RAM_END: u64 = HOST_RAM_BASE + (MEM_MIB << 20);

/// The marker's lines.
const MARKER_READY: &str = "RHYVE-MARKER ready";
const MARKER_INTACT: &str = "RHYVE-MARKER intact pass=";
const MARKER_BAD: &str = "RHYVE-MARKER BAD";
/// What a pass line of the marker starts with, intact or not.
const MARKER_PASS: &str = "[marker] RHYVE-MARKER ";
/// rhyve's placement line for the marker, followed by `<n> vCPUs on CPUs [..], <m> MiB RAM
/// at host <address>, ...`.
const MARKER_PLACED: &str = "rhyve: VM 0 \"marker\": ";
/// rhyve's lines for the hostile VM (id 1) powering off, and for the after-guest (id 2).
const HOSTILE_OFF: &str = "rhyve: VM 1: guest powered off";
const HOSTILE_STOPPED: &str = "rhyve: VM 1 \"hostile\" stopped";
const AFTER_STARTING: &str = "rhyve: VM 2 \"after\": starting";
const AFTER_OFF: &str = "rhyve: VM 2: guest powered off";
const AFTER_STOPPED: &str = "rhyve: VM 2 \"after\" stopped";
/// The monitor's `list` line for the marker once the others are done.
const MARKER_LISTED: &str = "VM 0 \"marker\": running";
/// The monitor's answer to `poweroff`, alone on its line.
const MONITOR_POWEROFF: &str = "powering off";

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(HostileMemory)]
}

struct HostileMemory;

impl Scenario for HostileMemory {
    fn name(&self) -> String {
        format!("hostile-{CLASS}")
    }

    fn boot(&self, _: &GuestFiles) -> GuestBoot {
        GuestBoot {
            kernel: toolchain::test_guest_bin(CLASS),
            initrd: None,
            cmdline: String::new(),
            vcpus: 1,
            mem_mib: MEM_MIB,
        }
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        // The marker starts at boot; the other two are started from the monitor.
        let config = vms::config(&[
            VmDesc {
                cpus: cpus(&[0]),
                ..vm("marker", MEM_MIB, "marker")
            },
            VmDesc {
                cpus: cpus(&[1]),
                cmdline: format!("tg.host-ram-end={HOST_RAM_END:#x}"),
                autostart: false,
                ..vm("hostile", MEM_MIB, "guest")
            },
            VmDesc {
                cpus: cpus(&[2]),
                ..hostile::after_vm()
            },
        ]);
        let mut files = linux_files(guest);
        files.push(("marker".into(), toolchain::test_guest_bin("marker")));
        files.push(("guest".into(), toolchain::test_guest_bin(CLASS)));
        Some(VmsBoot {
            config,
            files,
            smp: 3,
            mem_mib: MACHINE_MIB,
        })
    }

    fn inputs(&self) -> Vec<Input> {
        vec![
            Input {
                after: MARKER_READY,
                delay: Duration::from_millis(100),
                send: "\x1dm",
            },
            Input {
                after: "the monitor (",
                delay: Duration::from_millis(200),
                send: "start hostile\n",
            },
            Input {
                after: HOSTILE_STOPPED,
                delay: Duration::from_millis(200),
                send: "start after\n",
            },
            Input {
                after: AFTER_STOPPED,
                delay: Duration::from_millis(200),
                send: "list\n",
            },
            // The marker never stops: once it has checked its RAM again (intact or not), the
            // machine is powered off from the monitor.
            Input {
                after: MARKER_PASS,
                delay: Duration::from_millis(100),
                send: "poweroff\n",
            },
        ]
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(240)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        check(console)
    }
}

/// The host RAM rhyve reports for the marker: `(address, bytes)`.
fn marker_ram(text: &[&str]) -> Option<(u64, u64)> {
    let rest = text.iter().find_map(|l| l.split_once(MARKER_PLACED))?.1;
    let mib = rest.split_once(" MiB RAM at host ")?;
    let size: u64 = mib.0.rsplit(' ').next()?.parse().ok()?;
    let addr = mib.1.split([',', ' ']).next()?;
    let addr = u64::from_str_radix(addr.strip_prefix("0x")?, 16).ok()?;
    Some((addr, size << 20))
}

fn check(console: &Capture) -> Vec<String> {
    let hostile = vm_lines(console, "hostile");
    let mut f = hostile::check(CLASS, CASES, hostile.iter().map(String::as_str));
    let text: Vec<&str> = console.lines.iter().map(|l| l.text.as_str()).collect();
    let position = |marker: &str| text.iter().position(|l| l.contains(marker));

    // The sweeps covered what the harness gave, and that holds the marker's RAM.
    let swept = format!("[{GUEST_RAM_END:#x}, {HOST_RAM_END:#x})");
    for case in SWEEPS {
        let pass = format!("RHYVE-TG {CLASS} {case} PASS");
        if let Some(l) = hostile.iter().find(|l| l.contains(&pass)) {
            if !l.contains(&swept) {
                f.push(format!("`{case}` did not sweep {swept}: `{l}`"));
            }
        }
    }
    match marker_ram(&text) {
        None => f.push(format!(
            "rhyve did not report where the marker's RAM is (`{MARKER_PLACED}... MiB RAM at host ...`)"
        )),
        Some((at, size)) if at < GUEST_RAM_END || at + size > HOST_RAM_END => f.push(format!(
            "the marker's RAM [{at:#x}, {:#x}) is not inside the swept {swept}",
            at + size
        )),
        Some(_) => {}
    }

    // The marker: ready before the hostile VM ran, never changed, checked again after it.
    let marker = vm_lines_at(console, "marker");
    let ready = marker
        .iter()
        .find(|(_, l)| l.starts_with(MARKER_READY))
        .map(|(i, _)| *i);
    let first_hostile = text.iter().position(|l| l.starts_with("[hostile]"));
    match (ready, first_hostile) {
        (None, _) => f.push("the marker did not mark its RAM (no `RHYVE-MARKER ready`)".into()),
        (Some(r), Some(h)) if h < r => {
            f.push("the hostile VM ran before the marker was ready".into())
        }
        _ => {}
    }
    let bad: Vec<&str> = marker
        .iter()
        .map(|(_, l)| l.as_str())
        .filter(|l| l.starts_with(MARKER_BAD))
        .collect();
    if let Some(first) = bad.first() {
        f.push(format!(
            "the marker's RAM changed ({} bad passes), first: `{first}`",
            bad.len()
        ));
    }
    let stopped = position(HOSTILE_STOPPED);
    if let Some(s) = stopped {
        // The first intact line after the stop may come from a pass that began before it.
        let after_stop = marker
            .iter()
            .filter(|(i, l)| *i > s && l.starts_with(MARKER_INTACT))
            .count();
        if after_stop < 2 {
            f.push(format!(
                "the marker did not check its RAM wholly after the hostile VM stopped ({after_stop} intact passes after it)"
            ));
        }
    }
    // Its timer kept waking it while another VM was started and ran (the start is carried
    // out by whichever CPU gets to it first, possibly the marker's, between two of its exits).
    if let (Some(s), Some(e)) = (position(AFTER_STARTING), position(AFTER_STOPPED)) {
        let during = marker
            .iter()
            .filter(|(i, l)| (s..e).contains(i) && l.starts_with("RHYVE-MARKER "))
            .count();
        if during < 2 {
            f.push(format!(
                "the marker made {during} passes while the after-guest ran: its timer stopped waking it"
            ));
        }
    }
    for gone in ["rhyve: VM 0: guest", "VM 0 \"marker\" stopped"] {
        if let Some(l) = position(gone) {
            f.push(format!("the marker should never stop: `{}`", text[l]));
        }
    }

    // The machine: the hostile VM ended, the after-guest booted and ended, the marker ran on.
    let mut at = |marker: &str, what: &str| {
        let found = position(marker);
        if found.is_none() {
            f.push(format!("{what} (no `{marker}`)"));
        }
        found
    };
    at(
        HOSTILE_OFF,
        "rhyve did not report the memory guest's SYSTEM_OFF",
    );
    let stopped = at(
        HOSTILE_STOPPED,
        "rhyve did not report stopping the hostile VM",
    );
    at(AFTER_OFF, "the after-guest did not power off");
    let after_stopped = at(
        AFTER_STOPPED,
        "rhyve did not report stopping the after-guest",
    );
    let after_init = text
        .iter()
        .position(|l| l.starts_with("[after]") && l.contains(AFTER_INIT));
    match (stopped, after_init) {
        (_, None) => f.push(format!(
            "the well-behaved guest started after the hostile one did not reach its init (no `[after] {AFTER_INIT}`)"
        )),
        (Some(s), Some(i)) if i < s => {
            f.push("VM \"after\" ran before the hostile VM stopped".into())
        }
        _ => {}
    }
    if let Some(a) = after_stopped {
        if !text[a..].iter().any(|l| l.contains(MARKER_LISTED)) {
            f.push(format!(
                "the monitor's `list` after the others stopped did not show `{MARKER_LISTED}`"
            ));
        }
        if !text[a..].iter().any(|l| l.trim() == MONITOR_POWEROFF) {
            f.push("the monitor's `poweroff` did not answer after the after-guest stopped".into());
        }
    }
    if let Some(l) = position("no VM left") {
        f.push(format!(
            "rhyve powered off by itself while the marker ran: `{}`",
            text[l]
        ));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(text: &str) -> Capture {
        Capture::from_text(text)
    }

    /// A passing run: the memory guest's case lines come from `CASES`.
    fn good() -> String {
        let mut cases = String::new();
        for c in CASES {
            let detail = if SWEEPS.contains(c) {
                "[0x42000000, 0x60000000): 7680 stores every 0x10000, each an injected abort"
            } else {
                "ok"
            };
            cases += &format!("[hostile] RHYVE-TG memory {c} PASS {detail}\n");
        }
        format!(
            "\
rhyve: VM 0 \"marker\": 1 vCPUs on CPUs [0], 32 MiB RAM at host 0x5d000000, entry 0x40080000, device tree 0x40000000
rhyve: VM 1 \"hostile\": 1 vCPUs on CPUs [1], 32 MiB RAM at host 0x5b000000, entry 0x40080000, device tree 0x40000000 (not started: the monitor starts it)
[marker] RHYVE-MARKER ready [0x40000000, 0x40080000) [0x40086000, 0x42000000) bytes=33529856 period-ms=250
rhyve: console: the monitor (`help` lists its commands; Ctrl-] then a VM id leaves)
rhyve> start hostile
[marker] RHYVE-MARKER intact pass=1
{cases}[hostile] RHYVE-TG-DONE memory pass={} fail=0
[marker] RHYVE-MARKER intact pass=2
rhyve: VM 1: guest powered off
rhyve: VM 1 \"hostile\" stopped
[marker] RHYVE-MARKER intact pass=3
rhyve> start after
rhyve: VM 2 \"after\": starting
[marker] RHYVE-MARKER intact pass=4
[after] RHYVE-INIT-START
[marker] RHYVE-MARKER intact pass=5
rhyve: VM 2: guest powered off
rhyve: VM 2 \"after\" stopped
rhyve> list
VM 0 \"marker\": running, 32 MiB, 1 vCPUs
  vCPU 0 on CPU 0: waiting
[marker] RHYVE-MARKER intact pass=6
rhyve> poweroff
powering off
rhyve: exits: mmio 1 hvc 1 sysreg 1 wfi 1 irq 1 timer 1 kick 1 other 1
",
            CASES.len()
        )
    }

    #[test]
    fn a_run_with_the_marker_intact_passes() {
        assert_eq!(check(&capture(&good())), Vec::<String>::new());
    }

    #[test]
    fn the_machine_is_sized_for_the_three_vms() {
        assert_eq!(HOST_RAM_END, 0x6000_0000);
        assert_eq!(GUEST_RAM_END, 0x4200_0000);
    }

    #[test]
    fn a_changed_marker_fails() {
        let f = check(&capture(&good().replace(
            "RHYVE-MARKER intact pass=4",
            "RHYVE-MARKER BAD pass=4 at=0x40100000 read=0xbad0bad0bad0bad0 want=0x1",
        )));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("RAM changed (1 bad passes)") && f[0].contains("at=0x40100000"),
            "{f:?}"
        );
    }

    #[test]
    fn no_check_wholly_after_the_stop_fails() {
        // Only pass 3 ends after the stop, and it may have begun before it.
        let mut text = good();
        for pass in 4..=6 {
            text = text.replace(&format!("[marker] RHYVE-MARKER intact pass={pass}\n"), "");
        }
        let f = check(&capture(&text));
        assert!(
            f.iter().any(|f| f.contains("(1 intact passes after it)")),
            "{f:?}"
        );
    }

    #[test]
    fn a_marker_that_stalls_while_another_vm_starts_fails() {
        let f = check(&capture(
            &good().replace("[marker] RHYVE-MARKER intact pass=4\n", ""),
        ));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("1 passes while the after-guest ran"), "{f:?}");
    }

    #[test]
    fn a_marker_outside_the_sweep_or_a_short_sweep_fails() {
        let f = check(&capture(
            &good().replace("host 0x5d000000", "host 0x7f000000"),
        ));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("not inside the swept"), "{f:?}");
        let f = check(&capture(&good().replace("0x60000000)", "0x50000000)")));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].contains("host-ram-store-sweep` did not sweep"),
            "{f:?}"
        );
    }

    #[test]
    fn a_failed_case_or_a_hostile_vm_before_the_marker_fails() {
        let f = check(&capture(&good().replace(
            "host-ram-load-sweep PASS",
            "host-ram-load-sweep FAIL 0x5d000000: no exception",
        )));
        assert!(
            f.iter().any(|f| f.contains("`host-ram-load-sweep` FAILED")),
            "{f:?}"
        );
        let early = good().replacen(
            "rhyve: VM 0 \"marker\"",
            "[hostile] RHYVE-TG memory dtb-at-x0 PASS ok\nrhyve: VM 0 \"marker\"",
            1,
        );
        let f = check(&capture(&early));
        assert!(
            f.iter().any(|f| f.contains("before the marker was ready")),
            "{f:?}"
        );
    }

    #[test]
    fn a_stopped_marker_or_a_missing_end_fails() {
        let f = check(&capture(&good().replace(
            "rhyve> poweroff\npowering off\n",
            "rhyve: VM 0: guest powered off\nrhyve: VM 0 stopped; no VM left: powering off\n",
        )));
        assert!(f.iter().any(|f| f.contains("should never stop")), "{f:?}");
        assert!(
            f.iter().any(|f| f.contains("`poweroff` did not answer")),
            "{f:?}"
        );
        assert!(
            f.iter().any(|f| f.contains("powered off by itself")),
            "{f:?}"
        );
        let f = check(&capture(&good().replace("[after] RHYVE-INIT-START\n", "")));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("did not reach its init"), "{f:?}");
        let f = check(&capture(
            &good().replace("VM 0 \"marker\": running", "VM 0 \"marker\": stopped"),
        ));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("`list`"), "{f:?}");
    }

    #[test]
    fn marker_ram_reads_rhyves_placement_line() {
        let text = ["x", "rhyve: VM 0 \"marker\": 1 vCPUs on CPUs [0], 32 MiB RAM at host 0x5d000000, entry 0x40080000"];
        assert_eq!(marker_ram(&text), Some((0x5d00_0000, 32 << 20)));
        assert_eq!(marker_ram(&["rhyve: VM 0 \"marker\": garbled"]), None);
    }
}
