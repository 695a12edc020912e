//! Building the VMs the boot bundle describes: the bundle found where the loader put it, each
//! description's kernel and initrd found, its vCPUs placed, its VM built. A VM that cannot be
//! built is reported with its reason and the others go on.

use super::lifecycle::fail;
use super::memory::FreeRam;
use super::vm::{Vm, VmSpec};
use crate::placement;
use abi::vmm::DeviceSet;
use abi::VmId;
use alloc::string::String;
use alloc::vec::Vec;
use hypervisor::platform::{Platform, RamRange, MAX_CPUS};
use vmboot::bundle::Bundle;
use vmboot::config::{self, Source, VmDesc};

/// The boot bundle, found where the loader put it.
pub fn boot_bundle(plat: &Platform) -> Bundle<'static> {
    let Some((start, end)) = plat.bundle else {
        fail(format_args!(
            "no boot bundle: pass one as the initrd (QEMU -initrd, or booti's initrd argument)"
        ))
    };
    // SAFETY: the loader placed the bundle at [start, end), which stays reserved for ever.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) };
    match Bundle::parse(bytes) {
        Ok(b) => b,
        Err(e) => fail(format_args!("boot bundle refused: {e}")),
    }
}

/// The memory of kernels and initrds a description says are already in RAM (placed by QEMU's
/// generic loader, or a boot loader): kept out of the RAM handed out.
pub fn preloaded(descs: &[Result<VmDesc, config::ConfigError>]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for d in descs.iter().flatten() {
        for src in [d.kernel.as_ref(), d.firmware.as_ref(), d.initrd.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Source::Memory { addr, size } = *src {
                out.push((addr, size));
            }
        }
    }
    out
}

/// The bytes `src` names: a file of the bundle, or memory a loader filled (which must be RAM
/// of the machine and clear of the hypervisor's own).
fn source_bytes(
    bundle: &Bundle<'static>,
    src: &Source,
    field: &str,
    ram: &[RamRange],
) -> Result<&'static [u8], String> {
    match src {
        Source::Bundle(name) => bundle.file(name).ok_or_else(|| {
            alloc::format!("field \"{field}\": no file \"{name}\" in the boot bundle")
        }),
        Source::Memory { addr, size } => {
            let end = addr.checked_add(*size);
            let inside = end.is_some_and(|e| {
                ram.iter()
                    .any(|r| *addr >= r.start && e <= r.start + r.size)
            });
            if !inside || *size == 0 {
                return Err(alloc::format!(
                    "field \"{field}\": {addr:#x}+{size:#x} is not in the machine's RAM"
                ));
            }
            // SAFETY: RAM of the machine that `preloaded` kept out of every allocation; the
            // loader that filled it is done, and nothing writes it from now on.
            Ok(unsafe { core::slice::from_raw_parts(*addr as *const u8, *size as usize) })
        }
    }
}

/// Builds every VM the bundle's configuration describes; one that cannot be built is reported
/// with its reason and the others go on.
pub fn build_vms(
    bundle: &Bundle<'static>,
    descs: Vec<Result<VmDesc, config::ConfigError>>,
    free: &mut FreeRam,
    ram: &[RamRange],
    nr_cpus: usize,
    affs: &[u64],
) -> Vec<Vm> {
    let mut load = [0usize; MAX_CPUS];
    let mut placed = Vec::new();
    for d in descs {
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                log::error!("configuration: {e}: that VM is not started");
                continue;
            }
        };
        // The parser saw to it that a VM has a kernel or a firmware, not both.
        let kernel = d
            .kernel
            .as_ref()
            .map_or(Ok(&[][..]), |s| source_bytes(bundle, s, "kernel", ram));
        let firmware = d
            .firmware
            .as_ref()
            .map(|s| source_bytes(bundle, s, "firmware", ram))
            .transpose();
        let initrd = d
            .initrd
            .as_ref()
            .map(|s| source_bytes(bundle, s, "initrd", ram))
            .transpose();
        let (kernel, firmware, initrd) = match (kernel, firmware, initrd) {
            (Ok(k), Ok(f), Ok(i)) => (k, f, i),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                log::error!(
                    "configuration: vm \"{}\": {e}: that VM is not started",
                    d.name
                );
                continue;
            }
        };
        let Some(placement) = placement::place(d.vcpus, d.cpus, nr_cpus, &mut load) else {
            log::error!(
                "configuration: vm \"{}\": field \"cpus\": none of those CPUs exists (the machine has {nr_cpus}): that VM is not started",
                d.name
            );
            continue;
        };
        // The parser refused any VM whose writable slice overlaps another's.
        let disk = d.disk_slice();
        // Firmware runs from QEMU virt's flash, which the VMM models.
        let devices = if firmware.is_some() {
            d.devices.with(DeviceSet::FLASH)
        } else {
            d.devices
        };
        let spec = VmSpec {
            served: devices != DeviceSet::NONE,
            name: d.name,
            vcpus: d.vcpus,
            mem_size: d.mem_size,
            kernel,
            firmware,
            initrd,
            cmdline: d.cmdline,
            autostart: d.autostart,
            devices,
            disk,
            vars: d.vars.map(|v| v.slice()),
            mac: d.mac,
        };
        placed.push((spec, placement));
    }
    let mut vms = Vec::new();
    for (spec, placement) in placed {
        let shared = placement::shares_a_cpu(&placement, &load);
        let id = VmId(vms.len() as u16);
        let name = spec.name.clone();
        match Vm::build(id, spec, free, &placement, affs, shared) {
            Ok(vm) => vms.push(vm),
            Err(e) => {
                for &c in &placement {
                    load[c] -= 1;
                }
                log::error!("VM \"{name}\" not started: {e}");
            }
        }
    }
    vms
}
