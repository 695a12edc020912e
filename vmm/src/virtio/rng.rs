//! virtio-rng, the entropy device (device ID 4, virtio 1.2 §5.4), over an [`EntropySource`].
//!
//! One request queue; each buffer is device-writable and gets one or more random bytes
//! (§5.4.6.2: "The device MUST place one or more random bytes into the buffer, but it MAY use
//! less than the entire buffer length"), at most [`MAX_BYTES_PER_REQUEST`] at a time. When the
//! source fails the buffer stays in the available ring and is served at the next notification
//! or [`super::MmioTransport::poll`]: the device never hands out bytes it did not get.
//!
//! The real sources (the machine's virtio-rng, RNDR) are the VMM's; none lives here, and no
//! constant or counter may stand in for one.

use super::queue::{Queue, QueueError};
use super::{device_id, VirtioDevice};
use core::fmt;
use vmboot::memory::GuestMemory;

/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 64;
/// Most bytes given per buffer.
pub const MAX_BYTES_PER_REQUEST: usize = 256;

/// Why a source gave no bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyError {
    /// Nothing available now; try again later.
    NotReady,
    /// The source failed.
    Failed,
}

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotReady => "entropy not ready",
            Self::Failed => "entropy source failed",
        })
    }
}

/// Where random bytes come from.
pub trait EntropySource {
    /// Fills all of `buf` with random bytes, or fails without claiming any.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

/// A virtio-rng device.
#[derive(Debug)]
pub struct VirtioRng<S> {
    source: S,
    scratch: [u8; MAX_BYTES_PER_REQUEST],
}

impl<S: EntropySource> VirtioRng<S> {
    /// A device drawing from `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            scratch: [0; MAX_BYTES_PER_REQUEST],
        }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The source, mutably.
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    fn serve(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        while let Some(chain) = q.pop(mem)? {
            let lens = chain.lengths();
            let want = usize::try_from(lens.writable)
                .unwrap_or(usize::MAX)
                .min(MAX_BYTES_PER_REQUEST);
            let Some(buf) = self.scratch.get_mut(..want) else {
                q.undo_pop();
                break;
            };
            if want > 0 && self.source.fill(buf).is_err() {
                // Keep the buffer for when the source has bytes again.
                q.undo_pop();
                break;
            }
            // Device-readable parts of the chain are ignored.
            let written = chain.writer().write(mem, buf)?;
            // Scrub our copy: these bytes are the guest's secret now.
            buf.fill(0);
            q.add_used(mem, chain.head(), written as u32)?;
        }
        Ok(())
    }
}

impl<S: EntropySource> VirtioDevice for VirtioRng<S> {
    fn device_id(&self) -> u32 {
        device_id::ENTROPY
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    /// §5.4.4: no configuration space.
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn activate(&mut self, _features: u64) {}

    fn process(
        &mut self,
        _queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        match queues.first_mut() {
            Some(q) => self.serve(q, mem),
            None => Ok(()),
        }
    }

    fn poll(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        self.process(0, queues, mem)
    }

    fn reset(&mut self) {}
}
