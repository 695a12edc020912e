//! `uefi-grub-linux`, `uefi-vars-persist`: the guest's own UEFI firmware (EDK2's ArmVirtQemu,
//! Debian's `qemu-efi-aarch64`) runs from the VM's flash, finds GRUB on the EFI system
//! partition of the VM's disk (`/EFI/BOOT/BOOTAA64.EFI`, a standalone GRUB whose embedded
//! grub.cfg boots the test guest's kernel and initramfs from that partition) and GRUB boots
//! Linux through its EFI stub.
//!
//! `uefi-grub-linux` checks, in this order: EDK2's banner, its boot manager starting a boot
//! option, GRUB's welcome and its grub.cfg's own line, the kernel's EFI stub, the test init
//! reporting grub.cfg's tag and that it came through UEFI, the init finishing.
//!
//! `uefi-vars-persist` boots the same way with `rhyve.efivar=1`: the test init mounts
//! efivarfs; the variable `RhyveTest-<rhyve's GUID>` is absent, so it writes a fresh random
//! value there (UEFI's runtime SetVariable, which EDK2 keeps in the second flash bank) and
//! reboots (PSCI SYSTEM_RESET). EDK2, GRUB and Linux run again; this time the variable is
//! there and the init prints the value it reads. The checks: two boots in that order, each
//! through UEFI, and the value read on the second is the one written on the first, so the
//! VM's flash kept the firmware's variables across the VM's reset. Under rhyve the VM is
//! `boot::FirmwareBoot`'s; straight, QEMU restarts the machine at the reset (its flash kept).

use std::time::Duration;

use crate::boot::{FirmwareBoot, GuestBoot};
use crate::firmware::{self, DiskKind, GRUB_MARKER};
use crate::guest::GuestFiles;
use crate::qemu::Capture;

use super::{in_order, FirmwareRun, Scenario};

/// Guest RAM.
const MEM_MIB: u64 = 512;
/// EDK2's banner (`UEFI firmware (version ... built at ...)`).
const BANNER: &str = "UEFI firmware (version";
/// What the guest prints when booted through grub.cfg, in UEFI.
const BOOTED: &str = "RHYVE-BOOT uefi-grub efi=1";
const WROTE: &str = "RHYVE-EFIVAR-WROTE ";
const READ: &str = "RHYVE-EFIVAR-READ ";

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(UefiBoot {
            name: "uefi-grub-linux",
            disk: DiskKind::Uefi,
        }),
        Box::new(UefiBoot {
            name: "uefi-vars-persist",
            disk: DiskKind::UefiEfivar,
        }),
    ]
}

/// EDK2 booting the disk `disk`.
struct UefiBoot {
    name: &'static str,
    disk: DiskKind,
}

impl Scenario for UefiBoot {
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
                    firmware: fw.edk2,
                    vcpus: 1,
                    mem_mib: MEM_MIB,
                    reboots: self.disk == DiskKind::UefiEfivar,
                },
            })
        };
        Some(run().map_err(|e| e.to_string()))
    }

    /// EDK2, GRUB and Linux take about 15 s straight on this project's 2-core machine, the
    /// variable test twice that.
    fn timeout(&self) -> Duration {
        Duration::from_secs(if self.disk == DiskKind::UefiEfivar {
            600
        } else {
            400
        })
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        match self.disk {
            DiskKind::UefiEfivar => check_vars(console),
            _ => check_boot(console),
        }
    }
}

/// One boot from EDK2 to the test init, in order.
const ONE_BOOT: [(&str, &str); 6] = [
    (BANNER, "EDK2's banner"),
    (
        "BdsDxe: starting Boot",
        "EDK2's boot manager starting a boot option",
    ),
    ("Welcome to GRUB!", "GRUB"),
    (GRUB_MARKER, "GRUB's embedded grub.cfg"),
    ("EFI stub: Booting Linux Kernel", "the kernel's EFI stub"),
    (
        BOOTED,
        "the kernel booted with grub.cfg's command line, through UEFI",
    ),
];

/// The checks of `uefi-grub-linux`.
fn check_boot(console: &Capture) -> Vec<String> {
    let mut markers = ONE_BOOT.to_vec();
    markers.push(("RHYVE-TEST-DONE", "the test init finishing"));
    in_order(console, &markers)
}

/// The value after `marker` on its first line.
fn value<'a>(console: &'a Capture, marker: &str) -> Option<&'a str> {
    let l = console.find(marker)?;
    l.text.split_once(marker).map(|(_, v)| v.trim())
}

/// The checks of `uefi-vars-persist`.
fn check_vars(console: &Capture) -> Vec<String> {
    let mut markers = ONE_BOOT.to_vec();
    markers.push((WROTE, "the first boot writing the variable"));
    markers.extend(ONE_BOOT);
    markers.extend([
        (READ, "the second boot reading the variable"),
        ("RHYVE-TEST-DONE", "the test init finishing"),
    ]);
    let mut failures = in_order(console, &markers);
    for bad in ["RHYVE-EFIVAR-MOUNT-FAILED", "RHYVE-EFIVAR-WRITE-FAILED"] {
        if console.find(bad).is_some() {
            failures.push(format!("the guest printed {bad}"));
        }
    }
    let boots = console
        .lines
        .iter()
        .filter(|l| l.text.contains(BANNER))
        .count();
    if boots != 2 {
        failures.push(format!("EDK2 started {boots} times, expected 2"));
    }
    match (value(console, WROTE), value(console, READ)) {
        (Some(w), Some(r)) if w == r && w.starts_with("rhyve-") => {}
        (Some(w), Some(r)) => failures.push(format!(
            "the first boot wrote {w:?} to the EFI variable, the second read {r:?}"
        )),
        _ => {}
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_boot() -> String {
        "UEFI firmware (version  built at 13:10:49 on Nov  5 2024)\n\
         \x1b[2J\x1b[01;01HBdsDxe: starting Boot0001 \"UEFI Misc Device\"\n\
         \x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\nRHYVE-GRUB-CFG\n\
         EFI stub: Booting Linux Kernel...\nRHYVE-INIT-START\nRHYVE-BOOT uefi-grub efi=1\n"
            .into()
    }

    #[test]
    fn a_grub_boot_passes_and_a_boot_without_grub_fails() {
        let ok = format!("{}RHYVE-TEST-DONE\n", one_boot());
        assert!(check_boot(&Capture::from_text(&ok)).is_empty());
        let direct = ok.replace("Welcome to GRUB!", "");
        assert!(check_boot(&Capture::from_text(&direct))[0].contains("GRUB"));
        let not_efi = ok.replace("efi=1", "efi=0");
        assert_eq!(check_boot(&Capture::from_text(&not_efi)).len(), 1);
    }

    #[test]
    fn the_variable_must_survive_the_reset() {
        let run = |wrote: &str, read: &str| {
            check_vars(&Capture::from_text(&format!(
                "{b}RHYVE-EFIVAR-WROTE {wrote}\n{b}RHYVE-EFIVAR-READ {read}\nRHYVE-TEST-DONE\n",
                b = one_boot()
            )))
        };
        assert!(run("rhyve-0123", "rhyve-0123").is_empty());
        let lost = run("rhyve-0123", "rhyve-4567");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].contains("wrote \"rhyve-0123\""), "{lost:?}");
        // Found already on the first boot: no write, no second boot.
        let stale = check_vars(&Capture::from_text(&format!(
            "{}RHYVE-EFIVAR-READ rhyve-0123\nRHYVE-TEST-DONE\n",
            one_boot()
        )));
        assert!(!stale.is_empty());
        assert!(
            stale.iter().any(|f| f.contains("started 1 times")),
            "{stale:?}"
        );
    }
}
