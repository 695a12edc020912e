//! A firmware VM's variable flash (bank 1) as the VMM keeps it: the bank in the VM's host
//! memory ([`WindowFlash`], which the guest reads directly), and, when the VM's description
//! gives one, a copy on a slice of the machine's disk that survives restarts of rhyve.
//!
//! The store is read into the bank when the VM starts, and every program and erase the
//! model makes is written through to it and flushed before the model reports the operation
//! done: a variable the firmware was told is written is on the machine's disk. A write the
//! disk refuses fails the operation (the model reports a program or erase error), so the
//! firmware knows.

use super::disk::HostDiskRef;
use super::guest_mem::WindowFlash;
use abi::vmm::DiskSlice;
use alloc::vec;
use vmm::cfi_flash::{BackingError, FlashBacking};
use vmm::virtio::blk::{BlockBackend, BlockError, SECTOR_SIZE};

/// Bytes moved between the bank and the disk at once (through a buffer of the VMM's own: the
/// machine's disk reaches only the VMM's memory by DMA, not a VM's window).
const CHUNK: usize = 64 * 1024;

/// Where the bank is kept on the machine's disk.
#[derive(Clone, Copy, Debug)]
struct Store {
    /// Its first sector.
    start: u64,
    /// The bytes of the bank it keeps (from the bank's start).
    bytes: u64,
}

/// The bank, and its store if it has one.
pub struct VarsFlash {
    bank: WindowFlash,
    store: Option<Store>,
}

impl VarsFlash {
    /// A bank kept only in memory (as long as rhyve runs).
    pub fn new(bank: WindowFlash) -> Self {
        Self { bank, store: None }
    }

    /// Keeps the bank on `slice` of the machine's disk from now on: fills the bank's first
    /// `slice`'s bytes from it (the rest of the bank is kept in memory only).
    pub fn attach(&mut self, slice: DiskSlice) -> Result<(), BlockError> {
        let bytes = slice
            .sectors
            .checked_mul(SECTOR_SIZE as u64)
            .ok_or(BlockError::OutOfRange)?
            .min(self.bank.size());
        let end = slice
            .start
            .checked_add(slice.sectors)
            .ok_or(BlockError::OutOfRange)?;
        let mut disk = HostDiskRef;
        if bytes == 0 || end > disk.capacity_sectors() {
            return Err(BlockError::OutOfRange);
        }
        if disk.read_only() {
            return Err(BlockError::ReadOnly);
        }
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0;
        while off < bytes {
            let n = (bytes - off).min(CHUNK as u64) as usize;
            let chunk = &mut buf[..n];
            disk.read(slice.start + off / SECTOR_SIZE as u64, chunk)?;
            self.bank
                .write(off, chunk)
                .map_err(|_| BlockError::OutOfRange)?;
            off += n as u64;
        }
        self.store = Some(Store {
            start: slice.start,
            bytes,
        });
        Ok(())
    }

    /// Writes the sectors of the store that cover `offset..offset + len` of the bank from the
    /// bank, and flushes the disk.
    fn write_through(&mut self, store: Store, offset: u64, len: u64) -> Result<(), BlockError> {
        let sector = SECTOR_SIZE as u64;
        let first = offset / sector * sector;
        let end = offset.saturating_add(len).min(store.bytes).div_ceil(sector) * sector;
        if first >= end {
            return Ok(());
        }
        let mut disk = HostDiskRef;
        let mut buf = vec![0u8; CHUNK];
        let mut at = first;
        while at < end {
            let n = (end - at).min(CHUNK as u64) as usize;
            let chunk = &mut buf[..n];
            self.bank
                .read(at, chunk)
                .map_err(|_| BlockError::OutOfRange)?;
            disk.write(store.start + at / sector, chunk)?;
            at += n as u64;
        }
        disk.flush()
    }
}

impl FlashBacking for VarsFlash {
    fn size(&self) -> u64 {
        self.bank.size()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackingError> {
        self.bank.read(offset, buf)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BackingError> {
        self.bank.write(offset, data)?;
        match self.store {
            Some(store) => self
                .write_through(store, offset, data.len() as u64)
                .map_err(|_| BackingError::Io),
            None => Ok(()),
        }
    }
}
