//! What a VM's virtio-blk stores its sectors on: its slice of the machine's disk
//! ([`DiskSlice`]), every access checked against the slice by [`LbaRange`], so several VMs'
//! disks can share one disk without reaching each other's sectors.
//!
//! Without a disk of the machine, or with a slice that does not fit it, a VM's disk has no
//! medium: zero sectors, read-only, so the guest sees an empty drive rather than a missing
//! device. Only one VM may write the whole disk (see [`WHOLE_WRITER`]).

use super::host::DISK;
use abi::vmm::DiskSlice;
use abi::VmId;
use core::fmt::Write;
use vmm::virtio::blk::{BlockBackend, BlockError, LbaRange, ID_BYTES, SECTOR_SIZE};

/// Largest transfer handed to the machine's disk at once (the device models move data in
/// chunks no larger than this anyway).
const CHUNK: usize = 64 * 1024;

/// Zeroes for WRITE_ZEROES, in the VMM's RAM so the disk can read them by DMA.
static ZEROES: [u8; CHUNK] = [0; CHUNK];

/// The machine's disk, whole.
pub struct HostDiskRef;

impl BlockBackend for HostDiskRef {
    fn capacity_sectors(&self) -> u64 {
        DISK.lock().as_ref().map_or(0, |d| d.capacity)
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        if buf.is_empty() {
            return Ok(());
        }
        if !buf.len().is_multiple_of(SECTOR_SIZE) {
            return Err(BlockError::OutOfRange);
        }
        let block = usize::try_from(sector).map_err(|_| BlockError::OutOfRange)?;
        let mut disk = DISK.lock();
        let d = disk.as_mut().ok_or(BlockError::Io)?;
        d.blk.read_blocks(block, buf).map_err(|_| BlockError::Io)
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if buf.is_empty() {
            return Ok(());
        }
        if !buf.len().is_multiple_of(SECTOR_SIZE) {
            return Err(BlockError::OutOfRange);
        }
        let block = usize::try_from(sector).map_err(|_| BlockError::OutOfRange)?;
        let mut disk = DISK.lock();
        let d = disk.as_mut().ok_or(BlockError::Io)?;
        if d.read_only {
            return Err(BlockError::ReadOnly);
        }
        d.blk.write_blocks(block, buf).map_err(|_| BlockError::Io)
    }

    /// Returns once the machine's disk has completed its own flush.
    fn flush(&mut self) -> Result<(), BlockError> {
        let mut disk = DISK.lock();
        let d = disk.as_mut().ok_or(BlockError::Io)?;
        d.blk.flush().map_err(|_| BlockError::Io)
    }

    /// DISCARD is a hint (§5.2.6.2: the sectors' contents become unspecified), and the
    /// machine's disk cannot be told (virtio-drivers sends no DISCARD): accepted within the
    /// disk, the sectors keep their data.
    fn supports_discard(&self) -> bool {
        !self.read_only()
    }

    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        if self.read_only() {
            return Err(BlockError::ReadOnly);
        }
        match sector.checked_add(count) {
            Some(end) if end <= self.capacity_sectors() => Ok(()),
            _ => Err(BlockError::OutOfRange),
        }
    }

    fn write_zeroes(&mut self, sector: u64, count: u64, _unmap: bool) -> Result<(), BlockError> {
        let per_chunk = (CHUNK / SECTOR_SIZE) as u64;
        let mut done = 0;
        while done < count {
            let n = (count - done).min(per_chunk);
            let at = sector.checked_add(done).ok_or(BlockError::OutOfRange)?;
            self.write(at, &ZEROES[..n as usize * SECTOR_SIZE])?;
            done += n;
        }
        Ok(())
    }

    fn read_only(&self) -> bool {
        DISK.lock().as_ref().is_none_or(|d| d.read_only)
    }

    fn id(&self) -> [u8; ID_BYTES] {
        let mut id = [0; ID_BYTES];
        id[..10].copy_from_slice(b"rhyve-disk");
        id
    }
}

/// A VM's disk.
pub enum GuestDisk {
    /// No medium.
    Empty,
    /// A slice of the machine's disk.
    Host(LbaRange<HostDiskRef>),
}

/// A GET_ID string naming the VM (`rhyve-vm0`).
struct Id {
    buf: [u8; ID_BYTES],
    len: usize,
}

impl Write for Id {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if self.len < ID_BYTES {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// The VM that may write the whole machine disk: the first to start with a writable
/// [`DiskSlice::WHOLE`]. Two VMs writing one filesystem would destroy it, so the others get
/// the whole disk read-only; disjoint slices are each the writable business of their VM.
/// (`vmboot::config` already refuses a VM whose writable slice overlaps another's; this keeps
/// the VMM safe on its own.)
static WHOLE_WRITER: spin::Mutex<Option<VmId>> = spin::Mutex::new(None);

impl GuestDisk {
    /// VM `vm`'s disk: `slice` of the machine's disk, or no medium if there is none or the
    /// slice does not fit it.
    pub fn new(vm: VmId, mut slice: DiskSlice) -> Self {
        if slice == DiskSlice::WHOLE {
            let mut writer = WHOLE_WRITER.lock();
            match *writer {
                None => *writer = Some(vm),
                Some(w) if w == vm => {}
                Some(_) => slice.read_only = true,
            }
        }
        let capacity = HostDiskRef.capacity_sectors();
        let sectors = match slice.sectors {
            0 => capacity.saturating_sub(slice.start),
            n => n,
        };
        if sectors == 0 {
            return Self::Empty;
        }
        let mut id = Id {
            buf: [0; ID_BYTES],
            len: 0,
        };
        let _ = write!(id, "rhyve-vm{}", vm.0);
        match LbaRange::new(HostDiskRef, slice.start, sectors, slice.read_only) {
            Some(range) => Self::Host(range.with_id(&id.buf[..id.len])),
            None => Self::Empty,
        }
    }

    fn backend(&mut self) -> Option<&mut LbaRange<HostDiskRef>> {
        match self {
            Self::Empty => None,
            Self::Host(r) => Some(r),
        }
    }
}

impl BlockBackend for GuestDisk {
    fn capacity_sectors(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Host(r) => r.capacity_sectors(),
        }
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.backend()
            .ok_or(BlockError::OutOfRange)?
            .read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.backend()
            .ok_or(BlockError::ReadOnly)?
            .write(sector, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        match self.backend() {
            Some(r) => r.flush(),
            None => Ok(()),
        }
    }
    fn supports_discard(&self) -> bool {
        match self {
            Self::Empty => false,
            Self::Host(r) => r.supports_discard(),
        }
    }
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlockError> {
        self.backend()
            .ok_or(BlockError::ReadOnly)?
            .discard(sector, count)
    }
    fn write_zeroes(&mut self, sector: u64, count: u64, unmap: bool) -> Result<(), BlockError> {
        self.backend()
            .ok_or(BlockError::ReadOnly)?
            .write_zeroes(sector, count, unmap)
    }
    fn read_only(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Host(r) => r.read_only(),
        }
    }
    fn id(&self) -> [u8; ID_BYTES] {
        match self {
            Self::Empty => {
                let mut id = [0; ID_BYTES];
                id[..12].copy_from_slice(b"rhyve-nodisk");
                id
            }
            Self::Host(r) => r.id(),
        }
    }
}
