//! A deliberately careless virtio-mmio driver (virtio 1.2, §2 and §4.2) and the attacks the
//! `virtio` test guest makes with it on rhyve's virtio devices ([`cases`]).
//!
//! The driver lays split virtqueues out in guest RAM exactly as it is told, including wrongly:
//! it is a tool for building the rings and register sequences a hostile kernel would. It reaches
//! the machine only through [`Machine`]: the bare-metal guest implements it with volatile MMIO
//! and RAM accesses, and the host tests with rhyve's own device models over a simulated RAM, so
//! every case's expectation is checked against the models before it runs under rhyve.

// A verdict carries its line of detail by value: the guest has no allocator to box it in, and
// a case returns once, so the copy costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod cases;
pub mod spec;

#[cfg(test)]
mod host_tests;

use core::fmt::{self, Write as _};

use spec::{desc_flags, offset, status};

/// What the driver needs of the machine: the register frames of the virtio-mmio slots and the
/// guest's RAM.
pub trait Machine {
    /// A 32-bit load from register `off` of slot `slot`'s frame.
    fn read32(&mut self, slot: u32, off: u64) -> u32;
    /// A 32-bit store to register `off` of slot `slot`'s frame. Everything the driver wrote to
    /// RAM before must be visible to the device first.
    fn write32(&mut self, slot: u32, off: u64, value: u32);
    /// A 64-bit load at `off` of slot `slot`'s device configuration space.
    fn read_config64(&mut self, slot: u32, off: u64) -> u64;
    /// Copies `data` to guest RAM at `addr` (inside [`Machine::scratch`]).
    fn write_mem(&mut self, addr: u64, data: &[u8]);
    /// Fills `buf` from guest RAM at `addr` (inside [`Machine::scratch`]).
    fn read_mem(&mut self, addr: u64, buf: &mut [u8]);
    /// The RAM `[start, end)` the cases may overwrite.
    fn scratch(&self) -> (u64, u64);
    /// The first address past guest RAM.
    fn ram_end(&self) -> u64;
}

/// What a case says about itself: a line of detail, kept without allocating.
pub struct Detail {
    buf: [u8; 200],
    len: usize,
}

impl Detail {
    /// The detail formatted from `args` (cut at 200 bytes).
    pub fn new(args: fmt::Arguments) -> Self {
        let mut d = Self {
            buf: [0; 200],
            len: 0,
        };
        let _ = d.write_fmt(args);
        d
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            // Cut inside a character: keep what is valid.
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl fmt::Write for Detail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A case's verdict: what it saw, as a pass or a failure.
pub type Verdict = Result<Detail, Detail>;

/// Fails the case with the formatted detail unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::virtio::Detail::new(format_args!($($fmt)+)));
        }
    };
}

/// Passes the case with the formatted detail.
#[macro_export]
macro_rules! pass {
    ($($fmt:tt)+) => {
        Ok($crate::virtio::Detail::new(format_args!($($fmt)+)))
    };
}

/// One split virtqueue as the driver laid it out (§2.7).
#[derive(Clone, Copy, Debug)]
pub struct Vq {
    /// The slot of its device.
    pub slot: u32,
    /// Its index (QueueSel).
    pub index: u16,
    /// QueueNum as written.
    pub size: u16,
    /// Descriptor table.
    pub desc: u64,
    /// Available ring.
    pub avail: u64,
    /// Used ring.
    pub used: u64,
    /// The available index the driver publishes next.
    pub next_avail: u16,
}

/// Sizes of the ring parts (§2.7 and its structures).
mod ring {
    pub const DESC_SIZE: u64 = 16;
    /// `flags`, `idx`, `ring[size]`, `used_event`.
    pub const AVAIL_HEADER: u64 = 4;
    /// `flags`, `idx`, `ring[size]` of 8-byte elements, `avail_event`.
    pub const USED_HEADER: u64 = 4;
    pub const USED_ELEM: u64 = 8;
    /// Offset of `idx` in both rings.
    pub const IDX: u64 = 2;
    /// Where the driver puts each part: above every part's required alignment (16, 2, 4:
    /// §2.7, "Virtqueue Part Alignment"), so a case can misalign one on purpose.
    pub const PLACEMENT: u64 = 64;
}

/// The driver: a machine, a bump allocator over its scratch RAM, and what the cases leave for
/// each other.
pub struct Driver<'m, M: Machine> {
    /// The machine.
    pub m: &'m mut M,
    brk: u64,
    /// Random bytes the entropy case got, which the console case prints through hvc0.
    pub token: Option<u32>,
}

impl<'m, M: Machine> Driver<'m, M> {
    /// A driver over `m`, its allocator empty.
    pub fn new(m: &'m mut M) -> Self {
        let brk = m.scratch().0;
        Self {
            m,
            brk,
            token: None,
        }
    }

    /// Forgets every allocation: the next case lays its rings out afresh.
    pub fn free_all(&mut self) {
        self.brk = self.m.scratch().0;
    }

    /// `len` bytes of scratch RAM aligned to `align`, filled with `fill`.
    pub fn alloc(&mut self, len: u64, align: u64, fill: u8) -> u64 {
        let at = self.brk.next_multiple_of(align);
        let (_, end) = self.m.scratch();
        // The cases use a few hundred KiB at most; running out is a bug of the guest.
        assert!(at + len <= end, "scratch RAM exhausted");
        self.brk = at + len;
        let chunk = [fill; 64];
        let mut a = at;
        while a < at + len {
            let n = (at + len - a).min(chunk.len() as u64);
            self.m.write_mem(a, &chunk[..n as usize]);
            a += n;
        }
        at
    }

    /// A buffer holding `data`.
    pub fn buffer(&mut self, data: &[u8]) -> u64 {
        let at = self.alloc(data.len().max(1) as u64, 16, 0);
        self.m.write_mem(at, data);
        at
    }

    /// Reads a little-endian `u16` of RAM.
    pub fn peek16(&mut self, addr: u64) -> u16 {
        let mut b = [0; 2];
        self.m.read_mem(addr, &mut b);
        u16::from_le_bytes(b)
    }

    /// Reads a little-endian `u32` of RAM.
    pub fn peek32(&mut self, addr: u64) -> u32 {
        let mut b = [0; 4];
        self.m.read_mem(addr, &mut b);
        u32::from_le_bytes(b)
    }

    /// Reads one byte of RAM.
    pub fn peek8(&mut self, addr: u64) -> u8 {
        let mut b = [0; 1];
        self.m.read_mem(addr, &mut b);
        b[0]
    }

    /// Writes a little-endian `u16` to RAM.
    pub fn poke16(&mut self, addr: u64, v: u16) {
        self.m.write_mem(addr, &v.to_le_bytes());
    }

    // ---- registers ------------------------------------------------------------------------

    /// A control register of `slot`.
    pub fn reg(&mut self, slot: u32, off: u64) -> u32 {
        self.m.read32(slot, off)
    }

    /// Writes a control register of `slot`.
    pub fn set_reg(&mut self, slot: u32, off: u64, v: u32) {
        self.m.write32(slot, off, v);
    }

    /// Status.
    pub fn status(&mut self, slot: u32) -> u32 {
        self.reg(slot, offset::STATUS)
    }

    /// InterruptStatus.
    pub fn isr(&mut self, slot: u32) -> u32 {
        self.reg(slot, offset::INTERRUPT_STATUS)
    }

    /// Resets the device (Status = 0, §4.2.3.1) and checks that it reads back 0.
    pub fn reset(&mut self, slot: u32) -> Result<(), Detail> {
        self.set_reg(slot, offset::STATUS, 0);
        let s = self.status(slot);
        ensure!(s == 0, "Status {s:#x} after a reset, expected 0");
        Ok(())
    }

    /// The 64 device feature bits.
    pub fn device_features(&mut self, slot: u32) -> u64 {
        self.set_reg(slot, offset::DEVICE_FEATURES_SEL, 0);
        let lo = self.reg(slot, offset::DEVICE_FEATURES);
        self.set_reg(slot, offset::DEVICE_FEATURES_SEL, 1);
        let hi = self.reg(slot, offset::DEVICE_FEATURES);
        u64::from(hi) << 32 | u64::from(lo)
    }

    /// Writes the driver's 64 feature bits.
    pub fn set_driver_features(&mut self, slot: u32, f: u64) {
        self.set_reg(slot, offset::DRIVER_FEATURES_SEL, 0);
        self.set_reg(slot, offset::DRIVER_FEATURES, f as u32);
        self.set_reg(slot, offset::DRIVER_FEATURES_SEL, 1);
        self.set_reg(slot, offset::DRIVER_FEATURES, (f >> 32) as u32);
    }

    /// Resets, acknowledges, accepts `features` and sets FEATURES_OK (§3.1.1 steps 1-5);
    /// returns whether the device kept FEATURES_OK (step 6).
    pub fn negotiate(&mut self, slot: u32, features: u64) -> Result<bool, Detail> {
        self.reset(slot)?;
        self.set_reg(slot, offset::STATUS, status::ACKNOWLEDGE);
        self.set_reg(slot, offset::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        self.set_driver_features(slot, features);
        self.set_reg(
            slot,
            offset::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        Ok(self.status(slot) & status::FEATURES_OK != 0)
    }

    /// Negotiates `features`, which must be accepted.
    pub fn negotiate_ok(&mut self, slot: u32, features: u64) -> Result<(), Detail> {
        ensure!(
            self.negotiate(slot, features)?,
            "the device refused features {features:#x} it offered"
        );
        Ok(())
    }

    /// Sets DRIVER_OK (§3.1.1 step 8); the device must be live afterwards.
    pub fn driver_ok(&mut self, slot: u32) -> Result<(), Detail> {
        let s = self.status(slot);
        self.set_reg(slot, offset::STATUS, s | status::DRIVER_OK);
        let s = self.status(slot);
        ensure!(
            s & status::DRIVER_OK != 0 && s & status::DEVICE_NEEDS_RESET == 0,
            "Status {s:#x} after DRIVER_OK"
        );
        Ok(())
    }

    /// Lays out queue `index` of `slot` with `size` entries in scratch RAM, the rings zeroed
    /// (nothing published), without telling the device.
    pub fn layout(&mut self, slot: u32, index: u16, size: u16) -> Vq {
        let n = u64::from(size);
        let desc = self.alloc(ring::DESC_SIZE * n, ring::PLACEMENT, 0);
        let avail = self.alloc(ring::AVAIL_HEADER + 2 * n + 2, ring::PLACEMENT, 0);
        let used = self.alloc(
            ring::USED_HEADER + ring::USED_ELEM * n + 2,
            ring::PLACEMENT,
            0,
        );
        Vq {
            slot,
            index,
            size,
            desc,
            avail,
            used,
            next_avail: 0,
        }
    }

    /// Writes `q`'s size and addresses to the device and sets QueueReady (§4.2.3.2); returns
    /// QueueReady as read back.
    pub fn enable(&mut self, q: &Vq) -> bool {
        let s = q.slot;
        self.set_reg(s, offset::QUEUE_SEL, u32::from(q.index));
        self.set_reg(s, offset::QUEUE_NUM, u32::from(q.size));
        for (lo, hi, addr) in [
            (offset::QUEUE_DESC_LOW, offset::QUEUE_DESC_HIGH, q.desc),
            (offset::QUEUE_DRIVER_LOW, offset::QUEUE_DRIVER_HIGH, q.avail),
            (offset::QUEUE_DEVICE_LOW, offset::QUEUE_DEVICE_HIGH, q.used),
        ] {
            self.set_reg(s, lo, addr as u32);
            self.set_reg(s, hi, (addr >> 32) as u32);
        }
        self.set_reg(s, offset::QUEUE_READY, 1);
        self.reg(s, offset::QUEUE_READY) == 1
    }

    /// A queue of `size` entries, laid out and enabled; it must become ready.
    pub fn queue(&mut self, slot: u32, index: u16, size: u16) -> Result<Vq, Detail> {
        let q = self.layout(slot, index, size);
        ensure!(self.enable(&q), "queue {index} of size {size} not ready");
        Ok(q)
    }

    /// A live device: `features` (with VERSION_1) negotiated, queues `queues` of `size`
    /// entries ready, DRIVER_OK set. Returns the queues, in the order given.
    pub fn live<const N: usize>(
        &mut self,
        slot: u32,
        features: u64,
        queues: [u16; N],
        size: u16,
    ) -> Result<[Vq; N], Detail> {
        self.negotiate_ok(slot, features | spec::feature::VERSION_1)?;
        let mut out = [Vq {
            slot,
            index: 0,
            size: 0,
            desc: 0,
            avail: 0,
            used: 0,
            next_avail: 0,
        }; N];
        for (q, index) in out.iter_mut().zip(queues) {
            *q = self.queue(slot, index, size)?;
        }
        self.driver_ok(slot)?;
        Ok(out)
    }

    // ---- rings ----------------------------------------------------------------------------

    /// Writes descriptor `i` of the table at `table`: any values, checked by nobody here.
    pub fn put_desc(&mut self, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..].copy_from_slice(&next.to_le_bytes());
        self.m.write_mem(table + ring::DESC_SIZE * u64::from(i), &d);
    }

    /// Writes `bufs` as one chain from descriptor `first` of `q`'s table (each linked to the
    /// next with NEXT); returns the head.
    pub fn chain(&mut self, q: &Vq, first: u16, bufs: &[(u64, u32, bool)]) -> u16 {
        for (k, &(addr, len, writable)) in bufs.iter().enumerate() {
            let i = first + k as u16;
            let mut flags = if writable { desc_flags::WRITE } else { 0 };
            if k + 1 < bufs.len() {
                flags |= desc_flags::NEXT;
            }
            self.put_desc(q.desc, i, addr, len, flags, i + 1);
        }
        first
    }

    /// Publishes `head` in the next available-ring slot and moves the available index past it
    /// (§2.7.13), without notifying.
    pub fn publish(&mut self, q: &mut Vq, head: u16) {
        let slot = u64::from(q.next_avail % q.size.max(1));
        self.poke16(q.avail + ring::AVAIL_HEADER + 2 * slot, head);
        q.next_avail = q.next_avail.wrapping_add(1);
        self.poke16(q.avail + ring::IDX, q.next_avail);
    }

    /// QueueNotify with `index`.
    pub fn notify(&mut self, slot: u32, index: u32) {
        self.set_reg(slot, offset::QUEUE_NOTIFY, index);
    }

    /// Publishes `head` and notifies `q`.
    pub fn submit(&mut self, q: &mut Vq, head: u16) {
        self.publish(q, head);
        self.notify(q.slot, u32::from(q.index));
    }

    /// The used index of `q`.
    pub fn used_idx(&mut self, q: &Vq) -> u16 {
        self.peek16(q.used + ring::IDX)
    }

    /// Used element `i` of `q`: (id, len).
    pub fn used_elem(&mut self, q: &Vq, i: u16) -> (u32, u32) {
        let at = q.used + ring::USED_HEADER + ring::USED_ELEM * u64::from(i % q.size.max(1));
        (self.peek32(at), self.peek32(at + 4))
    }

    /// Checks that the device broke off as the spec says for a driver error once DRIVER_OK is
    /// set (§2.1.2): DEVICE_NEEDS_RESET in Status, a configuration-change interrupt, and no
    /// buffer of `q` used; then that a reset clears all of it.
    pub fn expect_needs_reset(&mut self, q: &Vq, used_before: u16) -> Verdict {
        let s = self.status(q.slot);
        let isr = self.isr(q.slot);
        let used = self.used_idx(q);
        ensure!(
            s & status::DEVICE_NEEDS_RESET != 0,
            "Status {s:#x}: no DEVICE_NEEDS_RESET"
        );
        ensure!(
            isr & spec::interrupt::CONFIG_CHANGE != 0,
            "InterruptStatus {isr:#x}: no configuration-change interrupt"
        );
        ensure!(
            used == used_before,
            "used index moved {used_before} -> {used}: a broken chain was used"
        );
        self.reset(q.slot)?;
        let isr_after = self.isr(q.slot);
        ensure!(
            isr_after == 0,
            "InterruptStatus {isr_after:#x} after the reset"
        );
        pass!("Status={s:#x} (NEEDS_RESET) InterruptStatus={isr:#x}, reset clears both")
    }

    /// Checks that enabling a queue failed as it must for a bad configuration: QueueReady
    /// stays 0 and the device asks for a reset (before DRIVER_OK: no interrupt); a reset
    /// clears it.
    pub fn expect_queue_refused(&mut self, q: &Vq) -> Verdict {
        let ready = self.enable(q);
        let s = self.status(q.slot);
        let isr = self.isr(q.slot);
        ensure!(!ready, "QueueReady reads 1");
        ensure!(
            s & status::DEVICE_NEEDS_RESET != 0,
            "Status {s:#x}: no DEVICE_NEEDS_RESET"
        );
        ensure!(isr == 0, "InterruptStatus {isr:#x} before DRIVER_OK");
        self.reset(q.slot)?;
        pass!("QueueReady=0 Status={s:#x} (NEEDS_RESET), reset clears it")
    }
}
