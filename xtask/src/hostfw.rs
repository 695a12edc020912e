//! rhyve booted by the machine's own firmware, as a board boots it, instead of QEMU's
//! `-kernel`/`-initrd`: U-Boot `booti`s the image with the bundle as its initrd, or UEFI
//! starts the image as an EFI application, which reads the bundle next to itself. Either
//! finds them on the machine's disk, which is built here (MBR + FAT32 for U-Boot, GPT + ESP
//! for UEFI, with mtools as the guest firmware's disks are: no loop mount) and attached
//! read-only. rhyve's VMM still drives that disk as its VMs' virtio-blk; the guest has no use
//! for it.

use std::path::{Path, PathBuf};

use crate::devices::disk_args;
use crate::error::{IoContext, Result};
use crate::firmware::{self, Content, Scheme};
use crate::guest;
use crate::qemu::Machine;
use crate::sys;

/// Which firmware boots rhyve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFirmware {
    /// Debian's `u-boot-qemu` (`qemu_arm64`): distro boot runs `/boot.scr` ([`uboot_script`]).
    UBoot,
    /// Debian's `qemu-efi-aarch64` (EDK2): the boot manager starts `/EFI/BOOT/BOOTAA64.EFI`,
    /// rhyve's image, whose bundle is `/EFI/BOOT/bundle.bin`.
    Uefi,
}

/// rhyve's image on the U-Boot disk.
pub const UBOOT_IMAGE: &str = "/rhyve.bin";
/// The bundle on the U-Boot disk.
pub const UBOOT_BUNDLE: &str = "/bundle.bin";
/// rhyve's image on the ESP: the removable-media default path, which UEFI boots unasked.
pub const EFI_IMAGE: &str = "/EFI/BOOT/BOOTAA64.EFI";
/// The bundle on the ESP: `bundle.bin` in the image's directory, where rhyve looks for it.
pub const EFI_BUNDLE: &str = "/EFI/BOOT/bundle.bin";
/// The line the boot script echoes before loading anything.
pub const SCRIPT_MARKER: &str = "RHYVE-HOST-UBOOT-SCRIPT";

/// U-Boot's boot script: loads rhyve and the bundle from the partition distro boot found it
/// on and `booti`s rhyve with the bundle as its initrd and U-Boot's own device tree, as
/// README's "Booting rhyve from firmware" says to type on a board.
pub fn uboot_script() -> String {
    let part = "${devtype} ${devnum}:${distro_bootpart}";
    format!(
        "# rhyve booted by U-Boot (cargo xtask): mkimage -T script makes boot.scr of this\n\
         echo {SCRIPT_MARKER} {part}\n\
         load {part} ${{kernel_addr_r}} {UBOOT_IMAGE}\n\
         load {part} ${{ramdisk_addr_r}} {UBOOT_BUNDLE}\n\
         booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdtcontroladdr}}\n"
    )
}

impl HostFirmware {
    /// The disk's path, `build/disks/`.
    fn disk_path(self) -> PathBuf {
        let name = match self {
            Self::UBoot => "rhyve-uboot.img",
            Self::Uefi => "rhyve-uefi.img",
        };
        sys::build_dir().join("disks").join(name)
    }

    /// The files on its disk: rhyve's `image`, its `bundle`, and U-Boot's script.
    fn files(self, image: &Path, bundle: &Path) -> Result<(Scheme, Vec<(String, Content)>)> {
        let file = |dest: &str, p: &Path| (dest.to_string(), Content::File(p.to_path_buf()));
        Ok(match self {
            Self::UBoot => (
                Scheme::Mbr,
                vec![
                    file(UBOOT_IMAGE, image),
                    file(UBOOT_BUNDLE, bundle),
                    file("/boot.scr", &firmware::boot_scr(&uboot_script())?),
                ],
            ),
            Self::Uefi => (
                Scheme::Gpt,
                vec![file(EFI_IMAGE, image), file(EFI_BUNDLE, bundle)],
            ),
        })
    }

    /// Turns `m`, the machine that boots rhyve's `image` with `bundle` through `-kernel`, into
    /// the one whose firmware boots them from its disk (built anew: the bundle is each run's).
    pub fn machine(self, mut m: Machine, image: &Path, bundle: &Path) -> Result<Machine> {
        let fw = firmware::fetch()?;
        let disk = self.disk_path();
        if let Some(dir) = disk.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        let (scheme, files) = self.files(image, bundle)?;
        let seed = guest::fnv1a(disk.to_string_lossy().as_bytes());
        firmware::build_disk(&disk, scheme, &files, seed)?;
        m.kernel = None;
        m.initrd = None;
        // The firmware gives rhyve its command line (U-Boot's bootargs; none from UEFI).
        m.append = None;
        match self {
            Self::UBoot => m.bios = Some(fw.uboot),
            Self::Uefi => {
                m.bios = Some(fw.edk2);
                // With ACPI tables from QEMU, EDK2 hides the device tree rhyve needs.
                m.acpi = false;
            }
        }
        m.extra
            .extend(disk_args(&disk, true).into_iter().map(Into::into));
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_boots_rhyve_with_the_bundle_as_its_initrd() {
        let s = uboot_script();
        let loads: Vec<&str> = s.lines().filter(|l| l.starts_with("load ")).collect();
        assert_eq!(loads.len(), 2, "{s}");
        assert!(loads[0].ends_with("${kernel_addr_r} /rhyve.bin"), "{s}");
        // The initrd's size is the last load's: the bundle must be loaded last.
        assert!(loads[1].ends_with("${ramdisk_addr_r} /bundle.bin"), "{s}");
        assert!(s.contains(
            "\nbooti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}\n"
        ));
        assert!(!s.contains("bootargs"), "{s}");
    }

    #[test]
    fn the_bundle_is_next_to_the_efi_image() {
        let dir = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_string());
        assert_eq!(dir(EFI_IMAGE), dir(EFI_BUNDLE));
        // hypervisor::efi::BUNDLE_NAME, the name rhyve looks for.
        assert!(EFI_BUNDLE.ends_with("/bundle.bin"));
    }
}
