//! `boot-uboot`, `boot-uefi`: rhyve itself booted by the machine's firmware, as a board boots
//! it, instead of by QEMU's `-kernel` (`crate::hostfw`); the Debian guest then boots under it
//! to its test init.
//!
//! `boot-uboot`: Debian's U-Boot (`qemu_arm64`) runs as the machine's `-bios`; distro boot
//! finds `boot.scr` on the machine's disk, which `load`s rhyve's image and the bundle and
//! `booti`s them, the bundle as the initrd. The checks, in order: U-Boot's banner (once), the
//! scan of the virtio disk, the script found and its own line, `booti` moving the bundle as an
//! initrd and starting the kernel, rhyve's first lines (its console found in U-Boot's tree),
//! the guest's init, its CPU count and its end, rhyve powering the machine off.
//!
//! `boot-uefi`: Debian's EDK2 runs as `-bios` (at EL2: `virtualization=on`), its boot manager
//! starts `/EFI/BOOT/BOOTAA64.EFI` on the disk's ESP, rhyve's image as an EFI application,
//! which reads `bundle.bin` beside it, leaves boot services and starts. The checks, in order:
//! EDK2's banner, the boot manager starting the boot option, rhyve's EFI entry at EL2 and the
//! path it reads the bundle from, leaving boot services, the core told where the bundle is
//! and which of the firmware's memory it keeps, then as for U-Boot. And no guest's RAM nor the
//! VMM's overlaps a range the firmware keeps.
//!
//! Both only run under rhyve: straight there is no rhyve to boot.

use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::hostfw::{self, HostFirmware};
use crate::qemu::Capture;

use super::{in_order, Scenario};

/// The test init's checks (`rhyve.test=1`, as `linux-smp-N`'s).
const CMDLINE: &str = "console=ttyAMA0 earlycon=pl011,0x9000000 rhyve.test=1";
/// The guest's vCPUs: more than one, so rhyve starts other CPUs after the firmware.
const VCPUS: u32 = 2;
/// Guest RAM.
const MEM_MIB: u64 = 512;
/// U-Boot's version banner (`U-Boot 2023.01+dfsg-...`).
const UBOOT_BANNER: &str = "U-Boot 20";
/// EDK2's banner (`UEFI firmware (version ... built at ...)`).
const EDK2_BANNER: &str = "UEFI firmware (version";
/// rhyve's line for each range the firmware keeps after boot services.
const KEEPS: &str = "rhyve: UEFI keeps ";

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(BootFirmware {
            firmware: HostFirmware::UBoot,
        }),
        Box::new(BootFirmware {
            firmware: HostFirmware::Uefi,
        }),
    ]
}

/// rhyve booted by `firmware`.
struct BootFirmware {
    firmware: HostFirmware,
}

impl Scenario for BootFirmware {
    fn name(&self) -> String {
        match self.firmware {
            HostFirmware::UBoot => "boot-uboot",
            HostFirmware::Uefi => "boot-uefi",
        }
        .into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, CMDLINE, VCPUS, MEM_MIB)
    }

    fn host_firmware(&self) -> Option<HostFirmware> {
        Some(self.firmware)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        check(console, self.firmware)
    }
}

/// The checks of rhyve's boot by `firmware`.
fn check(console: &Capture, firmware: HostFirmware) -> Vec<String> {
    let script_line = format!("{} virtio 0:1", hostfw::SCRIPT_MARKER);
    let bundle_path = hostfw::EFI_BUNDLE.replace('/', "\\");
    let reading = format!("rhyve: reading the boot bundle {bundle_path}");
    let nproc = format!("RHYVE-NPROC {VCPUS}");
    let mut markers: Vec<(&str, &str)> = match firmware {
        HostFirmware::UBoot => vec![
            (UBOOT_BANNER, "U-Boot's banner"),
            (
                "Scanning virtio 0:1",
                "distro boot scanning the virtio disk",
            ),
            (
                "Found U-Boot script /boot.scr",
                "distro boot finding boot.scr",
            ),
            (
                script_line.as_str(),
                "the boot script running on that partition",
            ),
            (
                "Loading Ramdisk to",
                "booti taking the bundle as the initrd",
            ),
            ("Starting kernel ...", "U-Boot starting rhyve"),
        ],
        HostFirmware::Uefi => vec![
            (EDK2_BANNER, "EDK2's banner"),
            (
                "BdsDxe: starting Boot",
                "EDK2's boot manager starting a boot option",
            ),
            ("rhyve: started by UEFI at EL2", "rhyve's EFI entry, at EL2"),
            (
                reading.as_str(),
                "rhyve's EFI entry reading the bundle beside its image",
            ),
            (
                "leaving boot services",
                "rhyve's EFI entry leaving boot services",
            ),
        ],
    };
    markers.push((
        "rhyve: console UART: PL011",
        "rhyve's first line: its console, from the firmware's device tree",
    ));
    if firmware == HostFirmware::Uefi {
        markers.extend([
            (
                "rhyve: booted by UEFI: boot bundle at",
                "the core given the bundle by the EFI entry",
            ),
            (KEEPS, "the firmware's runtime memory kept from guests"),
        ]);
    }
    markers.extend([
        (" starting at 0x", "rhyve starting"),
        ("RHYVE-INIT-START", "the guest's test init"),
        (nproc.as_str(), "the guest seeing its vCPUs"),
        ("RHYVE-TEST-DONE", "the test init finishing"),
        ("no VM left: powering off", "rhyve powering the machine off"),
    ]);
    let mut failures = in_order(console, &markers);
    let banner = match firmware {
        HostFirmware::UBoot => UBOOT_BANNER,
        HostFirmware::Uefi => EDK2_BANNER,
    };
    let starts = console
        .lines
        .iter()
        .filter(|l| l.text.contains(banner))
        .count();
    if starts > 1 {
        failures.push(format!(
            "the firmware started {starts} times: the machine reset on the way"
        ));
    }
    failures.extend(kept_clear_of_guests(console));
    failures
}

/// The first hexadecimal number (`0x...`) at the start of `text`.
fn hex(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    let end = digits
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], 16).ok()
}

/// The host memory rhyve says it gave a guest or the VMM: `N MiB RAM at host 0x...`,
/// `N MiB at host 0x...`.
fn given(line: &str) -> Option<(u64, u64)> {
    let (before, after) = line.split_once(" at host ")?;
    let start = hex(after)?;
    let mib = before
        .trim_end_matches(" RAM")
        .strip_suffix(" MiB")?
        .rsplit(' ')
        .next()?
        .parse::<u64>()
        .ok()?;
    Some((start, start + (mib << 20)))
}

/// No range the firmware keeps ([`KEEPS`] lines) overlaps memory rhyve gave a guest or the
/// VMM partition.
fn kept_clear_of_guests(console: &Capture) -> Vec<String> {
    let kept: Vec<(u64, u64)> = console
        .lines
        .iter()
        .filter_map(|l| {
            let (_, range) = l.text.split_once(KEEPS)?;
            let (s, e) = range.split_once("..")?;
            Some((hex(s)?, hex(e)?))
        })
        .collect();
    let mut failures = Vec::new();
    for l in console
        .lines
        .iter()
        .filter(|l| l.text.starts_with("rhyve: "))
    {
        let Some((gs, ge)) = given(&l.text) else {
            continue;
        };
        for &(ks, ke) in &kept {
            if gs < ke && ks < ge {
                failures.push(format!(
                    "{gs:#x}..{ge:#x} overlaps {ks:#x}..{ke:#x}, which the firmware keeps: `{}`",
                    l.text.trim()
                ));
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const RHYVE_AND_GUEST: &str = "rhyve: console UART: PL011 at 0x9000000 (from the tree's stdout-path)\n\
        rhyve: rhyve 0.1.0 starting at 0x40400000 on 4 CPUs\n\
        rhyve: VM 0 \"vm0\": 2 vCPUs on CPUs [0, 1], 512 MiB RAM at host 0x4a600000, entry 0x40200000\n\
        rhyve: VMM partition: 202 KiB image, 16 MiB at host 0x6dc00000, at EL1\n\
        RHYVE-INIT-START\nRHYVE-NPROC 2\nRHYVE-TEST-DONE\n\
        rhyve: VM 0 stopped; no VM left: powering off\n";

    fn uboot() -> String {
        format!(
            "U-Boot 2023.01+dfsg-2 (Jun 22 2026)\nScanning virtio 0:1...\n\
             Found U-Boot script /boot.scr\nRHYVE-HOST-UBOOT-SCRIPT virtio 0:1\n\
             ## Flattened Device Tree blob at 6edb6db0\n\
             \x20  Loading Ramdisk to 6c180000, end 6ddb1fec ... OK\nStarting kernel ...\n\
             {RHYVE_AND_GUEST}"
        )
    }

    fn uefi(keeps: &str) -> String {
        let (first, rest) = RHYVE_AND_GUEST.split_once('\n').unwrap();
        format!(
            "UEFI firmware (version  built at 13:10:49 on Nov  5 2024)\n\
             BdsDxe: starting Boot0001 \"UEFI Non-Block Boot Device\" from VenHw(...)\n\
             rhyve: started by UEFI at EL2, image at 0x6c3b2000\n\
             rhyve: reading the boot bundle \\EFI\\BOOT\\bundle.bin\n\
             rhyve: boot bundle (29564908 bytes) at 0x6a780000, device tree at 0x47ef6000; leaving boot services\n\
             {first}\n\
             rhyve: booted by UEFI: boot bundle at 0x6a780000..0x6c3b1fec\n\
             rhyve: UEFI keeps {keeps} (runtime services, reserved): not for guests\n\
             {rest}"
        )
    }

    #[test]
    fn a_uboot_boot_passes_and_a_direct_boot_fails() {
        let ok = uboot();
        assert!(check(&Capture::from_text(&ok), HostFirmware::UBoot).is_empty());
        // rhyve started by QEMU -kernel: no U-Boot at all.
        let direct = Capture::from_text(RHYVE_AND_GUEST);
        assert!(check(&direct, HostFirmware::UBoot)[0].contains("U-Boot's banner"));
        let no_initrd = ok.replace("Loading Ramdisk", "Loading nothing");
        assert!(check(&Capture::from_text(&no_initrd), HostFirmware::UBoot)[0].contains("initrd"));
        let one_cpu = ok.replace("RHYVE-NPROC 2", "RHYVE-NPROC 1");
        assert_eq!(
            check(&Capture::from_text(&one_cpu), HostFirmware::UBoot).len(),
            1
        );
        let twice = format!("U-Boot 2023.01\n{ok}");
        assert!(check(&Capture::from_text(&twice), HostFirmware::UBoot)[0].contains("2 times"));
    }

    #[test]
    fn a_uefi_boot_passes_and_needs_rhyve_s_efi_entry() {
        let ok = uefi("0x7fff0000..0x80000000");
        assert!(check(&Capture::from_text(&ok), HostFirmware::Uefi).is_empty());
        // GRUB or Linux started by EDK2, not rhyve.
        let not_rhyve = ok.replace("rhyve: started by UEFI", "EFI stub: Booting");
        assert!(!check(&Capture::from_text(&not_rhyve), HostFirmware::Uefi).is_empty());
        // U-Boot's checks are not UEFI's.
        assert!(!check(&Capture::from_text(&ok), HostFirmware::UBoot).is_empty());
        let no_keeps = ok.replace("rhyve: UEFI keeps", "rhyve: UEFI lost");
        assert!(check(&Capture::from_text(&no_keeps), HostFirmware::Uefi)[0].contains("kept"));
    }

    #[test]
    fn guest_memory_over_a_kept_range_fails() {
        // Inside the guest's RAM (0x4a600000 + 512 MiB), then inside the VMM's.
        for keeps in ["0x50000000..0x50001000", "0x6dc0f000..0x6dc10000"] {
            let failures = check(&Capture::from_text(&uefi(keeps)), HostFirmware::Uefi);
            assert_eq!(failures.len(), 1, "{keeps}: {failures:?}");
            assert!(
                failures[0].contains("which the firmware keeps"),
                "{failures:?}"
            );
        }
        assert_eq!(
            given("rhyve: VMM partition: 202 KiB image, 16 MiB at host 0x6dc00000, at EL1"),
            Some((0x6dc0_0000, 0x6ec0_0000))
        );
        assert_eq!(given("rhyve: console UART: PL011 at 0x9000000"), None);
    }
}
