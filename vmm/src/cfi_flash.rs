//! A bank of parallel NOR flash with the Intel/Sharp command set (CFI command set 0x0001), as
//! QEMU's virt machine has at 0x0000_0000 (firmware) and 0x0400_0000 (UEFI variables), as a
//! plain state machine over a [`FlashBacking`].
//!
//! The bank is what QEMU's `virt_flash_create1` (hw/arm/virt.c) builds with
//! `pflash_cfi01` (hw/block/pflash_cfi01.c): two x16 chips side by side on a 32-bit bus
//! ("width" 4, "device-width" 2), little-endian, Intel manufacturer code 0x89 and device code
//! 0x18, 256 KiB erase blocks across the bus (128 KiB in each chip), 64 MiB in all
//! ([`Geometry::QEMU_VIRT`]). Firmware finds the layout through the CFI query table, which
//! [`cfi_table`] fills as `pflash_cfi01_fill_cfi_table` does.
//!
//! Commands are the low byte of the value written, at any offset, as in QEMU's
//! `pflash_write` (the chips see the same command on both halves of the bus; the model does
//! not check that they agree). Where QEMU and the Intel datasheets differ the model follows
//! QEMU, which is what the firmware we boot is tested against, except where QEMU's choice can
//! only hurt a correct driver:
//! - Block erase happens on the 0xD0 confirm, not on the 0x20 setup as in QEMU, and a setup
//!   not followed by a confirm is an improper command sequence (SR.4 and SR.5 set) rather
//!   than a silent return to read-array.
//! - Buffered program collects the data in a write buffer and programs it on the confirm;
//!   QEMU writes each word straight to the array (its own FIXME). A word count larger than
//!   the buffer, data outside the buffer's window, or a missing confirm is an improper
//!   command sequence and programs nothing.
//! - Clear Status (0x50) clears the error bits but leaves SR.7 (ready) set: QEMU clears the
//!   whole register, so a driver polling for ready after a clear would spin forever there.
//!
//! The model has no timing: every operation completes at once and SR.7 always reads as
//! ready. Programs overwrite the addressed bytes (as QEMU's do) rather than only clearing
//! bits. A write-protected bank (the firmware's, QEMU's `ro` with a read-only drive) accepts
//! every command but changes nothing; a program reports SR.4 and an erase SR.5, as QEMU's
//! `pflash_write` does.
//!
//! Accesses of 1, 2, 4 and 8 bytes are accepted at any offset. An 8-byte access is two
//! 4-byte bus cycles, low word first, as QEMU's memory core splits it for this device. Bytes
//! past the end of the bank read as 0 and are not written; other sizes read as 0 and ignore
//! writes. Nothing a guest writes panics the model.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use tock_registers::{register_bitfields, LocalRegisterCopy};

/// Bytes on the bus: two x16 chips side by side (QEMU virt's "width" 4).
pub const BANK_WIDTH: u64 = 4;
/// Bytes each chip drives (QEMU virt's "device-width" 2, also its maximum width).
pub const DEVICE_WIDTH: u64 = 2;
/// Chips in the bank.
const DEVICES: u64 = BANK_WIDTH / DEVICE_WIDTH;
/// How far a query address is shifted to index the CFI table or the identifier codes:
/// query addresses count in bank-wide words (`pflash_cfi_query`: `ctz32(bank_width) +
/// ctz32(max_device_width) - ctz32(device_width)`, with the chips at their maximum width).
const QUERY_SHIFT: u32 = BANK_WIDTH.trailing_zeros();

/// Manufacturer code: Intel (QEMU virt's "id0").
pub const MANUFACTURER_ID: u16 = 0x89;
/// Device code (QEMU virt's "id1").
pub const DEVICE_ID: u16 = 0x18;

/// log2 of one chip's write buffer in bytes (CFI offset 0x2A: 0x0B when the bank is wider
/// than a byte, in `pflash_cfi01_fill_cfi_table`).
const CHIP_WRITE_BUFFER_LOG2: u8 = 0x0B;
/// The bank's write buffer: each chip's, side by side (4 KiB).
pub const WRITE_BUFFER_BYTES: u64 = (1 << CHIP_WRITE_BUFFER_LOG2) * DEVICES;
/// Length of the CFI query table (QEMU's `cfi_table[0x52]`); later offsets read as 0.
pub const CFI_TABLE_LEN: usize = 0x52;

register_bitfields! [u8,
    /// The status register, one per chip (Intel StrataFlash datasheets, "Status Register").
    pub STATUS [
        /// SR.1: a program or erase hit a locked block. Never set: QEMU reports write
        /// protection with SR.4 / SR.5 alone.
        BLOCK_LOCKED OFFSET(1) NUMBITS(1) [],
        /// SR.2: program suspended (not modelled).
        PROGRAM_SUSPENDED OFFSET(2) NUMBITS(1) [],
        /// SR.3: programming voltage too low (there is no VPP pin).
        VPP_LOW OFFSET(3) NUMBITS(1) [],
        /// SR.4: program (or set lock-bit) error; with SR.5, an improper command sequence.
        PROGRAM_ERROR OFFSET(4) NUMBITS(1) [],
        /// SR.5: erase (or clear lock-bit) error; with SR.4, an improper command sequence.
        ERASE_ERROR OFFSET(5) NUMBITS(1) [],
        /// SR.6: erase suspended (not modelled).
        ERASE_SUSPENDED OFFSET(6) NUMBITS(1) [],
        /// SR.7: the write state machine is ready (always, in this timeless model).
        READY OFFSET(7) NUMBITS(1) []
    ]
];

/// The commands the model knows (the low byte of a bus write).
mod cmd {
    /// QEMU's internal read-array value, also accepted as a command (`pflash_write`).
    pub const READ_ARRAY_QEMU: u8 = 0x00;
    /// Word program setup (alternate code).
    pub const PROGRAM_ALT: u8 = 0x10;
    /// Block erase setup.
    pub const BLOCK_ERASE: u8 = 0x20;
    /// Word program setup.
    pub const PROGRAM: u8 = 0x40;
    /// Clear status register.
    pub const CLEAR_STATUS: u8 = 0x50;
    /// Block lock / unlock / lock-down setup.
    pub const LOCK_SETUP: u8 = 0x60;
    /// Lock confirm, after LOCK_SETUP.
    pub const LOCK_CONFIRM: u8 = 0x01;
    /// Read status register.
    pub const READ_STATUS: u8 = 0x70;
    /// Read identifier codes.
    pub const READ_ID: u8 = 0x90;
    /// CFI query.
    pub const CFI_QUERY: u8 = 0x98;
    /// Confirm: block erase, buffered program, unlock.
    pub const CONFIRM: u8 = 0xD0;
    /// Buffered program setup.
    pub const BUFFERED_PROGRAM: u8 = 0xE8;
    /// AMD-style reset, which drivers probing for either command set send.
    pub const AMD_RESET: u8 = 0xF0;
    /// Read array.
    pub const READ_ARRAY: u8 = 0xFF;
}

/// The shape of a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes in one erase block across the bus (both chips).
    pub sector_len: u64,
    /// Erase blocks in the bank.
    pub blocks: u64,
}

impl Geometry {
    /// One of QEMU virt's two banks: 256 KiB blocks (`VIRT_FLASH_SECTOR_SIZE`) filling half
    /// of the 128 MiB `VIRT_FLASH` region (`virt_flash_map1`'s "num-blocks").
    pub const QEMU_VIRT: Geometry = Geometry {
        sector_len: 256 * 1024,
        blocks: 256,
    };

    /// Bytes in the bank.
    pub const fn size(&self) -> u64 {
        self.sector_len.saturating_mul(self.blocks)
    }

    /// Whether the CFI table can describe this bank exactly: a power-of-two block of at
    /// least one write buffer whose per-chip size fits the table's 16-bit count of 256-byte
    /// units, a power-of-two block count the table's 16-bit field holds (so that each chip's
    /// size is a power of two, CFI offset 0x27).
    fn is_valid(&self) -> bool {
        self.sector_len.is_power_of_two()
            && self.sector_len >= WRITE_BUFFER_BYTES
            && self.sector_len / DEVICES <= 0xFFFF * 256
            && self.blocks.is_power_of_two()
            && self.blocks <= 0x1_0000
    }
}

/// Why a backing store refused an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackingError {
    /// The bytes lie past the end of the store.
    OutOfRange,
    /// The host storage failed.
    Io,
}

/// Why a bank could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// The geometry cannot be described by a CFI table (see [`Geometry`]).
    BadGeometry,
    /// The backing store's size is not the geometry's.
    SizeMismatch {
        /// The geometry's size in bytes.
        expected: u64,
        /// The backing store's.
        actual: u64,
    },
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadGeometry => f.write_str("flash geometry has no CFI description"),
            Self::SizeMismatch { expected, actual } => {
                write!(f, "flash backing is {actual} bytes, the bank {expected}")
            }
        }
    }
}

/// Where a bank keeps its contents: RAM for now, a disk slice once it persists.
pub trait FlashBacking {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackingError>;
    /// Stores `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BackingError>;
}

/// A bank held in RAM.
impl FlashBacking for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackingError> {
        let src = byte_range(offset, buf.len(), self.len())
            .and_then(|r| self.get(r))
            .ok_or(BackingError::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BackingError> {
        let len = self.len();
        let dst = byte_range(offset, data.len(), len)
            .and_then(|r| self.get_mut(r))
            .ok_or(BackingError::OutOfRange)?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

/// A bank with nothing behind it: every byte reads as `fill`, and nothing can be stored.
/// What the unbacked part of a write-protected bank needs (QEMU fills `-bios` flash past the
/// image with zeros), since the model never stores into a write-protected bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blank {
    /// Size in bytes.
    pub size: u64,
    /// What every byte reads as.
    pub fill: u8,
}

impl FlashBacking for Blank {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackingError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.size) {
            return Err(BackingError::OutOfRange);
        }
        buf.fill(self.fill);
        Ok(())
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) -> Result<(), BackingError> {
        Err(BackingError::Io)
    }
}

/// `offset..offset + len` as indices, if it lies within `size` bytes.
fn byte_range(offset: u64, len: usize, size: usize) -> Option<core::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

/// Whether the guest may change the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Programs and erases change the contents (the variable store).
    Writable,
    /// WP# asserted (the firmware bank): programs and erases report an error and change
    /// nothing.
    WriteProtected,
}

/// What the bank does with the next read and write (QEMU's `cmd` and `wcycle` together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads return the contents.
    ReadArray,
    /// Reads return the status register.
    ReadStatus,
    /// Reads return the identifier codes.
    ReadId,
    /// Reads return the CFI query table; only Read Array leaves (QEMU ignores other
    /// commands here).
    Query,
    /// Word program: the next write is the data.
    ProgramData,
    /// Block erase: the next write should be the confirm.
    EraseConfirm { block: u64 },
    /// Lock setup: the next write says lock, unlock or lock-down.
    LockConfirm,
    /// Buffered program: the next write is the word count.
    BufferCount { window: u64 },
    /// Buffered program: `remaining` data writes to come.
    BufferData { window: u64, remaining: u16 },
    /// Buffered program: the next write should be the confirm.
    BufferConfirm { window: u64 },
}

type Status = LocalRegisterCopy<u8, STATUS::Register>;

/// One bank of CFI flash over a backing store `B`.
#[derive(Debug)]
pub struct CfiFlash<B> {
    backing: B,
    geometry: Geometry,
    protection: Protection,
    mode: Mode,
    status: Status,
    cfi: [u8; CFI_TABLE_LEN],
    /// The write buffer's window of the array, loaded when a buffered program starts.
    buffer: Vec<u8>,
}

/// The CFI query table one chip of a bank with `geometry` answers, filled as QEMU's
/// `pflash_cfi01_fill_cfi_table` fills it (JESD68.01 names the fields).
pub fn cfi_table(geometry: &Geometry) -> [u8; CFI_TABLE_LEN] {
    // Each chip holds every block, at half the width (QEMU without
    // "old-multiple-chip-handling", the default since virt-4.0).
    let chip_sector = geometry.sector_len / DEVICES;
    let chip_size = chip_sector.saturating_mul(geometry.blocks);
    let blocks_m1 = geometry.blocks.saturating_sub(1);
    let entries: [(usize, u8); 44] = [
        // "QRY".
        (0x10, b'Q'),
        (0x11, b'R'),
        (0x12, b'Y'),
        // Primary command set: Intel/Sharp extended (0x0001).
        (0x13, 0x01),
        (0x14, 0x00),
        // Primary extended table at 0x31.
        (0x15, 0x31),
        (0x16, 0x00),
        // No alternate command set or table (0x17..0x1A are 0).
        (0x17, 0x00),
        (0x18, 0x00),
        (0x19, 0x00),
        (0x1A, 0x00),
        // Vcc 4.5 V to 5.5 V; no Vpp pin.
        (0x1B, 0x45),
        (0x1C, 0x55),
        (0x1D, 0x00),
        (0x1E, 0x00),
        // Typical timeouts (2^n): word program 128 us, buffer write 128 us, block erase
        // 1 s, no chip erase.
        (0x1F, 0x07),
        (0x20, 0x07),
        (0x21, 0x0A),
        (0x22, 0x00),
        // Maximum timeouts (2^n times typical).
        (0x23, 0x04),
        (0x24, 0x04),
        (0x25, 0x04),
        (0x26, 0x00),
        // One chip's size, 2^n bytes.
        (0x27, chip_size.trailing_zeros() as u8),
        // Interface: x8/x16 asynchronous.
        (0x28, 0x02),
        (0x29, 0x00),
        // One chip's write buffer, 2^n bytes.
        (0x2A, CHIP_WRITE_BUFFER_LOG2),
        (0x2B, 0x00),
        // One uniform erase region: (blocks - 1) and one chip's block size / 256.
        (0x2C, 0x01),
        (0x2D, blocks_m1 as u8),
        (0x2E, (blocks_m1 >> 8) as u8),
        (0x2F, (chip_sector >> 8) as u8),
        (0x30, (chip_sector >> 16) as u8),
        // Primary extended table "PRI", version 1.0, no optional features.
        (0x31, b'P'),
        (0x32, b'R'),
        (0x33, b'I'),
        (0x34, b'1'),
        (0x35, b'0'),
        (0x36, 0x00),
        (0x37, 0x00),
        (0x38, 0x00),
        (0x39, 0x00),
        (0x3A, 0x00),
        // One protection register field.
        (0x3F, 0x01),
    ];
    let mut table = [0; CFI_TABLE_LEN];
    for (offset, value) in entries {
        if let Some(b) = table.get_mut(offset) {
            *b = value;
        }
    }
    table
}

/// `value` (one chip's 16-bit answer) as the bus returns it for an access of `size` bytes:
/// each chip answers on its own half of a 32-bit cycle (QEMU's "replicate responses for each
/// device in bank"); narrower reads see the low bytes.
fn per_chip(value: u16, size: u8) -> u32 {
    let word = u32::from(value) | (u32::from(value) << 16);
    match size {
        1 => word & 0xFF,
        2 => word & 0xFFFF,
        _ => word,
    }
}

impl<B: FlashBacking> CfiFlash<B> {
    /// A bank of `geometry` over `backing`, in read-array mode with a clear status.
    pub fn new(geometry: Geometry, backing: B, protection: Protection) -> Result<Self, FlashError> {
        if !geometry.is_valid() {
            return Err(FlashError::BadGeometry);
        }
        if backing.size() != geometry.size() {
            return Err(FlashError::SizeMismatch {
                expected: geometry.size(),
                actual: backing.size(),
            });
        }
        Ok(Self {
            backing,
            geometry,
            protection,
            mode: Mode::ReadArray,
            status: Self::ready(),
            cfi: cfi_table(&geometry),
            buffer: vec![0; WRITE_BUFFER_BYTES as usize],
        })
    }

    /// What a system reset leaves (QEMU's `pflash_cfi01_system_reset`): read-array mode,
    /// the status ready with no errors, any unfinished command forgotten.
    pub fn reset(&mut self) {
        self.mode = Mode::ReadArray;
        self.status = Self::ready();
    }

    /// Whether reads return the contents, so a caller may serve them from the backing store
    /// directly (QEMU's "romd" mode) until the next write.
    pub fn in_read_array(&self) -> bool {
        self.mode == Mode::ReadArray
    }

    /// The status register as one chip reports it.
    pub fn status(&self) -> u8 {
        self.status.get()
    }

    /// The bank's geometry.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The backing store.
    pub fn backing(&self) -> &B {
        &self.backing
    }

    /// The backing store, to change where it keeps the contents (not the contents: the
    /// model's state assumes they change only through it).
    pub fn backing_mut(&mut self) -> &mut B {
        &mut self.backing
    }

    /// Gives the backing store back.
    pub fn into_backing(self) -> B {
        self.backing
    }

    fn ready() -> Status {
        let mut s = Status::new(0);
        s.write(STATUS::READY::SET);
        s
    }

    /// A guest load of `size` bytes (1, 2, 4 or 8) at `offset` in the bank.
    pub fn read(&mut self, offset: u64, size: u8) -> u64 {
        match size {
            1 | 2 | 4 => u64::from(self.bus_read(offset, size)),
            8 => {
                let low = self.bus_read(offset, 4);
                let high = offset.checked_add(4).map_or(0, |o| self.bus_read(o, 4));
                u64::from(low) | (u64::from(high) << 32)
            }
            _ => 0,
        }
    }

    /// A guest store of the low `size` bytes (1, 2, 4 or 8) of `value` at `offset`.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) {
        match size {
            1 | 2 | 4 => self.bus_write(offset, size, value as u32),
            8 => {
                self.bus_write(offset, 4, value as u32);
                if let Some(o) = offset.checked_add(4) {
                    self.bus_write(o, 4, (value >> 32) as u32);
                }
            }
            _ => {}
        }
    }

    /// One bus cycle of at most 4 bytes.
    fn bus_read(&mut self, offset: u64, size: u8) -> u32 {
        if offset >= self.geometry.size() {
            return 0;
        }
        match self.mode {
            Mode::ReadArray => self.array_read(offset, size),
            Mode::ReadId => per_chip(Self::id_code(offset), size),
            Mode::Query => {
                let index = usize::try_from(offset >> QUERY_SHIFT).unwrap_or(usize::MAX);
                per_chip(u16::from(self.cfi.get(index).copied().unwrap_or(0)), size)
            }
            // Every other mode reads the status, as QEMU's `pflash_read` does while a
            // command is in progress.
            _ => per_chip(u16::from(self.status.get()), size),
        }
    }

    /// The identifier code at a Read Identifier address (`pflash_devid_query`): the low
    /// byte of the word index picks it; block lock status (index 2) reads as unlocked.
    fn id_code(offset: u64) -> u16 {
        match (offset >> QUERY_SHIFT) & 0xFF {
            0 => MANUFACTURER_ID,
            1 => DEVICE_ID,
            _ => 0,
        }
    }

    fn array_read(&mut self, offset: u64, size: u8) -> u32 {
        let mut bytes = [0u8; 4];
        let len = self.clip(offset, size);
        if let Some(buf) = bytes.get_mut(..len) {
            if self.backing.read(offset, buf).is_err() {
                buf.fill(0);
            }
        }
        u32::from_le_bytes(bytes)
    }

    /// How many of `size` bytes at `offset` lie within the bank.
    fn clip(&self, offset: u64, size: u8) -> usize {
        let left = self.geometry.size().saturating_sub(offset);
        usize::try_from(left.min(u64::from(size))).unwrap_or(0)
    }

    /// One bus cycle of at most 4 bytes: a command, or the data a command waits for.
    fn bus_write(&mut self, offset: u64, size: u8, value: u32) {
        if offset >= self.geometry.size() {
            return;
        }
        let command = value as u8;
        match self.mode {
            Mode::ReadArray | Mode::ReadStatus | Mode::ReadId => self.command(offset, command),
            Mode::Query => {
                // QEMU stays in query mode for anything but Read Array (`pflash_write`,
                // wcycle 1, cmd 0x98).
                if command == cmd::READ_ARRAY {
                    self.mode = Mode::ReadArray;
                }
            }
            Mode::ProgramData => {
                self.program(offset, size, value);
                self.mode = Mode::ReadStatus;
            }
            Mode::EraseConfirm { block } => match command {
                cmd::CONFIRM => {
                    self.erase(block);
                    self.mode = Mode::ReadStatus;
                }
                cmd::READ_ARRAY => self.mode = Mode::ReadArray,
                _ => self.sequence_error(),
            },
            Mode::LockConfirm => {
                // Locking is accepted and has no effect (QEMU's 0x60 handling): D0 (unlock)
                // and 01 (lock) complete; anything else, lock-down (2F) included, returns
                // to read-array.
                self.mode = match command {
                    cmd::CONFIRM | cmd::LOCK_CONFIRM => Mode::ReadStatus,
                    _ => Mode::ReadArray,
                };
            }
            Mode::BufferCount { window } => {
                // Each chip takes its own count on its half of the bus; QEMU uses the low
                // chip's (`extract32(value, 0, device_width * 8)`). Counts are words - 1.
                let count = u64::from(value as u16);
                if count >= WRITE_BUFFER_BYTES / BANK_WIDTH {
                    self.sequence_error();
                } else if self.load_buffer(window) {
                    self.mode = Mode::BufferData {
                        window,
                        remaining: count as u16 + 1,
                    };
                } else {
                    self.status.modify(STATUS::PROGRAM_ERROR::SET);
                    self.mode = Mode::ReadStatus;
                }
            }
            Mode::BufferData { window, remaining } => {
                if !self.buffer_data(window, offset, size, value) {
                    self.sequence_error();
                    return;
                }
                self.mode = match remaining.saturating_sub(1) {
                    0 => Mode::BufferConfirm { window },
                    remaining => Mode::BufferData { window, remaining },
                };
            }
            Mode::BufferConfirm { window } => {
                if command == cmd::CONFIRM {
                    self.flush_buffer(window);
                    self.mode = Mode::ReadStatus;
                } else {
                    self.sequence_error();
                }
            }
        }
    }

    /// A command written when no command waits for data (QEMU's wcycle 0).
    fn command(&mut self, offset: u64, command: u8) {
        self.mode = match command {
            cmd::READ_ARRAY | cmd::READ_ARRAY_QEMU | cmd::AMD_RESET => Mode::ReadArray,
            cmd::PROGRAM | cmd::PROGRAM_ALT => Mode::ProgramData,
            cmd::BLOCK_ERASE => Mode::EraseConfirm {
                block: offset & !(self.geometry.sector_len - 1),
            },
            cmd::CLEAR_STATUS => {
                // QEMU clears the register and returns to read-array; SR.7 stays set here,
                // as the datasheets say Clear Status clears only the error bits.
                self.status = Self::ready();
                Mode::ReadArray
            }
            cmd::LOCK_SETUP => Mode::LockConfirm,
            cmd::READ_STATUS => Mode::ReadStatus,
            cmd::READ_ID => Mode::ReadId,
            cmd::CFI_QUERY => Mode::Query,
            cmd::BUFFERED_PROGRAM => Mode::BufferCount {
                window: offset & !(WRITE_BUFFER_BYTES - 1),
            },
            // Unknown commands return to read-array (QEMU's `error_flash` path).
            _ => Mode::ReadArray,
        };
    }

    /// An improper command sequence: SR.4 and SR.5 together, nothing programmed, reads show
    /// the status until the next command.
    fn sequence_error(&mut self) {
        self.status
            .modify(STATUS::PROGRAM_ERROR::SET + STATUS::ERASE_ERROR::SET);
        self.mode = Mode::ReadStatus;
    }

    fn writable(&self) -> bool {
        self.protection == Protection::Writable
    }

    /// Word program: the low `size` bytes of `value` at `offset`, little-endian.
    fn program(&mut self, offset: u64, size: u8, value: u32) {
        let bytes = value.to_le_bytes();
        let len = self.clip(offset, size);
        let ok = self.writable()
            && bytes
                .get(..len)
                .is_some_and(|data| self.backing.write(offset, data).is_ok());
        if !ok {
            self.status.modify(STATUS::PROGRAM_ERROR::SET);
        }
    }

    /// Block erase: every byte of the block becomes 0xFF.
    fn erase(&mut self, block: u64) {
        let ok = self.writable() && {
            let erased = [0xFF; 512];
            let mut at = block;
            let end = block.saturating_add(self.geometry.sector_len);
            let mut ok = true;
            while ok && at < end {
                ok = self.backing.write(at, &erased).is_ok();
                at = at.saturating_add(erased.len() as u64);
            }
            ok
        };
        if !ok {
            self.status.modify(STATUS::ERASE_ERROR::SET);
        }
    }

    /// Fills the write buffer with the window's current contents, so that bytes the guest
    /// does not write keep their values when it is flushed.
    fn load_buffer(&mut self, window: u64) -> bool {
        self.backing.read(window, &mut self.buffer).is_ok()
    }

    /// One data write of a buffered program; false if it falls outside the window.
    fn buffer_data(&mut self, window: u64, offset: u64, size: u8, value: u32) -> bool {
        let bytes = value.to_le_bytes();
        let Some(start) = offset.checked_sub(window) else {
            return false;
        };
        let (Ok(start), Some(data)) = (usize::try_from(start), bytes.get(..usize::from(size)))
        else {
            return false;
        };
        match start
            .checked_add(data.len())
            .and_then(|end| self.buffer.get_mut(start..end))
        {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// The confirm of a buffered program: the buffer goes to the array.
    fn flush_buffer(&mut self, window: u64) {
        let ok = self.writable() && self.backing.write(window, &self.buffer).is_ok();
        if !ok {
            self.status.modify(STATUS::PROGRAM_ERROR::SET);
        }
    }
}

#[cfg(test)]
mod tests;
