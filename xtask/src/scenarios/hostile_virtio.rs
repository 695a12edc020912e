//! `hostile-virtio`: tests/guests/src/bin/virtio.rs on one vCPU, with the four virtio devices
//! and a disk that is a 1 MiB slice of the machine's disk. The guest attacks the devices
//! (`tg::virtio::cases`: broken rings, chains, indirect tables, queue configurations,
//! notifications, features, a reset in the middle of I/O) and checks each answer: the spec's
//! DEVICE_NEEDS_RESET with a configuration-change interrupt, a queue that stays not ready, an
//! error status in the blk request, a buffer or notification ignored. Then, as for every
//! hostile class, a well-behaved Linux guest boots, here with the same devices (the disk
//! read-only).
//!
//! Besides the common checks: the line the guest wrote through hvc0 reached the console with
//! the random token its case reported; what it tried to write through port 1 without setting
//! the port up never did; the image holds the slice's marker and the guest's write at their
//! offsets, and nothing outside the slice changed.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::devices::disk_args;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, Input};
use crate::sys;

use super::common::hostile::HostileGuest;
use super::common::vm_output::vm_lines;
use super::common::vms::{DeviceSet, Disk};
use super::{Scenario, VmsBoot};

/// Every case the guest must pass: the bus's refusals, the driver's cases, the GIC after.
const CASES: &[&str] = &[
    "absent-slot-4",
    "absent-slot-31",
    "ctrl-r8",
    "ctrl-w16",
    "ctrl-r64",
    "ctrl-unaligned-r32",
    "config-r8",
    "discover",
    "reserved-register",
    "features-without-version1",
    "features-unoffered",
    "features-beyond-64",
    "features-frozen-after-ok",
    "status-write-abuse",
    "queue-size-0",
    "queue-size-not-power-of-2",
    "queue-size-over-max",
    "queue-size-above-16-bits",
    "queue-desc-unaligned",
    "queue-avail-unaligned",
    "queue-used-unaligned",
    "queue-desc-outside-ram",
    "queue-used-at-gic",
    "queue-desc-wraps",
    "queue-absent",
    "queue-frozen-while-ready",
    "notify-before-driver-ok",
    "notify-absent-queue",
    "blk-capacity-is-slice",
    "blk-read-slice",
    "blk-write-read",
    "blk-read-past-slice",
    "blk-sector-huge",
    "blk-write-past-slice",
    "blk-write-straddles-slice-end",
    "blk-len-not-sectors",
    "blk-unknown-type",
    "blk-discard-unnegotiated",
    "blk-discard",
    "blk-write-zeroes",
    "blk-write-zeroes-bad-flags",
    "blk-get-id",
    "interrupt-ack",
    "blk-no-status",
    "blk-short-header",
    "desc-readable-after-writable",
    "desc-loop",
    "desc-self-loop",
    "desc-next-out-of-range",
    "avail-head-out-of-range",
    "avail-idx-jump",
    "buf-outside-ram",
    "buf-straddles-ram-end",
    "buf-at-gic",
    "buf-wraps",
    "buf-huge-len",
    "indirect-ok",
    "indirect-not-negotiated",
    "indirect-loop",
    "indirect-nested",
    "indirect-with-next",
    "indirect-outside-ram",
    "indirect-at-gic",
    "indirect-len-not-16",
    "indirect-len-0",
    "indirect-too-big",
    "indirect-next-out-of-range",
    "reset-mid-io",
    "net-config-mac",
    "net-tx-ok",
    "net-tx-short",
    "net-tx-oversize",
    "net-ctrl-bad-commands",
    "net-ctrl-no-ack",
    "rng-random",
    "rng-readable-only",
    "console-hvc0",
    "console-port1-without-multiport",
    "gic-intact",
];

/// The machine's disk.
const DISK_MIB: u64 = 4;
const MIB: u64 = 1 << 20;
/// The VM's slice of it: `tg::virtio::cases::SLICE_SECTORS` sectors from 1 MiB.
const SLICE: (u64, u64) = (MIB, MIB);
/// What the image holds at the slice's start (`tg::virtio::cases::DISK_MARKER`).
const DISK_MARKER: &[u8] = b"rhyve-hostile-virtio-slice";
/// What the guest writes in the slice's sector 1 (`tg::virtio::cases::WRITE_MARKER`).
const WRITE_MARKER: &[u8] = b"rhyve-hostile-virtio-wrote-this";
/// The slice's sectors the guest fills, then zeroes with WRITE_ZEROES
/// (`tg::virtio::cases::ZEROED_SECTORS`).
const ZEROED_SECTORS: (usize, usize) = (8, 3);
const SECTOR: usize = 512;
/// What the guest writes in them and the sector on each side first
/// (`tg::virtio::cases::ZEROES_FILL`).
const FILL: u8 = 0x5a;
/// hvc0's line and port 1's (`tg::virtio::cases::HVC0_LINE`, `PORT1_LEAK`).
const HVC0_LINE: &str = "RHYVE-VIRTIO-HVC0 ";
const PORT1_LEAK: &str = "RHYVE-VIRTIO-PORT1-LEAK";

/// The image's name in the VMs' descriptions (`disk.file`; rhyve ignores it).
const IMAGE_FILE: &str = "hostile-virtio.img";
/// The hostile VM's card address (`tg::virtio::cases::CARD_MAC`).
const CARD_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x76, 0x69, 0x6f];

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    let mut guest = HostileGuest::new("virtio", 1, CASES);
    guest.hostile.devices = DeviceSet::ALL;
    guest.hostile.disk = Some(Disk {
        file: Some(IMAGE_FILE.into()),
        readonly: false,
        offset: SLICE.0,
        size: Some(SLICE.1),
    });
    guest.hostile.mac = abi::vmm::Mac::unicast(CARD_MAC);
    // The well-behaved guest after it: the same devices, the whole disk read-only.
    guest.after.devices = DeviceSet::ALL;
    guest.after.disk = Some(Disk {
        file: Some(IMAGE_FILE.into()),
        readonly: true,
        offset: 0,
        size: None,
    });
    vec![Box::new(HostileVirtio(guest))]
}

struct HostileVirtio(HostileGuest);

/// The image.
fn image() -> PathBuf {
    sys::build_dir().join("disks").join(IMAGE_FILE)
}

/// The fresh image's byte at `offset` outside the marker: never zero, not sector-periodic.
fn pattern(offset: u64) -> u8 {
    (offset % 253) as u8 + 1
}

impl Scenario for HostileVirtio {
    fn name(&self) -> String {
        self.0.name()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        self.0.boot(guest)
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        self.0.vms(guest)
    }

    fn inputs(&self) -> Vec<Input> {
        self.0.inputs()
    }

    fn timeout(&self) -> Duration {
        self.0.timeout()
    }

    fn prepare(&self) -> Result<(), String> {
        let path = image();
        let mut data: Vec<u8> = (0..DISK_MIB * MIB).map(pattern).collect();
        let at = SLICE.0 as usize;
        data[at..at + DISK_MARKER.len()].copy_from_slice(DISK_MARKER);
        path.parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::write(&path, &data))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn qemu_args(&self) -> Vec<String> {
        disk_args(&image(), false)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = self.0.check(console);
        failures.extend(check_console(console));
        match fs::read(image()) {
            Ok(disk) => failures.extend(check_disk(&disk)),
            Err(e) => failures.push(format!("reading {}: {e}", image().display())),
        }
        failures
    }
}

/// hvc0 carried the token the guest's `console-hvc0` case reported; port 1 carried nothing.
fn check_console(console: &Capture) -> Vec<String> {
    let mut failures = Vec::new();
    let hostile = vm_lines(console, "hostile");
    let token = hostile.iter().find_map(|l| {
        l.split_once("RHYVE-TG virtio console-hvc0 PASS ")
            .map(|(_, t)| t.trim().to_string())
    });
    match token {
        Some(t) => {
            let want = format!("{HVC0_LINE}{t}");
            if !hostile.iter().any(|l| l.trim() == want) {
                failures.push(format!(
                    "no `{want}` line: what the guest wrote to hvc0 did not reach the console"
                ));
            }
        }
        None => failures.push("no token from the console-hvc0 case".into()),
    }
    if let Some(l) = console.find(PORT1_LEAK) {
        failures.push(format!(
            "port 1 printed without MULTIPORT: {}",
            l.text.trim()
        ));
    }
    failures
}

/// The slice's marker, the guest's write and its WRITE_ZEROES are in place; nothing outside the
/// slice changed.
fn check_disk(disk: &[u8]) -> Vec<String> {
    let mut failures = Vec::new();
    if disk.len() as u64 != DISK_MIB * MIB {
        return vec![format!(
            "the image is {} bytes, not {DISK_MIB} MiB",
            disk.len()
        )];
    }
    let (start, len) = (SLICE.0 as usize, SLICE.1 as usize);
    if !disk[start..].starts_with(DISK_MARKER) {
        failures.push("the slice's first sector lost its marker".into());
    }
    if !disk[start + 512..].starts_with(WRITE_MARKER) {
        failures.push(format!(
            "the guest's write is not in sector 1 of its slice (offset {:#x})",
            start + 512
        ));
    }
    let (first, count) = ZEROED_SECTORS;
    let zeroed = start + first * SECTOR..start + (first + count) * SECTOR;
    // The guest filled one sector on each side with this, around the zeroes.
    for side in [
        zeroed.start - SECTOR..zeroed.start,
        zeroed.end..zeroed.end + SECTOR,
    ] {
        if disk[side.clone()].iter().any(|&b| b != FILL) {
            failures.push(format!(
                "the sector at {:#x}, next to the guest's WRITE_ZEROES, does not hold its fill",
                side.start
            ));
        }
    }
    if let Some(i) = disk[zeroed.clone()].iter().position(|&b| b != 0) {
        failures.push(format!(
            "the guest's WRITE_ZEROES of sectors {first}..{} of its slice did not reach the image \
             (byte {:#x} is {:#x})",
            first + count,
            zeroed.start + i,
            disk[zeroed.start + i]
        ));
    }
    let outside = (0..start).chain(start + len..disk.len());
    let changed: Vec<usize> = outside.filter(|&i| disk[i] != pattern(i as u64)).collect();
    if let (Some(first), Some(last)) = (changed.first(), changed.last()) {
        failures.push(format!(
            "{} bytes of the image changed outside the VM's slice, from {first:#x} to {last:#x}",
            changed.len()
        ));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image as a good run leaves it.
    fn good() -> Vec<u8> {
        let mut d: Vec<u8> = (0..DISK_MIB * MIB).map(pattern).collect();
        let at = SLICE.0 as usize;
        d[at..at + DISK_MARKER.len()].copy_from_slice(DISK_MARKER);
        d[at + 512..at + 512 + WRITE_MARKER.len()].copy_from_slice(WRITE_MARKER);
        let (first, count) = ZEROED_SECTORS;
        d[at + (first - 1) * SECTOR..at + (first + count + 1) * SECTOR].fill(FILL);
        d[at + first * SECTOR..at + (first + count) * SECTOR].fill(0);
        d
    }

    #[test]
    fn the_disk_checks_pass_and_fail() {
        assert_eq!(check_disk(&good()), Vec::<String>::new());
        let mut d = good();
        d[(SLICE.0 + SLICE.1) as usize] ^= 1;
        let f = check_disk(&d);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("outside the VM's slice, from 0x200000"),
            "{f:?}"
        );
        let mut d = good();
        d[SLICE.0 as usize + 512] = 0;
        assert!(check_disk(&d)[0].contains("not in sector 1"));
        let mut d = good();
        d[SLICE.0 as usize + 10 * SECTOR + 511] = FILL;
        let f = check_disk(&d);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("WRITE_ZEROES of sectors 8..11"), "{f:?}");
        let mut d = good();
        d[SLICE.0 as usize + 7 * SECTOR] = 0;
        let f = check_disk(&d);
        assert!(f[0].contains("next to the guest's WRITE_ZEROES"), "{f:?}");
        // Elsewhere inside the slice anything may change.
        let mut d = good();
        d[SLICE.0 as usize + 20 * SECTOR] ^= 1;
        assert_eq!(check_disk(&d), Vec::<String>::new());
    }

    #[test]
    fn the_console_checks_pass_and_fail() {
        let cap = Capture::from_text;
        let good = "[hostile] RHYVE-VIRTIO-HVC0 token=1a2b3c4d\n\
                    [hostile] RHYVE-TG virtio console-hvc0 PASS token=1a2b3c4d\n";
        assert_eq!(check_console(&cap(good)), Vec::<String>::new());
        let f = check_console(&cap(&good.replace("HVC0 token=1a2b3c4d", "HVC0 token=0")));
        assert!(f[0].contains("did not reach the console"), "{f:?}");
        let f = check_console(&cap(&format!("{good}[hostile] {PORT1_LEAK}\n")));
        assert!(f[0].contains("port 1 printed"), "{f:?}");
    }
}
