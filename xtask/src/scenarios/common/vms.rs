//! The VMs a scenario boots under rhyve, as values: one [`VmDesc`] per VM, written for the boot
//! bundle by `VmDesc::to_toml`, so the compiler checks every field a scenario sets and the
//! hypervisor's parser reads back exactly that VM.
//!
//! A scenario starts from [`vm`] or [`linux`] and changes what it needs with struct update
//! syntax: `VmDesc { vcpus: 2, cpus: cpus(&[0, 1]), ..linux("alpha", 256, "quiet") }`.

use std::path::PathBuf;

pub use abi::vmm::DeviceSet;
pub use vmboot::config::{Disk, Source, VmDesc, DEFAULT_DEVICES};

use crate::guest::GuestFiles;

/// The Debian guest's kernel, as the bundle names it ([`linux_files`]).
pub const LINUX_KERNEL: &str = "Image";
/// The Debian guest's initramfs, as the bundle names it ([`linux_files`]).
pub const LINUX_INITRD: &str = "initramfs";

/// VM `name` with `mem_mib` MiB of RAM, booting the bundle's file `kernel`; every other field
/// is what the parser gives a table without it: one vCPU on any CPU, no initrd, an empty
/// command line, the PL011 only, started at boot.
pub fn vm(name: &str, mem_mib: u64, kernel: &str) -> VmDesc {
    VmDesc {
        name: name.into(),
        vcpus: 1,
        cpus: None,
        mem_size: mem_mib << 20,
        kernel: Some(Source::Bundle(kernel.into())),
        firmware: None,
        initrd: None,
        cmdline: String::new(),
        devices: DEFAULT_DEVICES,
        disk: None,
        vars: None,
        mac: None,
        autostart: true,
    }
}

/// VM `name` booting the Debian guest ([`LINUX_KERNEL`], [`LINUX_INITRD`]) with `cmdline`;
/// the rest as [`vm`].
pub fn linux(name: &str, mem_mib: u64, cmdline: &str) -> VmDesc {
    VmDesc {
        initrd: Some(Source::Bundle(LINUX_INITRD.into())),
        cmdline: cmdline.into(),
        ..vm(name, mem_mib, LINUX_KERNEL)
    }
}

/// The `cpus` of a VM that may run on the physical CPUs `list` only.
pub fn cpus(list: &[u32]) -> Option<u64> {
    Some(list.iter().fold(0, |mask, cpu| mask | 1 << cpu))
}

/// The configuration describing `vms`, in order: the text the boot bundle carries.
pub fn config(vms: &[VmDesc]) -> String {
    vms.iter()
        .map(VmDesc::to_toml)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Debian guest's kernel and initramfs under the names [`linux`] uses.
pub fn linux_files(guest: &GuestFiles) -> Vec<(String, PathBuf)> {
    vec![
        (LINUX_KERNEL.into(), guest.kernel.clone()),
        (LINUX_INITRD.into(), guest.initrd.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::HYPERVISOR_MEM_MIB;
    use crate::scenarios;

    #[test]
    fn the_defaults_are_the_parsers() {
        let text = "[[vm]]\nname = \"a\"\nmemory = \"32M\"\nkernel = \"k\"\n";
        assert_eq!(vmboot::config::parse(text), [Ok(vm("a", 32, "k"))]);
        let text = "[[vm]]\nname = \"l\"\nmemory = \"64M\"\nkernel = \"Image\"\n\
                    initrd = \"initramfs\"\ncmdline = \"quiet\"\n";
        assert_eq!(vmboot::config::parse(text), [Ok(linux("l", 64, "quiet"))]);
        assert_eq!(cpus(&[0, 2]), Some(0b101));
    }

    /// Each scenario's VMs as the hypervisor's parser reads them: every VM accepted but the
    /// ones a scenario has refused on purpose; every bundle file a VM names among the files
    /// the scenario packs; the machine big enough for the VMs' RAM and CPU lists.
    #[test]
    fn every_scenarios_vms_parse_back() {
        // Refused on purpose: multi-vm's malformed VM, virtio-blk-slices' overlapping slice.
        const REFUSED: &[(&str, &str, &str)] = &[
            ("multi-vm", "broken", "memory"),
            ("virtio-blk-slices", "greedy", "disk"),
        ];
        let dir = std::env::temp_dir().join(format!("rhyve-xtask-vms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // overcommit sizes its kernel from the file.
        std::fs::write(dir.join("Image"), [0u8; 4096]).unwrap();
        let guest = GuestFiles {
            kernel: dir.join("Image"),
            initrd: dir.join("initramfs"),
        };
        let (mut seen, mut refusals) = (0, 0);
        for s in scenarios::all() {
            let name = s.name();
            let Some(boot) = s.vms(&guest) else {
                continue;
            };
            seen += 1;
            let mut mem = HYPERVISOR_MEM_MIB << 20;
            for r in vmboot::config::parse(&boot.config) {
                match r {
                    Ok(vm) => {
                        for f in vm.bundle_files() {
                            assert!(
                                boot.files.iter().any(|(n, _)| n == f),
                                "{name}: VM {} names {f}, which is not packed",
                                vm.name
                            );
                        }
                        let highest = vm.cpus.map_or(0, |m| 63 - m.leading_zeros());
                        assert!(highest < boot.smp, "{name}: VM {}'s CPUs", vm.name);
                        mem += vm.mem_size;
                    }
                    Err(e) => {
                        let refused = (name.as_str(), e.vm.as_deref(), e.field.as_deref());
                        assert!(
                            REFUSED
                                .iter()
                                .any(|&(s, vm, f)| (s, Some(vm), Some(f)) == refused),
                            "{name}: {e}"
                        );
                        refusals += 1;
                    }
                }
            }
            assert!(mem <= boot.mem_mib << 20, "{name}: the machine's RAM");
        }
        assert!(seen >= 12, "only {seen} scenarios with several VMs");
        assert_eq!(refusals, REFUSED.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
