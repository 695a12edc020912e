//! The VMM's stage-1 translation: an identity map of its view (its RAM and the guest
//! windows, cacheable and inner-shareable, so that its spinlocks and data are coherent
//! between the physical CPUs its vCPUs run on; the host devices' pages as device memory). 39-bit VA, 4 KiB granule, one level-1 table of
//! 1 GiB blocks; the core's stage 2 decides what really exists behind them.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{MAIR_EL1, SCTLR_EL1, TCR_EL1, TTBR0_EL1};
use abi::vmm::{GUEST_WINDOW_BASE, GUEST_WINDOW_SIZE, HOST_DEVICE_BASE, MAX_VMS, VMM_RAM_BASE};
use tock_registers::interfaces::{ReadWriteable, Writeable};
use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// A VMSAv8-64 level-1 block descriptor, 4 KiB granule (Arm ARM D8.3).
    BLOCK [
        /// Unprivileged execute-never.
        UXN OFFSET(54) NUMBITS(1) [],
        /// Privileged execute-never.
        PXN OFFSET(53) NUMBITS(1) [],
        /// Output address [47:30] of a 1 GiB block.
        ADDR OFFSET(30) NUMBITS(18) [],
        /// Access flag.
        AF OFFSET(10) NUMBITS(1) [],
        /// Shareability (ignored for device memory).
        SH OFFSET(8) NUMBITS(2) [Inner = 3],
        /// EL1 read/write.
        AP OFFSET(6) NUMBITS(2) [ReadWriteEl1 = 0],
        /// MAIR index.
        ATTR OFFSET(2) NUMBITS(3) [Normal = 0, Device = 1],
        /// Block (0) at level 1.
        TYPE OFFSET(1) NUMBITS(1) [Block = 0],
        /// Valid.
        VALID OFFSET(0) NUMBITS(1) []
    ]
}

const GIB_SHIFT: u64 = 30;
const VA_BITS: u64 = 39;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut L1: Table = Table([0; 512]);

fn block(gib: u64, exec: bool) -> u64 {
    let mut d = BLOCK::VALID::SET
        + BLOCK::TYPE::Block
        + BLOCK::ATTR::Normal
        + BLOCK::AP::ReadWriteEl1
        + BLOCK::SH::Inner
        + BLOCK::AF::SET
        + BLOCK::ADDR.val(gib)
        + BLOCK::UXN::SET;
    if !exec {
        d += BLOCK::PXN::SET;
    }
    d.value
}

/// A gigabyte of device memory (Device-nGnRE, never executable).
fn device_block(gib: u64) -> u64 {
    (BLOCK::VALID::SET
        + BLOCK::TYPE::Block
        + BLOCK::ATTR::Device
        + BLOCK::AP::ReadWriteEl1
        + BLOCK::AF::SET
        + BLOCK::ADDR.val(gib)
        + BLOCK::UXN::SET
        + BLOCK::PXN::SET)
        .value
}

/// Fills the table: the gigabyte of the VMM's RAM (executable), the gigabyte of the host
/// devices it drives (device memory) and every guest window.
///
/// # Safety
/// Once, on CPU 0, before any CPU enables its MMU.
pub unsafe fn build_tables() {
    // SAFETY: the caller guarantees exclusive access.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(L1) };
    let own = VMM_RAM_BASE.0 >> GIB_SHIFT;
    t.0[own as usize] = block(own, true);
    let devices = HOST_DEVICE_BASE >> GIB_SHIFT;
    t.0[devices as usize] = device_block(devices);
    let first = GUEST_WINDOW_BASE >> GIB_SHIFT;
    let last = (GUEST_WINDOW_BASE + MAX_VMS as u64 * GUEST_WINDOW_SIZE) >> GIB_SHIFT;
    for g in first..last.min(512) {
        t.0[g as usize] = block(g, false);
    }
}

/// Turns this CPU's MMU and caches on.
///
/// # Safety
/// After [`build_tables`].
pub unsafe fn enable() {
    MAIR_EL1.write(
        MAIR_EL1::Attr0_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL1::Attr0_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL1::Attr1_Device::nonGathering_nonReordering_EarlyWriteAck,
    );
    TCR_EL1.write(
        TCR_EL1::T0SZ.val(64 - VA_BITS)
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::SH0::Inner
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::IPS::Bits_40
            + TCR_EL1::EPD1::DisableTTBR1Walks,
    );
    TTBR0_EL1.set_baddr(core::ptr::addr_of!(L1) as u64);
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
    SCTLR_EL1.modify(SCTLR_EL1::M::Enable + SCTLR_EL1::C::Cacheable + SCTLR_EL1::I::Cacheable);
    barrier::isb(barrier::SY);
}
