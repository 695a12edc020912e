//! Ownership of the machine's RAM: what is the hypervisor's (its image, the tree, the boot
//! bundle, its heap), what is reserved by firmware, and what is handed to guests.
//!
//! Free RAM is a short list of ranges carved top-down at boot; the heap serves everything
//! allocated after that (page tables, VM state). Nothing is allocated on the exit path.

use crate::arch::mmu::RamRange;
use abi::{GuestPhysAddr, HostPhysAddr};
use buddy_system_allocator::LockedHeap;
use vmboot::memory::{GuestMemory, MemoryError};

const MAX_FREE: usize = 32;

/// The free ranges of RAM.
pub struct FreeRam {
    ranges: [(u64, u64); MAX_FREE],
    len: usize,
}

impl FreeRam {
    /// All of `ram`, less every range in `taken`.
    pub fn new(ram: &[RamRange], taken: &[(u64, u64)]) -> Self {
        let mut f = Self {
            ranges: [(0, 0); MAX_FREE],
            len: 0,
        };
        for r in ram {
            f.add(r.start, r.start + r.size);
        }
        for &(start, size) in taken {
            f.remove(start, start.saturating_add(size));
        }
        f
    }

    fn add(&mut self, start: u64, end: u64) {
        if end > start && self.len < MAX_FREE {
            self.ranges[self.len] = (start, end);
            self.len += 1;
        }
    }

    fn remove(&mut self, start: u64, end: u64) {
        let mut i = 0;
        while i < self.len {
            let (s, e) = self.ranges[i];
            if end <= s || start >= e {
                i += 1;
                continue;
            }
            // Split [s, e) around [start, end).
            self.ranges[i] = self.ranges[self.len - 1];
            self.len -= 1;
            self.add(s, start.max(s).min(e));
            self.add(end.min(e).max(s), e);
        }
    }

    /// Keeps `[start, start + size)` out of what is handed out.
    pub fn reserve(&mut self, start: u64, size: u64) {
        self.remove(start, start.saturating_add(size));
    }

    /// Takes `size` bytes aligned to `align` (a power of two) from the highest free range that
    /// has room.
    pub fn carve(&mut self, size: u64, align: u64) -> Option<u64> {
        let mut best: Option<(usize, u64)> = None;
        for (i, &(s, e)) in self.ranges[..self.len].iter().enumerate() {
            let Some(top) = e.checked_sub(size) else {
                continue;
            };
            let base = top & !(align - 1);
            if base >= s && best.is_none_or(|(_, b)| base > b) {
                best = Some((i, base));
            }
        }
        let (_, base) = best?;
        self.remove(base, base + size);
        Some(base)
    }
}

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Gives `[base, base + size)` to the heap.
///
/// # Safety
/// The range must be free RAM, identity-mapped, used by nothing else, ever.
pub unsafe fn init_heap(base: u64, size: u64) {
    // SAFETY: the caller hands over exclusive ownership of the range.
    unsafe { HEAP.lock().init(base as usize, size as usize) };
}

/// A guest's RAM as the core sees it: a contiguous range of host RAM.
#[derive(Clone, Copy, Debug)]
pub struct GuestRam {
    /// Guest-physical base.
    pub ipa: GuestPhysAddr,
    /// Host-physical base.
    pub pa: HostPhysAddr,
    /// Size in bytes.
    pub size: u64,
}

impl GuestRam {
    fn host_range(&self, ipa: GuestPhysAddr, len: usize) -> Result<usize, MemoryError> {
        let off = ipa.0.checked_sub(self.ipa.0);
        match off {
            Some(off)
                if off
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= self.size) =>
            {
                Ok((self.pa.0 + off) as usize)
            }
            _ => Err(MemoryError::OutOfRange {
                ipa,
                len: len as u64,
            }),
        }
    }

    /// Whether `ipa` lies in this RAM.
    pub fn contains(&self, ipa: GuestPhysAddr) -> bool {
        ipa.0 >= self.ipa.0 && ipa.0 - self.ipa.0 < self.size
    }
}

impl GuestMemory for GuestRam {
    fn write(&mut self, ipa: GuestPhysAddr, data: &[u8]) -> Result<(), MemoryError> {
        let dst = self.host_range(ipa, data.len())?;
        // SAFETY: `dst..dst+len` lies in this guest's RAM (checked above), which the core
        // owns, identity-mapped, and no guest vCPU runs while it is loaded.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        crate::arch::cpu::clean_dcache_range(dst, data.len());
        Ok(())
    }

    fn read(&self, ipa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let src = self.host_range(ipa, buf.len())?;
        // SAFETY: as in `write`; reading guest RAM has no side effects.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}
