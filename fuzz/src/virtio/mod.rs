//! The harness shared by the virtio targets (`virtio_blk`, `virtio_net`, `virtio_console`,
//! `virtio_rng`): one virtio-mmio slot and its device over a small simulated guest RAM, driven
//! by an arbitrary sequence of
//! - guest MMIO accesses to the frame: any offset, width and value, and driver-shaped steps
//!   built from them (the whole §3.1.1 bring-up, queue setup with any size and ring addresses,
//!   status writes, resets, notifications of any queue at any time);
//! - guest writes to RAM: raw bytes, raw descriptors (loops, chains leaving RAM, huge lengths,
//!   indirect tables), available-ring entries and indices, `used_event`, ring flags, chains of
//!   any buffers with device-specific contents, and well-formed requests of the device's kind
//!   (direct or indirect), so that inputs reach the device's own logic as often as its checks;
//! - host-side events: `poll`, and each device's backend events (completions that fail, input
//!   arriving, a link going down).
//!
//! Most inputs start from a device a driver brought up (all features, full-size queues at a
//! standard layout, buffers in the RAM after it); the rest start from reset.
//!
//! A reference model of the transport (§4.2.2, §2.1, §3.1, and the rules `vmm::virtio::mmio`
//! documents) runs beside it, and the guest RAM the device sees is [`Watched`]: it checks each
//! access as it happens. Invariants, after every step and on every access:
//! - every register read returns what the model says (Status, InterruptStatus, QueueReady,
//!   QueueNumMax, DeviceFeatures, ConfigGeneration, the configuration space byte for byte);
//!   the interrupt line is InterruptStatus != 0; Status only gains bits until a reset, so a
//!   device in DEVICE_NEEDS_RESET stays there; DRIVER_OK only with FEATURES_OK; FEATURES_OK
//!   only for an acceptable feature set; a queue becomes ready exactly when its size and rings
//!   are valid; InterruptStatus gains USED_BUFFER exactly when the suppression rules (§2.7.7,
//!   §2.7.10) ask for it, and CONFIG_CHANGE only for a failure or a configuration change after
//!   DRIVER_OK;
//! - the device touches guest memory only while it may: never before DRIVER_OK, never while it
//!   needs a reset, and only a queue's rings while that queue is being made ready;
//! - every access lies in guest RAM, except the reads a device makes to check that a buffer
//!   does; the device reads only rings of ready queues and buffers and tables the descriptors
//!   it read name, and writes only into device-writable buffers those descriptors name, used
//!   elements and the used index, and `avail_event`. (A descriptor is recognised as the
//!   device reads it: 16 bytes at a slot of a ready queue's table or of an indirect table
//!   named before, as `vmm::virtio::queue` reads them.)
//! - a used element names the head the device took from the available ring slot it was due to
//!   take, only when the driver had published it; the used index moves by one per element;
//!   the used length is no more than the chain's writable bytes;
//! - each device's own rules, checked by its [`Model`] against what its backends saw.

mod input;
mod memory;
mod transport;

use std::cell::RefCell;
use std::fmt::Debug;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use vmm::virtio::mmio::{offset, MmioTransport};
use vmm::virtio::{feature, VirtioDevice};

use input::{Addr, Content, Features, Op, Segment};
pub use memory::Completion;
use memory::{Mode, QueueModel, Watched};
use transport::Regs;

/// Where the simulated guest RAM starts (QEMU virt's RAM base).
pub const RAM_BASE: u64 = abi::layout::RAM_BASE.raw();
/// Its size: small, so that random addresses land in it and rings and buffers overlap.
pub const RAM_SIZE: u64 = 0x1_0000;
/// Most operations taken from one input.
const MAX_OPS: usize = 256;
/// Most bytes one guest write or chain segment carries.
const MAX_BYTES: usize = 64;
/// Most segments in one driver-built chain.
const MAX_SEGMENTS: usize = 8;

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
    /// What a driver may set.
    pub const DRIVER_BITS: u32 = ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | FAILED;
}

/// InterruptStatus bits (§4.2.2).
pub mod interrupt {
    pub const USED_BUFFER: u32 = 1;
    pub const CONFIG_CHANGE: u32 = 2;
}

/// `struct virtq_desc.flags` (§2.7.5).
pub mod desc {
    pub const NEXT: u16 = 1;
    pub const WRITE: u16 = 2;
    pub const INDIRECT: u16 = 4;
}

/// `VIRTQ_AVAIL_F_NO_INTERRUPT` (§2.7.7).
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// One device type under the harness: how to build it, what its backends record, and its
/// own checks.
pub trait Model: Sized {
    type Dev: VirtioDevice + 'static;
    /// What the device's backends saw (an entry per call).
    type Host: Debug + 'static;
    /// A host-side event.
    type Event: for<'a> Arbitrary<'a> + Debug;
    /// A device-specific buffer content (a request header, a control message).
    type Payload: for<'a> Arbitrary<'a> + Debug;
    /// A well-formed request, as a driver would make it.
    type Request: for<'a> Arbitrary<'a> + Debug;

    /// The device ID (§5).
    const DEVICE_ID: u32;

    /// A device from the input, with backends that record into `host`.
    fn new(
        u: &mut Unstructured,
        host: Rc<RefCell<Vec<Self::Host>>>,
    ) -> arbitrary::Result<(Self, Self::Dev)>;
    /// The device-type features it must offer.
    fn features(&self) -> u64;
    /// Its configuration space, as the guest must read it.
    fn config(&self) -> Vec<u8>;
    /// The bytes of a payload.
    fn payload(&self, p: &Self::Payload) -> Vec<u8>;
    /// The queue a request goes to and its buffers, in chain order.
    fn request(&self, r: &Self::Request) -> (usize, Vec<Buf>);
    /// A host-side event. It touches no guest memory: a later `Poll` step delivers what it
    /// queued.
    fn event(&mut self, dev: &mut Self::Dev, e: Self::Event);
    /// The driver set DRIVER_OK with `features` negotiated.
    fn activate(&mut self, _features: u64) {}
    /// The driver reset the device.
    fn reset(&mut self) {}
    /// Whether the configuration changed since the last call (the device's
    /// `take_config_changed`).
    fn take_config_changed(&mut self) -> bool {
        false
    }
    /// A used buffer, and the backend calls made since the previous one.
    fn completion(&mut self, dev: &Self::Dev, c: &Completion, host: &[Self::Host]);
    /// After every step: backend calls made after the last used buffer (of a request the
    /// device gave up on, if it `failed`: it needs a reset), and the device's host-side state.
    fn check(&mut self, dev: &Self::Dev, host: &[Self::Host], failed: bool);
    /// At the end of the input.
    fn finish(&mut self, _dev: &Self::Dev) {}
}

/// One buffer of a well-formed request: its length, direction and what the driver puts in.
#[derive(Debug, Clone)]
pub struct Buf {
    pub len: u32,
    pub writable: bool,
    pub bytes: Vec<u8>,
}

impl Buf {
    /// A device-readable buffer holding `bytes`.
    pub fn readable(bytes: Vec<u8>) -> Self {
        Self {
            len: bytes.len() as u32,
            writable: false,
            bytes,
        }
    }

    /// A device-writable buffer of `len` bytes.
    pub fn writable(len: u32) -> Self {
        Self {
            len,
            writable: true,
            bytes: Vec::new(),
        }
    }
}

/// One slot under test: the transport, the watched RAM, the reference model and the device's
/// model.
pub struct Harness<M: Model> {
    t: MmioTransport<M::Dev>,
    mem: Watched,
    model: M,
    regs: Regs,
    offered: u64,
    host: Rc<RefCell<Vec<M::Host>>>,
    /// Host log entries already checked.
    host_seen: usize,
    /// The driver's next free descriptor per queue.
    next_desc: Vec<u16>,
    /// Bytes of the standard layout each queue takes, and where the buffer arena starts.
    area: u64,
    arena: u64,
    /// Where [`Self::alloc`] puts the next buffer.
    cursor: u64,
}

/// Runs one input against device model `M`.
pub fn run<M: Model>(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let host = Rc::new(RefCell::new(Vec::new()));
    let Ok((model, dev)) = M::new(&mut u, host.clone()) else {
        return;
    };
    let mut h = Harness::new(model, dev, host);
    h.check_registers();
    // Most inputs start from a device a driver brought up, to spend their steps on the rings.
    if u.arbitrary::<u8>().unwrap_or(0) < 200 {
        h.init(Features::Offered(u64::MAX), 0, 0);
    }
    for _ in 0..MAX_OPS {
        let Ok(op) = u.arbitrary::<Op<M::Payload, M::Request, M::Event>>() else {
            break;
        };
        h.step(op);
        if u.is_empty() {
            break;
        }
    }
    h.model.finish(h.t.device());
}

impl<M: Model> Harness<M> {
    fn new(model: M, dev: M::Dev, host: Rc<RefCell<Vec<M::Host>>>) -> Self {
        let queues: Vec<QueueModel> = dev
            .queue_max_sizes()
            .iter()
            .map(|&m| QueueModel::new(m))
            .collect();
        let max = u64::from(queues.iter().map(|q| q.max).max().unwrap_or(0));
        // Descriptors, then the available ring, then the used ring 4-aligned.
        let area =
            ((16 * max + 6 + 2 * max).next_multiple_of(4) + 6 + 8 * max).next_multiple_of(0x100);
        let arena = RAM_BASE + (area * queues.len() as u64).next_multiple_of(0x1000);
        assert!(arena < RAM_BASE + RAM_SIZE, "no room for buffers");
        let log = host.clone();
        let nq = queues.len();
        let mem = Watched::new(queues, Rc::new(move || log.borrow().len()));
        let offered = model.features()
            | feature::VERSION_1
            | feature::RING_INDIRECT_DESC
            | feature::RING_EVENT_IDX;
        Self {
            t: MmioTransport::new(dev),
            mem,
            model,
            regs: Regs::default(),
            offered,
            host,
            host_seen: 0,
            next_desc: vec![0; nq],
            area,
            arena,
            cursor: arena,
        }
    }

    fn nq(&mut self) -> usize {
        self.mem.queues().len()
    }

    fn addr(&mut self, a: Addr) -> u64 {
        match a {
            Addr::Arena(x) => {
                let len = RAM_BASE + RAM_SIZE - self.arena;
                self.arena + u64::from(x) % len
            }
            Addr::Ram(x) => RAM_BASE + u64::from(x) % RAM_SIZE,
            Addr::Ring(q, which, x) => {
                let qs = self.mem.queues();
                let Some(q) = qs.get(usize::from(q) % qs.len().max(1)) else {
                    return RAM_BASE;
                };
                let (base, len) = match which % 3 {
                    0 => q.desc_area(),
                    1 => q.avail_area(),
                    _ => q.used_area(),
                };
                base.wrapping_add(u64::from(x) % len.max(1))
            }
            Addr::End(x) => RAM_BASE + RAM_SIZE - u64::from(x),
            Addr::Raw(a) => a,
        }
    }

    fn step(&mut self, op: Op<M::Payload, M::Request, M::Event>) {
        match op {
            Op::Init {
                features,
                shrink,
                skip,
            } => self.init(features, shrink, skip),
            Op::Read { offset, width } => self.mmio_read(offset.get(), width.get()),
            Op::Write {
                offset,
                width,
                value,
            } => self.mmio_write(offset.get(), width.get(), value),
            Op::Status(bits) => self.reg(offset::STATUS, u32::from(bits)),
            Op::Reset => self.reg(offset::STATUS, 0),
            Op::SetupQueue {
                queue,
                size,
                desc,
                avail,
                used,
                ready,
            } => {
                let (d, v, u) = (self.addr(desc), self.addr(avail), self.addr(used));
                self.reg(offset::QUEUE_SEL, u32::from(queue % 8));
                self.reg(offset::QUEUE_NUM, size);
                self.set_rings(d, v, u);
                if ready {
                    self.reg(offset::QUEUE_READY, 1);
                }
            }
            Op::QueueReady { queue, ready } => {
                self.reg(offset::QUEUE_SEL, u32::from(queue % 8));
                self.reg(offset::QUEUE_READY, ready);
            }
            Op::Notify(q) => self.reg(offset::QUEUE_NOTIFY, u32::from(q % 8)),
            Op::NotifyRaw(q) => self.reg(offset::QUEUE_NOTIFY, q),
            Op::Ack(v) => self.reg(offset::INTERRUPT_ACK, v),
            Op::Poke { addr, mut bytes } => {
                bytes.truncate(MAX_BYTES);
                let a = self.addr(addr);
                self.mem.poke(a, &bytes);
            }
            Op::Fill { addr, len, byte } => {
                let a = self.addr(addr);
                let len = u64::from(len).min(RAM_SIZE);
                self.mem.poke(a, &vec![byte; len as usize]);
            }
            Op::Desc {
                queue,
                index,
                addr,
                len,
                flags,
                next,
            } => {
                let a = self.addr(addr);
                let q = self.queue(queue);
                let at = q.desc.wrapping_add(16 * u64::from(index % q.size.max(1)));
                self.write_desc(at, a, len.get(0), flags, next);
            }
            Op::Publish { queue, head } => {
                let q = self.queue(queue);
                self.publish(&q, head);
            }
            Op::AvailIdx { queue, idx } => {
                let q = self.queue(queue);
                self.mem.poke(q.avail.wrapping_add(2), &idx.to_le_bytes());
            }
            Op::UsedEvent { queue, value } => {
                let q = self.queue(queue);
                if let Some(at) = q.used_event() {
                    self.mem.poke(at, &value.to_le_bytes());
                }
            }
            Op::AvailFlags { queue, flags } => {
                let q = self.queue(queue);
                self.mem.poke(q.avail, &flags.to_le_bytes());
            }
            Op::Chain {
                queue,
                segments,
                indirect,
                notify,
            } => {
                let q = usize::from(queue) % self.nq().max(1);
                self.chain(q, segments, indirect);
                if notify {
                    self.reg(offset::QUEUE_NOTIFY, q as u32);
                }
            }
            Op::Request {
                request,
                indirect,
                notify,
            } => {
                let (q, bufs) = self.model.request(&request);
                let q = q % self.nq().max(1);
                let descs = bufs
                    .iter()
                    .map(|b| (self.alloc(b), b.len, b.writable))
                    .collect();
                let table = indirect.then(|| {
                    let n = bufs.len() as u32;
                    self.alloc(&Buf::writable(16 * n))
                });
                self.write_chain(q, descs, table);
                if notify {
                    self.reg(offset::QUEUE_NOTIFY, q as u32);
                }
            }
            Op::Poll => {
                let live = self.live();
                self.device_step(live, |t, m| t.poll(m));
            }
            Op::Host(e) => {
                self.model.event(self.t.device_mut(), e);
                self.after_step();
            }
        }
    }

    /// The model of queue `q` (modulo the count), as the driver sees it.
    fn queue(&mut self, q: u8) -> QueueModel {
        let qs = self.mem.queues();
        let n = qs.len().max(1);
        qs.get(usize::from(q) % n).cloned().unwrap_or_default()
    }

    fn write_desc(&mut self, at: u64, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem.poke(at, &d);
    }

    /// Puts `head` in the next slot of the available ring and moves the index on (§2.7.13).
    fn publish(&mut self, q: &QueueModel, head: u16) {
        let idx = self.mem.peek16(q.avail.wrapping_add(2));
        let slot = u64::from(idx % q.size.max(1));
        self.mem
            .poke(q.avail.wrapping_add(4 + 2 * slot), &head.to_le_bytes());
        self.mem
            .poke(q.avail.wrapping_add(2), &idx.wrapping_add(1).to_le_bytes());
    }

    /// Room for `b` in the arena (wrapping round to its start), with `b`'s bytes put there.
    fn alloc(&mut self, b: &Buf) -> u64 {
        let len = u64::from(b.len);
        let end = RAM_BASE + RAM_SIZE;
        let mut at = self.cursor.next_multiple_of(16);
        if at + len > end {
            at = self.arena;
        }
        self.cursor = at + len;
        self.mem.poke(at, &b.bytes);
        at
    }

    fn chain(&mut self, qi: usize, mut segments: Vec<Segment<M::Payload>>, indirect: Option<Addr>) {
        segments.truncate(MAX_SEGMENTS);
        let mut descs = Vec::new();
        for s in &segments {
            let bytes = match &s.content {
                Content::Keep => Vec::new(),
                Content::Bytes(b) => b.iter().copied().take(MAX_BYTES).collect(),
                Content::Payload(p) => self.model.payload(p),
            };
            let a = self.addr(s.addr);
            let len = s.len.get(bytes.len());
            let n = bytes.len().min(len as usize);
            self.mem.poke(a, &bytes[..n]);
            descs.push((a, len, s.writable));
        }
        let table = indirect.map(|t| self.addr(t));
        self.write_chain(qi, descs, table);
    }

    /// Writes `descs` as a chain at the queue's next free descriptors, or as the indirect
    /// table at `table` with one descriptor pointing at it, and publishes its head.
    fn write_chain(&mut self, qi: usize, descs: Vec<(u64, u32, bool)>, table: Option<u64>) {
        let q = self.mem.queues()[qi].clone();
        let descs: Vec<(u64, u32, u16)> = descs
            .into_iter()
            .map(|(a, len, w)| (a, len, if w { desc::WRITE } else { 0 }))
            .collect();
        let size = q.size.max(1);
        let head = self.next_desc[qi] % size;
        match table {
            Some(table) => {
                for (i, &(a, len, flags)) in descs.iter().enumerate() {
                    let more = if i + 1 < descs.len() { desc::NEXT } else { 0 };
                    let at = table.wrapping_add(16 * i as u64);
                    self.write_desc(at, a, len, flags | more, i as u16 + 1);
                }
                let at = q.desc.wrapping_add(16 * u64::from(head));
                self.write_desc(at, table, 16 * descs.len() as u32, desc::INDIRECT, 0);
                self.next_desc[qi] = head.wrapping_add(1) % size;
            }
            None => {
                let mut index = head;
                for (i, &(a, len, flags)) in descs.iter().enumerate() {
                    let next = index.wrapping_add(1) % size;
                    let more = if i + 1 < descs.len() { desc::NEXT } else { 0 };
                    let at = q.desc.wrapping_add(16 * u64::from(index));
                    self.write_desc(at, a, len, flags | more, next);
                    index = next;
                }
                self.next_desc[qi] = index;
            }
        }
        self.publish(&q, head);
    }

    fn set_rings(&mut self, desc: u64, avail: u64, used: u64) {
        for (low, v) in [
            (offset::QUEUE_DESC_LOW, desc),
            (offset::QUEUE_DRIVER_LOW, avail),
            (offset::QUEUE_DEVICE_LOW, used),
        ] {
            self.reg(low, v as u32);
            self.reg(low + 4, (v >> 32) as u32);
        }
    }

    fn init(&mut self, features: Features, shrink: u8, skip: u8) {
        use status::*;
        self.reg(offset::STATUS, 0);
        self.reg(offset::STATUS, ACKNOWLEDGE);
        self.reg(offset::STATUS, ACKNOWLEDGE | DRIVER);
        let f = match features {
            Features::Offered(mask) => self.offered & mask | feature::VERSION_1,
            Features::Raw(f) => f,
        };
        self.reg(offset::DRIVER_FEATURES_SEL, 0);
        self.reg(offset::DRIVER_FEATURES, f as u32);
        self.reg(offset::DRIVER_FEATURES_SEL, 1);
        self.reg(offset::DRIVER_FEATURES, (f >> 32) as u32);
        self.reg(offset::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        for i in 0..self.nq() {
            if skip & (1 << (i % 8)) != 0 {
                continue;
            }
            let max = self.mem.queues()[i].max;
            let size = (max >> (shrink % 8)).max(1);
            let n = u64::from(max);
            let desc = RAM_BASE + self.area * i as u64;
            let avail = desc + 16 * n;
            let used = (avail + 6 + 2 * n).next_multiple_of(4);
            // A driver hands the device zeroed rings.
            self.mem.poke(desc, &vec![0; self.area as usize]);
            self.next_desc[i] = 0;
            self.reg(offset::QUEUE_SEL, i as u32);
            self.reg(offset::QUEUE_NUM, u32::from(size));
            self.set_rings(desc, avail, used);
            self.reg(offset::QUEUE_READY, 1);
        }
        self.reg(
            offset::STATUS,
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
        );
    }

    fn reg(&mut self, off: u64, v: u32) {
        self.mmio_write(off, 4, u64::from(v));
    }

    fn live(&self) -> bool {
        self.regs.status & status::DRIVER_OK != 0
            && self.regs.status & status::DEVICE_NEEDS_RESET == 0
    }

    /// Runs `f` on the transport with the device allowed `mode`'s accesses; returns what it
    /// returned the guest through used rings.
    fn with_mode<R>(
        &mut self,
        mode: Mode,
        f: impl FnOnce(&mut MmioTransport<M::Dev>, &mut Watched) -> R,
    ) -> (R, Vec<Completion>, bool) {
        self.mem.set_mode(mode);
        let r = f(&mut self.t, &mut self.mem);
        let (completions, bad_head) = self.mem.finish();
        if mode != Mode::Run {
            assert!(completions.is_empty(), "used buffers in a {mode:?} step");
        }
        (r, completions, bad_head)
    }

    /// A step that may run the device (`ran`: a notification of a ready queue, a poll, or
    /// DRIVER_OK, while live), then the model's account of its interrupts.
    fn device_step(&mut self, ran: bool, f: impl FnOnce(&mut MmioTransport<M::Dev>, &mut Watched)) {
        let mode = if ran { Mode::Run } else { Mode::Idle };
        let ((), completions, bad_head) = self.with_mode(mode, f);
        if !ran {
            self.after_step();
            return;
        }
        {
            let host = self.host.borrow();
            for c in &completions {
                assert!(c.host_end >= self.host_seen, "host log went backwards");
                let calls = &host[self.host_seen..c.host_end];
                self.model.completion(self.t.device(), c, calls);
                self.host_seen = c.host_end;
            }
        }
        let failed = self.t.status().get() & status::DEVICE_NEEDS_RESET != 0;
        if failed {
            // Any broken ring may fail the device; the spec's answer is this (§2.1.2).
            self.regs.status |= status::DEVICE_NEEDS_RESET;
            self.regs.interrupt |= interrupt::CONFIG_CHANGE;
        } else {
            assert!(
                !bad_head,
                "a head past the queue size was taken without failing"
            );
            self.notifications();
            self.observe_config();
        }
        self.after_step();
    }

    /// The device's host-side state, and every register, against the models.
    fn after_step(&mut self) {
        {
            let host = self.host.borrow();
            let rest = &host[self.host_seen..];
            let failed = self.t.status().get() & status::DEVICE_NEEDS_RESET != 0;
            self.model.check(self.t.device(), rest, failed);
            self.host_seen = host.len();
        }
        self.check_registers();
    }
}
