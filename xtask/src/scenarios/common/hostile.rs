//! What every `hostile-<class>` scenario shares: boot one test guest (tests/guests, built by
//! `toolchain::build_test_guests`) under rhyve, read its report, then check that the
//! hypervisor still boots a well-behaved guest.
//!
//! Two VMs: "hostile", the test guest, on CPUs of its own, and "after", the Debian guest with
//! `rhyve.bench=1` (its init powers off at once), defined with `autostart = false` on one
//! more CPU. The test guest prints `RHYVE-TG <class> <case> PASS|FAIL <detail>` per case, then
//! `RHYVE-TG-DONE <class> pass=N fail=M`, then powers off with PSCI SYSTEM_OFF. Once rhyve
//! reports its VM stopped, the harness types Ctrl-] m and `start after` to the monitor.
//!
//! The checks: every case on the scenario's list has a PASS line (a missing line fails, so a
//! guest that silently skips a case fails), no FAIL line, no case that is not on the list, the
//! DONE line with matching counts, and rhyve's own lines for the powered-off VM; then VM
//! "after" reaches its init and powers off, and with no VM left rhyve powers the machine off.
//! The common checks of [`crate::scenarios::run`] add: no `rhyve: PANIC`, and QEMU exited 0 by itself
//! within the timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, Input, HYPERVISOR_MEM_MIB};
use crate::toolchain;

use super::vm_output::vm_lines;
use super::vms::{self, linux_files, VmDesc};
use crate::scenarios::{Scenario, VmsBoot};

/// Guest RAM of every test guest (tests/guests/src/rt/mod.rs, `RAM_SIZE`, says the same).
pub const MEM_MIB: u64 = 32;
/// RAM of the well-behaved guest booted after the hostile one.
pub const AFTER_MIB: u64 = 192;
/// rhyve's lines when the test guest's SYSTEM_OFF stops its VM (VM 0; VM 1 is not started yet).
const POWERED_OFF: &str = "rhyve: VM 0: guest powered off";
const STOPPED: &str = "rhyve: VM 0 \"hostile\" stopped";
/// The first line of the well-behaved guest's init.
pub const AFTER_INIT: &str = "RHYVE-INIT-START";
/// rhyve's lines when that guest powers off, the last VM.
const AFTER_OFF: &str = "rhyve: VM 1: guest powered off";
const ALL_STOPPED: &str = "rhyve: VM 1 stopped; no VM left: powering off";

/// The bundle's name for the test guest's image.
const GUEST_FILE: &str = "guest";

/// The well-behaved guest booted after the hostile one: VM "after", the Debian guest with
/// `rhyve.bench=1` (its init powers off at once), defined only, to be started from the monitor.
pub fn after_vm() -> VmDesc {
    VmDesc {
        autostart: false,
        ..vms::linux("after", AFTER_MIB, "console=ttyAMA0 quiet rhyve.bench=1")
    }
}

/// One test guest and the cases it must pass.
pub struct HostileGuest {
    /// The attack class: the guest binary's name and the `<class>` of its lines.
    pub class: &'static str,
    /// Every case the guest must report as PASS.
    pub cases: &'static [&'static str],
    /// VM "hostile", the test guest; a scenario may give it devices, a disk, a card address.
    pub hostile: VmDesc,
    /// VM "after" ([`after_vm`]); a scenario may give it devices too.
    pub after: VmDesc,
}

impl HostileGuest {
    /// The test guest of `class` on `vcpus` vCPUs, which must pass `cases`; both VMs with
    /// the PL011 only.
    pub fn new(class: &'static str, vcpus: u32, cases: &'static [&'static str]) -> Self {
        Self {
            class,
            cases,
            hostile: VmDesc {
                vcpus,
                ..vms::vm("hostile", MEM_MIB, GUEST_FILE)
            },
            after: after_vm(),
        }
    }
}

impl Scenario for HostileGuest {
    fn name(&self) -> String {
        format!("hostile-{}", self.class)
    }

    fn boot(&self, _: &GuestFiles) -> GuestBoot {
        GuestBoot {
            kernel: toolchain::test_guest_bin(self.class),
            initrd: None,
            cmdline: String::new(),
            vcpus: self.hostile.vcpus,
            mem_mib: MEM_MIB,
        }
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        let mut files = linux_files(guest);
        files.push((GUEST_FILE.into(), toolchain::test_guest_bin(self.class)));
        Some(VmsBoot {
            config: vms::config(&[self.hostile.clone(), self.after.clone()]),
            files,
            // One CPU per vCPU, so the hostile guest's CPUs are not time-shared.
            smp: self.hostile.vcpus + 1,
            mem_mib: ((self.hostile.mem_size + self.after.mem_size) >> 20) + HYPERVISOR_MEM_MIB,
        })
    }

    fn inputs(&self) -> Vec<Input> {
        vec![
            Input {
                after: STOPPED,
                delay: Duration::from_millis(100),
                send: "\x1dm",
            },
            Input {
                after: "the monitor (",
                delay: Duration::from_millis(200),
                send: "start after\n",
            },
        ]
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(240)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let hostile = vm_lines(console, "hostile");
        let mut failures = check(self.class, self.cases, hostile.iter().map(String::as_str));
        let text: Vec<&str> = console.lines.iter().map(|l| l.text.as_str()).collect();
        failures.extend(check_machine(&text, &vm_lines(console, "after")));
        failures
    }
}

/// One `RHYVE-TG` line.
#[derive(Debug, PartialEq, Eq)]
struct CaseLine<'a> {
    class: &'a str,
    case: &'a str,
    pass: bool,
    detail: &'a str,
}

/// Parses a `RHYVE-TG <class> <case> PASS|FAIL <detail>` line (anywhere in the text, in case
/// something precedes it on the console); `Err` for a malformed one.
fn parse_case(text: &str) -> Option<Result<CaseLine<'_>, String>> {
    let at = text.find("RHYVE-TG ")?;
    let rest = &text[at + "RHYVE-TG ".len()..];
    let mut it = rest.splitn(4, ' ');
    let (Some(class), Some(case), Some(verdict)) = (it.next(), it.next(), it.next()) else {
        return Some(Err(format!("malformed line `{}`", text.trim())));
    };
    let pass = match verdict {
        "PASS" => true,
        "FAIL" => false,
        _ => return Some(Err(format!("malformed line `{}`", text.trim()))),
    };
    Some(Ok(CaseLine {
        class,
        case,
        pass,
        detail: it.next().unwrap_or("").trim(),
    }))
}

/// Parses `RHYVE-TG-DONE <class> pass=N fail=M`.
fn parse_done(text: &str) -> Option<(String, Option<(usize, usize)>)> {
    let at = text.find("RHYVE-TG-DONE ")?;
    let mut it = text[at + "RHYVE-TG-DONE ".len()..].split_whitespace();
    let class = it.next().unwrap_or("").to_string();
    let num = |s: Option<&str>, key: &str| s?.strip_prefix(key)?.parse::<usize>().ok();
    let counts = num(it.next(), "pass=").zip(num(it.next(), "fail="));
    Some((class, counts))
}

/// The checks on the console lines of the guest of `class`, which must pass `cases`.
pub fn check<'a>(
    class: &str,
    cases: &[&str],
    lines: impl Iterator<Item = &'a str> + Clone,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
    let mut passes = 0;
    for text in lines.clone() {
        match parse_case(text) {
            None => {}
            Some(Err(e)) => failures.push(e),
            Some(Ok(l)) => {
                if l.class != class {
                    failures.push(format!(
                        "a line of class `{}`, expected `{class}`: `{}`",
                        l.class,
                        text.trim()
                    ));
                    continue;
                }
                if seen.insert(l.case, l.pass).is_some() {
                    failures.push(format!("case `{}` reported twice", l.case));
                }
                if l.pass {
                    passes += 1;
                    if !cases.contains(&l.case) {
                        failures.push(format!(
                            "case `{}` passed but is not on the scenario's list (add it)",
                            l.case
                        ));
                    }
                } else {
                    failures.push(format!("case `{}` FAILED: {}", l.case, l.detail));
                }
            }
        }
    }
    for case in cases {
        if !seen.contains_key(case) {
            failures.push(format!(
                "case `{case}`: no line (the guest skipped it or stopped)"
            ));
        }
    }
    match lines.clone().find_map(parse_done) {
        None => failures.push(format!(
            "no `RHYVE-TG-DONE {class}` line: the guest did not finish"
        )),
        Some((c, _)) if c != class => failures.push(format!(
            "`RHYVE-TG-DONE` names class `{c}`, expected `{class}`"
        )),
        Some((_, None)) => failures.push("malformed `RHYVE-TG-DONE` line".into()),
        Some((_, Some((p, f)))) => {
            if p != passes || f != 0 {
                failures.push(format!(
                    "`RHYVE-TG-DONE` says pass={p} fail={f}; the console shows {passes} PASS lines and expects no FAIL"
                ));
            }
        }
    }
    failures
}

/// The checks on rhyve's lines (`console`) and on the lines of VM "after" (`after`): the
/// hostile VM powered off and stopped, then the well-behaved guest reached its init and
/// powered off, and rhyve powered the machine off.
fn check_machine(console: &[&str], after: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut at = |marker: &str, what: &str| {
        let found = console.iter().position(|l| l.contains(marker));
        if found.is_none() {
            failures.push(format!("{what} (no `{marker}`)"));
        }
        found
    };
    at(POWERED_OFF, "rhyve did not report the guest's SYSTEM_OFF");
    let stopped = at(STOPPED, "rhyve did not report stopping the VM");
    let after_off = at(
        AFTER_OFF,
        "the well-behaved guest did not power off after the hostile one",
    );
    at(
        ALL_STOPPED,
        "rhyve did not power the machine off once no VM was left",
    );
    if !after.iter().any(|l| l.contains(AFTER_INIT)) {
        failures.push(format!(
            "the well-behaved guest started after the hostile one did not reach its init (no `[after] {AFTER_INIT}`)"
        ));
    }
    let after_init = console
        .iter()
        .position(|l| l.starts_with("[after]") && l.contains(AFTER_INIT));
    if let (Some(s), Some(i)) = (stopped, after_init) {
        if i < s {
            failures.push("VM \"after\" ran before the hostile VM stopped".into());
        }
    }
    if let (Some(s), Some(o)) = (stopped, after_off) {
        if o < s {
            failures.push("VM \"after\" powered off before the hostile VM stopped".into());
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[&str] = &["a", "b"];

    fn run(text: &str) -> Vec<String> {
        HostileGuest::new("mmio", 1, CASES).check(&Capture::from_text(text))
    }

    const GOOD: &str = "rhyve: booting\n[hostile] RHYVE-TG mmio a PASS value=0x1\n\
        [hostile] RHYVE-TG mmio b PASS esr=0x96000050\nrhyve: warning: VM 0 vCPU 0: warn\n\
        [hostile]+  ec=0x25\n[hostile] RHYVE-TG-DONE mmio pass=2 fail=0\n\
        rhyve: VM 0: guest powered off\nrhyve: VM 0 \"hostile\" stopped\n\
        rhyve: console: the monitor (`help` lists its commands)\nrhyve> start after\n\
        VM 1 \"after\": starting\nrhyve: VM 1 \"after\": starting\n[after] RHYVE-INIT-START\n\
        [after] [    2.1] reboot: Power down\nrhyve: VM 1: guest powered off\n\
        rhyve: exits: mmio 1\nrhyve: VM 1 stopped; no VM left: powering off\n";

    #[test]
    fn a_complete_run_passes() {
        assert_eq!(run(GOOD), Vec::<String>::new());
    }

    #[test]
    fn a_failed_case_fails_with_its_detail() {
        let f = run(&GOOD
            .replace("b PASS esr", "b FAIL wrong EC: esr")
            .replace("pass=2 fail=0", "pass=1 fail=1"));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].contains("case `b` FAILED: wrong EC: esr=0x96000050 ec=0x25"),
            "{f:?}"
        );
        assert!(f[1].contains("pass=1 fail=1"), "{f:?}");
    }

    #[test]
    fn a_skipped_case_fails() {
        let f = run(&GOOD
            .replace("[hostile] RHYVE-TG mmio b PASS esr=0x96000050\n", "")
            .replace("[hostile]+  ec=0x25\n", "")
            .replace("pass=2", "pass=1"));
        assert_eq!(f, ["case `b`: no line (the guest skipped it or stopped)"]);
    }

    #[test]
    fn an_unlisted_or_repeated_case_fails() {
        let f = run(&GOOD
            .replace(
                "[hostile] RHYVE-TG-DONE",
                "[hostile] RHYVE-TG mmio c PASS x\n[hostile] RHYVE-TG mmio a PASS y\n[hostile] RHYVE-TG-DONE",
            )
            .replace("pass=2", "pass=4"));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("`c` passed but is not on"), "{f:?}");
        assert!(f[1].contains("`a` reported twice"), "{f:?}");
    }

    #[test]
    fn a_guest_that_died_early_fails_with_reasons() {
        let f = run("[hostile] RHYVE-TG mmio a PASS v\n[hostile] RHYVE-TG mmio fatal FAIL unexpected sync\n");
        assert!(f[0].contains("`fatal` FAILED: unexpected sync"), "{f:?}");
        assert!(
            f.iter().any(|f| f.contains("no `RHYVE-TG-DONE mmio`")),
            "{f:?}"
        );
        assert!(f.iter().any(|f| f.contains("SYSTEM_OFF")), "{f:?}");
        assert!(
            f.iter().any(|f| f.contains("did not reach its init")),
            "{f:?}"
        );
    }

    #[test]
    fn lines_of_another_class_or_malformed_fail() {
        let f = run(&GOOD.replace("RHYVE-TG mmio a PASS", "RHYVE-TG gic a PASS"));
        assert!(f.iter().any(|f| f.contains("class `gic`")), "{f:?}");
        let f = run(&GOOD.replace("mmio a PASS value=0x1", "mmio a MAYBE"));
        assert!(f.iter().any(|f| f.contains("malformed")), "{f:?}");
    }

    #[test]
    fn lines_of_the_other_vm_do_not_count_as_cases() {
        let f = run(&GOOD.replace("[hostile] RHYVE-TG mmio a", "[after] RHYVE-TG mmio a"));
        assert!(f.iter().any(|f| f.contains("case `a`: no line")), "{f:?}");
    }

    #[test]
    fn no_well_behaved_guest_after_fails() {
        let f = run(&GOOD.replace("[after] RHYVE-INIT-START\n", ""));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("did not reach its init"), "{f:?}");
        let f = run(&GOOD
            .replace("rhyve: VM 1: guest powered off\n", "")
            .replace("rhyve: VM 1 stopped; no VM left: powering off\n", ""));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("did not power off after"), "{f:?}");
        assert!(f[1].contains("no VM was left"), "{f:?}");
    }

    #[test]
    fn a_well_behaved_guest_before_the_hostile_one_stopped_fails() {
        let moved = GOOD.replace("[after] RHYVE-INIT-START\n", "");
        let moved = moved.replacen(
            "rhyve: booting\n",
            "rhyve: booting\n[after] RHYVE-INIT-START\n",
            1,
        );
        let f = run(&moved);
        assert_eq!(f, ["VM \"after\" ran before the hostile VM stopped"]);
    }
}
