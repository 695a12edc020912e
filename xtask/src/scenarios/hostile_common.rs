//! What every `hostile-<class>` scenario shares: boot one test guest (tests/guests, built by
//! `toolchain::build_test_guests`) under rhyve, and read its report.
//!
//! A guest prints `RHYVE-TG <class> <case> PASS|FAIL <detail>` per case, then
//! `RHYVE-TG-DONE <class> pass=N fail=M`, then powers off with PSCI SYSTEM_OFF. The checks:
//! every case on the scenario's list has a PASS line (a missing line fails, so a guest that
//! silently skips a case fails), no FAIL line, no case that is not on the list, the DONE line
//! with matching counts, and rhyve's own lines for a powered-off VM. The common checks of
//! [`super::run`] add: no `rhyve: PANIC`, and QEMU exited 0 by itself within the timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::Capture;
use crate::toolchain;

use super::Scenario;

/// Guest RAM of every test guest (tests/guests/src/rt/mod.rs, `RAM_SIZE`, says the same).
pub const MEM_MIB: u64 = 32;
/// rhyve's lines when the guest's SYSTEM_OFF stops the (only) VM.
const POWERED_OFF: &str = "rhyve: VM 0: guest powered off";
const STOPPED: &str = "rhyve: VM 0 stopped; no VM left: powering off";

/// One test guest and the cases it must pass.
pub struct HostileGuest {
    /// The attack class: the guest binary's name and the `<class>` of its lines.
    pub class: &'static str,
    /// vCPUs to boot it with.
    pub vcpus: u32,
    /// Every case the guest must report as PASS.
    pub cases: &'static [&'static str],
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
            vcpus: self.vcpus,
            mem_mib: MEM_MIB,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        check(
            self.class,
            self.cases,
            console.lines.iter().map(|l| l.text.as_str()),
        )
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
fn check<'a>(
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
    for (marker, what) in [
        (POWERED_OFF, "rhyve did not report the guest's SYSTEM_OFF"),
        (STOPPED, "rhyve did not report stopping the VM"),
    ] {
        if !lines.clone().any(|l| l.contains(marker)) {
            failures.push(format!("{what} (no `{marker}`)"));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[&str] = &["a", "b"];

    fn run(text: &str) -> Vec<String> {
        check("mmio", CASES, text.lines())
    }

    const GOOD: &str = "rhyve: booting\nRHYVE-TG mmio a PASS value=0x1\nrhyve: VM 0 vCPU 0: warn\n\
        RHYVE-TG mmio b PASS esr=0x96000050 ec=0x25\nRHYVE-TG-DONE mmio pass=2 fail=0\n\
        rhyve: VM 0: guest powered off\nrhyve: VM 0 stopped; no VM left: powering off\n";

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
        assert!(f[0].contains("case `b` FAILED: wrong EC"), "{f:?}");
        assert!(f[1].contains("pass=1 fail=1"), "{f:?}");
    }

    #[test]
    fn a_skipped_case_fails() {
        let f = run(&GOOD
            .replace("RHYVE-TG mmio b PASS esr=0x96000050 ec=0x25\n", "")
            .replace("pass=2", "pass=1"));
        assert_eq!(f, ["case `b`: no line (the guest skipped it or stopped)"]);
    }

    #[test]
    fn an_unlisted_or_repeated_case_fails() {
        let f = run(&GOOD
            .replace(
                "RHYVE-TG-DONE",
                "RHYVE-TG mmio c PASS x\nRHYVE-TG mmio a PASS y\nRHYVE-TG-DONE",
            )
            .replace("pass=2", "pass=4"));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("`c` passed but is not on"), "{f:?}");
        assert!(f[1].contains("`a` reported twice"), "{f:?}");
    }

    #[test]
    fn a_guest_that_died_early_fails_with_reasons() {
        let f = run("RHYVE-TG mmio a PASS v\nRHYVE-TG mmio fatal FAIL unexpected sync\n");
        assert_eq!(f.len(), 5, "{f:?}");
        assert!(f[0].contains("`fatal` FAILED: unexpected sync"));
        assert!(f.iter().any(|f| f.contains("no `RHYVE-TG-DONE mmio`")));
        assert!(f.iter().any(|f| f.contains("SYSTEM_OFF")));
    }

    #[test]
    fn lines_of_another_class_or_malformed_fail() {
        let f = run(&GOOD.replace("RHYVE-TG mmio a PASS", "RHYVE-TG gic a PASS"));
        assert!(f.iter().any(|f| f.contains("class `gic`")), "{f:?}");
        let f = run(&GOOD.replace("mmio a PASS value=0x1", "mmio a MAYBE"));
        assert!(f.iter().any(|f| f.contains("malformed")), "{f:?}");
    }
}
