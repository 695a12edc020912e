//! One guest boot, either under rhyve (a boot bundle for the hypervisor) or straight under
//! QEMU (the baseline the benchmark and the test-checking mode compare with).

use std::path::{Path, PathBuf};

use abi::vmm::DeviceSet;
use vmboot::bundle::Bundle;
use vmboot::config::{Disk, Source, Vars};

use crate::error::{IoContext, Result};
use crate::guest::GuestFiles;
use crate::qemu::{Machine, FLASH_MEM_MIB};

/// What to boot.
#[derive(Debug, Clone)]
pub struct GuestBoot {
    /// The guest kernel (arm64 Image).
    pub kernel: PathBuf,
    /// Its initrd, if any.
    pub initrd: Option<PathBuf>,
    /// Its command line.
    pub cmdline: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
}

/// What runs the guest.
#[derive(Debug, Clone)]
pub enum Host {
    /// rhyve, from this flat image.
    Rhyve {
        /// `target/rhyve.bin`.
        image: PathBuf,
    },
    /// QEMU itself, no hypervisor.
    Straight,
}

impl GuestBoot {
    /// The fetched Debian kernel and the test initramfs, with `cmdline`, `vcpus` and
    /// `mem_mib`.
    pub fn linux(guest: &GuestFiles, cmdline: impl Into<String>, vcpus: u32, mem_mib: u64) -> Self {
        Self {
            kernel: guest.kernel.clone(),
            initrd: Some(guest.initrd.clone()),
            cmdline: cmdline.into(),
            vcpus,
            mem_mib,
        }
    }

    /// The QEMU machine for this boot; under rhyve, first writes the boot bundle to `bundle`.
    pub fn machine(&self, host: &Host, bundle: &Path) -> Result<Machine> {
        match host {
            Host::Straight => Ok(Machine::straight(
                &self.kernel,
                self.initrd.as_deref(),
                &self.cmdline,
                self.vcpus,
                self.mem_mib,
            )),
            Host::Rhyve { image } => {
                write_bundle(self, bundle)?;
                Ok(Machine::rhyve(image, bundle, self.vcpus, self.mem_mib))
            }
        }
    }
}

/// A guest that boots its own firmware (U-Boot, EDK2) from flash, which loads the OS from the
/// machine's disk (attached separately): under rhyve one VM whose `firmware` is the bundle's
/// [`FIRMWARE_FILE`], with a UART, an RTC and the disk; straight, QEMU's `-bios`.
#[derive(Debug, Clone)]
pub struct FirmwareBoot {
    /// The firmware image (`u-boot.bin`, `QEMU_EFI.fd`).
    pub firmware: PathBuf,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// The guest resets on purpose: straight, QEMU restarts the machine (keeping its flash)
    /// instead of ending at the reset. Under rhyve the hypervisor restarts the VM itself.
    pub reboots: bool,
    /// Where the firmware's variables are kept beyond the run, if anywhere.
    pub vars: Option<VarsStore>,
}

/// Where a firmware boot keeps its variable flash: under rhyve the VM's `vars` slice of the
/// machine's disk, after the part the VM reads as its own disk; straight, QEMU's second
/// flash bank backed by a file.
#[derive(Debug, Clone)]
pub struct VarsStore {
    /// Where the store starts on the machine's disk (the VM's disk is everything before).
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
    /// The 64 MiB file QEMU keeps the bank in when the firmware boots straight.
    pub straight_file: PathBuf,
}

/// The name of a firmware VM's image in its bundle.
pub const FIRMWARE_FILE: &str = "firmware";

/// The devices of a firmware VM: what U-Boot and EDK2 use on QEMU virt, and the disk they boot
/// from; no network card, which both would try to boot from, slowly, when the disk fails.
pub const FIRMWARE_DEVICES: DeviceSet = DeviceSet::PL011
    .with(DeviceSet::PL031)
    .with(DeviceSet::VIRTIO_BLK);

impl FirmwareBoot {
    /// The configuration that describes it as the one VM `fw`.
    pub fn config(&self) -> String {
        vmboot::config::VmDesc {
            name: "fw".into(),
            vcpus: self.vcpus,
            cpus: None,
            mem_size: self.mem_mib << 20,
            kernel: None,
            firmware: Some(Source::Bundle(FIRMWARE_FILE.into())),
            initrd: None,
            cmdline: String::new(),
            devices: FIRMWARE_DEVICES,
            // With a variable store, the VM's disk ends where the store begins.
            disk: self.vars.as_ref().map(|v| Disk {
                file: None,
                readonly: true,
                offset: 0,
                size: Some(v.offset),
            }),
            vars: self.vars.as_ref().map(|v| Vars {
                offset: v.offset,
                size: v.size,
            }),
            mac: None,
            autostart: true,
        }
        .to_toml()
    }

    /// The QEMU machine for this boot; under rhyve, first writes the boot bundle to `bundle`.
    pub fn machine(&self, host: &Host, bundle: &Path) -> Result<Machine> {
        match host {
            Host::Straight => {
                let mut m = Machine::straight_firmware(&self.firmware, self.vcpus, self.mem_mib);
                m.reboot = self.reboots;
                if let Some(v) = &self.vars {
                    let drive = format!(
                        "if=pflash,unit=1,format=raw,file={}",
                        v.straight_file.display()
                    );
                    m.extra.extend(["-drive".into(), drive.into()]);
                }
                Ok(m)
            }
            Host::Rhyve { image } => {
                write_config_bundle(
                    &self.config(),
                    &[(FIRMWARE_FILE.into(), self.firmware.clone())],
                    bundle,
                )?;
                Ok(Machine::rhyve(
                    image,
                    bundle,
                    self.vcpus,
                    self.mem_mib + FLASH_MEM_MIB,
                ))
            }
        }
    }
}

/// The name of the single guest's kernel in its bundle.
const KERNEL_FILE: &str = "kernel";
/// The name of the single guest's initrd in its bundle.
const INITRD_FILE: &str = "initrd";

/// The configuration that describes `guest` as the one VM `vm0`, its kernel and initrd packed
/// in the bundle as [`KERNEL_FILE`] and [`INITRD_FILE`].
pub fn single_vm_config(guest: &GuestBoot) -> String {
    vmboot::config::VmDesc {
        name: "vm0".into(),
        vcpus: guest.vcpus,
        cpus: None,
        mem_size: guest.mem_mib << 20,
        kernel: Some(Source::Bundle(KERNEL_FILE.into())),
        firmware: None,
        initrd: guest
            .initrd
            .as_ref()
            .map(|_| Source::Bundle(INITRD_FILE.into())),
        cmdline: guest.cmdline.clone(),
        // The guest `run` and the tests boot has every device; a configuration file chooses.
        devices: DeviceSet::ALL,
        disk: None,
        vars: None,
        mac: None,
        autostart: true,
    }
    .to_toml()
}

/// Writes the boot bundle (`vmboot::bundle`) that carries `guest` to the hypervisor.
pub fn write_bundle(guest: &GuestBoot, path: &Path) -> Result<()> {
    let kernel = std::fs::read(&guest.kernel)
        .ctx(|| format!("reading the kernel {}", guest.kernel.display()))?;
    let initrd = match &guest.initrd {
        Some(p) => Some(std::fs::read(p).ctx(|| format!("reading the initrd {}", p.display()))?),
        None => None,
    };
    let config = single_vm_config(guest);
    let mut files = vec![(KERNEL_FILE, kernel.as_slice())];
    if let Some(i) = &initrd {
        files.push((INITRD_FILE, i.as_slice()));
    }
    let bytes = Bundle {
        config: &config,
        files,
    }
    .to_bytes();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).ctx(|| format!("writing {}", path.display()))
}

/// Writes a boot bundle that carries `config` and the `files` it names (name in the bundle,
/// path on the host).
pub fn write_config_bundle(config: &str, files: &[(String, PathBuf)], path: &Path) -> Result<()> {
    let mut contents = Vec::new();
    for (name, p) in files {
        let bytes = std::fs::read(p).ctx(|| format!("reading {}", p.display()))?;
        contents.push((name.as_str(), bytes));
    }
    let bytes = Bundle {
        config,
        files: contents.iter().map(|(n, b)| (*n, b.as_slice())).collect(),
    }
    .to_bytes();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).ctx(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_single_guest_is_vm0_with_its_files_packed() {
        let dir = std::env::temp_dir().join(format!("rhyve-xtask-boot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Image"), b"kernel").unwrap();
        std::fs::write(dir.join("rd.cpio"), b"initrd").unwrap();
        let mut guest = GuestBoot {
            kernel: dir.join("Image"),
            initrd: Some(dir.join("rd.cpio")),
            cmdline: "console=ttyAMA0 x=\"y\"".into(),
            vcpus: 3,
            mem_mib: 96,
        };
        let out = dir.join("b.bin");
        write_bundle(&guest, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        let vms = vmboot::config::parse(bundle.config);
        let [Ok(vm)] = vms.as_slice() else {
            panic!("{vms:?}")
        };
        assert_eq!(
            (vm.name.as_str(), vm.vcpus, vm.mem_size, vm.cmdline.as_str()),
            ("vm0", 3, 96 << 20, "console=ttyAMA0 x=\"y\"")
        );
        assert_eq!(vm.devices, DeviceSet::ALL);
        let files: Vec<_> = vm.bundle_files().map(|f| bundle.file(f)).collect();
        assert_eq!(files, [Some(&b"kernel"[..]), Some(&b"initrd"[..])]);

        guest.initrd = None;
        write_bundle(&guest, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.files, [(KERNEL_FILE, &b"kernel"[..])]);
        assert_eq!(
            vmboot::config::parse(bundle.config)[0]
                .as_ref()
                .unwrap()
                .initrd,
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_firmware_vm_has_its_flash_and_the_disk_and_no_kernel() {
        let dir = std::env::temp_dir().join(format!("rhyve-xtask-fw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("u-boot.bin"), b"firmware").unwrap();
        let fw = FirmwareBoot {
            firmware: dir.join("u-boot.bin"),
            vcpus: 2,
            mem_mib: 512,
            reboots: true,
            vars: None,
        };
        let bundle_path = dir.join("b.bin");
        let image = dir.join("rhyve.bin");
        let m = fw
            .machine(
                &Host::Rhyve {
                    image: image.clone(),
                },
                &bundle_path,
            )
            .unwrap();
        // Guest RAM, the hypervisor's and the two flash banks'; rhyve resets the VM itself.
        assert_eq!(
            m.mem_mib,
            512 + crate::qemu::HYPERVISOR_MEM_MIB + FLASH_MEM_MIB
        );
        assert_eq!((m.kernel, m.bios, m.reboot), (Some(image), None, false));
        let bytes = std::fs::read(&bundle_path).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        let vms = vmboot::config::parse(bundle.config);
        let [Ok(vm)] = vms.as_slice() else {
            panic!("{vms:?}")
        };
        assert_eq!(
            (vm.kernel.as_ref(), vm.initrd.as_ref(), vm.cmdline.as_str()),
            (None, None, "")
        );
        assert_eq!(vm.firmware, Some(Source::Bundle(FIRMWARE_FILE.into())));
        assert_eq!(vm.devices, FIRMWARE_DEVICES);
        assert!(vm.devices.contains(DeviceSet::VIRTIO_BLK));
        assert_eq!(bundle.files, [(FIRMWARE_FILE, &b"firmware"[..])]);

        let straight = fw.machine(&Host::Straight, &bundle_path).unwrap();
        assert_eq!(
            (
                straight.kernel,
                straight.bios,
                straight.reboot,
                straight.mem_mib
            ),
            (None, Some(dir.join("u-boot.bin")), true, 512)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
