//! `virtio-blk-slices`: two VMs whose disks are disjoint slices (LBA ranges) of the machine's
//! one disk, and a third whose writable slice overlaps one of them.
//!
//! The image is filled with a pattern first. Each of the two guests (`rhyve.blkslice=1`)
//! writes a fresh random marker at the first byte and in the last sector of its /dev/vda,
//! reads both back and prints its disk's size and the marker, then discards a range and prints
//! the status and the queue's DISCARD / WRITE_ZEROES maxima. The checks: each guest's disk
//! is as long as its slice; the disk offers both and the discard succeeded; each marker is in
//! the image at its slice's offset and in the slice's last sector; every other byte of the
//! image still holds the pattern, so nothing was written outside the slices (nor elsewhere
//! inside them, the discarded range included); and rhyve refused the third VM at boot, naming
//! it and the VM it collides with.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::devices::disk_args;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, HYPERVISOR_MEM_MIB};
use crate::sys;

use super::common::vm_output::vm_lines;
use super::common::vms::{
    self, cpus, linux, linux_files, DeviceSet, Disk, VmDesc, DEFAULT_DEVICES,
};
use super::{Scenario, VmsBoot};

/// Guest RAM of each VM.
const MEM_MIB: u64 = 192;
/// The machine's disk.
const DISK_MIB: u64 = 12;
const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// The two VMs that run: name, CPU, slice offset and size in bytes. Gaps before, between and
/// after them, so a write past either end would land on pattern bytes.
const SLICES: [(&str, u32, u64, u64); 2] =
    [("left", 0, MIB, 2 * MIB), ("right", 1, 6 * MIB, 4 * MIB)];
/// The third VM, refused: its writable slice reaches into "right"'s.
const GREEDY: &str = "greedy";
/// rhyve's refusal of it names both VMs.
const REFUSAL: &str = "rhyve: error: configuration: vm \"greedy\"";
const REFUSAL_NAMES: &str = "overlaps that of vm \"right\"";

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(Slices)]
}

struct Slices;

/// The image.
fn image() -> PathBuf {
    sys::build_dir().join("disks").join("virtio-blk-slices.img")
}

/// The pattern byte at `offset` of the fresh image: never zero, and not the same every 512
/// bytes (251 is prime), so a sector landing in the wrong place shows.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8 + 1
}

/// The image's name in the VMs' descriptions (`disk.file`; rhyve ignores it).
const IMAGE_FILE: &str = "slices.img";

/// VM `name` on CPU `cpu`, its disk the slice of `size` bytes at `offset`, writable.
fn slice_vm(name: &str, cpu: u32, offset: u64, size: u64) -> VmDesc {
    VmDesc {
        cpus: cpus(&[cpu]),
        devices: DEFAULT_DEVICES.with(DeviceSet::VIRTIO_BLK),
        disk: Some(Disk {
            file: Some(IMAGE_FILE.into()),
            readonly: false,
            offset,
            size: Some(size),
        }),
        ..linux(name, MEM_MIB, "console=ttyAMA0 quiet rhyve.blkslice=1")
    }
}

impl Scenario for Slices {
    fn name(&self) -> String {
        "virtio-blk-slices".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, "", 1, MEM_MIB)
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        let mut vms: Vec<VmDesc> = SLICES
            .iter()
            .map(|&(name, cpu, off, size)| slice_vm(name, cpu, off, size))
            .collect();
        // A value, though rhyve refuses it: the table alone is well-formed, and the parser
        // refuses it only for the slice "right" holds.
        let (_, _, right, right_size) = SLICES[1];
        vms.push(slice_vm(GREEDY, 2, right + right_size - MIB, 2 * MIB));
        let config = vms::config(&vms);
        Some(VmsBoot {
            config,
            files: linux_files(guest),
            smp: 4,
            mem_mib: 3 * MEM_MIB + HYPERVISOR_MEM_MIB,
        })
    }

    fn prepare(&self) -> Result<(), String> {
        let path = image();
        let data: Vec<u8> = (0..DISK_MIB * MIB).map(pattern).collect();
        path.parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::write(&path, &data))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn qemu_args(&self) -> Vec<String> {
        disk_args(&image(), false)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let disk = match fs::read(image()) {
            Ok(d) => d,
            Err(e) => return vec![format!("reading {}: {e}", image().display())],
        };
        let reports = SLICES.map(|(name, ..)| vm_lines(console, name));
        check(&disk, &reports, console)
    }
}

/// The checks on the image `disk` and on each running VM's lines (`reports`, in [`SLICES`]
/// order).
fn check(disk: &[u8], reports: &[Vec<String>], console: &Capture) -> Vec<String> {
    let mut failures = Vec::new();
    if disk.len() as u64 != DISK_MIB * MIB {
        return vec![format!(
            "the image is {} bytes, not {DISK_MIB} MiB",
            disk.len()
        )];
    }
    // The bytes each marker must have put in the image: (offset, marker).
    let mut written: Vec<(u64, String)> = Vec::new();
    for ((name, _, off, size), lines) in SLICES.iter().zip(reports) {
        let report = lines.iter().find_map(|l| l.strip_prefix("RHYVE-SLICE "));
        let words: Vec<&str> = report.map_or(Vec::new(), |r| r.split_whitespace().collect());
        let [sectors, mark, rest @ ..] = words.as_slice() else {
            failures.push(format!(
                "VM {name} reported no slice (RHYVE-SLICE): {report:?}"
            ));
            continue;
        };
        if sectors.parse::<u64>() != Ok(size / SECTOR) {
            failures.push(format!(
                "VM {name}'s /dev/vda has {sectors} sectors, its slice {}",
                size / SECTOR
            ));
        }
        if !mark.starts_with("rhyve-slice-") || rest != ["read-back"] {
            failures.push(format!(
                "VM {name} did not read its marker back: {report:?}"
            ));
        }
        for at in [*off, off + size - SECTOR] {
            let found = disk.get(at as usize..at as usize + mark.len());
            if found != Some(mark.as_bytes()) {
                failures.push(format!(
                    "VM {name}'s marker {mark} is not in the image at {at:#x} (found {:?})",
                    found.map(String::from_utf8_lossy)
                ));
            }
            written.push((at, mark.to_string()));
        }
        // The device offered DISCARD and WRITE_ZEROES, and a discard succeeded (it leaves the
        // data in place: the pattern check below covers its sectors).
        let discard = lines
            .iter()
            .find_map(|l| l.strip_prefix("RHYVE-SLICE-DISCARD "));
        let nums: Vec<u64> = discard.map_or(Vec::new(), |d| {
            d.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        });
        match nums.as_slice() {
            [0, discard_max, zeroes_max] if *discard_max > 0 && *zeroes_max > 0 => {}
            _ => failures.push(format!(
                "VM {name}: blkdiscard failed or the disk offers no DISCARD / WRITE_ZEROES \
                 (status, discard_max_bytes, write_zeroes_max_bytes): {discard:?}"
            )),
        }
        if !lines.iter().any(|l| l.contains("RHYVE-TEST-DONE")) {
            failures.push(format!("VM {name}'s test init did not finish"));
        }
    }
    let marked = |i: u64| {
        written
            .iter()
            .any(|(at, m)| (*at..at + m.len() as u64).contains(&i))
    };
    let in_slice = |i: u64| {
        SLICES
            .iter()
            .any(|(_, _, off, size)| (*off..off + size).contains(&i))
    };
    let changed = (0..disk.len() as u64).filter(|&i| disk[i as usize] != pattern(i) && !marked(i));
    let (mut outside, mut inside) = (Vec::new(), Vec::new());
    for i in changed {
        if in_slice(i) {
            inside.push(i);
        } else {
            outside.push(i);
        }
    }
    for (what, bytes) in [
        ("outside the slices", outside),
        ("inside the slices, besides the markers", inside),
    ] {
        if let (Some(first), Some(last)) = (bytes.first(), bytes.last()) {
            failures.push(format!(
                "{} bytes of the image changed {what}, from {first:#x} to {last:#x}",
                bytes.len()
            ));
        }
    }
    match console.find(REFUSAL) {
        Some(l) if l.text.contains(REFUSAL_NAMES) => {}
        Some(l) => failures.push(format!(
            "rhyve refused VM {GREEDY} without naming the VM it collides with: {}",
            l.text.trim()
        )),
        None => failures.push(format!(
            "rhyve did not refuse VM {GREEDY}, whose writable slice overlaps VM right's (no `{REFUSAL}`)"
        )),
    }
    if console
        .lines
        .iter()
        .any(|l| l.text.starts_with(&format!("[{GREEDY}]")))
    {
        failures.push(format!("the refused VM {GREEDY} ran"));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &str = "rhyve: error: configuration: vm \"greedy\" (line 29): field \"disk\": \
        its writable part of the machine's disk (9 MiB..11 MiB) overlaps that of vm \"right\" \
        (line 19, 6 MiB..10 MiB): give the two disjoint slices";

    /// What a good run leaves: the image with both markers, and each VM's report.
    fn good() -> (Vec<u8>, Vec<Vec<String>>) {
        let mut disk: Vec<u8> = (0..DISK_MIB * MIB).map(pattern).collect();
        let mut reports = Vec::new();
        for (i, (_, _, off, size)) in SLICES.iter().enumerate() {
            let mark = format!("rhyve-slice-{i}{i}{i}");
            for at in [*off, off + size - SECTOR] {
                disk[at as usize..at as usize + mark.len()].copy_from_slice(mark.as_bytes());
            }
            reports.push(vec![
                format!("RHYVE-SLICE {} {mark} read-back", size / SECTOR),
                "RHYVE-SLICE-DISCARD 0 2199023255040 8388608".into(),
                "RHYVE-TEST-DONE".into(),
            ]);
        }
        (disk, reports)
    }

    #[test]
    fn a_good_run_passes() {
        let (disk, reports) = good();
        assert_eq!(
            check(&disk, &reports, &Capture::from_text(REFUSED)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_byte_written_outside_or_a_marker_misplaced_fails() {
        let (mut disk, reports) = good();
        disk[(3 * MIB) as usize] ^= 0xff;
        let f = check(&disk, &reports, &Capture::from_text(REFUSED));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("changed outside the slices, from 0x300000"),
            "{f:?}"
        );

        let (mut disk, reports) = good();
        // The right VM's first marker one sector late.
        let at = (6 * MIB) as usize;
        let mark: Vec<u8> = disk[at..at + 20].to_vec();
        disk[at..at + 20]
            .copy_from_slice(&(at as u64..at as u64 + 20).map(pattern).collect::<Vec<_>>());
        disk[at + 512..at + 532].copy_from_slice(&mark);
        let f = check(&disk, &reports, &Capture::from_text(REFUSED));
        assert!(
            f.iter()
                .any(|f| f.contains("is not in the image at 0x600000")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|f| f.contains("inside the slices, besides the markers")),
            "{f:?}"
        );
    }

    #[test]
    fn a_wrong_size_or_no_refusal_fails() {
        let (disk, mut reports) = good();
        reports[0][0] = reports[0][0].replace("RHYVE-SLICE 4096", "RHYVE-SLICE 32768");
        reports[1][1] = "RHYVE-SLICE-DISCARD 0 0 8388608".into();
        let f = check(
            &disk,
            &reports,
            &Capture::from_text("[greedy] RHYVE-INIT-START"),
        );
        assert!(
            f.iter().any(|f| f.contains("VM right: blkdiscard failed")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|f| f.contains("has 32768 sectors, its slice 4096")),
            "{f:?}"
        );
        assert!(
            f.iter().any(|f| f.contains("did not refuse VM greedy")),
            "{f:?}"
        );
        assert!(
            f.iter().any(|f| f.contains("the refused VM greedy ran")),
            "{f:?}"
        );
    }
}
