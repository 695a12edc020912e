//! Places a guest in its RAM: the kernel (arm64 Image or raw binary), the initrd and the
//! device tree, and says where the guest starts.
//!
//! Layout, from [`RAM_BASE`]:
//!
//! | what            | where                                                              |
//! |-----------------|--------------------------------------------------------------------|
//! | device tree     | `RAM_BASE` (below 2 MiB for an Image, below 0x80000 for a raw one) |
//! | Image kernel    | `RAM_BASE + 2 MiB + text_offset` (booting.rst: 2 MiB-aligned base) |
//! | raw kernel      | `RAM_BASE + 0x80000`, where QEMU puts a headerless `-kernel`       |
//! | initrd          | `max(align_up(kernel_end, 2 MiB), RAM_BASE + align_down(min(mem/2, 128 MiB), 2 MiB))` |
//!
//! `kernel_end` counts an Image's `image_size` (its bss too), not just the file. The initrd
//! goes high to leave the kernel room to grow into (bss, early page tables, KASLR moves); if it
//! does not fit there it goes right after the kernel, and if it does not fit there either the
//! load fails.

use crate::fdt::{self, DeviceTreeConfig, FdtError, PsciMethod, VirtioMmioSlot};
use crate::image::{self, ImageError, KernelKind};
use crate::memory::{GuestMemory, MemoryError};
use abi::layout::{MAX_VCPUS, RAM_BASE};
use abi::vmm::{DeviceSet, VirtioKind};
use abi::GuestPhysAddr;
use core::fmt;

/// Offset from [`RAM_BASE`] of the 2 MiB-aligned base an Image's `text_offset` counts from.
pub const IMAGE_BASE_OFFSET: u64 = image::BASE_ALIGN;
/// Offset from [`RAM_BASE`] of a raw kernel (QEMU virt's `KERNEL_LOAD_ADDR`).
pub const RAW_KERNEL_OFFSET: u64 = 0x8_0000;
/// Alignment of the initrd.
pub const INITRD_ALIGN: u64 = 2 << 20;
/// The initrd is placed no higher than this far into RAM (unless the kernel reaches past it).
pub const INITRD_MAX_OFFSET: u64 = 128 << 20;

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestConfig<'a> {
    /// Number of vCPUs (1..=[`MAX_VCPUS`]).
    pub vcpus: u32,
    /// Guest RAM size in bytes, from [`RAM_BASE`].
    pub mem_size: u64,
    /// The kernel file: an arm64 Image or a raw binary.
    pub kernel: &'a [u8],
    /// The initrd, if any (an empty one counts as none).
    pub initrd: Option<&'a [u8]>,
    /// The kernel command line.
    pub cmdline: &'a str,
}

/// The parts of the guest machine [`load`] leaves at their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineOptions {
    /// How the guest calls PSCI.
    pub psci_method: PsciMethod,
    /// The devices the device tree describes: the PL011 and the PL031 if the set has them, and a virtio-mmio
    /// node at each of the set's virtio slots (`DeviceSet::slots`, the same the VMM uses).
    pub devices: DeviceSet,
}

impl Default for MachineOptions {
    /// PSCI over `hvc`, the PL011 and no virtio device.
    fn default() -> Self {
        Self {
            psci_method: PsciMethod::Hvc,
            devices: DeviceSet::PL011,
        }
    }
}

/// Where things were put: what the core needs to start the boot vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    /// Where the boot vCPU starts (the kernel's load address), at EL1h with the MMU off.
    pub entry: GuestPhysAddr,
    /// The device tree's address: x0 at entry.
    pub dtb: GuestPhysAddr,
    /// The kernel's load address and the memory it occupies (an Image's `image_size`, bss
    /// included; a raw binary's length).
    pub kernel: (GuestPhysAddr, u64),
    /// The initrd's address and length, if there is one.
    pub initrd: Option<(GuestPhysAddr, u64)>,
    /// The device tree's size in bytes.
    pub dtb_size: u64,
}

/// A part of the guest image, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// The kernel.
    Kernel,
    /// The initrd.
    Initrd,
    /// The device tree.
    DeviceTree,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
            Self::DeviceTree => "device tree",
        })
    }
}

/// Why a guest could not be loaded.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The vCPU count is 0 or above [`MAX_VCPUS`].
    BadVcpuCount(u32),
    /// Guest RAM is empty or would run past the end of the address space.
    BadMemorySize(u64),
    /// The kernel file is empty.
    EmptyKernel,
    /// The kernel's Image header was refused.
    Image(ImageError),
    /// A region does not fit in guest RAM.
    DoesNotFit {
        /// Which region.
        region: Region,
        /// Where it would start.
        start: GuestPhysAddr,
        /// Its size.
        size: u64,
        /// The end of guest RAM.
        ram_end: GuestPhysAddr,
    },
    /// The device tree would overlap the kernel.
    DeviceTreeTooLarge {
        /// Its size.
        size: u64,
        /// The room below the kernel.
        limit: u64,
    },
    /// The device tree could not be made.
    DeviceTree(FdtError),
    /// Guest memory refused a write (it is smaller than `mem_size`).
    Memory(MemoryError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadVcpuCount(n) => write!(f, "{n} vCPUs asked for; 1 to {MAX_VCPUS} supported"),
            Self::BadMemorySize(s) => write!(f, "guest RAM size {s:#x} is empty or too large"),
            Self::EmptyKernel => write!(f, "the kernel is empty"),
            Self::Image(e) => write!(f, "{e}"),
            Self::DoesNotFit { region, start, size, ram_end } => write!(
                f,
                "{region} ({size:#x} bytes at {start}) does not fit in guest RAM ending at {ram_end}"
            ),
            Self::DeviceTreeTooLarge { size, limit } => write!(
                f,
                "device tree of {size:#x} bytes exceeds the {limit:#x} bytes below the kernel"
            ),
            Self::DeviceTree(e) => write!(f, "device tree: {e}"),
            Self::Memory(e) => write!(f, "loading the guest: {e}"),
        }
    }
}

impl From<ImageError> for LoadError {
    fn from(e: ImageError) -> Self {
        Self::Image(e)
    }
}

impl From<FdtError> for LoadError {
    fn from(e: FdtError) -> Self {
        Self::DeviceTree(e)
    }
}

impl From<MemoryError> for LoadError {
    fn from(e: MemoryError) -> Self {
        Self::Memory(e)
    }
}

/// The end of `size` bytes at `start`, if they lie inside RAM ending at `ram_end`.
fn fit(
    region: Region,
    start: GuestPhysAddr,
    size: u64,
    ram_end: GuestPhysAddr,
) -> Result<GuestPhysAddr, LoadError> {
    let err = LoadError::DoesNotFit {
        region,
        start,
        size,
        ram_end,
    };
    match start.checked_add(size) {
        Some(end) if start >= RAM_BASE && end <= ram_end => Ok(end),
        _ => Err(err),
    }
}

/// Loads a guest with the default machine (PSCI over `hvc`, the PL011, no virtio devices).
pub fn load(cfg: &GuestConfig, mem: &mut dyn GuestMemory) -> Result<BootInfo, LoadError> {
    load_with(cfg, &MachineOptions::default(), mem)
}

/// Loads a guest: checks everything, then writes the kernel, the initrd and the device tree
/// through `mem`. Nothing is written unless the whole layout fits in `cfg.mem_size`.
pub fn load_with(
    cfg: &GuestConfig,
    machine: &MachineOptions,
    mem: &mut dyn GuestMemory,
) -> Result<BootInfo, LoadError> {
    let vcpus_ok = usize::try_from(cfg.vcpus).is_ok_and(|n| (1..=MAX_VCPUS).contains(&n));
    if !vcpus_ok {
        return Err(LoadError::BadVcpuCount(cfg.vcpus));
    }
    let ram_end = match RAM_BASE.checked_add(cfg.mem_size) {
        Some(end) if cfg.mem_size != 0 => end,
        _ => return Err(LoadError::BadMemorySize(cfg.mem_size)),
    };
    if cfg.kernel.is_empty() {
        return Err(LoadError::EmptyKernel);
    }

    // Kernel: where, how much memory it occupies, and the room below it for the device tree
    // (the Image's 2 MiB-aligned base, or QEMU's raw offset).
    let (offset, footprint, dtb_limit) = match image::inspect(cfg.kernel)? {
        KernelKind::Image(h) => (
            IMAGE_BASE_OFFSET.saturating_add(h.text_offset),
            h.image_size,
            IMAGE_BASE_OFFSET,
        ),
        KernelKind::Raw => (
            RAW_KERNEL_OFFSET,
            cfg.kernel.len() as u64,
            RAW_KERNEL_OFFSET,
        ),
    };
    let kernel_start = RAM_BASE.checked_add(offset).ok_or(LoadError::DoesNotFit {
        region: Region::Kernel,
        start: RAM_BASE,
        size: footprint,
        ram_end,
    })?;
    let kernel_end = fit(Region::Kernel, kernel_start, footprint, ram_end)?;

    // Initrd: high if it fits there, else right after the kernel.
    let initrd = match cfg.initrd.filter(|i| !i.is_empty()) {
        None => None,
        Some(data) => {
            let size = data.len() as u64;
            let after_kernel = kernel_end
                .align_up(INITRD_ALIGN)
                .ok_or(LoadError::DoesNotFit {
                    region: Region::Initrd,
                    start: kernel_end,
                    size,
                    ram_end,
                })?;
            // Half of RAM need not be aligned (RAM not a multiple of 4 MiB): round down.
            let high_offset = (cfg.mem_size / 2).min(INITRD_MAX_OFFSET) & !(INITRD_ALIGN - 1);
            let high = RAM_BASE
                .checked_add(high_offset)
                .map_or(after_kernel, |h| h.max(after_kernel));
            let start = match fit(Region::Initrd, high, size, ram_end) {
                Ok(_) => high,
                Err(e) => fit(Region::Initrd, after_kernel, size, ram_end)
                    .map(|_| after_kernel)
                    .map_err(|_| e)?,
            };
            Some((start, data, size))
        }
    };

    let (slots, n) = machine.devices.slots();
    let mut virtio = [VirtioMmioSlot(0); VirtioKind::ALL.len()];
    for (dst, src) in virtio.iter_mut().zip(&slots[..n]) {
        *dst = VirtioMmioSlot(*src);
    }
    let dtb = fdt::generate(&DeviceTreeConfig {
        vcpus: cfg.vcpus,
        mem_size: cfg.mem_size,
        cmdline: cfg.cmdline,
        initrd: initrd.map(|(start, _, size)| (start, size)),
        psci_method: machine.psci_method,
        virtio_mmio: &virtio[..n],
        pl011: machine.devices.contains(DeviceSet::PL011),
        pl031: machine.devices.contains(DeviceSet::PL031),
    })?;
    let dtb_size = dtb.len() as u64;
    if dtb_size > dtb_limit {
        return Err(LoadError::DeviceTreeTooLarge {
            size: dtb_size,
            limit: dtb_limit,
        });
    }
    fit(Region::DeviceTree, RAM_BASE, dtb_size, ram_end)?;

    mem.write(kernel_start, cfg.kernel)?;
    if let Some((start, data, _)) = initrd {
        mem.write(start, data)?;
    }
    mem.write(RAM_BASE, &dtb)?;

    Ok(BootInfo {
        entry: kernel_start,
        dtb: RAM_BASE,
        kernel: (kernel_start, footprint),
        initrd: initrd.map(|(start, _, size)| (start, size)),
        dtb_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testing::{image, modern_flags};
    use crate::memory::VecMemory;
    use alloc::vec;
    use alloc::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn ram(size: u64) -> VecMemory {
        VecMemory::new(RAM_BASE, size as usize)
    }

    fn read(mem: &VecMemory, at: GuestPhysAddr, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        mem.read(at, &mut buf).unwrap();
        buf
    }

    fn cfg<'a>(kernel: &'a [u8], initrd: Option<&'a [u8]>, mem_size: u64) -> GuestConfig<'a> {
        GuestConfig {
            vcpus: 2,
            mem_size,
            kernel,
            initrd,
            cmdline: "console=ttyAMA0",
        }
    }

    #[test]
    fn image_goes_2mib_plus_text_offset_and_dtb_at_ram_base() {
        let kernel = image(0x4000, 0, 0x1_0000, modern_flags());
        let mut mem = ram(64 * MIB);
        let info = load(&cfg(&kernel, None, 64 * MIB), &mut mem).unwrap();
        assert_eq!(info.entry, GuestPhysAddr(0x4020_0000));
        assert_eq!(info.kernel, (GuestPhysAddr(0x4020_0000), 0x1_0000));
        assert_eq!(info.dtb, GuestPhysAddr(0x4000_0000));
        assert_eq!(info.initrd, None);
        assert_eq!(read(&mem, info.entry, kernel.len()), kernel);
        let dtb = read(&mem, info.dtb, info.dtb_size as usize);
        let fdt = ::fdt::Fdt::new(&dtb).unwrap();
        assert_eq!(fdt.chosen().bootargs(), Some("console=ttyAMA0"));
        assert_eq!(fdt.find_node("/cpus").unwrap().children().count(), 2);

        let kernel = image(0x4000, 0x8_0000, 0x4000, 0);
        let info = load(&cfg(&kernel, None, 64 * MIB), &mut ram(64 * MIB)).unwrap();
        assert_eq!(info.entry, GuestPhysAddr(0x4028_0000));
    }

    #[test]
    fn raw_binary_goes_at_0x80000() {
        let kernel: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut mem = ram(16 * MIB);
        let info = load(&cfg(&kernel, None, 16 * MIB), &mut mem).unwrap();
        assert_eq!(info.entry, GuestPhysAddr(0x4008_0000));
        assert_eq!(info.kernel, (GuestPhysAddr(0x4008_0000), 300));
        assert_eq!(read(&mem, info.entry, kernel.len()), kernel);
        assert!(info.dtb_size < RAW_KERNEL_OFFSET);
    }

    #[test]
    fn initrd_goes_high_or_after_the_kernel_footprint() {
        let initrd = [0xa5u8; 0x1000];
        // 512 MiB of RAM: 128 MiB in, above the kernel.
        let kernel = image(0x4000, 0, 0x1_0000, modern_flags());
        let mut mem = ram(512 * MIB);
        let info = load(&cfg(&kernel, Some(&initrd), 512 * MIB), &mut mem).unwrap();
        assert_eq!(info.initrd, Some((GuestPhysAddr(0x4800_0000), 0x1000)));
        assert_eq!(read(&mem, GuestPhysAddr(0x4800_0000), 0x1000), initrd);
        let dtb = read(&mem, info.dtb, info.dtb_size as usize);
        let fdt = ::fdt::Fdt::new(&dtb).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        let start = chosen.property("linux,initrd-start").unwrap().value;
        let end = chosen.property("linux,initrd-end").unwrap().value;
        assert_eq!(start, 0x4800_0000u64.to_be_bytes());
        assert_eq!(end, 0x4800_1000u64.to_be_bytes());

        // 32 MiB of RAM: half of it.
        let info = load(&cfg(&kernel, Some(&initrd), 32 * MIB), &mut ram(32 * MIB)).unwrap();
        assert_eq!(info.initrd.unwrap().0, GuestPhysAddr(0x4100_0000));

        // A kernel whose bss reaches past the halfway mark: the next 2 MiB boundary after it,
        // counted by image_size, not by the file's length.
        let big = image(0x4000, 0, 20 * MIB + 1, modern_flags());
        let info = load(&cfg(&big, Some(&initrd), 32 * MIB), &mut ram(32 * MIB)).unwrap();
        assert_eq!(
            info.initrd.unwrap().0,
            GuestPhysAddr(0x4000_0000 + 24 * MIB)
        );
    }

    #[test]
    fn initrd_too_big_for_the_high_spot_goes_after_the_kernel() {
        let kernel = image(0x4000, 0, 0x1_0000, modern_flags());
        let initrd = vec![1u8; (20 * MIB) as usize];
        let info = load(&cfg(&kernel, Some(&initrd), 32 * MIB), &mut ram(32 * MIB)).unwrap();
        assert_eq!(info.initrd, Some((GuestPhysAddr(0x4040_0000), 20 * MIB)));
    }

    #[test]
    fn empty_initrd_is_none() {
        let kernel = image(0x4000, 0, 0x1_0000, 0);
        let info = load(&cfg(&kernel, Some(&[]), 16 * MIB), &mut ram(16 * MIB)).unwrap();
        assert_eq!(info.initrd, None);
    }

    #[test]
    fn too_small_ram_is_refused_and_nothing_written() {
        // The kernel's bss does not fit.
        let kernel = image(0x4000, 0, 8 * MIB, modern_flags());
        let mut mem = ram(8 * MIB);
        let err = load(&cfg(&kernel, None, 8 * MIB), &mut mem).unwrap_err();
        assert_eq!(
            err,
            LoadError::DoesNotFit {
                region: Region::Kernel,
                start: GuestPhysAddr(0x4020_0000),
                size: 8 * MIB,
                ram_end: GuestPhysAddr(0x4080_0000),
            }
        );
        assert!(mem.as_bytes().iter().all(|&b| b == 0));
        // The initrd does not fit anywhere.
        let initrd = vec![0u8; (7 * MIB) as usize];
        let small = image(0x4000, 0, 0x1_0000, 0);
        let err = load(&cfg(&small, Some(&initrd), 8 * MIB), &mut ram(8 * MIB)).unwrap_err();
        assert!(
            matches!(
                err,
                LoadError::DoesNotFit {
                    region: Region::Initrd,
                    ..
                }
            ),
            "{err}"
        );
        // A raw kernel in less RAM than its load offset.
        let err = load(&cfg(b"raw", None, 0x1000), &mut ram(0x1000)).unwrap_err();
        assert!(
            matches!(
                err,
                LoadError::DoesNotFit {
                    region: Region::Kernel,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn memory_smaller_than_promised_is_an_error_not_a_panic() {
        let kernel = image(0x4000, 0, 0x1_0000, 0);
        let err = load(&cfg(&kernel, None, 64 * MIB), &mut ram(MIB)).unwrap_err();
        assert!(matches!(err, LoadError::Memory(_)), "{err}");
    }

    #[test]
    fn vcpu_counts_outside_1_to_max_are_refused() {
        let kernel = image(0x4000, 0, 0x1_0000, 0);
        for vcpus in [0, MAX_VCPUS as u32 + 1, 200, u32::MAX] {
            let c = GuestConfig {
                vcpus,
                ..cfg(&kernel, None, 16 * MIB)
            };
            assert_eq!(
                load(&c, &mut ram(16 * MIB)),
                Err(LoadError::BadVcpuCount(vcpus))
            );
        }
        let c = GuestConfig {
            vcpus: MAX_VCPUS as u32,
            ..cfg(&kernel, None, 16 * MIB)
        };
        assert!(load(&c, &mut ram(16 * MIB)).is_ok());
    }

    #[test]
    fn other_bad_inputs_are_refused() {
        let kernel = image(0x4000, 0, 0x1_0000, 0);
        let mut mem = ram(MIB);
        assert_eq!(
            load(&cfg(&kernel, None, 0), &mut mem),
            Err(LoadError::BadMemorySize(0))
        );
        assert_eq!(
            load(&cfg(&kernel, None, u64::MAX), &mut mem),
            Err(LoadError::BadMemorySize(u64::MAX))
        );
        assert_eq!(
            load(&cfg(&[], None, 16 * MIB), &mut mem),
            Err(LoadError::EmptyKernel)
        );
        let be = image(0x4000, 0, 0x1_0000, 1);
        assert_eq!(
            load(&cfg(&be, None, 16 * MIB), &mut mem),
            Err(LoadError::Image(ImageError::BigEndian))
        );
    }

    #[test]
    fn a_device_tree_too_big_for_the_raw_gap_is_refused() {
        // A command line bigger than 0x80000 bytes makes the tree overlap a raw kernel.
        let cmdline = "x".repeat(RAW_KERNEL_OFFSET as usize);
        let c = GuestConfig {
            cmdline: &cmdline,
            ..cfg(b"raw kernel", None, 16 * MIB)
        };
        let err = load(&c, &mut ram(16 * MIB)).unwrap_err();
        assert!(
            matches!(
                err,
                LoadError::DeviceTreeTooLarge {
                    limit: RAW_KERNEL_OFFSET,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn machine_options_reach_the_device_tree() {
        let kernel = image(0x4000, 0, 0x1_0000, 0);
        let opts = MachineOptions {
            psci_method: PsciMethod::Smc,
            devices: DeviceSet::PL011.with(DeviceSet::VIRTIO_BLK),
        };
        let mut mem = ram(16 * MIB);
        let info = load_with(&cfg(&kernel, None, 16 * MIB), &opts, &mut mem).unwrap();
        let dtb = read(&mem, info.dtb, info.dtb_size as usize);
        let fdt = ::fdt::Fdt::new(&dtb).unwrap();
        let method = fdt.find_node("/psci").unwrap().property("method").unwrap();
        assert_eq!(method.as_str(), Some("smc"));
        let blk = VirtioMmioSlot(VirtioKind::Blk.slot()).base().unwrap();
        assert!(fdt
            .find_node(&alloc::format!("/virtio_mmio@{:x}", blk.raw()))
            .is_some());
        let virtio = fdt
            .all_nodes()
            .filter(|n| n.name.starts_with("virtio_mmio@"))
            .count();
        assert_eq!(virtio, 1, "only the set's virtio devices");
        assert!(fdt.find_node("/pl011@9000000").is_some());
        assert!(fdt.find_node("/pl031@9010000").is_none(), "not in the set");
    }

    #[test]
    fn every_device_of_the_set_and_no_uart_without_it() {
        let kernel = image(0x4000, 0, 0x1_0000, 0);
        let opts = MachineOptions {
            psci_method: PsciMethod::Hvc,
            devices: DeviceSet::ALL.without(DeviceSet::PL011),
        };
        let mut mem = ram(16 * MIB);
        let info = load_with(&cfg(&kernel, None, 16 * MIB), &opts, &mut mem).unwrap();
        let dtb = read(&mem, info.dtb, info.dtb_size as usize);
        let fdt = ::fdt::Fdt::new(&dtb).unwrap();
        for kind in VirtioKind::ALL {
            let base = VirtioMmioSlot(kind.slot()).base().unwrap();
            let node = fdt
                .find_node(&alloc::format!("/virtio_mmio@{:x}", base.raw()))
                .unwrap_or_else(|| panic!("no node for {kind:?}"));
            let irq = node.property("interrupts").unwrap().value;
            assert_eq!(
                u32::from_be_bytes(irq[4..8].try_into().unwrap()) + 32,
                kind.intid().0
            );
        }
        assert!(fdt.find_node("/pl011@9000000").is_none());
    }

    /// Found by the `image_loader` fuzz target: with RAM that is not a multiple of 4 MiB,
    /// half of it is not 2 MiB aligned, and the initrd went there unaligned, although
    /// [`INITRD_ALIGN`] is its documented alignment.
    #[test]
    fn initrd_high_spot_keeps_initrd_align() {
        let kernel = [0x1fu8; 0x100];
        let initrd = [0xa5u8; 0x1000];
        let info = load(&cfg(&kernel, Some(&initrd), 159 * MIB), &mut ram(159 * MIB)).unwrap();
        let (start, _) = info.initrd.unwrap();
        // Half of 159 MiB is 79.5 MiB: the initrd goes at 78 MiB.
        assert_eq!(start.raw() - RAM_BASE.raw(), 78 * MIB, "initrd at {start}");
        assert_eq!((start.raw() - RAM_BASE.raw()) % INITRD_ALIGN, 0);
    }
}
