//! One guest boot, either under rhyve (a boot bundle for the hypervisor) or straight under
//! QEMU (the baseline the benchmark and the test-checking mode compare with).

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::qemu::Machine;

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

/// Writes the boot bundle (`vmm::bundle`) that carries `guest` to the hypervisor.
pub fn write_bundle(guest: &GuestBoot, path: &Path) -> Result<()> {
    let kernel = std::fs::read(&guest.kernel)
        .ctx(|| format!("reading the kernel {}", guest.kernel.display()))?;
    let initrd = match &guest.initrd {
        Some(p) => Some(std::fs::read(p).ctx(|| format!("reading the initrd {}", p.display()))?),
        None => None,
    };
    let bytes = vmm::bundle::Bundle {
        vcpus: guest.vcpus,
        mem_size: guest.mem_mib << 20,
        kernel: &kernel,
        initrd: initrd.as_deref(),
        cmdline: &guest.cmdline,
    }
    .to_bytes();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).ctx(|| format!("writing {}", path.display()))
}
