//! `virtio-rng-console`: Debian's kernel with the busybox test init (`rhyve.virtio=1`) reads
//! its virtio-rng and writes to both ports of its virtio-console.
//!
//! Asserts that the kernel picked virtio-rng as its hardware RNG, that two reads of
//! `/dev/hwrng` differ and that the bytes are not a constant; that a line written to hvc0
//! reaches the machine console; and that a line written to port 1 (`/dev/vport0p1`, its name
//! given by the device) comes out tagged with the VM and the port. The guest computes what it
//! writes (`$((6 * 7))`), so only a line that went through the device matches.
//!
//! `virtio-rng-machine` is the same on a CPU without RNDR (QEMU's cortex-a72: no FEAT_RNG)
//! with a virtio-rng-device on the machine, which the VMM then draws from.

use std::collections::HashSet;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::Capture;

use super::Scenario;

/// The command line of the test guest.
const CMDLINE: &str = "console=ttyAMA0 rhyve.virtio=1";
/// Guest RAM.
const MEM_MIB: u64 = 512;
/// What hvc0's line must read on the console.
const HVC0_LINE: &str = "RHYVE-HVC0 42";
/// What port 1's line must read on the console: rhyve's tag, the guest's text, and the port
/// name the device gave the guest.
const PORT1_LINE: &str = "[VM 0 port 1] RHYVE-VPORT 42 rhyve.port1";
/// Fewest distinct values among 32 random bytes (a uniform source gives ~30; 8 or fewer
/// happens with probability far below 1e-20).
const MIN_DISTINCT: usize = 9;

/// The scenario.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(RngConsole { machine_rng: false }),
        Box::new(RngConsole { machine_rng: true }),
    ]
}

struct RngConsole {
    /// No RNDR; the machine's virtio-rng instead.
    machine_rng: bool,
}

/// The value after `marker ` on the first line that has it.
fn value<'a>(console: &'a Capture, marker: &str) -> Option<&'a str> {
    let l = console.find(&format!("{marker} "))?;
    let (_, rest) = l.text.split_once(&format!("{marker} "))?;
    Some(rest.trim())
}

impl Scenario for RngConsole {
    fn name(&self) -> String {
        if self.machine_rng {
            "virtio-rng-machine".into()
        } else {
            "virtio-rng-console".into()
        }
    }

    fn qemu_args(&self) -> Vec<String> {
        if !self.machine_rng {
            return Vec::new();
        }
        // A later -cpu replaces the machine's: this CPU has EL2 and a GICv3 interface, no RNDR.
        ["-cpu", "cortex-a72", "-device", "virtio-rng-device"]
            .map(String::from)
            .to_vec()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, CMDLINE, 2, MEM_MIB)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = Vec::new();
        match value(console, "RHYVE-HWRNG-SOURCE") {
            Some(s) if s.starts_with("virtio_rng") => {}
            other => failures.push(format!(
                "the guest's hardware RNG is {other:?}, not virtio_rng: the device did not probe"
            )),
        }
        let h1 = value(console, "RHYVE-HWRNG-1");
        let h2 = value(console, "RHYVE-HWRNG-2");
        match (h1, h2) {
            (Some(a), Some(b)) if a.len() == 64 && b.len() == 64 => {
                if a == b {
                    failures.push(format!(
                        "two reads of /dev/hwrng hash the same ({a}): a constant or replayed source"
                    ));
                }
            }
            _ => failures.push(format!(
                "no two hashes of /dev/hwrng reads (RHYVE-HWRNG-1/2: {h1:?}, {h2:?})"
            )),
        }
        match value(console, "RHYVE-HWRNG-BYTES") {
            Some(hex) if hex.len() == 64 => {
                let distinct: HashSet<&str> = (0..32).map(|i| &hex[2 * i..2 * i + 2]).collect();
                if distinct.len() < MIN_DISTINCT {
                    failures.push(format!(
                        "32 bytes of /dev/hwrng hold only {} distinct values ({hex}): not random",
                        distinct.len()
                    ));
                }
            }
            other => failures.push(format!(
                "no 32 bytes of /dev/hwrng (RHYVE-HWRNG-BYTES: {other:?})"
            )),
        }
        if !console.lines.iter().any(|l| l.text.trim() == HVC0_LINE) {
            failures.push(format!(
                "no `{HVC0_LINE}` line: what the guest wrote to hvc0 did not reach the console"
            ));
        }
        if console.find(PORT1_LINE).is_none() {
            failures.push(format!(
                "no `{PORT1_LINE}`: the line written to virtio-console port 1 was not printed tagged"
            ));
        }
        if console.find("RHYVE-TEST-DONE").is_none() {
            failures.push("the test init did not finish (no RHYVE-TEST-DONE)".into());
        }
        failures
    }
}
