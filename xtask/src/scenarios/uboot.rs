//! `uboot-linux`, `uboot-booti`: the guest's own U-Boot (Debian's `u-boot-qemu`, its
//! `qemu_arm64` build) runs from the VM's flash and boots the test guest's kernel and
//! initramfs from the VM's disk by its distro boot, as a board does.
//!
//! `uboot-linux`'s disk (MBR, one FAT32 partition) has `/extlinux/extlinux.conf`;
//! `uboot-booti`'s has `/boot.scr`, a script that `load`s the kernel and initramfs and
//! `booti`s them with U-Boot's own device tree. Each configuration gives the kernel a command
//! line naming it (`rhyve.boot=uboot-extlinux`, `rhyve.boot=uboot-script`).
//!
//! The checks, on the guest's console in this order: U-Boot's version banner (once: no reset
//! loop); distro boot scanning the virtio disk and finding that configuration (and the script
//! running, its own line naming the partition); U-Boot starting the kernel; the test init
//! reporting the configuration's tag and no UEFI; the init finishing. QEMU exits 0 by itself:
//! the guest powered off. Under rhyve the VM is `boot::FirmwareBoot`'s: the firmware in
//! flash, the disk its whole virtio-blk.

use std::time::Duration;

use crate::boot::{FirmwareBoot, GuestBoot};
use crate::firmware::{self, DiskKind, SCRIPT_MARKER};
use crate::guest::GuestFiles;
use crate::qemu::Capture;

use super::{in_order, FirmwareRun, Scenario};

/// Guest RAM: U-Boot's load addresses reach 64 MiB past RAM's base, Linux wants room.
const MEM_MIB: u64 = 512;
/// U-Boot's version banner (`U-Boot 2023.01+dfsg-...`).
const BANNER: &str = "U-Boot 20";

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(UbootBoot {
            name: "uboot-linux",
            disk: DiskKind::UbootExtlinux,
        }),
        Box::new(UbootBoot {
            name: "uboot-booti",
            disk: DiskKind::UbootScript,
        }),
    ]
}

/// U-Boot booting the disk `disk`.
struct UbootBoot {
    name: &'static str,
    disk: DiskKind,
}

impl Scenario for UbootBoot {
    fn name(&self) -> String {
        self.name.into()
    }

    /// Not booted: [`Scenario::firmware`] is.
    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, "", 1, MEM_MIB)
    }

    fn firmware(&self, guest: &GuestFiles) -> Option<Result<FirmwareRun, String>> {
        let run = || -> crate::error::Result<FirmwareRun> {
            let fw = firmware::fetch()?;
            Ok(FirmwareRun {
                disk: firmware::disk(self.disk, guest, &fw)?,
                read_only: true,
                boot: FirmwareBoot {
                    firmware: fw.uboot,
                    vcpus: 1,
                    mem_mib: MEM_MIB,
                    reboots: false,
                    vars: None,
                },
            })
        };
        Some(run().map_err(|e| e.to_string()))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        check(console, self.disk)
    }
}

/// The checks of the boot of `disk`.
fn check(console: &Capture, disk: DiskKind) -> Vec<String> {
    let booted = format!("RHYVE-BOOT {} efi=0", disk.tag());
    let script_line = format!("{SCRIPT_MARKER} virtio 0:1");
    let mut markers = vec![
        (BANNER, "U-Boot's banner"),
        (
            "Scanning virtio 0:1",
            "distro boot scanning the virtio disk",
        ),
    ];
    match disk {
        DiskKind::UbootScript => markers.extend([
            (
                "Found U-Boot script /boot.scr",
                "distro boot finding boot.scr",
            ),
            (
                script_line.as_str(),
                "the boot script running on that partition",
            ),
        ]),
        _ => markers.extend([
            (
                "Found /extlinux/extlinux.conf",
                "distro boot finding extlinux.conf",
            ),
            ("Retrieving file: /Image", "U-Boot loading the kernel"),
        ]),
    }
    markers.extend([
        ("Starting kernel ...", "U-Boot starting the kernel"),
        ("RHYVE-INIT-START", "the test init"),
        (
            booted.as_str(),
            "the kernel booted with that configuration's command line, not through UEFI",
        ),
        ("RHYVE-TEST-DONE", "the test init finishing"),
    ]);
    let mut failures = in_order(console, &markers);
    let banners = console
        .lines
        .iter()
        .filter(|l| l.text.contains(BANNER))
        .count();
    if banners > 1 {
        failures.push(format!(
            "U-Boot started {banners} times: the VM reset on the way"
        ));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTLINUX: &str = "U-Boot 2023.01+dfsg-2 (Jun 22 2026)\nScanning virtio 0:1...\n\
        Found /extlinux/extlinux.conf\nRetrieving file: /Image\nStarting kernel ...\n\
        RHYVE-INIT-START\nRHYVE-BOOT uboot-extlinux efi=0\nRHYVE-TEST-DONE\n";

    #[test]
    fn the_extlinux_boot_passes_and_a_wrong_path_fails() {
        assert!(check(&Capture::from_text(EXTLINUX), DiskKind::UbootExtlinux).is_empty());
        // The other disk's configuration, or a UEFI boot, is not this scenario's.
        let script = EXTLINUX.replace("uboot-extlinux", "uboot-script");
        assert_eq!(
            check(&Capture::from_text(&script), DiskKind::UbootExtlinux).len(),
            1
        );
        let efi = EXTLINUX.replace("efi=0", "efi=1");
        assert_eq!(
            check(&Capture::from_text(&efi), DiskKind::UbootExtlinux).len(),
            1
        );
        let twice = format!("U-Boot 2023.01\n{EXTLINUX}");
        assert!(
            check(&Capture::from_text(&twice), DiskKind::UbootExtlinux)[0]
                .contains("started 2 times")
        );
    }

    #[test]
    fn the_script_boot_needs_the_script_s_own_line() {
        let ok = "U-Boot 2023.01\nScanning virtio 0:1...\nFound U-Boot script /boot.scr\n\
            RHYVE-UBOOT-SCRIPT virtio 0:1\nStarting kernel ...\nRHYVE-INIT-START\n\
            RHYVE-BOOT uboot-script efi=0\nRHYVE-TEST-DONE\n";
        assert!(check(&Capture::from_text(ok), DiskKind::UbootScript).is_empty());
        let silent = ok.replace("RHYVE-UBOOT-SCRIPT virtio 0:1\n", "");
        assert!(!check(&Capture::from_text(&silent), DiskKind::UbootScript).is_empty());
    }
}
