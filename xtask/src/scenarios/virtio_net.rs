//! `virtio-net`: a guest's network card is a port of rhyve's switch, whose uplink is the
//! machine's own virtio-net-device (QEMU user networking), driven by the VMM.
//!
//! The guest (`rhyve.net=PORT`) brings eth0 up with a static address, makes 4 MiB of random
//! text (base64) and POSTs it to 10.0.2.2:PORT, which QEMU's user networking connects to the host's
//! loopback, where this scenario's sink takes them. The checks: the guest's card has the
//! stable default address of VM 0 and, the guest having two vCPUs, two queue pairs the card
//! accepted; the transfer completed, and the bytes the host received have the checksum and
//! length the guest computed before sending.

use std::sync::OnceLock;
use std::time::Duration;

use abi::vmm::Mac;

use crate::boot::GuestBoot;
use crate::devices::net_args;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, HYPERVISOR_MEM_MIB};
use crate::sink::{sha256_hex, Sink};

use super::common::vm_output::vm_lines;
use super::common::vms::{self, cpus, linux, linux_files, DeviceSet, VmDesc, DEFAULT_DEVICES};
use super::{Scenario, VmsBoot};

/// Guest RAM.
const MEM_MIB: u64 = 512;
/// The MAC rhyve gives VM 0's first card (`abi::vmm::Mac::default_for`).
const VM0_MAC: &str = "02:72:68:00:00:00";
/// The queues of a two-vCPU guest's eth0 with VIRTIO_NET_F_MQ.
const QUEUES: &[&str] = &["rx-0", "rx-1", "tx-0", "tx-1"];
/// What Linux's virtio_net prints when the device refuses VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET.
const MQ_REFUSED: &str = "Fail to set num of queue pairs";

/// The scenario.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(VirtioNet {
            sink: OnceLock::new(),
        }),
        Box::new(TwoGuests),
    ]
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
        GuestBoot::linux(
            guest,
            format!("console=ttyAMA0 rhyve.net={port}"),
            2,
            MEM_MIB,
        )
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
        // Two vCPUs: Linux uses two queue pairs, enabled through the control queue (it warns
        // when the device refuses).
        match words(console, "RHYVE-NET-QUEUES").as_deref() {
            Some(QUEUES) => {}
            other => failures.push(format!(
                "the guest's eth0 has queues {other:?}, expected {QUEUES:?} (multiqueue)"
            )),
        }
        if let Some(l) = console.find(MQ_REFUSED) {
            failures.push(format!(
                "the card refused the guest's queue pairs: {}",
                l.text.trim()
            ));
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

/// `virtio-net-two`: two Linux guests whose cards are ports of rhyve's switch (no card of the
/// machine at all). The server (`rhyve.net2=server`, VM 0) serves 1 MiB of random text over
/// HTTP; the client (VM 1) fetches it. The checks: the client's checksum is the server's; the
/// server's card has the address its description gives (`mac`), the client's VM 1's default.
struct TwoGuests;

/// VM 1's default MAC.
const VM1_MAC: &str = "02:72:68:00:01:00";
/// The server's MAC, from its description: unlike any default (those start 02:72:68).
const SERVER_MAC: Mac = match Mac::unicast([0x52, 0x54, 0x00, 0x72, 0x68, 0x5e]) {
    Some(m) => m,
    None => panic!("a unicast address"),
};

impl Scenario for TwoGuests {
    fn name(&self) -> String {
        "virtio-net-two".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, "", 1, MEM_MIB)
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        Some(VmsBoot {
            config: vms::config(&two_guests(MEM_MIB)),
            files: linux_files(guest),
            smp: 4,
            mem_mib: 2 * MEM_MIB + HYPERVISOR_MEM_MIB,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(400)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        check_two_guests(console)
    }
}

/// The server (VM 0, on CPU 0, its `mac` from its description) and the client (VM 1, on CPU
/// 1, rhyve's default address), `mem_mib` each, with a card on rhyve's switch.
pub(super) fn two_guests(mem_mib: u64) -> [VmDesc; 2] {
    let vm = |name: &str, cpu: u32| VmDesc {
        cpus: cpus(&[cpu]),
        devices: DEFAULT_DEVICES.with(DeviceSet::VIRTIO_NET),
        ..linux(
            name,
            mem_mib,
            &format!("console=ttyAMA0 quiet rhyve.net2={name}"),
        )
    };
    let server = VmDesc {
        mac: Some(SERVER_MAC),
        ..vm("server", 0)
    };
    [server, vm("client", 1)]
}

/// The checks of [`two_guests`]' transfer: the client's checksum is the server's, the cards
/// have their addresses, both test inits finish.
pub(super) fn check_two_guests(console: &Capture) -> Vec<String> {
    let mut failures = Vec::new();
    let server = vm_lines(console, "server");
    let client = vm_lines(console, "client");
    let after = |lines: &[String], m: &str| -> Option<Vec<String>> {
        lines.iter().find_map(|l| {
            l.split_once(m)
                .map(|(_, v)| v.split_whitespace().map(String::from).collect())
        })
    };
    let served = after(&server, "RHYVE-NET2-SERVED ");
    let got = after(&client, "RHYVE-NET2-GOT ");
    match (served.as_deref(), got.as_deref()) {
        (Some([s, server_mac]), Some([g, mac])) => {
            if s != g {
                failures.push(format!("the client got SHA-256 {g}, the server served {s}"));
            }
            if *server_mac != SERVER_MAC.to_string() {
                failures.push(format!(
                    "the server's card has address {server_mac}, expected {SERVER_MAC} from its description"
                ));
            }
            if mac != VM1_MAC {
                failures.push(format!(
                    "the client's card has address {mac}, expected VM 1's {VM1_MAC}"
                ));
            }
        }
        other => failures.push(format!(
            "no transfer between the guests (server, client said {other:?})"
        )),
    }
    for (name, lines) in [("server", &server), ("client", &client)] {
        if !lines.iter().any(|l| l.contains("RHYVE-TEST-DONE")) {
            failures.push(format!("the {name}'s test init did not finish"));
        }
    }
    failures
}
