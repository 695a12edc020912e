//! Split virtqueues (virtio 1.2 §2.7) over [`GuestMemory`]: the descriptor table, the available
//! ring and the used ring, read and written through bounds-checked accessors only.
//!
//! Nothing here trusts the guest. A queue's size and ring addresses are checked when the driver
//! makes it ready ([`Queue::validate`]); every descriptor chain is walked whole when it is
//! taken, before a device uses any of it, and every walk has a budget (no more descriptors than
//! the table holds, so a loop ends as an error); every buffer is checked to lie in guest RAM
//! before it is used, and every copy is checked again by [`GuestMemory`]. A broken
//! ring is a [`QueueError`]; the transport answers it with DEVICE_NEEDS_RESET (§2.1.2).
//!
//! Memory ordering (§2.7.13): the available index is read before the ring entries it publishes
//! (an acquire fence between), and a used element is written before the used index that
//! publishes it (a release fence between).

use abi::GuestPhysAddr;
use core::fmt;
use core::num::Wrapping;
use core::sync::atomic::{fence, Ordering};
use tock_registers::{register_bitfields, LocalRegisterCopy};
use vmboot::memory::{GuestMemory, MemoryError};

register_bitfields! [u16,
    /// `struct virtq_desc.flags` (§2.7.5).
    DESC_FLAGS [
        /// The buffer continues via the `next` field.
        NEXT OFFSET(0) NUMBITS(1) [],
        /// The buffer is device write-only (otherwise device read-only).
        WRITE OFFSET(1) NUMBITS(1) [],
        /// The buffer holds a table of indirect descriptors (§2.7.5.3).
        INDIRECT OFFSET(2) NUMBITS(1) []
    ],
    /// `struct virtq_avail.flags` (§2.7.6).
    AVAIL_FLAGS [
        /// The driver asks for no used-buffer notifications (without EVENT_IDX).
        NO_INTERRUPT OFFSET(0) NUMBITS(1) []
    ]
];

/// The largest queue size a split virtqueue can have (§2.7: "Queue Size ... maximum 32768").
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// The largest indirect table walked, in descriptors. The spec sets no bound beyond the chain
/// rules of §2.7.5.3.1; QEMU uses the same 1024.
pub const MAX_INDIRECT_DESCRIPTORS: u32 = 1024;

/// Alignment and element sizes of the three areas (§2.7, table "Virtqueue Part Alignment").
mod layout {
    /// Descriptor table alignment and entry size (§2.7.5: `struct virtq_desc` is 16 bytes).
    pub const DESC_ALIGN: u64 = 16;
    pub const DESC_SIZE: u64 = 16;
    /// Available ring: `le16 flags; le16 idx; le16 ring[size]; le16 used_event` (§2.7.6).
    pub const AVAIL_ALIGN: u64 = 2;
    pub const AVAIL_IDX: u64 = 2;
    pub const AVAIL_RING: u64 = 4;
    /// Used ring: `le16 flags; le16 idx; struct virtq_used_elem ring[size]; le16 avail_event`,
    /// each element `le32 id; le32 len` (§2.7.8).
    pub const USED_ALIGN: u64 = 4;
    pub const USED_IDX: u64 = 2;
    pub const USED_RING: u64 = 4;
    pub const USED_ELEM_SIZE: u64 = 8;
}

/// Why a virtqueue could not be used. Each of these is the driver's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// A ring or buffer access fell outside guest RAM.
    Memory(MemoryError),
    /// QueueNum is 0, not a power of two, or above QueueNumMax (§2.7, §4.2.3.2).
    BadSize(u16),
    /// A ring address is not aligned as §2.7 requires, or its area wraps.
    Unaligned,
    /// The available index moved by more than the queue size.
    AvailIndexJump {
        /// The index the device expected next.
        expected: u16,
        /// The index the driver published.
        published: u16,
    },
    /// A descriptor index at or above the size of its table.
    IndexOutOfRange(u32),
    /// A chain visits more descriptors than its table holds: a loop, or over-long (§2.7.5.2).
    ChainTooLong,
    /// An indirect descriptor that breaks §2.7.5.3.1: INDIRECT without the feature, with NEXT,
    /// inside an indirect table, or with a length that is 0, not a multiple of 16, or too big.
    BadIndirect,
    /// A device-readable descriptor after a device-writable one (§2.7.4.2).
    ReadableAfterWritable,
    /// A buffer whose address and length leave guest RAM or wrap.
    BufferOutOfRange {
        /// First guest-physical address of the buffer.
        addr: GuestPhysAddr,
        /// Its length.
        len: u32,
    },
    /// A request the device cannot parse at all (e.g. no room for its status byte).
    MalformedRequest,
}

impl From<MemoryError> for QueueError {
    fn from(e: MemoryError) -> Self {
        Self::Memory(e)
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(e) => write!(f, "{e}"),
            Self::BadSize(n) => write!(f, "bad queue size {n}"),
            Self::Unaligned => write!(f, "ring address unaligned or wrapping"),
            Self::AvailIndexJump {
                expected,
                published,
            } => write!(f, "available index jumped from {expected} to {published}"),
            Self::IndexOutOfRange(i) => write!(f, "descriptor index {i} out of range"),
            Self::ChainTooLong => write!(f, "descriptor chain loops or is too long"),
            Self::BadIndirect => write!(f, "malformed indirect descriptor"),
            Self::ReadableAfterWritable => write!(f, "readable descriptor after a writable one"),
            Self::BufferOutOfRange { addr, len } => {
                write!(f, "buffer of {len:#x} bytes at {addr} outside guest RAM")
            }
            Self::MalformedRequest => write!(f, "malformed request"),
        }
    }
}

fn read_u16(mem: &dyn GuestMemory, at: GuestPhysAddr) -> Result<u16, QueueError> {
    let mut b = [0; 2];
    mem.read(at, &mut b)?;
    Ok(u16::from_le_bytes(b))
}

fn write_u16(mem: &mut dyn GuestMemory, at: GuestPhysAddr, v: u16) -> Result<(), QueueError> {
    Ok(mem.write(at, &v.to_le_bytes())?)
}

/// `base + off`, or an error if it wraps.
fn offset(base: GuestPhysAddr, off: u64) -> Result<GuestPhysAddr, QueueError> {
    base.checked_add(off).ok_or(QueueError::Unaligned)
}

/// Checks that `len` bytes at `addr` lie in guest RAM without touching them: the first and the
/// last byte are read. Guest RAM is one contiguous region (DESIGN: RAM at 0x4000_0000), so that
/// proves the whole range; every later copy is checked by [`GuestMemory`] regardless.
pub fn check_range(mem: &dyn GuestMemory, addr: GuestPhysAddr, len: u64) -> Result<(), QueueError> {
    let err = QueueError::BufferOutOfRange {
        addr,
        len: u32::try_from(len).unwrap_or(u32::MAX),
    };
    if len == 0 {
        return Ok(());
    }
    let last = addr.checked_add(len - 1).ok_or(err)?;
    let mut b = [0; 1];
    mem.read(addr, &mut b).map_err(|_| err)?;
    mem.read(last, &mut b).map_err(|_| err)?;
    Ok(())
}

/// One descriptor as the device uses it: a guest buffer and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// First guest-physical address of the buffer (checked to lie in guest RAM).
    pub addr: GuestPhysAddr,
    /// Length in bytes.
    pub len: u32,
    /// Device write-only (true) or device read-only (false).
    pub writable: bool,
}

/// The raw 16-byte `struct virtq_desc` (§2.7.5).
struct RawDescriptor {
    addr: u64,
    len: u32,
    flags: LocalRegisterCopy<u16, DESC_FLAGS::Register>,
    next: u16,
}

fn read_descriptor(
    mem: &dyn GuestMemory,
    table: GuestPhysAddr,
    index: u32,
) -> Result<RawDescriptor, QueueError> {
    let at = offset(table, u64::from(index) * layout::DESC_SIZE)?;
    let mut b = [0u8; layout::DESC_SIZE as usize];
    mem.read(at, &mut b)?;
    let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = b;
    Ok(RawDescriptor {
        addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        len: u32::from_le_bytes([l0, l1, l2, l3]),
        flags: LocalRegisterCopy::new(u16::from_le_bytes([f0, f1])),
        next: u16::from_le_bytes([n0, n1]),
    })
}

/// The bytes a chain offers in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainLengths {
    /// Total length of the device-readable descriptors.
    pub readable: u64,
    /// Total length of the device-writable descriptors.
    pub writable: u64,
}

/// A descriptor chain taken from the available ring. [`Queue::pop`] walks it whole before
/// handing it out, so a broken chain (a loop above all) is refused before a device uses any of
/// it; readers and writers then walk it again lazily, each step checked again, as the driver
/// may have changed it meanwhile.
///
/// It is a small `Copy` value (no allocation per request): copy it to walk the chain again.
#[derive(Debug, Clone, Copy)]
pub struct DescriptorChain {
    head: u16,
    /// What the whole walk at [`Queue::pop`] found.
    lengths: ChainLengths,
    indirect_allowed: bool,
    /// The table being walked: the queue's descriptor table, or an indirect table.
    table: GuestPhysAddr,
    table_len: u32,
    in_indirect: bool,
    next: Option<u32>,
    /// Descriptors visited in the current table; more than `table_len` means a loop.
    visited: u32,
    seen_writable: bool,
}

impl DescriptorChain {
    /// The head index: the `id` the used element must carry.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The next descriptor of the chain, `None` at its end.
    pub fn next_descriptor(
        &mut self,
        mem: &dyn GuestMemory,
    ) -> Result<Option<Descriptor>, QueueError> {
        loop {
            let Some(index) = self.next else {
                return Ok(None);
            };
            if index >= self.table_len {
                self.next = None;
                return Err(QueueError::IndexOutOfRange(index));
            }
            self.visited += 1;
            if self.visited > self.table_len {
                self.next = None;
                return Err(QueueError::ChainTooLong);
            }
            let raw = read_descriptor(mem, self.table, index)?;
            if raw.flags.is_set(DESC_FLAGS::INDIRECT) {
                self.enter_indirect(mem, &raw)?;
                continue;
            }
            self.next = raw
                .flags
                .is_set(DESC_FLAGS::NEXT)
                .then_some(u32::from(raw.next));
            let writable = raw.flags.is_set(DESC_FLAGS::WRITE);
            if self.seen_writable && !writable {
                self.next = None;
                return Err(QueueError::ReadableAfterWritable);
            }
            self.seen_writable |= writable;
            let addr = GuestPhysAddr(raw.addr);
            check_range(mem, addr, u64::from(raw.len))?;
            return Ok(Some(Descriptor {
                addr,
                len: raw.len,
                writable,
            }));
        }
    }

    /// Switches the walk to the indirect table `raw` points at (§2.7.5.3.1: the feature was
    /// negotiated, NEXT is clear, not already inside an indirect table, the length a non-zero
    /// multiple of 16). The write flag of the indirect descriptor itself is ignored, as the
    /// spec requires.
    fn enter_indirect(
        &mut self,
        mem: &dyn GuestMemory,
        raw: &RawDescriptor,
    ) -> Result<(), QueueError> {
        self.next = None;
        let entries = raw.len / layout::DESC_SIZE as u32;
        if !self.indirect_allowed
            || self.in_indirect
            || raw.flags.is_set(DESC_FLAGS::NEXT)
            || raw.len == 0
            || u64::from(raw.len) % layout::DESC_SIZE != 0
            || entries > MAX_INDIRECT_DESCRIPTORS
        {
            return Err(QueueError::BadIndirect);
        }
        // §2.7.5.3 states no alignment for the table: any address in RAM is accepted.
        let table = GuestPhysAddr(raw.addr);
        check_range(mem, table, u64::from(raw.len))?;
        self.table = table;
        self.table_len = entries;
        self.in_indirect = true;
        self.next = Some(0);
        self.visited = 0;
        Ok(())
    }

    /// The bytes the chain offers in each direction, as walked when it was taken.
    pub fn lengths(&self) -> ChainLengths {
        self.lengths
    }

    /// Walks a copy of the chain to its end, checking every descriptor, and sums its lengths.
    fn walk(&self, mem: &dyn GuestMemory) -> Result<ChainLengths, QueueError> {
        let mut walk = *self;
        let mut lens = ChainLengths::default();
        while let Some(d) = walk.next_descriptor(mem)? {
            let total = if d.writable {
                &mut lens.writable
            } else {
                &mut lens.readable
            };
            // At most 1024 + 32768 descriptors of at most 4 GiB each: no u64 overflow.
            *total += u64::from(d.len);
        }
        Ok(lens)
    }

    /// A reader over the device-readable part of the chain.
    pub fn reader(&self) -> ChainReader {
        ChainReader(Cursor::new(*self, false))
    }

    /// A writer over the device-writable part of the chain.
    pub fn writer(&self) -> ChainWriter {
        ChainWriter(Cursor::new(*self, true))
    }
}

/// A position in one direction of a chain.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    chain: DescriptorChain,
    writable: bool,
    current: Option<Descriptor>,
    /// Bytes of `current` already used.
    used: u32,
    done: bool,
}

impl Cursor {
    fn new(chain: DescriptorChain, writable: bool) -> Self {
        Self {
            chain,
            writable,
            current: None,
            used: 0,
            done: false,
        }
    }

    /// The unused part of the current buffer of our direction, fetching the next as needed;
    /// `None` when the chain has no more of them.
    fn buffer(
        &mut self,
        mem: &dyn GuestMemory,
    ) -> Result<Option<(GuestPhysAddr, u32)>, QueueError> {
        loop {
            if let Some(d) = self.current {
                if self.used < d.len {
                    let addr = offset(d.addr, u64::from(self.used))?;
                    return Ok(Some((addr, d.len - self.used)));
                }
            }
            if self.done {
                return Ok(None);
            }
            match self.chain.next_descriptor(mem)? {
                Some(d) if d.writable == self.writable => {
                    self.current = Some(d);
                    self.used = 0;
                }
                // Readable buffers come first: a reader stops at the first writable one.
                Some(_) if !self.writable => {
                    self.done = true;
                    self.current = None;
                }
                Some(_) => {}
                None => {
                    self.done = true;
                    self.current = None;
                }
            }
        }
    }

    fn advance(&mut self, n: u32) {
        self.used = self.used.saturating_add(n);
    }

    /// Skips up to `n` bytes; returns how many were skipped.
    fn skip(&mut self, mem: &dyn GuestMemory, mut n: u64) -> Result<u64, QueueError> {
        let mut skipped = 0;
        while n > 0 {
            let Some((_, avail)) = self.buffer(mem)? else {
                break;
            };
            let step = u32::try_from(n.min(u64::from(avail))).unwrap_or(avail);
            self.advance(step);
            n -= u64::from(step);
            skipped += u64::from(step);
        }
        Ok(skipped)
    }
}

/// Reads the device-readable bytes of a chain in order.
#[derive(Debug, Clone, Copy)]
pub struct ChainReader(Cursor);

impl ChainReader {
    /// Fills as much of `buf` as the chain has; returns the bytes read.
    pub fn read(&mut self, mem: &dyn GuestMemory, buf: &mut [u8]) -> Result<usize, QueueError> {
        let mut done = 0;
        while done < buf.len() {
            let Some((addr, avail)) = self.0.buffer(mem)? else {
                break;
            };
            let n = (buf.len() - done).min(avail as usize);
            let Some(dst) = buf.get_mut(done..done + n) else {
                break;
            };
            mem.read(addr, dst)?;
            self.0.advance(n as u32);
            done += n;
        }
        Ok(done)
    }

    /// Skips up to `n` readable bytes; returns how many were skipped.
    pub fn skip(&mut self, mem: &dyn GuestMemory, n: u64) -> Result<u64, QueueError> {
        self.0.skip(mem, n)
    }
}

/// Writes the device-writable bytes of a chain in order.
#[derive(Debug, Clone, Copy)]
pub struct ChainWriter(Cursor);

impl ChainWriter {
    /// Writes as much of `data` as the chain has room for; returns the bytes written.
    pub fn write(&mut self, mem: &mut dyn GuestMemory, data: &[u8]) -> Result<usize, QueueError> {
        let mut done = 0;
        while done < data.len() {
            let Some((addr, avail)) = self.0.buffer(mem)? else {
                break;
            };
            let n = (data.len() - done).min(avail as usize);
            let Some(src) = data.get(done..done + n) else {
                break;
            };
            mem.write(addr, src)?;
            self.0.advance(n as u32);
            done += n;
        }
        Ok(done)
    }

    /// Skips up to `n` writable bytes without writing them; returns how many were skipped.
    pub fn skip(&mut self, mem: &dyn GuestMemory, n: u64) -> Result<u64, QueueError> {
        self.0.skip(mem, n)
    }
}

/// One split virtqueue: the transport's per-queue registers and the device's ring positions.
#[derive(Debug, Clone)]
pub struct Queue {
    max_size: u16,
    size: u16,
    ready: bool,
    desc_table: GuestPhysAddr,
    avail_ring: GuestPhysAddr,
    used_ring: GuestPhysAddr,
    next_avail: Wrapping<u16>,
    next_used: Wrapping<u16>,
    /// The used index when the last notification decision was taken.
    signalled_used: Wrapping<u16>,
    event_idx: bool,
    indirect: bool,
}

impl Queue {
    /// A queue of at most `max_size` entries (QueueNumMax), in its reset state.
    pub fn new(max_size: u16) -> Self {
        Self {
            max_size: max_size.min(MAX_QUEUE_SIZE),
            size: max_size.min(MAX_QUEUE_SIZE),
            ready: false,
            desc_table: GuestPhysAddr(0),
            avail_ring: GuestPhysAddr(0),
            used_ring: GuestPhysAddr(0),
            next_avail: Wrapping(0),
            next_used: Wrapping(0),
            signalled_used: Wrapping(0),
            event_idx: false,
            indirect: false,
        }
    }

    /// Back to the reset state (§4.2.2.1: a reset clears QueueReady).
    pub fn reset(&mut self) {
        *self = Self::new(self.max_size);
    }

    /// QueueNumMax.
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// QueueNum.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// QueueReady.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The driver wrote QueueNum; the value is checked when the queue is made ready.
    pub fn set_size(&mut self, size: u16) {
        self.size = size;
    }

    /// QueueDesc: the descriptor table's address.
    pub fn desc_table(&self) -> GuestPhysAddr {
        self.desc_table
    }

    /// QueueDriver: the available ring's address.
    pub fn avail_ring(&self) -> GuestPhysAddr {
        self.avail_ring
    }

    /// QueueDevice: the used ring's address.
    pub fn used_ring(&self) -> GuestPhysAddr {
        self.used_ring
    }

    /// Sets the three ring addresses (QueueDesc, QueueDriver, QueueDevice).
    pub fn set_addresses(
        &mut self,
        desc: GuestPhysAddr,
        avail: GuestPhysAddr,
        used: GuestPhysAddr,
    ) {
        self.desc_table = desc;
        self.avail_ring = avail;
        self.used_ring = used;
    }

    /// Records the negotiated ring features.
    pub fn set_features(&mut self, indirect: bool, event_idx: bool) {
        self.indirect = indirect;
        self.event_idx = event_idx;
    }

    /// Checks the queue's configuration (§2.7: the size is a power of two no larger than
    /// QueueNumMax; the areas are aligned 16/2/4 and lie in guest RAM).
    pub fn validate(&self, mem: &dyn GuestMemory) -> Result<(), QueueError> {
        let size = self.size;
        if size == 0 || !size.is_power_of_two() || size > self.max_size {
            return Err(QueueError::BadSize(size));
        }
        if !self.desc_table.raw().is_multiple_of(layout::DESC_ALIGN)
            || !self.avail_ring.raw().is_multiple_of(layout::AVAIL_ALIGN)
            || !self.used_ring.raw().is_multiple_of(layout::USED_ALIGN)
        {
            return Err(QueueError::Unaligned);
        }
        let n = u64::from(size);
        // The rings are sized with their event fields, whether or not EVENT_IDX is used.
        check_range(mem, self.desc_table, layout::DESC_SIZE * n)?;
        check_range(mem, self.avail_ring, layout::AVAIL_RING + 2 * n + 2)?;
        check_range(
            mem,
            self.used_ring,
            layout::USED_RING + layout::USED_ELEM_SIZE * n + 2,
        )?;
        Ok(())
    }

    /// Makes the queue ready if its configuration is valid; the ring positions start at 0.
    pub fn enable(&mut self, mem: &dyn GuestMemory) -> Result<(), QueueError> {
        self.validate(mem)?;
        self.ready = true;
        self.next_avail = Wrapping(0);
        self.next_used = Wrapping(0);
        self.signalled_used = Wrapping(0);
        Ok(())
    }

    /// The driver wrote 0 to QueueReady.
    pub fn disable(&mut self) {
        self.ready = false;
    }

    fn avail_idx(&self, mem: &dyn GuestMemory) -> Result<u16, QueueError> {
        let idx = read_u16(mem, offset(self.avail_ring, layout::AVAIL_IDX)?)?;
        // The ring entries the index publishes are read after it.
        fence(Ordering::Acquire);
        Ok(idx)
    }

    /// Takes the next available chain, `None` if the driver has published none (or the queue
    /// is not ready). With EVENT_IDX, an empty ring asks for a notification at the next entry.
    pub fn pop(
        &mut self,
        mem: &mut dyn GuestMemory,
    ) -> Result<Option<DescriptorChain>, QueueError> {
        if !self.ready {
            return Ok(None);
        }
        let mut published = self.avail_idx(mem)?;
        if published == self.next_avail.0 && self.event_idx {
            self.set_avail_event(mem)?;
            fence(Ordering::SeqCst);
            // The driver may have published between our read and the event write.
            published = self.avail_idx(mem)?;
        }
        let pending = (Wrapping(published) - self.next_avail).0;
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.size {
            return Err(QueueError::AvailIndexJump {
                expected: self.next_avail.0,
                published,
            });
        }
        let slot = u64::from(self.next_avail.0 % self.size);
        let head = read_u16(mem, offset(self.avail_ring, layout::AVAIL_RING + 2 * slot)?)?;
        if head >= self.size {
            return Err(QueueError::IndexOutOfRange(u32::from(head)));
        }
        self.next_avail += 1;
        let mut chain = DescriptorChain {
            head,
            lengths: ChainLengths::default(),
            indirect_allowed: self.indirect,
            table: self.desc_table,
            table_len: u32::from(self.size),
            in_indirect: false,
            next: Some(u32::from(head)),
            visited: 0,
            seen_writable: false,
        };
        // Whole, before any device uses it: a device that stops part way (no more input to
        // write) would otherwise use a looping chain's descriptors again and again.
        chain.lengths = chain.walk(mem)?;
        Ok(Some(chain))
    }

    /// Gives back the last popped chain unused: it will be popped again.
    pub fn undo_pop(&mut self) {
        self.next_avail -= 1;
    }

    /// Whether the driver has published a chain not yet taken (without taking it).
    pub fn has_available(&self, mem: &dyn GuestMemory) -> Result<bool, QueueError> {
        Ok(self.ready && self.avail_idx(mem)? != self.next_avail.0)
    }

    fn set_avail_event(&self, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        // avail_event follows the used ring's `size` elements (§2.7.8).
        let at = layout::USED_RING + layout::USED_ELEM_SIZE * u64::from(self.size);
        write_u16(mem, offset(self.used_ring, at)?, self.next_avail.0)
    }

    /// Returns the chain with head `head` to the driver, `len` bytes written into it (§2.7.8).
    pub fn add_used(
        &mut self,
        mem: &mut dyn GuestMemory,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let slot = u64::from(self.next_used.0 % self.size.max(1));
        let at = offset(
            self.used_ring,
            layout::USED_RING + layout::USED_ELEM_SIZE * slot,
        )?;
        let mut elem = [0u8; layout::USED_ELEM_SIZE as usize];
        let (id, l) = elem.split_at_mut(4);
        id.copy_from_slice(&u32::from(head).to_le_bytes());
        l.copy_from_slice(&len.to_le_bytes());
        mem.write(at, &elem)?;
        self.next_used += 1;
        // The element must be visible before the index that publishes it.
        fence(Ordering::Release);
        write_u16(
            mem,
            offset(self.used_ring, layout::USED_IDX)?,
            self.next_used.0,
        )
    }

    /// Whether the driver wants a used-buffer notification for what was added since the last
    /// call: with EVENT_IDX, when the used index passed `used_event` (§2.7.10); without, unless
    /// the available ring's flags say NO_INTERRUPT (§2.7.7).
    pub fn needs_notification(&mut self, mem: &dyn GuestMemory) -> Result<bool, QueueError> {
        if !self.ready || self.next_used == self.signalled_used {
            return Ok(false);
        }
        let old = self.signalled_used;
        let new = self.next_used;
        self.signalled_used = new;
        fence(Ordering::SeqCst);
        if self.event_idx {
            let at = layout::AVAIL_RING + 2 * u64::from(self.size);
            let used_event = Wrapping(read_u16(mem, offset(self.avail_ring, at)?)?);
            // vring_need_event(): (u16)(new - event - 1) < (u16)(new - old).
            Ok((new - used_event - Wrapping(1)) < (new - old))
        } else {
            let flags: LocalRegisterCopy<u16, AVAIL_FLAGS::Register> =
                LocalRegisterCopy::new(read_u16(mem, self.avail_ring)?);
            Ok(!flags.is_set(AVAIL_FLAGS::NO_INTERRUPT))
        }
    }
}
