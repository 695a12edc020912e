//! `virtio-net`: a guest's network card is a port of rhyve's switch, whose uplink is the
//! machine's own virtio-net-device (QEMU user networking), driven by the VMM.
//!
//! The guest (`rhyve.net=PORT`) brings eth0 up with a static address, makes 4 MiB of random
//! text (base64) and POSTs it to 10.0.2.2:PORT, which QEMU's user networking connects to the host's
//! loopback, where this scenario's sink takes them. The checks: the guest's card has the
//! stable default address of VM 0, the transfer completed, and the bytes the host received
//! have the checksum and length the guest computed before sending.

use std::sync::OnceLock;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::devices::net_args;
use crate::guest::GuestFiles;
use crate::qemu::Capture;
use crate::sink::{sha256_hex, Sink};

use super::Scenario;

/// Guest RAM.
const MEM_MIB: u64 = 512;
/// The MAC rhyve gives VM 0's first card (`vmm::virtio::net::MacAddr::default_for`).
const VM0_MAC: &str = "02:72:68:00:00:00";

/// The scenario.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(VirtioNet {
        sink: OnceLock::new(),
    })]
}

struct VirtioNet {
    sink: OnceLock<Result<Sink, String>>,
}

impl VirtioNet {
    fn sink(&self) -> &Result<Sink, String> {
        self.sink
            .get_or_init(|| Sink::start().map_err(|e| format!("starting the host sink: {e}")))
    }
}

/// The words after `marker ` on the first line that has it.
fn words<'a>(console: &'a Capture, marker: &str) -> Option<Vec<&'a str>> {
    let l = console.find(&format!("{marker} "))?;
    let (_, rest) = l.text.split_once(&format!("{marker} "))?;
    Some(rest.split_whitespace().collect())
}

impl Scenario for VirtioNet {
    fn name(&self) -> String {
        "virtio-net".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        let port = self.sink().as_ref().map_or(0, |s| s.port);
        GuestBoot {
            kernel: guest.kernel.clone(),
            initrd: Some(guest.initrd.clone()),
            cmdline: format!("console=ttyAMA0 rhyve.net={port}"),
            vcpus: 2,
            mem_mib: MEM_MIB,
        }
    }

    fn prepare(&self) -> Result<(), String> {
        self.sink().as_ref().map(|_| ()).map_err(Clone::clone)
    }

    fn qemu_args(&self) -> Vec<String> {
        net_args()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = Vec::new();
        if console.find("RHYVE-NET-NO-ETH0").is_some() {
            failures.push("the guest has no eth0: its virtio-net did not probe".into());
        }
        match words(console, "RHYVE-NET-MAC").as_deref() {
            Some([mac]) if *mac == VM0_MAC => {}
            other => failures.push(format!(
                "the guest's eth0 has address {other:?}, expected VM 0's default {VM0_MAC}"
            )),
        }
        match words(console, "RHYVE-NET-DONE").as_deref() {
            Some(["0", ..]) => {}
            other => failures.push(format!(
                "the guest's POST failed (RHYVE-NET-DONE {other:?})"
            )),
        }
        let sent = words(console, "RHYVE-NET-SENT");
        let got = match self.sink() {
            Ok(s) => s.wait(Duration::from_secs(2)),
            Err(e) => Some(Err(e.clone())),
        };
        match (sent.as_deref(), got) {
            (Some([sha, len]), Some(Ok(r))) => {
                if len.parse() != Ok(r.body.len()) {
                    failures.push(format!(
                        "the host received {} bytes, the guest sent {len}",
                        r.body.len()
                    ));
                }
                match sha256_hex(&r.body) {
                    Ok(h) if h == *sha => {}
                    Ok(h) => failures.push(format!(
                        "the host received bytes with SHA-256 {h}, the guest sent {sha}"
                    )),
                    Err(e) => failures.push(e),
                }
            }
            (_, Some(Err(e))) => failures.push(format!("the host sink failed: {e}")),
            (sent, got) => failures.push(format!(
                "no transfer to compare: guest said {sent:?}, host got {}",
                if got.is_some() { "data" } else { "nothing" }
            )),
        }
        if console.find("RHYVE-TEST-DONE").is_none() {
            failures.push("the test init did not finish (no RHYVE-TEST-DONE)".into());
        }
        failures
    }
}
