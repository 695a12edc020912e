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
//! The variable must also have reached storage that outlives the run: under rhyve the VM's
//! variable store (`vars`, a slice of the machine's disk after the part the VM boots from),
//! straight the file behind QEMU's second flash bank. Both start blank for each run, so the
//! name (UTF-16, as UEFI keeps it) and the value found there are this run's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::boot::{FirmwareBoot, GuestBoot, VarsStore};
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
/// The test variable's name, as efivarfs names it before the GUID.
const VAR_NAME: &str = "RhyveTest";
/// The variable store kept on the machine's disk under rhyve: what EDK2's store needs (its
/// variables, the fault-tolerant-write area and the spare block: 768 KiB), rounded up.
const VARS_BYTES: u64 = 1 << 20;
/// QEMU virt's flash bank, the size QEMU wants the file behind it to have.
const FLASH_BANK_BYTES: u64 = abi::layout::FLASH_BANK_SIZE;

/// The writable copy of the efivar disk, with the variable store after it.
fn scratch_disk() -> PathBuf {
    crate::sys::build_dir().join("disks").join("uefi-vars.img")
}

/// The file behind QEMU's second flash bank, straight.
fn straight_vars() -> PathBuf {
    crate::sys::build_dir()
        .join("disks")
        .join("uefi-vars-flash1.img")
}

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
            let disk = firmware::disk(self.disk, guest, &fw)?;
            if self.disk != DiskKind::UefiEfivar {
                return Ok(FirmwareRun {
                    disk,
                    read_only: true,
                    boot: FirmwareBoot {
                        firmware: fw.edk2,
                        vcpus: 1,
                        mem_mib: MEM_MIB,
                        reboots: false,
                        vars: None,
                    },
                });
            }
            let offset = fresh_stores(&disk)?;
            Ok(FirmwareRun {
                disk: scratch_disk(),
                read_only: false,
                boot: FirmwareBoot {
                    firmware: fw.edk2,
                    vcpus: 1,
                    mem_mib: MEM_MIB,
                    reboots: true,
                    vars: Some(VarsStore {
                        offset,
                        size: VARS_BYTES,
                        straight_file: straight_vars(),
                    }),
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
            DiskKind::UefiEfivar => {
                let mut failures = check_vars(console);
                if let Some(written) = value(console, WROTE) {
                    failures.extend(check_stored(written));
                }
                failures
            }
            _ => check_boot(console),
        }
    }
}

/// Makes this run's blank stores: a writable copy of the cached `disk` with a zeroed
/// variable store after it (returned: the store's offset), and an erased 64 MiB file for
/// QEMU's flash. Both are made anew, so nothing a run finds there is an earlier run's.
fn fresh_stores(disk: &Path) -> crate::error::Result<u64> {
    use crate::error::IoContext;
    let copy = scratch_disk();
    if let Some(dir) = copy.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&copy);
    std::fs::copy(disk, &copy)
        .ctx(|| format!("copying {} to {}", disk.display(), copy.display()))?;
    let len = std::fs::metadata(&copy)
        .ctx(|| format!("reading {}", copy.display()))?
        .len();
    let offset = len.next_multiple_of(512);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .ctx(|| format!("opening {}", copy.display()))?;
    f.set_len(offset + VARS_BYTES)
        .ctx(|| format!("extending {}", copy.display()))?;
    let flash = straight_vars();
    std::fs::write(&flash, vec![0xff; FLASH_BANK_BYTES as usize])
        .ctx(|| format!("writing {}", flash.display()))?;
    Ok(offset)
}

/// `text` as UEFI keeps a variable's name: UTF-16, little-endian.
fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Whether `haystack` has `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The variable's name and the value the guest wrote are in the store that outlives the run:
/// the machine disk's variable store (rhyve) or QEMU's flash file (straight).
fn check_stored(written: &str) -> Vec<String> {
    let store = |path: PathBuf, from_end: Option<u64>| -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap_or_default();
        match from_end {
            Some(n) => bytes[bytes.len().saturating_sub(n as usize)..].to_vec(),
            None => bytes,
        }
    };
    let stores = [
        (
            "the VM's variable store on the machine's disk",
            store(scratch_disk(), Some(VARS_BYTES)),
        ),
        ("QEMU's flash file", store(straight_vars(), None)),
    ];
    stored_in(&stores, written)
}

/// The check of [`check_stored`] on the stores' bytes, by name.
fn stored_in(stores: &[(&str, Vec<u8>)], written: &str) -> Vec<String> {
    let found = stores
        .iter()
        .any(|(_, b)| contains(b, &utf16(VAR_NAME)) && contains(b, written.as_bytes()));
    if found {
        return Vec::new();
    }
    let names: Vec<&str> = stores.iter().map(|(n, _)| *n).collect();
    vec![format!(
        "the variable {VAR_NAME} = {written:?} is in none of {}: it was not kept beyond the run",
        names.join(", ")
    )]
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

    #[test]
    fn the_variable_must_be_in_a_store_beyond_the_run() {
        let mut kept = vec![0u8; 64];
        kept.extend(utf16(VAR_NAME));
        kept.extend(b"\x07\0\0\0rhyve-0123");
        let blank = vec![0xffu8; 256];
        let ok = [("disk", blank.clone()), ("flash", kept.clone())];
        assert!(stored_in(&ok, "rhyve-0123").is_empty());
        let lost = [("disk", blank.clone()), ("flash", blank.clone())];
        let failures = stored_in(&lost, "rhyve-0123");
        assert!(failures[0].contains("none of disk, flash"), "{failures:?}");
        assert!(
            !stored_in(&ok, "rhyve-9999").is_empty(),
            "another run's value does not count"
        );
    }
}
