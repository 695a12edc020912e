//! Stage-2 translation: a VM's guest-physical to host-physical map (Arm ARM D8, "VMSAv8-64
//! stage 2").
//!
//! 4 KiB granule; the IPA is 40 bits (as KVM's default) or the machine's PA size if smaller,
//! walked from level 1 with concatenated root tables where the IPA needs more than one.
//! Guest RAM is mapped with 2 MiB blocks. Emulated devices are left unmapped, so that every
//! access to them is a stage-2 data abort the core decodes.

use crate::arch::regs::{VTCR, VTTBR};
use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
use abi::{GuestPhysAddr, HostPhysAddr};
use alloc::alloc::{alloc_zeroed, Layout};
use tock_registers::interfaces::Readable;
use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// A stage-2 block or table descriptor, 4 KiB granule (D8.3.1, D8.5.5).
    pub S2_DESC [
        /// Execute-never (XN[1:0]; 0 = executable at EL1 and EL0).
        XN OFFSET(53) NUMBITS(2) [Executable = 0, Never = 0b10],
        /// Output address [47:12].
        ADDR OFFSET(12) NUMBITS(36) [],
        /// Access flag.
        AF OFFSET(10) NUMBITS(1) [],
        /// Shareability.
        SH OFFSET(8) NUMBITS(2) [Inner = 3],
        /// Stage-2 access permissions.
        S2AP OFFSET(6) NUMBITS(2) [ReadOnly = 1, ReadWrite = 3],
        /// Stage-2 memory attributes (FWB = 0): Normal, outer and inner write-back.
        /// Device-nGnRE for a device's registers.
        MEMATTR OFFSET(2) NUMBITS(4) [NormalWriteBack = 0b1111, DeviceNGnRE = 0b0001],
        /// Levels 1-2: 1 = table, 0 = block. Level 3: 1 = page (the same bit as a table).
        TYPE OFFSET(1) NUMBITS(1) [Block = 0, Table = 1],
        /// Valid.
        VALID OFFSET(0) NUMBITS(1) []
    ]
}

const ENTRIES: usize = 512;
const TABLE_BYTES: usize = 4096;
const L1_SHIFT: u32 = 30;
const L2_SHIFT: u32 = 21;
const L3_SHIFT: u32 = 12;
/// The size of a level-3 page.
pub const PAGE_SIZE: u64 = 1 << L3_SHIFT;
/// The size of a level-2 block.
pub const BLOCK_SIZE: u64 = 1 << L2_SHIFT;
/// The largest IPA size used.
const MAX_IPA_BITS: u32 = 40;
/// Smallest IPA size a level-1 start supports (one level-1 entry per GiB... 32 bits = 4).
const MIN_IPA_BITS: u32 = 32;

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage2Error {
    /// Addresses or size not 2 MiB-aligned.
    Unaligned,
    /// The IPA range exceeds the IPA size.
    OutOfRange,
    /// No memory for a table.
    NoMemory,
    /// The machine's PA size is below what this code supports.
    PaTooSmall,
    /// The range is already mapped as a block.
    Overlap,
}

/// One VM's stage-2 tables.
pub struct Stage2 {
    root: *mut u64,
    ipa_bits: u32,
    pa_range: u64,
}

// SAFETY: the tables are written only while the VM is built (one CPU), then read by the
// hardware walker; the raw pointer is just their owned address.
unsafe impl Send for Stage2 {}
// SAFETY: as above.
unsafe impl Sync for Stage2 {}

fn pa_bits(pa_range: u64) -> u32 {
    match pa_range {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}

fn new_table(bytes: usize) -> Result<*mut u64, Stage2Error> {
    let layout = Layout::from_size_align(bytes, bytes).map_err(|_| Stage2Error::NoMemory)?;
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { alloc_zeroed(layout) } as *mut u64;
    if p.is_null() {
        Err(Stage2Error::NoMemory)
    } else {
        Ok(p)
    }
}

impl Stage2 {
    /// Empty tables sized for this machine.
    pub fn new() -> Result<Self, Stage2Error> {
        let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101);
        let ipa_bits = pa_bits(pa_range).min(MAX_IPA_BITS);
        if ipa_bits < MIN_IPA_BITS {
            return Err(Stage2Error::PaTooSmall);
        }
        let l1_entries = 1usize << (ipa_bits - L1_SHIFT);
        let root_tables = l1_entries.div_ceil(ENTRIES);
        let root = new_table(root_tables * TABLE_BYTES)?;
        Ok(Self {
            root,
            ipa_bits,
            pa_range,
        })
    }

    /// Maps `size` bytes of normal, cacheable memory at `ipa` to `pa`, read/write/execute.
    pub fn map_ram(
        &mut self,
        ipa: GuestPhysAddr,
        pa: HostPhysAddr,
        size: u64,
    ) -> Result<(), Stage2Error> {
        self.map_blocks(ipa, pa, size, S2_DESC::S2AP::ReadWrite)
    }

    /// Maps `size` bytes of normal, cacheable memory at `ipa` to `pa`, readable and executable
    /// but not writable: a write is a stage-2 permission fault (flash in read-array mode).
    pub fn map_rom(
        &mut self,
        ipa: GuestPhysAddr,
        pa: HostPhysAddr,
        size: u64,
    ) -> Result<(), Stage2Error> {
        self.map_blocks(ipa, pa, size, S2_DESC::S2AP::ReadOnly)
    }

    /// Removes the 2 MiB blocks mapped over `[ipa, ipa + size)`; the caller invalidates the
    /// TLBs (the entries may be cached on every CPU that ran the VM).
    pub fn unmap_blocks(&mut self, ipa: GuestPhysAddr, size: u64) -> Result<(), Stage2Error> {
        if !ipa.0.is_multiple_of(BLOCK_SIZE) || !size.is_multiple_of(BLOCK_SIZE) {
            return Err(Stage2Error::Unaligned);
        }
        let end = ipa.0.checked_add(size).ok_or(Stage2Error::OutOfRange)?;
        if end > 1u64 << self.ipa_bits {
            return Err(Stage2Error::OutOfRange);
        }
        let mut a = ipa.0;
        while a < end {
            let l1 = (a >> L1_SHIFT) as usize;
            // SAFETY: `l1` < root_tables * ENTRIES because `a` < 2^ipa_bits.
            let l1e = unsafe { *self.root.add(l1) };
            if l1e & S2_DESC::VALID::SET.value != 0 && l1e & S2_DESC::TYPE::Table.value != 0 {
                let l2 = (l1e & S2_DESC::ADDR.mask << S2_DESC::ADDR.shift) as *mut u64;
                let idx = ((a >> L2_SHIFT) as usize) % ENTRIES;
                // SAFETY: `l2` is a level-2 table this code allocated; idx < ENTRIES.
                let e = unsafe { &mut *l2.add(idx) };
                if *e & S2_DESC::TYPE::Table.value == 0 {
                    *e = 0;
                } else {
                    return Err(Stage2Error::Overlap);
                }
            }
            a += BLOCK_SIZE;
        }
        super::cpu::dsb_sy();
        Ok(())
    }

    fn map_blocks(
        &mut self,
        ipa: GuestPhysAddr,
        pa: HostPhysAddr,
        size: u64,
        access: tock_registers::fields::FieldValue<u64, S2_DESC::Register>,
    ) -> Result<(), Stage2Error> {
        if !ipa.0.is_multiple_of(BLOCK_SIZE)
            || !pa.0.is_multiple_of(BLOCK_SIZE)
            || !size.is_multiple_of(BLOCK_SIZE)
        {
            return Err(Stage2Error::Unaligned);
        }
        let end = ipa.0.checked_add(size).ok_or(Stage2Error::OutOfRange)?;
        if end > 1u64 << self.ipa_bits {
            return Err(Stage2Error::OutOfRange);
        }
        let mut off = 0;
        while off < size {
            let a = ipa.0 + off;
            let l1 = (a >> L1_SHIFT) as usize;
            // SAFETY: `l1` < root_tables * ENTRIES because `a` < 2^ipa_bits.
            let l1e = unsafe { &mut *self.root.add(l1) };
            if *l1e & S2_DESC::VALID::SET.value == 0 {
                let t = new_table(TABLE_BYTES)?;
                *l1e = (S2_DESC::VALID::SET
                    + S2_DESC::TYPE::Table
                    + S2_DESC::ADDR.val(t as u64 >> 12))
                .value;
            }
            let l2 =
                ((*l1e & S2_DESC::ADDR.mask << S2_DESC::ADDR.shift) as *mut u64).wrapping_add(0);
            let idx = ((a >> L2_SHIFT) as usize) % ENTRIES;
            let block = (S2_DESC::VALID::SET
                + S2_DESC::TYPE::Block
                + S2_DESC::MEMATTR::NormalWriteBack
                + access
                + S2_DESC::SH::Inner
                + S2_DESC::AF::SET
                + S2_DESC::XN::Executable
                + S2_DESC::ADDR.val((pa.0 + off) >> 12))
            .value;
            // SAFETY: `l2` is a level-2 table this code allocated; idx < ENTRIES.
            unsafe { *l2.add(idx) = block };
            off += BLOCK_SIZE;
        }
        super::cpu::dsb_sy();
        Ok(())
    }

    /// Maps the 4 KiB page of a device's registers at `ipa` to `pa`, as Device-nGnRE memory,
    /// read/write, never executable. The 2 MiB around `ipa` must not be mapped as a block.
    pub fn map_device_page(
        &mut self,
        ipa: GuestPhysAddr,
        pa: HostPhysAddr,
    ) -> Result<(), Stage2Error> {
        if !ipa.0.is_multiple_of(PAGE_SIZE) || !pa.0.is_multiple_of(PAGE_SIZE) {
            return Err(Stage2Error::Unaligned);
        }
        if ipa.0 >= 1u64 << self.ipa_bits {
            return Err(Stage2Error::OutOfRange);
        }
        let l1 = (ipa.0 >> L1_SHIFT) as usize;
        // SAFETY: `l1` < root_tables * ENTRIES because `ipa` < 2^ipa_bits.
        let l1e = unsafe { &mut *self.root.add(l1) };
        let l2 = Self::next_table(l1e)?;
        let idx2 = ((ipa.0 >> L2_SHIFT) as usize) % ENTRIES;
        // SAFETY: `l2` is a level-2 table this code allocated; idx2 < ENTRIES.
        let l2e = unsafe { &mut *l2.add(idx2) };
        let l3 = Self::next_table(l2e)?;
        let idx3 = ((ipa.0 >> L3_SHIFT) as usize) % ENTRIES;
        let page = (S2_DESC::VALID::SET
            + S2_DESC::TYPE::Table
            + S2_DESC::MEMATTR::DeviceNGnRE
            + S2_DESC::S2AP::ReadWrite
            + S2_DESC::AF::SET
            + S2_DESC::XN::Never
            + S2_DESC::ADDR.val(pa.0 >> L3_SHIFT))
        .value;
        // SAFETY: `l3` is a level-3 table this code allocated; idx3 < ENTRIES.
        unsafe { *l3.add(idx3) = page };
        super::cpu::dsb_sy();
        Ok(())
    }

    /// The table `entry` points to, made (empty) if the entry is invalid; an error if it is a
    /// block.
    fn next_table(entry: &mut u64) -> Result<*mut u64, Stage2Error> {
        if *entry & S2_DESC::VALID::SET.value == 0 {
            let t = new_table(TABLE_BYTES)?;
            *entry =
                (S2_DESC::VALID::SET + S2_DESC::TYPE::Table + S2_DESC::ADDR.val(t as u64 >> 12))
                    .value;
        } else if *entry & S2_DESC::TYPE::Table.value == 0 {
            return Err(Stage2Error::Overlap);
        }
        Ok((*entry & S2_DESC::ADDR.mask << S2_DESC::ADDR.shift) as *mut u64)
    }

    /// VTCR_EL2 for these tables.
    pub fn vtcr(&self) -> u64 {
        (VTCR::RES1::SET
            + VTCR::PS.val(self.pa_range)
            + VTCR::TG0::Granule4KiB
            + VTCR::SH0::Inner
            + VTCR::ORGN0::WriteBackWriteAllocate
            + VTCR::IRGN0::WriteBackWriteAllocate
            + VTCR::SL0::Level1
            + VTCR::T0SZ.val(64 - self.ipa_bits as u64))
        .value
    }

    /// VTTBR_EL2 for these tables and `vmid`.
    pub fn vttbr(&self, vmid: u8) -> u64 {
        (VTTBR::VMID.val(vmid as u64) + VTTBR::BADDR.val(self.root as u64 >> 1)).value
    }
}
