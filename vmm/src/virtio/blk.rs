//! virtio-blk (device ID 2, virtio 1.2 §5.2) over a [`BlockBackend`], with [`MemDisk`] for tests
//! and [`LbaRange`] to make a partition of another backend a disk of its own.
//!
//! Requests (§5.2.6): IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES; any other type gets
//! VIRTIO_BLK_S_UNSUPP. A request that reaches past the capacity, or whose data is not a
//! multiple of 512 bytes, gets VIRTIO_BLK_S_IOERR. On a read-only disk (VIRTIO_BLK_F_RO offered)
//! OUT, DISCARD and WRITE_ZEROES get VIRTIO_BLK_S_IOERR and write nothing (§5.2.6.2: "A device
//! MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request if the VIRTIO_BLK_F_RO
//! feature if offered, and MUST NOT write any data"); FLUSH succeeds, as firmware flushes
//! read-only disks too.
//!
//! The used length is the whole device-writable part of the chain: the status byte is its last
//! byte (§5.2.6), so the length must reach it. On an error the data bytes before the status are
//! not meaningful, as in QEMU. A chain with no readable header or no writable status byte cannot
//! be answered at all and puts the device in DEVICE_NEEDS_RESET.
//!
//! Data moves through a scratch buffer allocated once, in chunks: no allocation per request.

use super::queue::{ChainReader, DescriptorChain, Queue, QueueError};
use super::{device_id, read_config_bytes, VirtioDevice};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use vmboot::memory::GuestMemory;

/// The unit of `sector` in requests and of `capacity`, whatever the block size (§5.2.6).
pub const SECTOR_SIZE: usize = 512;
/// Length of the GET_ID answer (§5.2.6: "up to 20 bytes").
pub const ID_BYTES: usize = 20;
/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Bytes moved per backend call.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Largest segment the driver may use (VIRTIO_BLK_F_SIZE_MAX).
const SIZE_MAX: u32 = 1 << 20;
/// Most segments per request (VIRTIO_BLK_F_SEG_MAX): the queue less header and status.
const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Largest DISCARD, in sectors: a hint the backend answers without moving data.
const MAX_DISCARD_SECTORS: u32 = u32::MAX;
/// Largest WRITE_ZEROES, in sectors (8 MiB): the backend writes every zero, and one request
/// must not hold the device (and the VMM serving it) for long; the driver splits bigger ones.
const MAX_WRITE_ZEROES_SECTORS: u32 = 16 * 1024;
/// Segments per DISCARD / WRITE_ZEROES request.
const MAX_DISCARD_SEG: u32 = 1;

/// Feature bits (§5.2.3).
pub mod feature {
    /// `size_max` is valid.
    pub const SIZE_MAX: u64 = 1 << 1;
    /// `seg_max` is valid.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The device is read-only.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` is valid.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// FLUSH is supported.
    pub const FLUSH: u64 = 1 << 9;
    /// DISCARD is supported.
    pub const DISCARD: u64 = 1 << 13;
    /// WRITE_ZEROES is supported.
    pub const WRITE_ZEROES: u64 = 1 << 14;
}

/// Request types (§5.2.6).
pub mod request {
    /// Read.
    pub const IN: u32 = 0;
    /// Write.
    pub const OUT: u32 = 1;
    /// Flush the write cache.
    pub const FLUSH: u32 = 4;
    /// Device identification string.
    pub const GET_ID: u32 = 8;
    /// Discard sectors.
    pub const DISCARD: u32 = 11;
    /// Write zeroes.
    pub const WRITE_ZEROES: u32 = 13;
}

/// Status byte values (§5.2.6).
pub mod status {
    /// Success.
    pub const OK: u8 = 0;
    /// Device or driver error.
    pub const IOERR: u8 = 1;
    /// Request unsupported by the device.
    pub const UNSUPP: u8 = 2;
}

/// `struct virtio_blk_req` header: `le32 type; le32 reserved; le64 sector` (§5.2.6).
const HEADER_BYTES: usize = 16;
/// `struct virtio_blk_discard_write_zeroes`: `le64 sector; le32 num_sectors; le32 flags`.
const SEGMENT_BYTES: usize = 16;
/// The `unmap` flag of a WRITE_ZEROES segment; the other bits are reserved.
const SEGMENT_FLAG_UNMAP: u32 = 1;

/// Byte offsets in `struct virtio_blk_config` (§5.2.4).
mod config {
    pub const CAPACITY: usize = 0;
    pub const SIZE_MAX: usize = 8;
    pub const SEG_MAX: usize = 12;
    pub const BLK_SIZE: usize = 20;
    pub const MAX_DISCARD_SECTORS: usize = 36;
    pub const MAX_DISCARD_SEG: usize = 40;
    pub const DISCARD_SECTOR_ALIGNMENT: usize = 44;
    pub const MAX_WRITE_ZEROES_SECTORS: usize = 48;
    pub const MAX_WRITE_ZEROES_SEG: usize = 52;
    pub const WRITE_ZEROES_MAY_UNMAP: usize = 56;
    /// Through `secure_erase_sector_alignment`.
    pub const SIZE: usize = 72;
}

/// Why a backend refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// The sectors lie past the end of the disk.
    OutOfRange,
    /// The disk is read-only.
    ReadOnly,
    /// The backend cannot do this operation.
    Unsupported,
    /// The host device failed.
    Io,
    /// The backend is in use (a shared backend borrowed twice).
    Busy,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutOfRange => "sectors out of range",
            Self::ReadOnly => "disk is read-only",
            Self::Unsupported => "operation unsupported",
            Self::Io => "I/O error",
            Self::Busy => "backend busy",
        })
    }
}

/// A disk: what a virtio-blk device stores its sectors on. Sectors are 512 bytes and buffers
/// are whole sectors.
pub trait BlockBackend {
    /// Size in 512-byte sectors.
    fn capacity_sectors(&self) -> u64;
    /// Fills `buf` from the disk starting at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `buf` to the disk starting at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError>;
    /// Returns once everything written before is on stable storage.
    fn flush(&mut self) -> Result<(), BlockError>;
    /// Whether DISCARD is worth offering.
    fn supports_discard(&self) -> bool {
        false
    }
    /// Lets the disk forget `count` sectors from `sector` (their contents become unspecified).
    fn discard(&mut self, _sector: u64, _count: u64) -> Result<(), BlockError> {
        Err(BlockError::Unsupported)
    }
    /// Zeroes `count` sectors from `sector`; `unmap` allows deallocating them.
    fn write_zeroes(&mut self, sector: u64, count: u64, _unmap: bool) -> Result<(), BlockError> {
        const ZEROS: [u8; SECTOR_SIZE] = [0; SECTOR_SIZE];
        for s in 0..count {
            self.write(sector.checked_add(s).ok_or(BlockError::OutOfRange)?, &ZEROS)?;
        }
        Ok(())
    }
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// The device ID string GET_ID answers, NUL-padded.
    fn id(&self) -> [u8; ID_BYTES];
}

/// Checks that `len` bytes at `sector` lie within `capacity` sectors; returns the sector count.
fn sectors_in_range(capacity: u64, sector: u64, len: usize) -> Result<u64, BlockError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(BlockError::OutOfRange);
    }
    let count = (len / SECTOR_SIZE) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= capacity => Ok(count),
        _ => Err(BlockError::OutOfRange),
    }
}

/// A disk in a `Vec`, for tests and scratch disks.
#[derive(Debug, Clone)]
pub struct MemDisk {
    bytes: Vec<u8>,
    read_only: bool,
    id: [u8; ID_BYTES],
    /// How many flushes were asked for.
    pub flushes: u64,
}

impl MemDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: usize, read_only: bool) -> Self {
        Self::from_bytes(vec![0; sectors * SECTOR_SIZE], read_only)
    }

    /// A disk holding `bytes`, cut down to whole sectors.
    pub fn from_bytes(mut bytes: Vec<u8>, read_only: bool) -> Self {
        bytes.truncate(bytes.len() / SECTOR_SIZE * SECTOR_SIZE);
        let mut id = [0; ID_BYTES];
        id[..10].copy_from_slice(b"rhyve-mem0");
        Self {
            bytes,
            read_only,
            id,
            flushes: 0,
        }
    }

    /// Sets the GET_ID string (truncated to 20 bytes).
    pub fn with_id(mut self, id: &[u8]) -> Self {
        self.id = [0; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        self.id[..n].copy_from_slice(&id[..n]);
        self
    }

    /// The disk's contents.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, BlockError> {
        sectors_in_range(self.capacity_sectors(), sector, len)?;
        let start = usize::try_from(sector)
            .ok()
            .and_then(|s| s.checked_mul(SECTOR_SIZE))
            .ok_or(BlockError::OutOfRange)?;
        Ok(start..start + len)
    }
}

impl BlockBackend for MemDisk {
    fn capacity_sectors(&self) -> u64 {
        (self.bytes.len() / SECTOR_SIZE) as u64
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range(sector, buf.len())?;
        buf.copy_from_slice(self.bytes.get(r).ok_or(BlockError::OutOfRange)?);
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let r = self.range(sector, buf.len())?;
        self.bytes
            .get_mut(r)
            .ok_or(BlockError::OutOfRange)?
            .copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.flushes += 1;
        Ok(())
    }

    fn supports_discard(&self) -> bool {
        !self.read_only
    }

    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        // Discarded sectors read back as zeroes here; the spec allows any contents.
        self.write_zeroes(sector, count, true)
    }

    fn write_zeroes(&mut self, sector: u64, count: u64, _unmap: bool) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(SECTOR_SIZE))
            .ok_or(BlockError::OutOfRange)?;
        let r = self.range(sector, len)?;
        self.bytes.get_mut(r).ok_or(BlockError::OutOfRange)?.fill(0);
        Ok(())
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn id(&self) -> [u8; ID_BYTES] {
        self.id
    }
}

/// A backend shared by several disks (partitions of one host disk); a nested borrow answers
/// [`BlockError::Busy`] instead of panicking.
impl<B: BlockBackend> BlockBackend for Rc<RefCell<B>> {
    fn capacity_sectors(&self) -> u64 {
        self.try_borrow().map_or(0, |b| b.capacity_sectors())
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.try_borrow_mut()
            .map_err(|_| BlockError::Busy)?
            .read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.try_borrow_mut()
            .map_err(|_| BlockError::Busy)?
            .write(sector, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.try_borrow_mut().map_err(|_| BlockError::Busy)?.flush()
    }
    fn supports_discard(&self) -> bool {
        self.try_borrow().is_ok_and(|b| b.supports_discard())
    }
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        self.try_borrow_mut()
            .map_err(|_| BlockError::Busy)?
            .discard(sector, count)
    }
    fn write_zeroes(&mut self, sector: u64, count: u64, unmap: bool) -> Result<(), BlockError> {
        self.try_borrow_mut()
            .map_err(|_| BlockError::Busy)?
            .write_zeroes(sector, count, unmap)
    }
    fn read_only(&self) -> bool {
        self.try_borrow().map_or(true, |b| b.read_only())
    }
    fn id(&self) -> [u8; ID_BYTES] {
        self.try_borrow().map_or([0; ID_BYTES], |b| b.id())
    }
}

/// Sectors `start .. start + sectors` of another backend as a disk of its own: a partition.
/// Every access is checked against the range, so a guest cannot reach its neighbours'.
#[derive(Debug, Clone)]
pub struct LbaRange<B> {
    inner: B,
    start: u64,
    sectors: u64,
    read_only: bool,
    id: [u8; ID_BYTES],
}

impl<B: BlockBackend> LbaRange<B> {
    /// The range, or `None` if it does not lie within `inner`. `read_only` adds to the inner
    /// backend's own read-only state.
    pub fn new(inner: B, start: u64, sectors: u64, read_only: bool) -> Option<Self> {
        let end = start.checked_add(sectors)?;
        if end > inner.capacity_sectors() {
            return None;
        }
        let id = inner.id();
        Some(Self {
            inner,
            start,
            sectors,
            read_only,
            id,
        })
    }

    /// Sets the GET_ID string (truncated to 20 bytes); by default the inner backend's.
    pub fn with_id(mut self, id: &[u8]) -> Self {
        self.id = [0; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        self.id[..n].copy_from_slice(&id[..n]);
        self
    }

    /// The backend the range lies in.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn translate(&self, sector: u64, count: u64) -> Result<u64, BlockError> {
        match sector.checked_add(count) {
            Some(end) if end <= self.sectors => Ok(self.start + sector),
            _ => Err(BlockError::OutOfRange),
        }
    }

    fn translate_len(&self, sector: u64, len: usize) -> Result<u64, BlockError> {
        let count = sectors_in_range(self.sectors, sector, len)?;
        self.translate(sector, count)
    }
}

impl<B: BlockBackend> BlockBackend for LbaRange<B> {
    fn capacity_sectors(&self) -> u64 {
        self.sectors
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let s = self.translate_len(sector, buf.len())?;
        self.inner.read(s, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only() {
            return Err(BlockError::ReadOnly);
        }
        let s = self.translate_len(sector, buf.len())?;
        self.inner.write(s, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.inner.flush()
    }
    fn supports_discard(&self) -> bool {
        !self.read_only() && self.inner.supports_discard()
    }
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        if self.read_only() {
            return Err(BlockError::ReadOnly);
        }
        let s = self.translate(sector, count)?;
        self.inner.discard(s, count)
    }
    fn write_zeroes(&mut self, sector: u64, count: u64, unmap: bool) -> Result<(), BlockError> {
        if self.read_only() {
            return Err(BlockError::ReadOnly);
        }
        let s = self.translate(sector, count)?;
        self.inner.write_zeroes(s, count, unmap)
    }
    fn read_only(&self) -> bool {
        self.read_only || self.inner.read_only()
    }
    fn id(&self) -> [u8; ID_BYTES] {
        self.id
    }
}

/// Counters of what the device did, for the VMM's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkStats {
    /// Requests completed with VIRTIO_BLK_S_OK.
    pub ok: u64,
    /// Requests completed with VIRTIO_BLK_S_IOERR.
    pub ioerr: u64,
    /// Requests completed with VIRTIO_BLK_S_UNSUPP.
    pub unsupp: u64,
}

/// A virtio-blk device with one request queue.
#[derive(Debug)]
pub struct VirtioBlk<B> {
    backend: B,
    negotiated: u64,
    scratch: Vec<u8>,
    stats: BlkStats,
}

impl<B: BlockBackend> VirtioBlk<B> {
    /// A device in front of `backend`.
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            negotiated: 0,
            scratch: vec![0; SCRATCH_BYTES],
            stats: BlkStats::default(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// What the device has done so far.
    pub fn stats(&self) -> BlkStats {
        self.stats
    }

    /// Serves one request; returns the used length.
    fn serve(
        &mut self,
        chain: &DescriptorChain,
        mem: &mut dyn GuestMemory,
    ) -> Result<u32, QueueError> {
        let lens = chain.lengths();
        if lens.writable == 0 || lens.readable < HEADER_BYTES as u64 {
            return Err(QueueError::MalformedRequest);
        }
        let mut reader = chain.reader();
        let mut header = [0u8; HEADER_BYTES];
        reader.read(mem, &mut header)?;
        let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = header;
        let kind = u32::from_le_bytes([t0, t1, t2, t3]);
        let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
        let data_in = lens.writable - 1;
        let data_out = lens.readable - HEADER_BYTES as u64;

        let mut writer = chain.writer();
        let status = match kind {
            request::IN => self.read_in(sector, data_in, &mut writer, mem)?,
            request::OUT => self.write_out(sector, data_out, &mut reader, mem)?,
            request::FLUSH => match self.backend.flush() {
                Ok(()) => status::OK,
                Err(_) => status::IOERR,
            },
            request::GET_ID => {
                let id = self.backend.id();
                let n = usize::try_from(data_in).unwrap_or(usize::MAX).min(ID_BYTES);
                writer.write(mem, id.get(..n).unwrap_or(&[]))?;
                status::OK
            }
            request::DISCARD | request::WRITE_ZEROES => {
                self.discard_or_zero(kind, data_out, &mut reader, mem)?
            }
            _ => status::UNSUPP,
        };
        match status {
            status::OK => self.stats.ok += 1,
            status::IOERR => self.stats.ioerr += 1,
            _ => self.stats.unsupp += 1,
        }
        // The status byte is the last writable byte; skip to it from wherever the data ended.
        let mut at_status = chain.writer();
        at_status.skip(mem, data_in)?;
        at_status.write(mem, &[status])?;
        Ok(u32::try_from(lens.writable).unwrap_or(u32::MAX))
    }

    fn read_in(
        &mut self,
        sector: u64,
        len: u64,
        writer: &mut super::queue::ChainWriter,
        mem: &mut dyn GuestMemory,
    ) -> Result<u8, QueueError> {
        let Ok(len) = usize::try_from(len) else {
            return Ok(status::IOERR);
        };
        if sectors_in_range(self.backend.capacity_sectors(), sector, len).is_err() {
            return Ok(status::IOERR);
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(self.scratch.len());
            let Some(buf) = self.scratch.get_mut(..n) else {
                return Ok(status::IOERR);
            };
            if self
                .backend
                .read(sector + (done / SECTOR_SIZE) as u64, buf)
                .is_err()
            {
                return Ok(status::IOERR);
            }
            writer.write(mem, buf)?;
            done += n;
        }
        Ok(status::OK)
    }

    fn write_out(
        &mut self,
        sector: u64,
        len: u64,
        reader: &mut ChainReader,
        mem: &mut dyn GuestMemory,
    ) -> Result<u8, QueueError> {
        if self.backend.read_only() {
            return Ok(status::IOERR);
        }
        let Ok(len) = usize::try_from(len) else {
            return Ok(status::IOERR);
        };
        if sectors_in_range(self.backend.capacity_sectors(), sector, len).is_err() {
            return Ok(status::IOERR);
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(self.scratch.len());
            let Some(buf) = self.scratch.get_mut(..n) else {
                return Ok(status::IOERR);
            };
            reader.read(mem, buf)?;
            if self
                .backend
                .write(sector + (done / SECTOR_SIZE) as u64, buf)
                .is_err()
            {
                return Ok(status::IOERR);
            }
            done += n;
        }
        Ok(status::OK)
    }

    /// DISCARD and WRITE_ZEROES (§5.2.6.2): one segment per request (`max_*_seg` is 1);
    /// unknown flags, and `unmap` on a DISCARD, get UNSUPP; more sectors than the config's
    /// `max_*_sectors` get IOERR.
    fn discard_or_zero(
        &mut self,
        kind: u32,
        data_out: u64,
        reader: &mut ChainReader,
        mem: &mut dyn GuestMemory,
    ) -> Result<u8, QueueError> {
        let bit = if kind == request::DISCARD {
            feature::DISCARD
        } else {
            feature::WRITE_ZEROES
        };
        if self.negotiated & bit == 0 {
            return Ok(status::UNSUPP);
        }
        if self.backend.read_only() {
            return Ok(status::IOERR);
        }
        if data_out != SEGMENT_BYTES as u64 * u64::from(MAX_DISCARD_SEG) {
            return Ok(status::IOERR);
        }
        let mut seg = [0u8; SEGMENT_BYTES];
        reader.read(mem, &mut seg)?;
        let [s0, s1, s2, s3, s4, s5, s6, s7, n0, n1, n2, n3, f0, f1, f2, f3] = seg;
        let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
        let count = u64::from(u32::from_le_bytes([n0, n1, n2, n3]));
        let flags = u32::from_le_bytes([f0, f1, f2, f3]);
        let allowed = if kind == request::DISCARD {
            0
        } else {
            SEGMENT_FLAG_UNMAP
        };
        if flags & !allowed != 0 {
            return Ok(status::UNSUPP);
        }
        let most = if kind == request::DISCARD {
            MAX_DISCARD_SECTORS
        } else {
            MAX_WRITE_ZEROES_SECTORS
        };
        if count > u64::from(most) {
            return Ok(status::IOERR);
        }
        match sector.checked_add(count) {
            Some(end) if end <= self.backend.capacity_sectors() => {}
            _ => return Ok(status::IOERR),
        }
        let result = if kind == request::DISCARD {
            self.backend.discard(sector, count)
        } else {
            self.backend
                .write_zeroes(sector, count, flags & SEGMENT_FLAG_UNMAP != 0)
        };
        Ok(match result {
            Ok(()) => status::OK,
            Err(BlockError::Unsupported) => status::UNSUPP,
            Err(_) => status::IOERR,
        })
    }

    fn config_space(&self) -> [u8; config::SIZE] {
        let mut c = [0u8; config::SIZE];
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(dst) = c.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(
            config::CAPACITY,
            &self.backend.capacity_sectors().to_le_bytes(),
        );
        put(config::SIZE_MAX, &SIZE_MAX.to_le_bytes());
        put(config::SEG_MAX, &SEG_MAX.to_le_bytes());
        put(config::BLK_SIZE, &(SECTOR_SIZE as u32).to_le_bytes());
        put(
            config::MAX_DISCARD_SECTORS,
            &MAX_DISCARD_SECTORS.to_le_bytes(),
        );
        put(config::MAX_DISCARD_SEG, &MAX_DISCARD_SEG.to_le_bytes());
        put(config::DISCARD_SECTOR_ALIGNMENT, &1u32.to_le_bytes());
        put(
            config::MAX_WRITE_ZEROES_SECTORS,
            &MAX_WRITE_ZEROES_SECTORS.to_le_bytes(),
        );
        put(config::MAX_WRITE_ZEROES_SEG, &MAX_DISCARD_SEG.to_le_bytes());
        put(config::WRITE_ZEROES_MAY_UNMAP, &[0]);
        c
    }
}

impl<B: BlockBackend> VirtioDevice for VirtioBlk<B> {
    fn device_id(&self) -> u32 {
        device_id::BLOCK
    }

    fn device_features(&self) -> u64 {
        let mut f = feature::SIZE_MAX | feature::SEG_MAX | feature::BLK_SIZE | feature::FLUSH;
        if self.backend.read_only() {
            f |= feature::RO;
        } else {
            f |= feature::WRITE_ZEROES;
            if self.backend.supports_discard() {
                f |= feature::DISCARD;
            }
        }
        f
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config_space(), offset, data);
    }

    fn activate(&mut self, features: u64) {
        self.negotiated = features;
    }

    fn process(
        &mut self,
        _queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        let Some(q) = queues.first_mut() else {
            return Ok(());
        };
        while let Some(chain) = q.pop(mem)? {
            let len = self.serve(&chain, mem)?;
            q.add_used(mem, chain.head(), len)?;
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.negotiated = 0;
    }
}
