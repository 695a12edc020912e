//! Ownership of the machine's RAM: what is the hypervisor's (its image, the tree, the boot
//! bundle, its heap), what is reserved by firmware, and what is handed to guests.
//!
//! Free RAM is a short list of ranges carved top-down at boot ([`FreeRam`], plain logic in the
//! library, host-tested); the heap serves everything allocated after that (page tables, VM
//! state). Nothing is allocated on the exit path.

use abi::{GuestPhysAddr, HostPhysAddr};
use buddy_system_allocator::LockedHeap;
use vmboot::memory::{GuestMemory, MemoryError};

pub use hypervisor::ram::FreeRam;

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
