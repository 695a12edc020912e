//! `virtio-blk`: a guest's disk is a slice of the machine's own virtio-blk-device (a fresh
//! scratch image attached to QEMU), driven by rhyve's VMM.
//!
//! The guest (`rhyve.blk=1`) makes an ext2 filesystem on /dev/vda, writes 100000 lines and a
//! marker no earlier run wrote, syncs, and reboots (rhyve reloads the VM: nothing survives in
//! the guest's page cache). Its second boot finds the filesystem, reads the files back and
//! powers off. The checks: the second boot reads what the first wrote (same SHA-256, line
//! count and last line), and the marker is in the image file on the host, so the writes went
//! through the machine's disk, not just the guest's memory.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::boot::GuestBoot;
use crate::devices::disk_args;
use crate::guest::GuestFiles;
use crate::qemu::Capture;
use crate::sys;

use super::Scenario;

/// The command line of the test guest.
const CMDLINE: &str = "console=ttyAMA0 rhyve.blk=1";
/// Guest RAM.
const MEM_MIB: u64 = 512;
/// Size of the scratch disk.
const DISK_MIB: u64 = 64;
/// Lines the guest writes (`seq 1 N`).
const LINES: u64 = 100_000;

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(VirtioBlk), Box::new(ReadOnly)]
}

struct VirtioBlk;

/// The scratch disk image.
fn image() -> PathBuf {
    sys::build_dir().join("disks").join("virtio-blk.img")
}

/// The words after `marker ` on the first line that has it.
fn words<'a>(console: &'a Capture, marker: &str) -> Option<Vec<&'a str>> {
    let l = console.find(&format!("{marker} "))?;
    let (_, rest) = l.text.split_once(&format!("{marker} "))?;
    Some(rest.split_whitespace().collect())
}

impl Scenario for VirtioBlk {
    fn name(&self) -> String {
        "virtio-blk".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, CMDLINE, 2, MEM_MIB)
    }

    fn prepare(&self) -> Result<(), String> {
        let path = image();
        let make = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let _ = fs::remove_file(&path);
            fs::File::create(&path)?.set_len(DISK_MIB << 20)
        };
        make().map_err(|e| format!("creating the scratch disk {}: {e}", path.display()))
    }

    fn qemu_args(&self) -> Vec<String> {
        disk_args(&image(), false)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(400)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = Vec::new();
        let sectors = (DISK_MIB << 20) / 512;
        match words(console, "RHYVE-BLK-SIZE").as_deref() {
            Some([s]) if s.parse() == Ok(sectors) => {}
            other => failures.push(format!(
                "the guest's /dev/vda has {other:?} sectors, expected {sectors} (the whole disk)"
            )),
        }
        for bad in ["RHYVE-BLK-MKFS-FAILED", "RHYVE-BLK-MOUNT-FAILED"] {
            if console.find(bad).is_some() {
                failures.push(format!("the guest printed {bad}"));
            }
        }
        let wrote = words(console, "RHYVE-BLK-WROTE");
        let read = words(console, "RHYVE-BLK-READ");
        match (wrote.as_deref(), read.as_deref()) {
            (Some([sha_w, mark]), Some([sha_r, lines, last])) => {
                if sha_w != sha_r {
                    failures.push(format!(
                        "the second boot read data.txt with SHA-256 {sha_r}, the first wrote {sha_w}"
                    ));
                }
                let n = LINES.to_string();
                if *lines != n || *last != n {
                    failures.push(format!(
                        "data.txt read back has {lines} lines ending in {last}, expected {n} and {n}"
                    ));
                }
                if words(console, "RHYVE-BLK-MARK-READ").as_deref() != Some(&[*mark][..]) {
                    failures.push(format!(
                        "the second boot did not read the marker {mark} back"
                    ));
                }
                match fs::read(image()) {
                    Ok(disk) => {
                        if !disk.windows(mark.len()).any(|w| w == mark.as_bytes()) {
                            failures.push(format!(
                                "the marker {mark} is not in the disk image {}: the writes did not reach the machine's disk",
                                image().display()
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("reading {}: {e}", image().display())),
                }
            }
            other => failures.push(format!(
                "no write-then-read of the disk (RHYVE-BLK-WROTE / RHYVE-BLK-READ): {other:?}"
            )),
        }
        // rhyve says this when it starts the VM again after the guest's reset.
        if console
            .find("rhyve: VM 0: guest asked for a reset")
            .is_none()
            || console.find("rhyve: VM 0 \"vm0\": starting").is_none()
        {
            failures.push("the guest's reboot between writing and reading did not happen".into());
        }
        if console.find("RHYVE-TEST-DONE").is_none() {
            failures.push("the test init did not finish (no RHYVE-TEST-DONE)".into());
        }
        failures
    }
}

/// `virtio-blk-ro`: the machine's disk is attached read-only (`--disk PATH,ro`). The guest
/// must see a read-only /dev/vda (VIRTIO_BLK_F_RO), its write must fail, the image must be
/// unchanged on the host, and a read after dropping the guest's cache must return the
/// image's bytes. Linux refuses the write itself once the device says read-only (even after
/// `blockdev --setrw`), so the device's own VIRTIO_BLK_S_IOERR answer to a write is checked
/// by the host unit tests (`read_only_disk_refuses_writes_with_ioerr`), not here.
struct ReadOnly;

/// The image of `virtio-blk-ro`.
fn ro_image() -> PathBuf {
    sys::build_dir().join("disks").join("virtio-blk-ro.img")
}

/// The first bytes of the read-only image: a pattern no zeroing write leaves.
const RO_PATTERN: [u8; 16] = *b"rhyve-ro-pattern";

impl Scenario for ReadOnly {
    fn name(&self) -> String {
        "virtio-blk-ro".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, "console=ttyAMA0 rhyve.blkro=1", 1, MEM_MIB)
    }

    fn prepare(&self) -> Result<(), String> {
        let path = ro_image();
        let mut data = vec![0u8; 1 << 20];
        data[..RO_PATTERN.len()].copy_from_slice(&RO_PATTERN);
        path.parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::write(&path, &data))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn qemu_args(&self) -> Vec<String> {
        disk_args(&ro_image(), true)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = Vec::new();
        if words(console, "RHYVE-BLKRO-RO").as_deref() != Some(&["1"][..]) {
            failures
                .push("the guest's /dev/vda is not read-only (VIRTIO_BLK_F_RO not offered)".into());
        }
        match words(console, "RHYVE-BLKRO-WRITE").as_deref() {
            Some(["0", ..]) => failures.push("the write to the read-only disk succeeded".into()),
            Some([_, ..]) => {}
            other => failures.push(format!("no write attempt reported: {other:?}")),
        }
        let pattern: String = RO_PATTERN.iter().map(|b| format!("{b:02x}")).collect();
        match words(console, "RHYVE-BLKRO-READ").as_deref() {
            Some([hex]) if *hex == pattern => {}
            other => failures.push(format!(
                "the guest read back {other:?}, not the image's first bytes {pattern}"
            )),
        }
        match fs::read(ro_image()) {
            Ok(d) if d.starts_with(&RO_PATTERN) => {}
            Ok(_) => failures.push("the read-only image changed on the host".into()),
            Err(e) => failures.push(format!("reading {}: {e}", ro_image().display())),
        }
        if console.find("RHYVE-TEST-DONE").is_none() {
            failures.push("the test init did not finish (no RHYVE-TEST-DONE)".into());
        }
        failures
    }
}
