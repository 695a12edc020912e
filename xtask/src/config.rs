//! `cargo xtask run --config FILE`: a TOML file of VMs (`vmboot::config`, read here with the
//! hypervisor's own parser) packed into a boot bundle with every file it names, and the QEMU
//! machine sized for those VMs.
//!
//! A VM the parser refuses stays in the bundle's text: the hypervisor reports it at boot, as it
//! would for any bundle. Here it is only a warning. A kernel or initrd in host memory
//! (`{ addr, size }`) is not packed: whoever starts QEMU places it (`-device loader`).
//!
//! The machine has one disk, which rhyve shares out as the VMs' slices; a VM's `disk.file`
//! names the image to attach as that disk ([`machine_disk`]).

use std::path::{Component, Path, PathBuf};

use vmboot::bundle::Bundle;
use vmboot::config::{Source, VmDesc};

use crate::devices::{Disk, SCRATCH_DISK_MIB};
use crate::error::{Error, IoContext, Result};

/// What the bundle needs of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Guest RAM of all the VMs together, in MiB.
    pub guest_mem_mib: u64,
    /// CPUs: one past the highest any `cpus` list names, and at least any VM's vCPU count
    /// (so that no VM has to time-share a CPU among its own vCPUs).
    pub cpus: u32,
}

/// The machine `vms` need.
pub fn needs(vms: &[&VmDesc]) -> Needs {
    // A VM that boots firmware also has its flash banks in host RAM (at most both whole).
    let flash = abi::layout::FLASH_BANK_SIZE * abi::layout::FLASH_BANKS;
    let mem: u64 = vms
        .iter()
        .map(|vm| vm.mem_size + if vm.firmware.is_some() { flash } else { 0 })
        .sum();
    let cpus = vms
        .iter()
        .map(|vm| {
            let highest = vm.cpus.map_or(0, |mask| u64::BITS - mask.leading_zeros());
            highest.max(vm.vcpus)
        })
        .max()
        .unwrap_or(1);
    Needs {
        guest_mem_mib: mem.div_ceil(1 << 20),
        cpus,
    }
}

/// The machine's disk for `run --config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineDisk {
    /// `--disk`, as given.
    Given(Disk),
    /// The image the VMs' `disk.file` names, attached writable; made sparse, `min_len` bytes,
    /// if it does not exist.
    Named {
        /// The file, relative to the configuration's directory as the VMs name it.
        path: PathBuf,
        /// Enough for the furthest slice end of any VM, and at least the scratch size.
        min_len: u64,
    },
    /// No file named and no `--disk`: the scratch disk.
    Scratch,
}

/// What [`machine_disk`] chose, and the notes to print about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskChoice {
    /// The machine's disk.
    pub disk: MachineDisk,
    /// One line for each VM whose `disk.file` `--disk` overrides.
    pub notes: Vec<String>,
}

/// Chooses the machine's disk for the accepted `vms` of a configuration in `dir`, given
/// `--disk` or not: `--disk` if given (with a note for each VM that names another file),
/// else the one file the VMs name (refusing two different ones: the machine has one disk),
/// else the scratch disk.
pub fn machine_disk(vms: &[VmDesc], dir: &Path, given: Option<Disk>) -> Result<DiskChoice> {
    // (VM, file as written, path as compared): every VM that names a file.
    let named: Vec<(&str, &str, PathBuf)> = vms
        .iter()
        .filter_map(|vm| {
            let file = vm.disk.as_ref()?.file.as_deref()?;
            Some((vm.name.as_str(), file, normalize(&dir.join(file))))
        })
        .collect();
    if let Some(disk) = given {
        let attached = normalize(&disk.path);
        let notes = named
            .iter()
            .filter(|(_, _, path)| *path != attached)
            .map(|(vm, file, _)| {
                format!(
                    "vm \"{vm}\" names {file} for the machine's disk; --disk {} wins, and {file} is not attached",
                    disk.path.display()
                )
            })
            .collect();
        return Ok(DiskChoice {
            disk: MachineDisk::Given(disk),
            notes,
        });
    }
    let Some((first_vm, first_file, path)) = named.first() else {
        return Ok(DiskChoice {
            disk: MachineDisk::Scratch,
            notes: Vec::new(),
        });
    };
    if let Some((vm, file, _)) = named.iter().find(|(_, _, p)| p != path) {
        return Err(Error::Failed(format!(
            "rhyve shares out one machine disk: VMs \"{first_vm}\" and \"{vm}\" name {first_file} and {file}; give them slices of one image"
        )));
    }
    Ok(DiskChoice {
        disk: MachineDisk::Named {
            path: path.clone(),
            min_len: least_disk_len(vms),
        },
        notes: Vec::new(),
    })
}

/// The least length of an image made for `vms`: the scratch disk's, or the furthest end of
/// any VM's slice. A slice that runs to the end of the disk gets the scratch size past its
/// offset.
fn least_disk_len(vms: &[VmDesc]) -> u64 {
    let scratch = SCRATCH_DISK_MIB << 20;
    vms.iter()
        .filter_map(|vm| vm.disk.as_ref())
        .map(|d| d.offset.saturating_add(d.size.unwrap_or(scratch)))
        .fold(scratch, u64::max)
}

/// `path` without its `.` components, so that `a.img` and `./a.img` compare equal. `..` stays:
/// removing it is only right without symbolic links.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// What [`write_bundle`] packed.
#[derive(Debug)]
pub struct Packed {
    /// What the machine needs for the VMs.
    pub needs: Needs,
    /// The VMs the parser accepts, in file order.
    pub vms: Vec<VmDesc>,
}

/// Reads the configuration at `config`, packs it and the files its VMs name (paths relative
/// to its directory, stored under the name the file uses) into a bundle at `bundle`, and says
/// what the machine needs. Refused VMs are printed as warnings.
pub fn write_bundle(config: &Path, bundle: &Path) -> Result<Packed> {
    let text = std::fs::read_to_string(config).ctx(|| format!("reading {}", config.display()))?;
    let dir = config.parent().unwrap_or(Path::new("."));
    let results = vmboot::config::parse(&text);
    let mut vms = Vec::new();
    for r in &results {
        match r {
            Ok(vm) => vms.push(vm),
            Err(e) => println!(
                "xtask: warning: {}: {e}; it stays in the bundle, and the hypervisor will refuse it",
                config.display()
            ),
        }
    }
    if vms.is_empty() {
        println!(
            "xtask: warning: {} describes no VM that can start",
            config.display()
        );
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for vm in &vms {
        for name in vm.bundle_files() {
            if files.iter().any(|(n, _)| n == name) {
                continue;
            }
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::Failed(format!(
                    "vm \"{}\": reading {}: {e}{}",
                    vm.name,
                    path.display(),
                    if name.contains("build/guest/") {
                        " (`cargo xtask fetch-guest` fetches build/guest/)"
                    } else {
                        ""
                    }
                ))
            })?;
            files.push((name.to_string(), bytes));
        }
        for (what, src) in [
            ("kernel", vm.kernel.as_ref()),
            ("firmware", vm.firmware.as_ref()),
            ("initrd", vm.initrd.as_ref()),
        ] {
            if let Some(Source::Memory { addr, size }) = src {
                println!(
                    "xtask: note: vm \"{}\": its {what} is in host memory at {addr:#x} ({size:#x} bytes): \
                     place it with QEMU's `-device loader,file=...,addr={addr:#x}`",
                    vm.name
                );
            }
        }
    }
    let bytes = Bundle {
        config: &text,
        files: files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect(),
    }
    .to_bytes();
    if let Some(d) = bundle.parent() {
        std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(bundle, bytes).ctx(|| format!("writing {}", bundle.display()))?;
    Ok(Packed {
        needs: needs(&vms),
        vms: vms.into_iter().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmboot::config::DEFAULT_DEVICES;

    fn vm(vcpus: u32, cpus: Option<u64>, mem_mib: u64) -> VmDesc {
        VmDesc {
            name: "a".into(),
            vcpus,
            cpus,
            mem_size: mem_mib << 20,
            kernel: Some(Source::Bundle("k".into())),
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

    /// VMs `a`, `b`, ... with virtio-blk and the disk each `disk` line gives (`""`: none).
    fn disk_vms(disks: &[&str]) -> Vec<VmDesc> {
        let text: String = disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let name = char::from(b'a' + i as u8);
                format!(
                    "[[vm]]\nname = \"{name}\"\nmemory = \"16M\"\nkernel = \"k\"\n\
                     devices = [\"virtio-blk\"]\n{d}\n"
                )
            })
            .collect();
        vmboot::config::parse(&text)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const SCRATCH: u64 = SCRATCH_DISK_MIB << 20;

    #[test]
    fn no_file_named_and_no_disk_option_is_the_scratch_disk() {
        for vms in [
            vec![],
            disk_vms(&["disk = { size = \"1M\" }", "disk = { offset = \"1M\" }"]),
        ] {
            assert_eq!(
                machine_disk(&vms, Path::new("conf"), None).unwrap(),
                DiskChoice {
                    disk: MachineDisk::Scratch,
                    notes: vec![]
                }
            );
        }
    }

    #[test]
    fn the_file_the_vms_name_is_the_machine_s_disk() {
        // One VM names it (another, without a file, has a slice of it too); both spellings of
        // the path are the same file. It is at least the scratch size.
        let vms = disk_vms(&[
            "disk = { file = \"s.img\", size = \"1M\" }",
            "disk = { offset = \"1M\", size = \"1M\" }",
            "disk = { file = \"./s.img\", offset = \"2M\", readonly = true }",
        ]);
        assert_eq!(
            machine_disk(&vms, Path::new("conf"), None).unwrap(),
            DiskChoice {
                disk: MachineDisk::Named {
                    path: "conf/s.img".into(),
                    min_len: (2 << 20) + SCRATCH,
                },
                notes: vec![]
            }
        );
        // Slices past the scratch size: the image reaches the furthest end, whoever names it.
        let vms = disk_vms(&[
            "disk = \"s.img\"",
            "disk = { offset = \"1G\", size = \"3M\", readonly = true }",
            "disk = { file = \"s.img\", offset = \"512M\", size = \"1M\", readonly = true }",
        ]);
        assert_eq!(
            machine_disk(&vms, Path::new(""), None).unwrap().disk,
            MachineDisk::Named {
                path: "s.img".into(),
                min_len: (1 << 30) + (3 << 20),
            }
        );
    }

    #[test]
    fn vms_naming_different_files_are_refused() {
        let vms = disk_vms(&[
            "disk = { file = \"x.img\", size = \"1M\" }",
            "disk = { offset = \"1M\", size = \"1M\" }",
            "disk = { file = \"x.img\", offset = \"2M\", size = \"1M\" }",
            "disk = { file = \"y.img\", offset = \"3M\", size = \"1M\" }",
        ]);
        assert_eq!(
            machine_disk(&vms, Path::new("conf"), None)
                .unwrap_err()
                .to_string(),
            "rhyve shares out one machine disk: VMs \"a\" and \"d\" name x.img and y.img; \
             give them slices of one image"
        );
    }

    #[test]
    fn the_disk_option_wins_with_a_note_for_each_other_file() {
        let vms = disk_vms(&[
            "disk = { file = \"x.img\", size = \"1M\" }",
            "disk = { file = \"y.img\", offset = \"1M\", size = \"1M\" }",
            "disk = { file = \"d.img\", offset = \"2M\", size = \"1M\" }",
            "disk = { offset = \"3M\", size = \"1M\" }",
        ]);
        let given = Disk::parse("conf/./d.img,ro").unwrap();
        assert_eq!(
            machine_disk(&vms, Path::new("conf"), Some(given.clone())).unwrap(),
            DiskChoice {
                disk: MachineDisk::Given(given),
                notes: vec![
                    "vm \"a\" names x.img for the machine's disk; --disk conf/./d.img wins, \
                     and x.img is not attached"
                        .into(),
                    "vm \"b\" names y.img for the machine's disk; --disk conf/./d.img wins, \
                     and y.img is not attached"
                        .into(),
                ]
            }
        );
        let given = Disk::parse("other.img").unwrap();
        assert_eq!(
            machine_disk(&[], Path::new("conf"), Some(given.clone())).unwrap(),
            DiskChoice {
                disk: MachineDisk::Given(given),
                notes: vec![]
            }
        );
    }

    #[test]
    fn machine_needs() {
        let (a, b) = (vm(2, Some(0b11), 256), vm(1, Some(1 << 5), 192));
        assert_eq!(
            needs(&[&a, &b]),
            Needs {
                guest_mem_mib: 448,
                cpus: 6
            }
        );
        let wide = vm(8, None, 16);
        assert_eq!(needs(&[&a, &wide]).cpus, 8);
        let firmware = VmDesc {
            kernel: None,
            firmware: Some(Source::Bundle("QEMU_EFI.fd".into())),
            ..vm(1, None, 256)
        };
        assert_eq!(
            needs(&[&firmware]).guest_mem_mib,
            256 + 128,
            "its flash banks too"
        );
        assert_eq!(
            needs(&[]),
            Needs {
                guest_mem_mib: 0,
                cpus: 1
            }
        );
    }

    #[test]
    fn packs_named_files_once_and_keeps_refused_vms() {
        let dir = std::env::temp_dir().join(format!("rhyve-xtask-config-{}", std::process::id()));
        let sub = dir.join("conf");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.join("Image"), b"kernel").unwrap();
        std::fs::write(sub.join("rd"), b"initrd").unwrap();
        let text = "[[vm]]\nname = \"a\"\nmemory = \"64M\"\ncpus = [3]\nkernel = \"../Image\"\ninitrd = \"rd\"\n\
                    [[vm]]\nname = \"b\"\nmemory = \"3M\"\nkernel = \"missing\"\n\
                    [[vm]]\nname = \"c\"\nvcpus = 2\nmemory = \"32M\"\nkernel = \"../Image\"\n\
                    [[vm]]\nname = \"d\"\nmemory = \"16M\"\nkernel = { addr = 0x48000000, size = 0x1000 }\n";
        let config = sub.join("vms.toml");
        std::fs::write(&config, text).unwrap();
        let out = dir.join("bundle.bin");
        let packed = write_bundle(&config, &out).unwrap();
        let names: Vec<&str> = packed.vms.iter().map(|vm| vm.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "d"], "the accepted VMs");
        assert_eq!(
            packed.needs,
            Needs {
                guest_mem_mib: 112,
                cpus: 4
            }
        );
        let bytes = std::fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.config, text);
        assert_eq!(
            bundle.files,
            [("../Image", &b"kernel"[..]), ("rd", &b"initrd"[..])]
        );

        // A file a good VM names must exist.
        std::fs::write(&config, text.replace("\"rd\"", "\"nope\"")).unwrap();
        let e = write_bundle(&config, &out).unwrap_err().to_string();
        assert!(e.starts_with("vm \"a\": reading "), "{e}");
        assert!(e.contains("nope"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_example_describes_two_good_vms() {
        let path = crate::sys::repo_root().join("examples/two-linux.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let vms: Vec<VmDesc> = vmboot::config::parse(&text)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let names: Vec<&str> = vms.iter().map(|vm| vm.name.as_str()).collect();
        assert_eq!(names, ["alpha", "beta"]);
        assert_eq!(
            vms.iter()
                .map(|vm| (vm.vcpus, vm.cpus, vm.mem_size >> 20))
                .collect::<Vec<_>>(),
            [(2, Some(0b11), 256), (1, Some(0b100), 192)]
        );
        for vm in &vms {
            assert_eq!(
                vm.bundle_files().collect::<Vec<_>>(),
                ["../build/guest/Image", "../build/guest/initramfs.cpio"]
            );
            assert_eq!(vm.cmdline, crate::DEFAULT_CMDLINE);
        }
        let refs: Vec<&VmDesc> = vms.iter().collect();
        assert_eq!(
            needs(&refs),
            Needs {
                guest_mem_mib: 448,
                cpus: 3
            }
        );
    }
}
