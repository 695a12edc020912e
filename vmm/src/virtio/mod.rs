//! virtio 1.2 devices (OASIS virtio-v1.2-cs01) behind the virtio-mmio transport, as plain state
//! machines: the exit path hands them guest MMIO accesses, guest memory is reached only through
//! [`GuestMemory`], and the interrupt line is a level the caller reads.
//!
//! - [`mmio`]: the virtio-mmio register frame (§4.2.2), generic over a [`VirtioDevice`].
//! - [`queue`]: split virtqueues (§2.7) with every guest address and length checked.
//! - [`blk`], [`console`], [`net`], [`rng`]: the devices, each with a backend trait the VMM
//!   implements over the machine's own I/O.
//! - [`switch`]: a learning Ethernet switch between the guests' network devices.
//! - [`flow`]: which receive queue of a multiqueue card a frame takes.
//!
//! A guest that breaks the rules of the ring gets the spec's answer: the request is refused with
//! the device's error status where the device type has one, and otherwise the device sets
//! DEVICE_NEEDS_RESET and raises a configuration-change interrupt (§2.1.2). Nothing a guest
//! writes can panic a device or make it touch memory outside the guest's RAM.

use vmboot::memory::GuestMemory;

pub mod blk;
pub mod console;
pub mod flow;
pub mod mmio;
pub mod net;
pub mod queue;
pub mod rng;
pub mod switch;

#[cfg(test)]
mod tests;

pub use mmio::MmioTransport;
pub use queue::{Queue, QueueError};

/// Device IDs (§5, table "Device Types").
pub mod device_id {
    /// Network card (§5.1).
    pub const NET: u32 = 1;
    /// Block device (§5.2).
    pub const BLOCK: u32 = 2;
    /// Console (§5.3).
    pub const CONSOLE: u32 = 3;
    /// Entropy source (§5.4).
    pub const ENTROPY: u32 = 4;
}

/// Reserved feature bits the transport handles for every device (§6).
pub mod feature {
    /// The driver may use indirect descriptors (§2.7.5.3).
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// `used_event` / `avail_event` notification suppression (§2.7.7, §2.7.10).
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// Compliance with virtio 1.x; a version 2 virtio-mmio device must offer it (§6.1).
    pub const VERSION_1: u64 = 1 << 32;
}

/// One virtio device type, as the transport sees it.
///
/// The transport owns the virtqueues and the generic register state; the device owns its
/// configuration space, its backend and what a buffer means. Every method must accept any
/// value a guest can produce without panicking.
pub trait VirtioDevice {
    /// The device ID (§5): one of [`device_id`].
    fn device_id(&self) -> u32;

    /// The device-type feature bits this device offers (bits 0..23 and 50..127 of §6); the
    /// transport adds [`feature::VERSION_1`], [`feature::RING_INDIRECT_DESC`] and
    /// [`feature::RING_EVENT_IDX`].
    fn device_features(&self) -> u64;

    /// The maximum size of each virtqueue; the slice's length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];

    /// Reads `data.len()` bytes of the device configuration space at `offset` (§4.2.2: offset
    /// 0x100 of the frame is offset 0 here). Bytes past the end of the space read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// A guest store to the device configuration space; most fields are read-only.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    /// The driver set DRIVER_OK having negotiated `features` (device and reserved bits).
    fn activate(&mut self, features: u64);

    /// The driver notified `queue` (an index below `queues.len()`, of a ready queue). Use the
    /// available buffers of any queue and return them through the used rings. An `Err` puts
    /// the device in DEVICE_NEEDS_RESET.
    fn process(
        &mut self,
        queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError>;

    /// Host-side work is waiting (received frames, console input): deliver what the guest's
    /// buffers can take. Called by [`MmioTransport::poll`] while the device is live.
    fn poll(
        &mut self,
        _queues: &mut [Queue],
        _mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        Ok(())
    }

    /// Back to the state after construction: the driver wrote 0 to Status (§2.4). Host-side
    /// queued input may be kept.
    fn reset(&mut self);

    /// Whether the configuration space changed since the last call; the transport then bumps
    /// ConfigGeneration and raises a configuration-change interrupt (§2.5.1, §4.2.2).
    fn take_config_changed(&mut self) -> bool {
        false
    }
}

/// Copies the part of `space` at `offset` into `data`, zero-filling what lies past its end; no
/// offset or length can make it index out of bounds.
pub(crate) fn read_config_bytes(space: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    let Some(src) = space.get(start..) else {
        return;
    };
    let n = src.len().min(data.len());
    if let (Some(dst), Some(src)) = (data.get_mut(..n), src.get(..n)) {
        dst.copy_from_slice(src);
    }
}
