//! A test driver that plays the guest: it lays out virtqueues and buffers in a [`VecMemory`],
//! drives the virtio-mmio registers through the initialization sequence of §3.1.1, publishes
//! descriptor chains, notifies, and reads the used ring back.

use crate::virtio::mmio::{offset, MmioTransport};
use crate::virtio::VirtioDevice;
use abi::GuestPhysAddr;
use std::vec::Vec;
use vmboot::memory::{GuestMemory, VecMemory};

/// Where the test guest's RAM starts (as QEMU virt's).
pub const RAM_BASE: u64 = 0x4000_0000;
/// Size of the test guest's RAM.
pub const RAM_SIZE: usize = 0x20_0000;

/// Descriptor flags (§2.7.5).
pub const F_NEXT: u16 = 1;
pub const F_WRITE: u16 = 2;
pub const F_INDIRECT: u16 = 4;

pub const ACKNOWLEDGE: u32 = 1;
pub const DRIVER: u32 = 2;
pub const DRIVER_OK: u32 = 4;
pub const FEATURES_OK: u32 = 8;
pub const NEEDS_RESET: u32 = 0x40;

/// One buffer of a chain: address, length, device-writable.
pub type Buf = (u64, u32, bool);

/// The driver's view of one virtqueue.
#[derive(Debug, Clone)]
pub struct DriverQueue {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    next_desc: u16,
    pub avail_idx: u16,
    last_used: u16,
}

/// A guest: its RAM, a bump allocator over it, and its queues.
pub struct Guest {
    pub mem: VecMemory,
    brk: u64,
    pub queues: Vec<Option<DriverQueue>>,
    /// Whether [`Self::publish`] sets `used_event` to ask for an interrupt on the next used
    /// buffer, as Linux does (with VIRTIO_RING_F_EVENT_IDX).
    pub auto_used_event: bool,
}

impl Guest {
    pub fn new() -> Self {
        Self {
            mem: VecMemory::new(GuestPhysAddr(RAM_BASE), RAM_SIZE),
            // Leave the first page unused so tests can watch it.
            brk: RAM_BASE + 0x1000,
            queues: Vec::new(),
            auto_used_event: true,
        }
    }

    pub fn alloc(&mut self, len: u64, align: u64) -> u64 {
        let at = self.brk.next_multiple_of(align);
        self.brk = at + len;
        assert!(
            self.brk <= RAM_BASE + RAM_SIZE as u64,
            "test guest out of RAM"
        );
        at
    }

    pub fn poke(&mut self, addr: u64, bytes: &[u8]) {
        self.mem.write(GuestPhysAddr(addr), bytes).unwrap();
    }

    pub fn peek(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = std::vec![0; len];
        self.mem.read(GuestPhysAddr(addr), &mut b).unwrap();
        b
    }

    pub fn peek_u16(&self, addr: u64) -> u16 {
        u16::from_le_bytes(self.peek(addr, 2).try_into().unwrap())
    }

    /// A buffer holding `data`.
    pub fn buffer(&mut self, data: &[u8]) -> u64 {
        let at = self.alloc(data.len().max(1) as u64, 16);
        self.poke(at, data);
        at
    }

    /// An empty buffer of `len` bytes filled with `fill`, so tests see what the device wrote.
    pub fn blank(&mut self, len: usize, fill: u8) -> u64 {
        self.buffer(&std::vec![fill; len])
    }

    pub fn read_reg<D: VirtioDevice + 'static>(t: &mut MmioTransport<D>, off: u64) -> u32 {
        t.read(off, 4) as u32
    }

    pub fn write_reg<D: VirtioDevice + 'static>(
        &mut self,
        t: &mut MmioTransport<D>,
        off: u64,
        v: u32,
    ) {
        t.write(off, 4, u64::from(v), &mut self.mem);
    }

    pub fn status<D: VirtioDevice + 'static>(t: &mut MmioTransport<D>) -> u32 {
        Self::read_reg(t, offset::STATUS)
    }

    pub fn device_features<D: VirtioDevice + 'static>(&mut self, t: &mut MmioTransport<D>) -> u64 {
        self.write_reg(t, offset::DEVICE_FEATURES_SEL, 0);
        let lo = Self::read_reg(t, offset::DEVICE_FEATURES);
        self.write_reg(t, offset::DEVICE_FEATURES_SEL, 1);
        let hi = Self::read_reg(t, offset::DEVICE_FEATURES);
        u64::from(lo) | u64::from(hi) << 32
    }

    /// §3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. Returns whether the
    /// device kept FEATURES_OK.
    pub fn negotiate<D: VirtioDevice + 'static>(
        &mut self,
        t: &mut MmioTransport<D>,
        features: u64,
    ) -> bool {
        assert_eq!(Self::read_reg(t, offset::MAGIC_VALUE), 0x7472_6976);
        assert_eq!(Self::read_reg(t, offset::VERSION), 2);
        self.write_reg(t, offset::STATUS, 0);
        assert_eq!(Self::status(t), 0);
        self.write_reg(t, offset::STATUS, ACKNOWLEDGE);
        self.write_reg(t, offset::STATUS, ACKNOWLEDGE | DRIVER);
        self.write_reg(t, offset::DRIVER_FEATURES_SEL, 0);
        self.write_reg(t, offset::DRIVER_FEATURES, features as u32);
        self.write_reg(t, offset::DRIVER_FEATURES_SEL, 1);
        self.write_reg(t, offset::DRIVER_FEATURES, (features >> 32) as u32);
        self.write_reg(t, offset::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        Self::status(t) & FEATURES_OK != 0
    }

    /// Lays out queue `index` with `size` entries and makes it ready (§3.1.1 step 7, §4.2.3.2).
    pub fn setup_queue<D: VirtioDevice + 'static>(
        &mut self,
        t: &mut MmioTransport<D>,
        index: u16,
        size: u16,
    ) {
        let n = u64::from(size);
        let desc = self.alloc(16 * n, 16);
        let avail = self.alloc(6 + 2 * n, 2);
        let used = self.alloc(6 + 8 * n, 4);
        self.setup_queue_at(t, index, size, desc, avail, used);
    }

    /// Like [`Self::setup_queue`], at the given addresses (which may be wrong on purpose).
    pub fn setup_queue_at<D: VirtioDevice + 'static>(
        &mut self,
        t: &mut MmioTransport<D>,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
    ) {
        self.write_reg(t, offset::QUEUE_SEL, u32::from(index));
        assert_eq!(Self::read_reg(t, offset::QUEUE_READY), 0);
        assert!(
            Self::read_reg(t, offset::QUEUE_NUM_MAX) > 0,
            "queue {index} missing"
        );
        self.write_reg(t, offset::QUEUE_NUM, u32::from(size));
        for (lo, v) in [
            (offset::QUEUE_DESC_LOW, desc),
            (offset::QUEUE_DRIVER_LOW, avail),
            (offset::QUEUE_DEVICE_LOW, used),
        ] {
            self.write_reg(t, lo, v as u32);
            self.write_reg(t, lo + 4, (v >> 32) as u32);
        }
        self.write_reg(t, offset::QUEUE_READY, 1);
        let i = usize::from(index);
        if self.queues.len() <= i {
            self.queues.resize(i + 1, None);
        }
        self.queues[i] = Some(DriverQueue {
            size,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            last_used: 0,
        });
    }

    /// The whole of §3.1.1 with `features` and one queue per entry of `sizes`; asserts the
    /// device came up.
    pub fn init<D: VirtioDevice + 'static>(
        &mut self,
        t: &mut MmioTransport<D>,
        features: u64,
        sizes: &[u16],
    ) {
        assert!(self.negotiate(t, features), "FEATURES_OK refused");
        self.queues.clear();
        for (i, &size) in sizes.iter().enumerate() {
            if size > 0 {
                self.setup_queue(t, i as u16, size);
                self.write_reg(t, offset::QUEUE_SEL, i as u32);
                assert_eq!(
                    Self::read_reg(t, offset::QUEUE_READY),
                    1,
                    "queue {i} not ready"
                );
            }
        }
        self.write_reg(
            t,
            offset::STATUS,
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
        );
        assert_eq!(
            Self::status(t),
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
        );
    }

    fn queue(&mut self, q: usize) -> &mut DriverQueue {
        self.queues[q].as_mut().expect("queue not set up")
    }

    /// Writes descriptor `index` of queue `q` as it is.
    pub fn write_desc(&mut self, q: usize, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.queue(q).desc + 16 * u64::from(index);
        write_desc_at(&mut self.mem, at, addr, len, flags, next);
    }

    /// Publishes `head` in the available ring of queue `q`.
    pub fn publish(&mut self, q: usize, head: u16) {
        let dq = self.queue(q).clone();
        let slot = u64::from(dq.avail_idx % dq.size);
        self.poke(dq.avail + 4 + 2 * slot, &head.to_le_bytes());
        let idx = dq.avail_idx.wrapping_add(1);
        if self.auto_used_event {
            let used_event = dq.avail + 4 + 2 * u64::from(dq.size);
            self.poke(used_event, &dq.last_used.to_le_bytes());
        }
        self.poke(dq.avail + 2, &idx.to_le_bytes());
        self.queue(q).avail_idx = idx;
    }

    /// Writes `bufs` as a chain of fresh descriptors and publishes it; returns the head.
    pub fn push_chain(&mut self, q: usize, bufs: &[Buf]) -> u16 {
        let size = self.queue(q).size;
        let head = self.queue(q).next_desc;
        let mut index = head;
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let next = (index + 1) % size;
            let mut flags = if writable { F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= F_NEXT;
            }
            self.write_desc(q, index, addr, len, flags, next);
            index = next;
        }
        self.queue(q).next_desc = index;
        self.publish(q, head);
        head
    }

    /// Writes `bufs` as an indirect table and publishes one descriptor pointing at it.
    pub fn push_indirect(&mut self, q: usize, bufs: &[Buf]) -> u16 {
        let table = self.alloc(16 * bufs.len() as u64, 16);
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let mut flags = if writable { F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= F_NEXT;
            }
            write_desc_at(
                &mut self.mem,
                table + 16 * i as u64,
                addr,
                len,
                flags,
                i as u16 + 1,
            );
        }
        let size = self.queue(q).size;
        let head = self.queue(q).next_desc;
        self.write_desc(q, head, table, 16 * bufs.len() as u32, F_INDIRECT, 0);
        self.queue(q).next_desc = (head + 1) % size;
        self.publish(q, head);
        head
    }

    pub fn notify<D: VirtioDevice + 'static>(&mut self, t: &mut MmioTransport<D>, q: u16) {
        self.write_reg(t, offset::QUEUE_NOTIFY, u32::from(q));
    }

    /// The used elements (id, len) added since the last call.
    pub fn used(&mut self, q: usize) -> Vec<(u32, u32)> {
        let dq = self.queue(q).clone();
        let idx = self.peek_u16(dq.used + 2);
        let mut out = Vec::new();
        let mut at = dq.last_used;
        while at != idx {
            let e = self.peek(dq.used + 4 + 8 * u64::from(at % dq.size), 8);
            out.push((
                u32::from_le_bytes(e[..4].try_into().unwrap()),
                u32::from_le_bytes(e[4..].try_into().unwrap()),
            ));
            at = at.wrapping_add(1);
        }
        self.queue(q).last_used = idx;
        out
    }

    /// Acknowledges every interrupt; returns the InterruptStatus it saw.
    pub fn ack<D: VirtioDevice + 'static>(&mut self, t: &mut MmioTransport<D>) -> u32 {
        let s = Self::read_reg(t, offset::INTERRUPT_STATUS);
        self.write_reg(t, offset::INTERRUPT_ACK, s);
        s
    }
}

pub fn write_desc_at(mem: &mut VecMemory, at: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&len.to_le_bytes());
    d[12..14].copy_from_slice(&flags.to_le_bytes());
    d[14..].copy_from_slice(&next.to_le_bytes());
    mem.write(GuestPhysAddr(at), &d).unwrap();
}

/// Asserts that `after` differs from `before` only inside `allowed` (guest-physical ranges).
pub fn assert_only_changed(before: &VecMemory, after: &VecMemory, allowed: &[(u64, u64)]) {
    let (b, a) = (before.as_bytes(), after.as_bytes());
    for (i, (x, y)) in b.iter().zip(a).enumerate() {
        if x != y {
            let addr = RAM_BASE + i as u64;
            assert!(
                allowed.iter().any(|&(s, len)| addr >= s && addr < s + len),
                "guest RAM at {addr:#x} changed from {x:#x} to {y:#x} outside the allowed ranges"
            );
        }
    }
}

/// The used ring of queue `q` as an allowed-to-change range.
pub fn used_ring_range(g: &Guest, q: usize) -> (u64, u64) {
    let dq = g.queues[q].as_ref().unwrap();
    (dq.used, 6 + 8 * u64::from(dq.size))
}
