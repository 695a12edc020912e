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

/// The scenario.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(VirtioBlk)]
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
        GuestBoot {
            kernel: guest.kernel.clone(),
            initrd: Some(guest.initrd.clone()),
            cmdline: CMDLINE.into(),
            vcpus: 2,
            mem_mib: MEM_MIB,
        }
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
        if console.find("rhyve: VM 0: reset: starting again").is_none() {
            failures.push("the guest's reboot between writing and reading did not happen".into());
        }
        if console.find("RHYVE-TEST-DONE").is_none() {
            failures.push("the test init did not finish (no RHYVE-TEST-DONE)".into());
        }
        failures
    }
}
