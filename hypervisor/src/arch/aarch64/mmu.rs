//! The EL2 stage-1 translation: an identity map of the machine, RAM cacheable, the rest
//! device memory.
//!
//! The tables live in .bss (there is no heap before the MMU is on, and exclusive accesses on
//! device memory are not allowed). 39-bit VA, 4 KiB granule, walk from level 1: 1 GiB blocks,
//! split into 2 MiB blocks where RAM covers part of a gigabyte.

use super::cpu::{dsb_sy, isb, BootArgs};
use crate::arch::regs::{read_sysreg, write_sysreg, SCTLR_EL2_RES1, TCR_EL2_RES1};
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, SCTLR_EL2, TCR_EL2};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// A VMSAv8-64 stage-1 block or table descriptor, 4 KiB granule (D8.3).
    pub S1_DESC [
        /// Upper attribute: execute-never at EL2.
        XN OFFSET(54) NUMBITS(1) [],
        /// Output address [47:12] (a block's low bits are zero).
        ADDR OFFSET(12) NUMBITS(36) [],
        /// Access flag.
        AF OFFSET(10) NUMBITS(1) [],
        /// Shareability.
        SH OFFSET(8) NUMBITS(2) [Inner = 3],
        /// Access permissions (EL2: 0 = read/write).
        AP OFFSET(6) NUMBITS(2) [ReadWrite = 0],
        /// Index into MAIR_EL2.
        ATTR OFFSET(2) NUMBITS(3) [Device = 0, Normal = 1],
        /// 1 = table (levels 0-2) or page (level 3); 0 = block.
        TYPE OFFSET(1) NUMBITS(1) [Block = 0, Table = 1],
        /// Valid.
        VALID OFFSET(0) NUMBITS(1) []
    ]
}

const ENTRIES: usize = 512;
const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
/// Address bits translated: 39 covers 512 GiB, QEMU virt's RAM and devices included.
const VA_BITS: u64 = 39;
/// Gigabytes that can be split into 2 MiB blocks.
const L2_TABLES: usize = 8;

#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

struct Tables {
    l1: Table,
    l2: [Table; L2_TABLES],
}

static mut TABLES: Tables = Tables {
    l1: Table([0; ENTRIES]),
    l2: [const { Table([0; ENTRIES]) }; L2_TABLES],
};

pub use crate::platform::RamRange;

fn block(addr: u64, normal: bool) -> u64 {
    let attr = if normal {
        S1_DESC::ATTR::Normal + S1_DESC::XN::CLEAR
    } else {
        S1_DESC::ATTR::Device + S1_DESC::XN::SET
    };
    (S1_DESC::VALID::SET
        + S1_DESC::TYPE::Block
        + S1_DESC::AF::SET
        + S1_DESC::SH::Inner
        + S1_DESC::AP::ReadWrite
        + S1_DESC::ADDR.val(addr >> 12)
        + attr)
        .value
}

fn covered(ram: &[RamRange], start: u64, size: u64) -> bool {
    ram.iter()
        .any(|r| start >= r.start && start + size <= r.start + r.size)
}

fn touches(ram: &[RamRange], start: u64, size: u64) -> bool {
    ram.iter()
        .any(|r| start < r.start + r.size && r.start < start + size)
}

/// Builds the identity map and turns on the MMU and caches of this (the primary) CPU.
/// Returns the register values secondaries need.
///
/// # Safety
/// Must run once, on the primary CPU, with the MMU off, before any other CPU runs.
pub unsafe fn enable_primary(ram: &[RamRange]) -> BootArgs {
    // SAFETY: single-threaded boot (the caller's contract); nothing else references TABLES.
    let tables = unsafe { &mut *core::ptr::addr_of_mut!(TABLES) };
    let mut next_l2 = 0;
    for (i, entry) in tables.l1.0.iter_mut().enumerate() {
        let base = i as u64 * GIB;
        *entry = if covered(ram, base, GIB) {
            block(base, true)
        } else if touches(ram, base, GIB) && next_l2 < L2_TABLES {
            let l2 = &mut tables.l2[next_l2];
            next_l2 += 1;
            for (j, e) in l2.0.iter_mut().enumerate() {
                let addr = base + j as u64 * MIB2;
                *e = block(addr, covered(ram, addr, MIB2));
            }
            (S1_DESC::VALID::SET
                + S1_DESC::TYPE::Table
                + S1_DESC::ADDR.val(l2.0.as_ptr() as u64 >> 12))
            .value
        } else {
            block(base, false)
        };
    }

    MAIR_EL2.write(
        MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
            + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
    );
    let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101);
    TCR_EL2.write(
        TCR_EL2::T0SZ.val(64 - VA_BITS)
            + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::SH0::Inner
            + TCR_EL2::TG0::KiB_4
            + TCR_EL2::PS.val(pa_range),
    );
    TCR_EL2.modify(TCR_EL2::TBI::Ignored);
    let tcr =
        read_sysreg!("tcr_el2") | (TCR_EL2_RES1::RES1_31::SET + TCR_EL2_RES1::RES1_23::SET).value;
    write_sysreg!("tcr_el2", tcr);
    let ttbr0 = tables.l1.0.as_ptr() as u64;
    write_sysreg!("ttbr0_el2", ttbr0);
    dsb_sy();
    // SAFETY: invalidating EL2 TLB entries before first use of the new tables.
    unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", options(nostack)) };
    isb();
    let sctlr = (SCTLR_EL2_RES1::B28.val(3)
        + SCTLR_EL2_RES1::B22.val(3)
        + SCTLR_EL2_RES1::B18::SET
        + SCTLR_EL2_RES1::B16::SET
        + SCTLR_EL2_RES1::B11::SET
        + SCTLR_EL2_RES1::B4.val(3))
    .value
        | (SCTLR_EL2::M::Enable
            + SCTLR_EL2::C::Cacheable
            + SCTLR_EL2::I::Cacheable
            + SCTLR_EL2::SA::Enable)
            .value;
    write_sysreg!("sctlr_el2", sctlr);
    isb();
    BootArgs {
        stack_top: 0,
        ttbr0,
        tcr,
        mair: MAIR_EL2.get(),
        sctlr,
        cpu_index: 0,
    }
}
