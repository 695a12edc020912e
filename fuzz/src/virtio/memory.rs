//! The guest RAM a virtio device sees under the harness: a `VecMemory` that checks every
//! access as the device makes it, against the reference model's queues (see the module
//! documentation of [`super`]).

use std::cell::RefCell;
use std::rc::Rc;

use abi::GuestPhysAddr;
use vmboot::memory::{GuestMemory, MemoryError, VecMemory};

use super::{desc, RAM_BASE, RAM_SIZE};

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Whether `[a, a + n)` lies inside `[start, start + len)`; no overflow whatever the values.
fn inside(a: u64, n: u64, start: u64, len: u64) -> bool {
    let (a, n, start, len) = (a as u128, n as u128, start as u128, len as u128);
    a >= start && a + n <= start + len
}

/// Whether `len` bytes at `a` lie in guest RAM.
pub(super) fn in_ram(a: u64, len: u64) -> bool {
    inside(a, len, RAM_BASE, RAM_SIZE)
}

/// The transport's view of one queue, as the reference model keeps it.
#[derive(Debug, Clone, Default)]
pub struct QueueModel {
    pub max: u16,
    /// QueueNum: the maximum after a reset (§4.2.2).
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub ready: bool,
    pub event_idx: bool,
    /// Used elements the device added since the queue was made ready (the used index).
    pub consumed: u16,
    /// The used index when the device last decided on a notification.
    pub signalled: u16,
    /// The head the device took from the available ring and has not returned yet.
    pub pending: Option<u16>,
    /// The available index the device read last, in this step.
    last_idx: Option<u16>,
}

impl QueueModel {
    pub(super) fn new(max: u16) -> Self {
        Self {
            max,
            size: max,
            ..Self::default()
        }
    }

    pub(super) fn reset(&mut self) {
        *self = Self::new(self.max);
    }

    fn n(&self) -> u64 {
        u64::from(self.size)
    }

    /// The descriptor table, available ring and used ring as (address, length).
    pub(super) fn desc_area(&self) -> (u64, u64) {
        (self.desc, 16 * self.n())
    }

    pub(super) fn avail_area(&self) -> (u64, u64) {
        (self.avail, 6 + 2 * self.n())
    }

    pub(super) fn used_area(&self) -> (u64, u64) {
        (self.used, 6 + 8 * self.n())
    }

    /// §2.7: a power-of-two size no larger than QueueNumMax; areas aligned 16/2/4 and in RAM.
    pub(super) fn valid(&self) -> bool {
        let areas = [self.desc_area(), self.avail_area(), self.used_area()];
        self.size != 0
            && self.size.is_power_of_two()
            && self.size <= self.max
            && self.desc.is_multiple_of(16)
            && self.avail.is_multiple_of(2)
            && self.used.is_multiple_of(4)
            && areas.iter().all(|&(a, n)| in_ram(a, n))
    }

    /// Where the device's next used element goes.
    fn next_elem(&self) -> Option<u64> {
        let slot = u64::from(self.consumed % self.size.max(1));
        self.used.checked_add(4 + 8 * slot)
    }

    /// Where the next head the device is due to take sits in the available ring.
    fn next_head_slot(&self) -> Option<u64> {
        let slot = u64::from(self.consumed % self.size.max(1));
        self.avail.checked_add(4 + 2 * slot)
    }

    fn avail_event(&self) -> Option<u64> {
        self.used.checked_add(4 + 8 * self.n())
    }

    pub(super) fn used_event(&self) -> Option<u64> {
        self.avail.checked_add(4 + 2 * self.n())
    }
}

/// What the device may do to guest memory in the current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing: the step may not touch guest memory.
    Idle,
    /// Read the rings of queue n, which the driver is making ready.
    Validate(usize),
    /// Use the ready queues.
    Run,
}

/// A buffer the device returned through a used ring, with what it wrote into the chain.
#[derive(Debug, Clone)]
pub struct Completion {
    pub queue: usize,
    pub head: u16,
    pub len: u32,
    /// The bytes the device wrote into the chain's buffers while serving it, in order.
    pub data: Vec<u8>,
    /// The device's writes touched a descriptor table while it served the chain (the driver's
    /// buffer overlaps its own descriptors): the chain may have changed under the device, so
    /// what it offered when taken need not be what the device could fill.
    pub chain_rewritten: bool,
    /// The length of the host log when the element was published.
    pub(super) host_end: usize,
}

/// The checks [`Watched`] makes on each access, and what it learnt in the current step.
struct Observer {
    queues: Vec<QueueModel>,
    mode: Mode,
    /// Descriptors the device read in this step: the buffers they name (address, length,
    /// device-writable) and the indirect tables.
    buffers: Vec<(u64, u64, bool)>,
    tables: Vec<(u64, u64)>,
    /// Queues whose available index the previous access read (a head read must follow one).
    idx_just_read: Vec<usize>,
    /// Writable descriptors (by where they sit) read since the last head was taken, with
    /// their lengths: what bounds the used length.
    writable_since_head: Vec<(u64, u32)>,
    /// The device wrote over a descriptor table since the last head was taken (the driver's
    /// buffer overlaps its own descriptors): the chain may have changed under the device, and
    /// its length no longer bounds the used length.
    chain_rewritten: bool,
    /// Bytes written into buffers since the last used element.
    data: Vec<u8>,
    /// An 8-byte write at a queue's next used element, not yet followed by the used index.
    elem: Option<(u64, [u8; 8])>,
    completions: Vec<Completion>,
    /// A head at or above the queue size was taken (the device must fail).
    bad_head: bool,
    host_len: Rc<dyn Fn() -> usize>,
}

impl Observer {
    fn ready(&self) -> impl Iterator<Item = (usize, &QueueModel)> {
        self.queues.iter().enumerate().filter(|(_, q)| q.ready)
    }

    fn on_read(&mut self, a: u64, data: &[u8], ok: bool) {
        let n = data.len() as u64;
        let idx_before = std::mem::take(&mut self.idx_just_read);
        match self.mode {
            Mode::Idle => panic!("the device read {n} bytes at {a:#x} in a step that may not"),
            Mode::Validate(i) => {
                let q = &self.queues[i];
                assert!(
                    [q.desc_area(), q.avail_area(), q.used_area()]
                        .iter()
                        .any(|&(s, len)| inside(a, n, s, len)),
                    "making queue {i} ready read {n} bytes at {a:#x}, outside its rings {q:?}"
                );
                return;
            }
            Mode::Run => {}
        }
        let allowed = self.ready().any(|(_, q)| {
            let (d, dl) = q.desc_area();
            let (v, vl) = q.avail_area();
            inside(a, n, d, dl) || inside(a, n, v, vl)
        }) || self.buffers.iter().any(|&(s, l, _)| inside(a, n, s, l))
            || self.tables.iter().any(|&(s, l)| inside(a, n, s, l));
        assert!(
            allowed,
            "the device read {n} bytes at {a:#x}: no ring of a ready queue, nor a buffer or \
             table a descriptor it read names"
        );
        if !ok {
            return;
        }
        if n == 16 {
            self.recognize_descriptor(a, data);
        }
        if n == 2 {
            let v = le16(data);
            for i in 0..self.queues.len() {
                let q = &mut self.queues[i];
                if !q.ready {
                    continue;
                }
                if q.avail.checked_add(2) == Some(a) {
                    q.last_idx = Some(v);
                    self.idx_just_read.push(i);
                } else if q.next_head_slot() == Some(a) && idx_before.contains(&i) {
                    // pop(): the index, then the ring entry it publishes.
                    let Some(idx) = q.last_idx else { continue };
                    let waiting = idx.wrapping_sub(q.consumed);
                    assert!(
                        (1..=q.size).contains(&waiting),
                        "queue {i}: the device took a head with {waiting} buffers published \
                         (available index {idx}, {} used)",
                        q.consumed
                    );
                    if v >= q.size {
                        self.bad_head = true;
                    }
                    q.pending = Some(v);
                    self.writable_since_head.clear();
                    self.chain_rewritten = false;
                }
            }
        }
    }

    /// A 16-byte read at a descriptor slot of a ready queue's table, or of an indirect table a
    /// descriptor read before named, is that descriptor.
    fn recognize_descriptor(&mut self, a: u64, d: &[u8]) {
        let in_table = |(s, len): (u64, u64)| inside(a, 16, s, len) && (a - s).is_multiple_of(16);
        let slot = self.ready().any(|(_, q)| in_table(q.desc_area()))
            || self.tables.iter().any(|&t| in_table(t));
        if !slot {
            return;
        }
        let (addr, len, flags) = (le64(&d[0..8]), le32(&d[8..12]), le16(&d[12..14]));
        if flags & desc::INDIRECT != 0 {
            self.tables.push((addr, u64::from(len)));
        } else {
            let writable = flags & desc::WRITE != 0;
            self.buffers.push((addr, u64::from(len), writable));
            if writable {
                match self.writable_since_head.iter_mut().find(|(s, _)| *s == a) {
                    Some((_, l)) => *l = (*l).max(len),
                    None => self.writable_since_head.push((a, len)),
                }
            }
        }
    }

    fn on_write(&mut self, a: u64, data: &[u8]) {
        let n = data.len() as u64;
        self.idx_just_read.clear();
        assert!(
            self.mode == Mode::Run,
            "the device wrote {n} bytes at {a:#x} in a step that may not ({:?})",
            self.mode
        );
        if let Some((ea, eb)) = self.elem.take() {
            if n == 2 && self.confirm_used(ea, eb, a, le16(data)) {
                return;
            }
            // It was data after all.
            self.data_write(ea, &eb);
        }
        if n == 8 && self.ready().any(|(_, q)| q.next_elem() == Some(a)) {
            self.elem = Some((a, data.try_into().expect("8 bytes")));
            return;
        }
        if n == 2
            && self
                .ready()
                .any(|(_, q)| q.event_idx && q.avail_event() == Some(a) && le16(data) == q.consumed)
        {
            // avail_event: "notify me when you publish the next one" (§2.7.10).
            return;
        }
        self.data_write(a, data);
    }

    /// An 8-byte write at `ea` followed by a write of `v` at `a`: if that is a used element
    /// for the head a queue took, and its used index moving by one, the device returned a
    /// buffer. Anything else is data, which must lie in a writable buffer: a used element
    /// for a head the driver did not make available fails there.
    fn confirm_used(&mut self, ea: u64, eb: [u8; 8], a: u64, v: u16) -> bool {
        let id = le32(&eb[0..4]);
        let len = le32(&eb[4..8]);
        // Several queues may share a used ring; the one whose head this is took it.
        let Some(i) = self
            .ready()
            .find(|(_, q)| {
                q.next_elem() == Some(ea)
                    && q.used.checked_add(2) == Some(a)
                    && v == q.consumed.wrapping_add(1)
                    && q.pending.map(u32::from) == Some(id)
            })
            .map(|(i, _)| i)
        else {
            return false;
        };
        let q = &mut self.queues[i];
        assert!(
            id < u32::from(q.size),
            "queue {i}: used head {id} of {}",
            q.size
        );
        q.pending = None;
        q.consumed = v;
        let bound: u64 = self
            .writable_since_head
            .iter()
            .map(|&(_, l)| u64::from(l))
            .sum();
        assert!(
            self.chain_rewritten || u64::from(len) <= bound.min(u64::from(u32::MAX)),
            "queue {i}: used length {len} for head {id} exceeds the chain's {bound} writable bytes"
        );
        self.completions.push(Completion {
            queue: i,
            head: id as u16,
            len,
            data: std::mem::take(&mut self.data),
            chain_rewritten: self.chain_rewritten,
            host_end: (self.host_len)(),
        });
        true
    }

    fn data_write(&mut self, a: u64, data: &[u8]) {
        let n = data.len() as u64;
        let ring = self
            .ready()
            .find(|(_, q)| {
                let (u, ul) = q.used_area();
                inside(a, n, u, ul)
            })
            .map(|(i, q)| (i, q.pending, q.consumed));
        assert!(
            self.buffers
                .iter()
                .any(|&(s, l, w)| w && inside(a, n, s, l)),
            "the device wrote {n} bytes at {a:#x}, not inside a device-writable buffer any \
             descriptor it read names (buffers {:?}); in the used ring of (queue, head taken, \
             used index) {ring:?}",
            self.buffers
        );
        let overlaps = |(s, l): (u64, u64)| {
            let (a, n, s, l) = (a as u128, n as u128, s as u128, l as u128);
            a < s + l && s < a + n
        };
        self.chain_rewritten |= self.ready().any(|(_, q)| overlaps(q.desc_area()))
            || self.tables.iter().any(|&t| overlaps(t));
        self.data.extend_from_slice(data);
    }

    /// The step is over: what it did, and a clean slate for the next.
    fn finish(&mut self) -> (Vec<Completion>, bool) {
        if let Some((ea, eb)) = self.elem.take() {
            self.data_write(ea, &eb);
        }
        self.buffers.clear();
        self.tables.clear();
        self.idx_just_read.clear();
        self.writable_since_head.clear();
        self.chain_rewritten = false;
        self.data.clear();
        for q in &mut self.queues {
            q.last_idx = None;
        }
        self.mode = Mode::Idle;
        (
            std::mem::take(&mut self.completions),
            std::mem::take(&mut self.bad_head),
        )
    }
}

/// The guest RAM a device sees: a [`VecMemory`] whose every access by the device is checked
/// as it happens (see the module documentation). The driver's own writes bypass the checks.
pub struct Watched {
    mem: VecMemory,
    obs: RefCell<Observer>,
}

impl Watched {
    fn check_ram(a: GuestPhysAddr, n: usize, result: Result<(), MemoryError>, what: &str) {
        let inside = in_ram(a.raw(), n as u64);
        assert_eq!(
            result.is_ok(),
            inside,
            "{what} of {n} bytes at {a}: refused = {}, in RAM = {inside}",
            result.is_err()
        );
    }

    /// RAM of `RAM_SIZE` bytes at `RAM_BASE`, watched against `queues`; `host_len` says how
    /// long the host log is.
    pub(super) fn new(queues: Vec<QueueModel>, host_len: Rc<dyn Fn() -> usize>) -> Self {
        Self {
            mem: VecMemory::new(GuestPhysAddr(RAM_BASE), RAM_SIZE as usize),
            obs: RefCell::new(Observer {
                queues,
                mode: Mode::Idle,
                buffers: Vec::new(),
                tables: Vec::new(),
                idx_just_read: Vec::new(),
                writable_since_head: Vec::new(),
                chain_rewritten: false,
                data: Vec::new(),
                elem: None,
                completions: Vec::new(),
                bad_head: false,
                host_len,
            }),
        }
    }

    /// The reference model's queues.
    pub(super) fn queues(&mut self) -> &mut Vec<QueueModel> {
        &mut self.obs.get_mut().queues
    }

    /// What the device may do from now on.
    pub(super) fn set_mode(&mut self, mode: Mode) {
        self.obs.get_mut().mode = mode;
    }

    /// The step is over: the buffers the device returned, and whether it took a head past
    /// the queue size. Accesses are refused until the next [`Self::set_mode`].
    pub(super) fn finish(&mut self) -> (Vec<Completion>, bool) {
        self.obs.get_mut().finish()
    }

    /// A driver write: unchecked, and refused silently outside RAM.
    pub(super) fn poke(&mut self, a: u64, bytes: &[u8]) {
        let _ = self.mem.write(GuestPhysAddr(a), bytes);
    }

    /// A driver read of a 16-bit field; 0 outside RAM.
    pub(super) fn peek16(&self, a: u64) -> u16 {
        let mut b = [0; 2];
        match self.mem.read(GuestPhysAddr(a), &mut b) {
            Ok(()) => u16::from_le_bytes(b),
            Err(_) => 0,
        }
    }
}

impl GuestMemory for Watched {
    fn write(&mut self, ipa: GuestPhysAddr, data: &[u8]) -> Result<(), MemoryError> {
        let r = self.mem.write(ipa, data);
        Self::check_ram(ipa, data.len(), r, "a device write");
        // A device checks every buffer before it writes: a refused write is a bug too.
        assert!(r.is_ok(), "the device wrote outside guest RAM at {ipa}");
        self.obs.get_mut().on_write(ipa.raw(), data);
        r
    }

    fn read(&self, ipa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let r = self.mem.read(ipa, buf);
        Self::check_ram(ipa, buf.len(), r, "a device read");
        self.obs.borrow_mut().on_read(ipa.raw(), buf, r.is_ok());
        r
    }
}
