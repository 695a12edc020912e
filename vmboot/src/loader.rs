//! Places a guest in its RAM: the kernel (arm64 Image or raw binary), the initrd and the
//! device tree, and says where the guest starts.
//!
//! The placement is QEMU virt's for `-kernel` (QEMU 7.2, `hw/arm/boot.c`), so a program that
//! boots under `qemu-system-aarch64 -M virt -kernel` finds the same handoff here, for the same
//! RAM size and file. `load_aarch64_image` places the kernel, `arm_setup_direct_kernel_boot`
//! the initrd and the device tree:
//!
//! | what          | where, from `base` = [`RAM_BASE`]                                         |
//! |---------------|---------------------------------------------------------------------------|
//! | Image kernel  | `base + text_offset`, plus 2 MiB if `text_offset` < 4 KiB (QEMU's own boot stub owns RAM base); a pre-3.17 header (`image_size` 0) counts as `text_offset` 0x80000 |
//! | raw kernel    | `base + 0x80000` (`KERNEL64_LOAD_ADDR`)                                   |
//! | `kernel_end`  | load address + an Image's `image_size` (bss included), or the file's length |
//! | initrd        | `align_up(max(base + min(mem / 2, 128 MiB), kernel_end), 4 KiB)`         |
//! | device tree   | `align_up(initrd start + initrd length, 2 MiB)`; with no initrd, its length is 0 |
//!
//! Nothing moves out of the way: an initrd or a device tree that does not fit in RAM where
//! the rule puts it is an error, as it is for QEMU. The 4 KiB is QEMU's `TARGET_PAGE_ALIGN`
//! for an Armv8 CPU; the 2 MiB is its alignment of an AArch64 device tree (the kernel's early
//! mapping of it covers the 2 MiB block around it). At entry x0 = the device tree, x1 = x2 =
//! x3 = 0, PC = the load address, for an Image and a raw binary alike (QEMU's
//! `bootloader_aarch64` stub does this; rhyve sets the registers directly).
//!
//! Nothing here assumes Linux: the header says where an Image goes, whoever wrote it
//! (FreeBSD's `kernel.bin` carries the same header).
//!
//! [`DtbPlacement::RamBase`] instead puts the tree at RAM base, below the kernel, as QEMU
//! does for firmware (`arm_setup_firmware_boot`), for boots that start firmware later.
//!
//! A VM that boots firmware ([`load_firmware`]) gets only the tree, at RAM base, as QEMU virt
//! gives `-bios` firmware: the firmware itself runs from flash at 0 (the core maps it there),
//! and the boot vCPU starts at 0 with x0 = 0 (the CPU's reset state; firmware for QEMU virt
//! looks for the tree at RAM base).

use crate::fdt::{self, DeviceTreeConfig, FdtError, PsciMethod, VirtioMmioSlot};
use crate::image::{self, ImageError, KernelKind};
use crate::memory::{GuestMemory, MemoryError};
use abi::layout::{FLASH_BASE, MAX_VCPUS, RAM_BASE};
use abi::vmm::{DeviceSet, VirtioKind};
use abi::GuestPhysAddr;
use core::fmt;

/// Offset from [`RAM_BASE`] of a raw kernel (QEMU's `KERNEL64_LOAD_ADDR`).
pub const RAW_KERNEL_OFFSET: u64 = 0x8_0000;
/// An Image whose `text_offset` is below this goes 2 MiB higher: QEMU keeps the bottom of RAM
/// for its boot stub (`BOOTLOADER_MAX_SIZE`).
pub const BOOT_STUB_SIZE: u64 = 4 << 10;
/// How much higher such an Image goes.
pub const IMAGE_LOW_SHIFT: u64 = 2 << 20;
/// Alignment of the initrd (QEMU's `TARGET_PAGE_ALIGN`).
pub const INITRD_ALIGN: u64 = 4 << 10;
/// The initrd is placed no higher than this far into RAM (unless the kernel reaches past it).
pub const INITRD_MAX_OFFSET: u64 = 128 << 20;
/// Alignment of the device tree after the initrd.
pub const DTB_ALIGN: u64 = 2 << 20;

/// Where the device tree goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtbPlacement {
    /// After the initrd, 2 MiB aligned: QEMU virt's `-kernel` boot.
    #[default]
    AfterInitrd,
    /// At RAM base, below the kernel: where QEMU puts it for firmware (`-bios`).
    RamBase,
}

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
    /// Where the device tree goes.
    pub dtb: DtbPlacement,
}

impl Default for MachineOptions {
    /// PSCI over `hvc`, the PL011, no virtio device, the device tree after the initrd.
    fn default() -> Self {
        Self {
            psci_method: PsciMethod::Hvc,
            devices: DeviceSet::PL011,
            dtb: DtbPlacement::AfterInitrd,
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
    /// included; a raw binary's length); for firmware, its place in flash and its length.
    pub kernel: (GuestPhysAddr, u64),
    /// The initrd's address and length, if there is one.
    pub initrd: Option<(GuestPhysAddr, u64)>,
    /// The device tree's size in bytes.
    pub dtb_size: u64,
    /// x0 at entry: the device tree's address for a kernel, 0 for firmware.
    pub x0: u64,
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
    /// The device tree at RAM base would overlap the kernel or the initrd.
    DeviceTreeTooLarge {
        /// Its size.
        size: u64,
        /// The room below the kernel (and the initrd).
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

/// Where a guest's parts go in its RAM, before the device tree is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The kernel's load address (where the boot vCPU starts) and the memory it occupies.
    pub kernel: (GuestPhysAddr, u64),
    /// The initrd's address and length, if there is one.
    pub initrd: Option<(GuestPhysAddr, u64)>,
    /// The device tree's address.
    pub dtb: GuestPhysAddr,
    /// The end of guest RAM.
    pub ram_end: GuestPhysAddr,
}

/// Places a kernel file and an initrd of `initrd_len` bytes (0: none) in `mem_size` bytes of
/// RAM, by the rules of the module documentation. Writes nothing; the device tree's own size
/// is checked by [`load_with`], which makes it.
pub fn layout(
    kernel: &[u8],
    initrd_len: u64,
    mem_size: u64,
    dtb: DtbPlacement,
) -> Result<Layout, LoadError> {
    let ram_end = match RAM_BASE.checked_add(mem_size) {
        Some(end) if mem_size != 0 => end,
        _ => return Err(LoadError::BadMemorySize(mem_size)),
    };
    if kernel.is_empty() {
        return Err(LoadError::EmptyKernel);
    }
    let beyond = |region, start: GuestPhysAddr, size| LoadError::DoesNotFit {
        region,
        start,
        size,
        ram_end,
    };

    // Kernel: where, and how much memory it occupies (load_aarch64_image).
    let (offset, footprint) = match image::inspect(kernel)? {
        KernelKind::Image(h) if h.text_offset < BOOT_STUB_SIZE => {
            (h.text_offset + IMAGE_LOW_SHIFT, h.image_size)
        }
        KernelKind::Image(h) => (h.text_offset, h.image_size),
        KernelKind::Raw => (RAW_KERNEL_OFFSET, kernel.len() as u64),
    };
    let kernel_start =
        RAM_BASE
            .checked_add(offset)
            .ok_or(beyond(Region::Kernel, RAM_BASE, footprint))?;
    let kernel_end = fit(Region::Kernel, kernel_start, footprint, ram_end)?;

    // Initrd: half of RAM in, at most 128 MiB, but never below the kernel's end
    // (arm_setup_direct_kernel_boot). Computed with no initrd too: the device tree follows it.
    let high = RAM_BASE
        .checked_add((mem_size / 2).min(INITRD_MAX_OFFSET))
        .ok_or(beyond(Region::Initrd, RAM_BASE, initrd_len))?;
    let initrd_start = high.max(kernel_end).align_up(INITRD_ALIGN).ok_or(beyond(
        Region::Initrd,
        kernel_end,
        initrd_len,
    ))?;
    let initrd_end = fit(Region::Initrd, initrd_start, initrd_len, ram_end)?;

    let dtb = match dtb {
        DtbPlacement::AfterInitrd => {
            initrd_end
                .align_up(DTB_ALIGN)
                .ok_or(beyond(Region::DeviceTree, initrd_end, 0))?
        }
        DtbPlacement::RamBase => RAM_BASE,
    };
    Ok(Layout {
        kernel: (kernel_start, footprint),
        initrd: (initrd_len != 0).then_some((initrd_start, initrd_len)),
        dtb,
        ram_end,
    })
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
    let initrd_data = cfg.initrd.filter(|i| !i.is_empty());
    let initrd_len = initrd_data.map_or(0, |d| d.len() as u64);
    let at = layout(cfg.kernel, initrd_len, cfg.mem_size, machine.dtb)?;
    let (kernel_start, _) = at.kernel;

    let (slots, n) = machine.devices.slots();
    let mut virtio = [VirtioMmioSlot(0); VirtioKind::ALL.len()];
    for (dst, src) in virtio.iter_mut().zip(&slots[..n]) {
        *dst = VirtioMmioSlot(*src);
    }
    let dtb = fdt::generate(&DeviceTreeConfig {
        vcpus: cfg.vcpus,
        mem_size: cfg.mem_size,
        cmdline: cfg.cmdline,
        initrd: at.initrd,
        psci_method: machine.psci_method,
        virtio_mmio: &virtio[..n],
        pl011: machine.devices.contains(DeviceSet::PL011),
        pl031: machine.devices.contains(DeviceSet::PL031),
        flash: machine.devices.contains(DeviceSet::FLASH),
    })?;
    let dtb_size = dtb.len() as u64;
    if machine.dtb == DtbPlacement::RamBase {
        // At RAM base the tree must end below the kernel and the initrd.
        let below = at.initrd.map_or(kernel_start, |(i, _)| i.min(kernel_start));
        let limit = below.raw() - RAM_BASE.raw();
        if dtb_size > limit {
            return Err(LoadError::DeviceTreeTooLarge {
                size: dtb_size,
                limit,
            });
        }
    }
    fit(Region::DeviceTree, at.dtb, dtb_size, at.ram_end)?;

    mem.write(kernel_start, cfg.kernel)?;
    if let (Some((start, _)), Some(data)) = (at.initrd, initrd_data) {
        mem.write(start, data)?;
    }
    mem.write(at.dtb, &dtb)?;

    Ok(BootInfo {
        entry: kernel_start,
        dtb: at.dtb,
        kernel: at.kernel,
        initrd: at.initrd,
        dtb_size,
        x0: at.dtb.raw(),
    })
}

/// Loads a VM that boots firmware: the device tree at RAM base, and nothing else (the
/// firmware is in the VM's flash, and finds the OS on the VM's disk). The tree has no initrd
/// and an empty command line; it describes the flash banks if `machine.devices` has them.
pub fn load_firmware(
    vcpus: u32,
    mem_size: u64,
    firmware_len: u64,
    machine: &MachineOptions,
    mem: &mut dyn GuestMemory,
) -> Result<BootInfo, LoadError> {
    if usize::try_from(vcpus).map_or(true, |n| !(1..=MAX_VCPUS).contains(&n)) {
        return Err(LoadError::BadVcpuCount(vcpus));
    }
    let ram_end = match RAM_BASE.checked_add(mem_size) {
        Some(end) if mem_size != 0 => end,
        _ => return Err(LoadError::BadMemorySize(mem_size)),
    };
    let (slots, n) = machine.devices.slots();
    let mut virtio = [VirtioMmioSlot(0); VirtioKind::ALL.len()];
    for (dst, src) in virtio.iter_mut().zip(&slots[..n]) {
        *dst = VirtioMmioSlot(*src);
    }
    let dtb = fdt::generate(&DeviceTreeConfig {
        vcpus,
        mem_size,
        cmdline: "",
        initrd: None,
        psci_method: machine.psci_method,
        virtio_mmio: &virtio[..n],
        pl011: machine.devices.contains(DeviceSet::PL011),
        pl031: machine.devices.contains(DeviceSet::PL031),
        flash: machine.devices.contains(DeviceSet::FLASH),
    })?;
    let dtb_size = dtb.len() as u64;
    fit(Region::DeviceTree, RAM_BASE, dtb_size, ram_end)?;
    mem.write(RAM_BASE, &dtb)?;
    Ok(BootInfo {
        entry: FLASH_BASE,
        dtb: RAM_BASE,
        kernel: (FLASH_BASE, firmware_len),
        initrd: None,
        dtb_size,
        x0: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image;
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
    fn image_goes_at_text_offset_or_2mib_up_and_dtb_after_the_initrd_spot() {
        let kernel = image(0x4000, 0, 0x1_0000, modern_flags());
        let mut mem = ram(64 * MIB);
        let info = load(&cfg(&kernel, None, 64 * MIB), &mut mem).unwrap();
        assert_eq!(info.entry, GuestPhysAddr(0x4020_0000));
        assert_eq!(info.kernel, (GuestPhysAddr(0x4020_0000), 0x1_0000));
        // No initrd: the tree goes where it would start, half of 64 MiB in.
        assert_eq!(info.dtb, GuestPhysAddr(0x4200_0000));
        assert_eq!(info.initrd, None);
        assert_eq!(read(&mem, info.entry, kernel.len()), kernel);
        let dtb = read(&mem, info.dtb, info.dtb_size as usize);
        let fdt = ::fdt::Fdt::new(&dtb).unwrap();
        assert_eq!(fdt.chosen().bootargs(), Some("console=ttyAMA0"));
        assert_eq!(fdt.find_node("/cpus").unwrap().children().count(), 2);

        // A text_offset of 4 KiB or more is taken as it is, from RAM base.
        let kernel = image(0x4000, 0x8_0000, 0x4000, 0);
        let info = load(&cfg(&kernel, None, 64 * MIB), &mut ram(64 * MIB)).unwrap();
        assert_eq!(info.entry, GuestPhysAddr(0x4008_0000));
    }

    #[test]
    fn raw_binary_goes_at_0x80000() {
        let kernel: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut mem = ram(16 * MIB);
        let info = load(&cfg(&kernel, None, 16 * MIB), &mut mem).unwrap();
        assert_eq!(info.entry, GuestPhysAddr(0x4008_0000));
        assert_eq!(info.kernel, (GuestPhysAddr(0x4008_0000), 300));
        assert_eq!(read(&mem, info.entry, kernel.len()), kernel);
        assert_eq!(info.dtb, GuestPhysAddr(0x4080_0000));
        assert_eq!(read(&mem, info.dtb, 4), [0xd0, 0x0d, 0xfe, 0xed]);
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

        // A kernel whose bss reaches past the halfway mark: the next page after it, counted
        // by image_size, not by the file's length.
        let big = image(0x4000, 0, 20 * MIB + 1, modern_flags());
        let info = load(&cfg(&big, Some(&initrd), 32 * MIB), &mut ram(32 * MIB)).unwrap();
        assert_eq!(info.initrd.unwrap().0, GuestPhysAddr(0x4160_1000));
        assert_eq!(info.dtb, GuestPhysAddr(0x4180_0000));
    }

    #[test]
    fn initrd_too_big_for_its_spot_is_refused_not_moved() {
        // QEMU refuses it too ("too big to fit into RAM after the kernel").
        let kernel = image(0x4000, 0, 0x1_0000, modern_flags());
        let initrd = vec![1u8; (20 * MIB) as usize];
        let err = load(&cfg(&kernel, Some(&initrd), 32 * MIB), &mut ram(32 * MIB)).unwrap_err();
        assert_eq!(
            err,
            LoadError::DoesNotFit {
                region: Region::Initrd,
                start: GuestPhysAddr(0x4100_0000),
                size: 20 * MIB,
                ram_end: GuestPhysAddr(0x4200_0000),
            }
        );
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
    fn a_device_tree_at_ram_base_must_end_below_the_kernel() {
        // A command line bigger than 0x80000 bytes makes the tree overlap a raw kernel.
        let cmdline = "x".repeat(RAW_KERNEL_OFFSET as usize);
        let c = GuestConfig {
            cmdline: &cmdline,
            ..cfg(b"raw kernel", None, 16 * MIB)
        };
        let at_base = MachineOptions {
            dtb: DtbPlacement::RamBase,
            ..MachineOptions::default()
        };
        let small = GuestConfig { cmdline: "", ..c };
        let info = load_with(&small, &at_base, &mut ram(16 * MIB)).unwrap();
        assert_eq!(info.dtb, RAM_BASE);
        // After the initrd spot, the same tree fits.
        assert!(load(&c, &mut ram(16 * MIB)).is_ok());
        let err = load_with(&c, &at_base, &mut ram(16 * MIB)).unwrap_err();
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
            dtb: DtbPlacement::AfterInitrd,
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
            dtb: DtbPlacement::AfterInitrd,
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

    /// RAM that is not a multiple of 4 MiB: half of it is not 2 MiB aligned. The initrd goes
    /// there all the same (it is page aligned), and the tree to the next 2 MiB.
    #[test]
    fn initrd_high_spot_is_page_aligned_and_the_tree_2mib() {
        let kernel = [0x1fu8; 0x100];
        let initrd = [0xa5u8; 0x1000];
        let info = load(&cfg(&kernel, Some(&initrd), 159 * MIB), &mut ram(159 * MIB)).unwrap();
        let (start, _) = info.initrd.unwrap();
        assert_eq!(start.raw() - RAM_BASE.raw(), 79 * MIB + MIB / 2);
        assert_eq!(info.dtb.raw() - RAM_BASE.raw(), 80 * MIB);
        // Odd RAM sizes: half of it rounded up to a page.
        let info = load(
            &cfg(&kernel, Some(&initrd), 0x100_1001),
            &mut ram(0x100_1001),
        )
        .unwrap();
        assert_eq!(info.initrd.unwrap().0, GuestPhysAddr(0x4080_1000));
    }

    /// A raw kernel (no Image header) padded to `len` bytes.
    fn raw_kernel(len: usize) -> Vec<u8> {
        let mut k = vec![0u8; len];
        k[..4].copy_from_slice(&0x1400_0000u32.to_le_bytes());
        k
    }

    /// QEMU 7.2 (Debian 12's `qemu-system-aarch64`, `-nodefaults -M virt,gic-version=3 -cpu max
    /// -m N -kernel K [-initrd I]`), measured with tests/guests `handoff`, which prints x0,
    /// where it runs and `/chosen`'s initrd range. The kernels: that program padded with zeros
    /// to 256 KiB ("small") or to 70 MiB + 0x123 ("big", more than half of 128 MiB), and the
    /// same program behind an Image header with text_offset 0x7f000 and image_size 80 MiB
    /// ("image", as the `handoff-image` scenario builds it); the initrd 0x12345 bytes.
    #[test]
    fn placement_matches_qemu_virt_measured() {
        const SMALL: usize = 0x4_0000;
        const BIG: usize = 70 << 20 | 0x123;
        const INITRD: u64 = 0x1_2345;
        let mut wrapped = image::header(0x1400_0400, 0x7_f000, 80 * MIB, 0).to_vec();
        wrapped.resize(0x1000 + 0x6310, 0);
        let small = raw_kernel(SMALL);
        let big = raw_kernel(BIG);
        // (RAM MiB, kernel, initrd length, x0, entry, initrd start).
        type Case<'a> = (u64, &'a [u8], u64, u64, u64, u64);
        let cases: [Case; 12] = [
            (128, &small, 0, 0x4400_0000, 0x4008_0000, 0),
            (128, &small, INITRD, 0x4420_0000, 0x4008_0000, 0x4400_0000),
            (512, &small, 0, 0x4800_0000, 0x4008_0000, 0),
            (512, &small, INITRD, 0x4820_0000, 0x4008_0000, 0x4800_0000),
            (1024, &small, 0, 0x4800_0000, 0x4008_0000, 0),
            (1024, &small, INITRD, 0x4820_0000, 0x4008_0000, 0x4800_0000),
            (4096, &small, 0, 0x4800_0000, 0x4008_0000, 0),
            (4096, &small, INITRD, 0x4820_0000, 0x4008_0000, 0x4800_0000),
            (128, &big, 0, 0x4480_0000, 0x4008_0000, 0),
            (128, &big, INITRD, 0x4480_0000, 0x4008_0000, 0x4468_1000),
            (128, &wrapped, 0, 0x4520_0000, 0x4007_f000, 0),
            (512, &wrapped, INITRD, 0x4820_0000, 0x4007_f000, 0x4800_0000),
        ];
        for (mib, kernel, initrd, x0, entry, initrd_at) in cases {
            let at = layout(kernel, initrd, mib * MIB, DtbPlacement::AfterInitrd).unwrap();
            let what = alloc::format!("{mib} MiB, kernel {:#x}, initrd {initrd:#x}", kernel.len());
            assert_eq!(at.dtb, GuestPhysAddr(x0), "x0, {what}");
            assert_eq!(at.kernel.0, GuestPhysAddr(entry), "entry, {what}");
            let want = (initrd != 0).then_some((GuestPhysAddr(initrd_at), initrd));
            assert_eq!(at.initrd, want, "initrd, {what}");
        }
    }

    #[test]
    fn firmware_gets_the_tree_at_ram_base_and_starts_at_0_with_x0_0() {
        let machine = MachineOptions {
            devices: DeviceSet::PL011.with(DeviceSet::FLASH),
            ..MachineOptions::default()
        };
        let mut mem = ram(64 * MIB);
        let info = load_firmware(1, 64 * MIB, 0x1234, &machine, &mut mem).unwrap();
        assert_eq!(info.entry, GuestPhysAddr(0));
        assert_eq!(info.x0, 0);
        assert_eq!(info.dtb, RAM_BASE);
        assert_eq!(info.initrd, None);
        assert_eq!(info.kernel, (GuestPhysAddr(0), 0x1234));
        let dtb = read(&mem, RAM_BASE, info.dtb_size as usize);
        let fdt = ::fdt::Fdt::new(&dtb).unwrap();
        assert!(fdt.find_node("/flash@0").is_some());
        assert_eq!(fdt.chosen().bootargs(), Some(""));
        assert_eq!(
            load_firmware(0, 64 * MIB, 1, &machine, &mut mem),
            Err(LoadError::BadVcpuCount(0))
        );
        let mut tiny = VecMemory::new(RAM_BASE, 16);
        assert!(matches!(
            load_firmware(1, 16, 1, &machine, &mut tiny),
            Err(LoadError::DoesNotFit {
                region: Region::DeviceTree,
                ..
            })
        ));
    }

    #[test]
    fn a_kernel_gets_the_tree_in_x0() {
        let kernel = image(0x4000, 0, 0x1_0000, modern_flags());
        let mut mem = ram(64 * MIB);
        let info = load(&cfg(&kernel, None, 64 * MIB), &mut mem).unwrap();
        assert_eq!(info.x0, info.dtb.raw());
    }
}
