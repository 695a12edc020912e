//! What a VM's virtio-blk stores its sectors on.
//!
//! Without a disk of the machine to back it, a VM's disk has no medium: zero sectors,
//! read-only, so the guest sees an empty drive rather than a missing device.

use abi::VmId;
use vmm::virtio::blk::{BlockBackend, BlockError, ID_BYTES};

/// A VM's disk.
pub enum GuestDisk {
    /// No medium.
    Empty,
}

impl GuestDisk {
    /// VM `vm`'s disk.
    pub fn new(_vm: VmId) -> Self {
        Self::Empty
    }
}

impl BlockBackend for GuestDisk {
    fn capacity_sectors(&self) -> u64 {
        0
    }
    fn read(&mut self, _sector: u64, _buf: &mut [u8]) -> Result<(), BlockError> {
        Err(BlockError::OutOfRange)
    }
    fn write(&mut self, _sector: u64, _buf: &[u8]) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
    fn read_only(&self) -> bool {
        true
    }
    fn id(&self) -> [u8; ID_BYTES] {
        let mut id = [0; ID_BYTES];
        id[..12].copy_from_slice(b"rhyve-nodisk");
        id
    }
}
