//! `linux-smp-N`: Debian's kernel with the busybox test init, on N vCPUs.
//!
//! Asserts that the guest sees N CPUs, that each CPU's architected timer interrupt keeps
//! firing (the vtimer and the vGIC deliver PPIs to every vCPU), and, for N > 1, that IPIs
//! are delivered (the vGIC's SGIs). The guest side is tests/guest/init.sh (`rhyve.test=1`).

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::interrupts::{Row, Table};
use crate::qemu::Capture;

use super::{section, Scenario};

/// The command line of the test guest.
const CMDLINE: &str = "console=ttyAMA0 earlycon=pl011,0x9000000 rhyve.test=1";
/// Guest RAM.
const MEM_MIB: u64 = 512;

/// One `linux-smp-N` scenario per CPU count.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    [1, 2, 4]
        .into_iter()
        .map(|cpus| Box::new(LinuxSmp { cpus }) as Box<dyn Scenario>)
        .collect()
}

/// Linux on `cpus` vCPUs.
struct LinuxSmp {
    cpus: u32,
}

impl Scenario for LinuxSmp {
    fn name(&self) -> String {
        format!("linux-smp-{}", self.cpus)
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, CMDLINE, self.cpus, MEM_MIB)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        check(self.cpus as usize, console)
    }
}

/// The checks, on a console that should come from an `n`-CPU guest.
pub fn check(n: usize, console: &Capture) -> Vec<String> {
    let mut failures = Vec::new();
    match console.find("RHYVE-NPROC ") {
        None => failures.push(
            "no `RHYVE-NPROC` line: the test init did not run (or did not get that far)".into(),
        ),
        Some(l) => {
            let seen = l.text.split_whitespace().nth(1).unwrap_or("?");
            if seen.parse() != Ok(n) {
                failures.push(format!(
                    "the guest sees {seen} CPUs (`RHYVE-NPROC {seen}`), expected {n}"
                ));
            }
        }
    }
    let dump = |i: u32| -> Result<Table, String> {
        let lines = section(
            console,
            &format!("RHYVE-IRQ-BEGIN {i}"),
            &format!("RHYVE-IRQ-END {i}"),
        )
        .ok_or_else(|| format!("no /proc/interrupts dump {i} (RHYVE-IRQ-BEGIN/END {i})"))?;
        let t = Table::parse(lines).map_err(|e| format!("/proc/interrupts dump {i}: {e}"))?;
        if t.cpus != n {
            return Err(format!(
                "/proc/interrupts dump {i} has {} CPU columns, expected {n}",
                t.cpus
            ));
        }
        if !t.has(Row::is_arch_timer) {
            return Err(format!("/proc/interrupts dump {i} has no arch_timer line"));
        }
        Ok(t)
    };
    match (dump(1), dump(2)) {
        (Ok(before), Ok(after)) => failures.extend(compare(&before, &after, n)),
        (a, b) => failures.extend([a.err(), b.err()].into_iter().flatten()),
    }
    if console.find("RHYVE-TEST-DONE").is_none() {
        failures.push("no `RHYVE-TEST-DONE`: the test init did not finish".into());
    }
    failures
}

/// Timer interrupts on every CPU, and IPIs when there are several, between two dumps.
fn compare(before: &Table, after: &Table, n: usize) -> Vec<String> {
    let mut failures = Vec::new();
    let (t1, t2) = (
        before.per_cpu(Row::is_arch_timer),
        after.per_cpu(Row::is_arch_timer),
    );
    for (cpu, (a, b)) in t1.iter().zip(&t2).enumerate() {
        if b <= a {
            failures.push(format!(
                "CPU{cpu}'s arch_timer count did not grow ({a} -> {b})"
            ));
        }
    }
    if n > 1 {
        let i1: u64 = before.per_cpu(Row::is_ipi).iter().sum();
        let i2: u64 = after.per_cpu(Row::is_ipi).iter().sum();
        if i2 <= i1 {
            failures.push(format!(
                "the IPI total did not grow ({i1} -> {i2}) across cross-CPU activity"
            ));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(text: &str) -> Capture {
        Capture::from_text(text)
    }

    fn console(nproc: u32, timer: [[u64; 2]; 2], ipi: [[u64; 2]; 2]) -> String {
        let dump = |i: usize| {
            format!(
                "RHYVE-IRQ-BEGIN {n}\n           CPU0       CPU1\n 11: {} {} GICv3 27 Level arch_timer\n\
                 IPI0: {} {} Rescheduling interrupts\nIPI1: 1 1 Function call interrupts\nErr: 0\nRHYVE-IRQ-END {n}\n",
                timer[i][0], timer[i][1], ipi[i][0], ipi[i][1], n = i + 1
            )
        };
        format!(
            "[    0.0] Booting Linux\nRHYVE-INIT-START\nRHYVE-NPROC {nproc}\n{}{}RHYVE-TEST-DONE\n",
            dump(0),
            dump(1)
        )
    }

    #[test]
    fn a_good_two_cpu_run_passes() {
        assert_eq!(
            check(
                2,
                &capture(&console(2, [[10, 20], [30, 40]], [[5, 5], [9, 5]]))
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_wrong_cpu_count_fails() {
        let f = check(
            3,
            &capture(&console(2, [[10, 20], [30, 40]], [[5, 5], [9, 5]])),
        );
        assert!(f.iter().any(|f| f.contains("sees 2 CPUs")), "{f:?}");
        assert!(
            f.iter().any(|f| f.contains("2 CPU columns, expected 3")),
            "{f:?}"
        );
    }

    #[test]
    fn a_stuck_timer_fails() {
        let f = check(
            2,
            &capture(&console(2, [[10, 20], [30, 20]], [[5, 5], [9, 5]])),
        );
        assert_eq!(f, ["CPU1's arch_timer count did not grow (20 -> 20)"]);
    }

    #[test]
    fn no_ipis_fails() {
        let f = check(
            2,
            &capture(&console(2, [[10, 20], [30, 40]], [[5, 5], [5, 5]])),
        );
        assert_eq!(
            f,
            ["the IPI total did not grow (12 -> 12) across cross-CPU activity"]
        );
    }

    #[test]
    fn a_guest_that_stopped_early_fails_with_reasons() {
        let f = check(1, &capture("RHYVE-INIT-START\n"));
        assert_eq!(f.len(), 4, "{f:?}");
    }
}
