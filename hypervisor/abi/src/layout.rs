//! The guest machine's physical memory map: QEMU virt's, so that guests written for QEMU virt
//! run unchanged (see the README's design section).

use crate::types::{GuestPhysAddr, IntId};

/// QEMU virt's flash: two banks of CFI flash, the firmware's at 0 and its variables' above.
pub const FLASH_BASE: GuestPhysAddr = GuestPhysAddr(0);
/// Size of one flash bank.
pub const FLASH_BANK_SIZE: u64 = 64 << 20;
/// Number of flash banks.
pub const FLASH_BANKS: u64 = 2;

/// The flash bank `ipa` is in and its offset there, if it is in one.
pub const fn flash_bank(ipa: GuestPhysAddr) -> Option<(usize, u64)> {
    let off = ipa.0.wrapping_sub(FLASH_BASE.0);
    if off < FLASH_BANK_SIZE * FLASH_BANKS {
        Some(((off / FLASH_BANK_SIZE) as usize, off % FLASH_BANK_SIZE))
    } else {
        None
    }
}

/// Base of guest RAM.
pub const RAM_BASE: GuestPhysAddr = GuestPhysAddr(0x4000_0000);

/// GICv3 distributor frame.
pub const GICD_BASE: GuestPhysAddr = GuestPhysAddr(0x0800_0000);
/// Size of the distributor frame.
pub const GICD_SIZE: u64 = 0x1_0000;

/// First GICv3 redistributor (RD_base followed by SGI_base, 64 KiB each).
pub const GICR_BASE: GuestPhysAddr = GuestPhysAddr(0x080A_0000);
/// Size of one vCPU's redistributor (two 64 KiB frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Room QEMU virt leaves for redistributors below the UART; bounds the vCPU count.
pub const GICR_REGION_SIZE: u64 = 0x00F6_0000;
/// Largest vCPU count whose redistributors fit in [`GICR_REGION_SIZE`].
pub const MAX_VCPUS: usize = (GICR_REGION_SIZE / GICR_STRIDE) as usize;

/// PL011 UART.
pub const PL011_BASE: GuestPhysAddr = GuestPhysAddr(0x0900_0000);
/// Size of the PL011's frame.
pub const PL011_SIZE: u64 = 0x1000;
/// The PL011's interrupt (SPI 1).
pub const PL011_INTID: IntId = IntId::spi(1);

/// PL031 real-time clock.
pub const PL031_BASE: GuestPhysAddr = GuestPhysAddr(0x0901_0000);
/// Size of the PL031's frame.
pub const PL031_SIZE: u64 = 0x1000;
/// The PL031's interrupt (SPI 2).
pub const PL031_INTID: IntId = IntId::spi(2);

/// First virtio-mmio slot.
pub const VIRTIO_MMIO_BASE: GuestPhysAddr = GuestPhysAddr(0x0A00_0000);
/// Size of one virtio-mmio slot.
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
/// Number of virtio-mmio slots (as QEMU virt).
pub const VIRTIO_MMIO_SLOTS: u64 = 32;
/// SPI number of virtio-mmio slot 0; slot n uses SPI 16 + n.
pub const VIRTIO_MMIO_SPI_BASE: u32 = 16;

/// Number of SPIs the virtual distributor implements (INTIDs 32..32+NR_SPIS), as QEMU virt.
pub const NR_SPIS: u32 = 256;

/// Virtual timer PPI 11 (INTID 27) — the timer a guest at EL1 normally uses.
pub const VTIMER_INTID: IntId = IntId::ppi(11);
/// EL1 physical timer PPI 14 (INTID 30).
pub const PTIMER_INTID: IntId = IntId::ppi(14);
/// EL2 physical (hypervisor) timer PPI 10 (INTID 26).
pub const HTIMER_INTID: IntId = IntId::ppi(10);
/// Secure physical timer PPI 13 (INTID 29).
pub const STIMER_INTID: IntId = IntId::ppi(13);
/// GIC maintenance interrupt PPI 9 (INTID 25).
pub const MAINTENANCE_INTID: IntId = IntId::ppi(9);

/// The GICR frames of vCPU `index`, if that vCPU can exist.
pub const fn gicr_base(index: usize) -> Option<GuestPhysAddr> {
    if index < MAX_VCPUS {
        Some(GuestPhysAddr(GICR_BASE.0 + GICR_STRIDE * index as u64))
    } else {
        None
    }
}

/// Whether `ipa` belongs to a device the VMM partition models (the flash banks, the PL011,
/// the PL031 and the virtio-mmio slots); the core emulates the GIC itself.
pub const fn vmm_device(ipa: GuestPhysAddr) -> bool {
    let a = ipa.0;
    flash_bank(ipa).is_some()
        || (a >= PL011_BASE.0 && a < PL011_BASE.0 + PL011_SIZE)
        || (a >= PL031_BASE.0 && a < PL031_BASE.0 + PL031_SIZE)
        || (a >= VIRTIO_MMIO_BASE.0
            && a < VIRTIO_MMIO_BASE.0 + VIRTIO_MMIO_STRIDE * VIRTIO_MMIO_SLOTS)
}
