//! Typed bytes on their way to a VM, and where typed input goes (the focus): state only, a
//! leaf that the monitor fills and the VMM partition's delivery empties.
//!
//! Lock order: a ring's lock is a leaf, held for one push, peek or pop.

use super::console;
use abi::vmm::MAX_VMS;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use spin::Mutex;

/// The focus value while the monitor has the input.
pub const MONITOR: usize = usize::MAX;

/// Where input goes: a VM's id, or [`MONITOR`]; readable without any lock (the console's output
/// path asks).
static FOCUS: AtomicUsize = AtomicUsize::new(0);

/// The VM typed input goes to (an id that may name no VM when the monitor has it).
pub fn focus_vm() -> usize {
    FOCUS.load(Ordering::Acquire)
}

/// Sends input to VM `id`, or to the monitor ([`MONITOR`]).
pub fn set_focus(id: usize) {
    FOCUS.store(id, Ordering::Release);
}

/// Typed bytes not yet taken by a guest's UART (its FIFO was full, or they arrived while the
/// VMM was busy): kept here so that nothing typed is lost.
struct InputRing {
    buf: [u8; INPUT_RING],
    head: usize,
    len: usize,
}

const INPUT_RING: usize = 256;

/// One ring per VM: input typed for one VM never reaches another.
static INPUT: [Mutex<InputRing>; MAX_VMS] = [const {
    Mutex::new(InputRing {
        buf: [0; INPUT_RING],
        head: 0,
        len: 0,
    })
}; MAX_VMS];
static INPUT_WAITING: [AtomicBool; MAX_VMS] = [const { AtomicBool::new(false) }; MAX_VMS];
static DELIVERING: AtomicBool = AtomicBool::new(false);

impl InputRing {
    fn push(&mut self, b: u8) -> bool {
        if self.len == INPUT_RING {
            return false;
        }
        self.buf[(self.head + self.len) % INPUT_RING] = b;
        self.len += 1;
        true
    }

    /// Up to 8 bytes from the front, packed, and how many.
    fn peek8(&self) -> (u8, u64) {
        let n = self.len.min(8);
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.buf[(self.head + i) % INPUT_RING]) << (i * 8);
        }
        (n as u8, v)
    }

    fn pop(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % INPUT_RING;
        self.len -= n;
    }
}

/// Room left in VM `vm`'s ring (a full ring's worth for a VM that has none).
pub fn room(vm: usize) -> usize {
    INPUT
        .get(vm)
        .map_or(INPUT_RING, |r| INPUT_RING - r.lock().len)
}

/// Keeps byte `b` typed for VM `vm`; returns whether its ring is now full.
pub fn push(vm: usize, b: u8) -> bool {
    let (Some(ring), Some(waiting)) = (INPUT.get(vm), INPUT_WAITING.get(vm)) else {
        return false;
    };
    let mut ring = ring.lock();
    ring.push(b);
    waiting.store(true, Ordering::Release);
    ring.len == INPUT_RING
}

/// Hands what was typed for VM `vm` to `take`, eight bytes at most a time (`(len, bytes)`,
/// packed), which answers how many it took, or `None` when nobody can read them (they are
/// dropped). Stops at the first partial take. The ring's lock is never held across `take`:
/// an interrupt taken meanwhile may add bytes. One CPU delivers at a time.
pub fn deliver(vm: usize, mut take: impl FnMut(u8, u64) -> Option<usize>) {
    let (Some(ring), Some(waiting)) = (INPUT.get(vm), INPUT_WAITING.get(vm)) else {
        return;
    };
    if !waiting.load(Ordering::Acquire) || DELIVERING.swap(true, Ordering::AcqRel) {
        return;
    }
    loop {
        let (len, bytes) = {
            let ring = ring.lock();
            if ring.len == 0 {
                break;
            }
            ring.peek8()
        };
        match take(len, bytes) {
            Some(taken) => {
                ring.lock().pop(taken);
                if taken < len as usize {
                    break;
                }
            }
            None => {
                let mut ring = ring.lock();
                let n = ring.len;
                ring.pop(n);
                break;
            }
        }
    }
    let ring = ring.lock();
    if ring.len < INPUT_RING {
        console::set_rx_interrupt(true);
    }
    waiting.store(ring.len > 0, Ordering::Release);
    drop(ring);
    DELIVERING.store(false, Ordering::Release);
}
