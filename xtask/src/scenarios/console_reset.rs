//! `console-reset`: a person at the guest's console, and a guest that reboots.
//!
//! Types a command into the busybox shell of Debian's kernel under rhyve and reads its
//! answer (console input is interrupt-driven through the emulated PL011), then reboots the
//! guest (PSCI SYSTEM_RESET: rhyve reloads and restarts the VM), types again into the second
//! boot's shell, and powers off. The guest computes the answers (`$((6*7))`), so only a shell
//! that really read the typed line prints them.

use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, Input};

use super::Scenario;

/// The interactive guest: no `rhyve.test`, so init starts a shell.
const CMDLINE: &str = "console=ttyAMA0 quiet";
/// Printed by tests/guest/init.sh just before it starts the shell.
const BANNER: &str = "rhyve busybox guest:";
/// Printed by rhyve when the reset VM starts again.
const RESET: &str = "rhyve: VM 0 \"vm0\": starting";
/// Time for the shell to start reading after the banner.
const SETTLE: Duration = Duration::from_secs(2);

/// The scenario.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(ConsoleReset)]
}

struct ConsoleReset;

impl Scenario for ConsoleReset {
    fn name(&self) -> String {
        "console-reset".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, CMDLINE, 2, 512)
    }

    fn inputs(&self) -> Vec<Input> {
        vec![
            Input {
                after: BANNER,
                delay: SETTLE,
                send: "echo typed-$((6*7))\n",
            },
            Input {
                after: "typed-42",
                delay: Duration::from_millis(500),
                send: "reboot -f\n",
            },
            Input {
                after: BANNER,
                delay: SETTLE,
                send: "echo second-boot-$((6*7))\n",
            },
            Input {
                after: "second-boot-42",
                delay: Duration::from_millis(500),
                send: "poweroff -f\n",
            },
        ]
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = Vec::new();
        let has = |s: &str| console.find(s).is_some();
        // The answer line alone (the echoed command line shows `$((6*7))`, not the answer).
        let answered = |s: &str| console.lines.iter().any(|l| l.text.trim() == s);
        if !answered("typed-42") {
            failures.push(
                "the shell never answered the typed `echo typed-$((6*7))`: console input lost"
                    .into(),
            );
        }
        if !has(RESET) {
            failures.push(format!(
                "no `{RESET}` line: the guest's reboot did not restart the VM"
            ));
        }
        let boots = console
            .lines
            .iter()
            .filter(|l| l.text.contains("RHYVE-INIT-START"))
            .count();
        if boots != 2 {
            failures.push(format!(
                "init started {boots} times, expected 2 (before and after the reset)"
            ));
        }
        if !answered("second-boot-42") {
            failures
                .push("the second boot's shell never answered: input lost after the reset".into());
        }
        if !has("rhyve: VM 0 stopped") {
            failures.push("rhyve did not report the VM stopping after `poweroff -f`".into());
        }
        failures
    }
}
