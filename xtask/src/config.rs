//! `cargo xtask run --config FILE`: a TOML file of VMs (`vmm::config`, read here with the
//! hypervisor's own parser) packed into a boot bundle with every file it names, and the QEMU
//! machine sized for those VMs.
//!
//! A VM the parser refuses stays in the bundle's text: the hypervisor reports it at boot, as it
//! would for any bundle. Here it is only a warning. A kernel or initrd in host memory
//! (`{ addr, size }`) is not packed: whoever starts QEMU places it (`-device loader`).

use std::path::Path;

use vmm::bundle::Bundle;
use vmm::config::{Source, VmDesc};

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
    let mem: u64 = vms.iter().map(|vm| vm.mem_size).sum();
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

/// Reads the configuration at `config`, packs it and the files its VMs name (paths relative
/// to its directory, stored under the name the file uses) into a bundle at `bundle`, and says
/// what the machine needs. Refused VMs are printed as warnings.
pub fn write_bundle(config: &Path, bundle: &Path) -> Result<Needs> {
    let text = std::fs::read_to_string(config).ctx(|| format!("reading {}", config.display()))?;
    let dir = config.parent().unwrap_or(Path::new("."));
    let results = vmm::config::parse(&text);
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
        for (what, src) in [("kernel", Some(&vm.kernel)), ("initrd", vm.initrd.as_ref())] {
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
    Ok(needs(&vms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm::config::Devices;

    fn vm(vcpus: u32, cpus: Option<u64>, mem_mib: u64) -> VmDesc {
        VmDesc {
            name: "a".into(),
            vcpus,
            cpus,
            mem_size: mem_mib << 20,
            kernel: Source::Bundle("k".into()),
            initrd: None,
            cmdline: String::new(),
            devices: Devices::DEFAULT,
            disk: None,
            mac: None,
            autostart: true,
        }
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
        let needs = write_bundle(&config, &out).unwrap();
        assert_eq!(
            needs,
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
        let vms: Vec<VmDesc> = vmm::config::parse(&text)
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
