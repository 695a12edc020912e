//! A VM's RAM as the VMM reaches it: the VM's window in the VMM's view (mapped by MAP_GUEST),
//! behind bounds-checked copies. This is the only code of the VMM that touches guest memory;
//! the device models see it as a [`GuestMemory`] and never hold a pointer into it.
//!
//! The guest may change its RAM while a copy runs (its vCPUs on other CPUs): copies are plain
//! byte moves between the window and the VMM's own buffers, never references into the window,
//! so a racing guest can only make its own data inconsistent.

use abi::vmm::{guest_window, GUEST_WINDOW_SIZE};
use abi::{GuestPhysAddr, VmId};
use vmboot::memory::{ram_offset, GuestMemory, MemoryError};
use vmm::cfi_flash::{BackingError, FlashBacking};

/// One VM's RAM through its window.
pub struct WindowMemory {
    /// Where the window starts in the VMM's (identity-mapped) view.
    window: usize,
    /// The guest-physical address of the first byte of RAM.
    ram_base: GuestPhysAddr,
    /// RAM size in bytes (at most the window's size).
    size: u64,
}

impl WindowMemory {
    /// VM `vm`'s RAM of `size` bytes at guest-physical `ram_base`, once the core mapped it at
    /// the VM's window; `None` if it cannot fit a window.
    pub fn new(vm: VmId, ram_base: GuestPhysAddr, size: u64) -> Option<Self> {
        let window = guest_window(vm)?;
        if size > GUEST_WINDOW_SIZE {
            return None;
        }
        Some(Self {
            window: usize::try_from(window.0).ok()?,
            ram_base,
            size,
        })
    }

    /// The address in the VMM's view of `len` bytes at `ipa`, if they all lie in RAM.
    fn host(&self, ipa: GuestPhysAddr, len: usize) -> Result<usize, MemoryError> {
        let off = ram_offset(self.ram_base, self.size, ipa, len)?;
        // The window holds at most GUEST_WINDOW_SIZE bytes and lies below 512 GiB: no wrap.
        Ok(self.window + off as usize)
    }
}

impl GuestMemory for WindowMemory {
    fn write(&mut self, ipa: GuestPhysAddr, data: &[u8]) -> Result<(), MemoryError> {
        let dst = self.host(ipa, data.len())?;
        // SAFETY: `host` checked that the whole range lies in the VM's RAM, which the core
        // mapped at its window (read/write, normal memory) before this value existed; the
        // window is no memory of the VMM's own, so it cannot overlap `data`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        Ok(())
    }

    fn read(&self, ipa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let src = self.host(ipa, buf.len())?;
        // SAFETY: as in `write`: the range lies in the mapped window, disjoint from `buf`.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

/// A VM's variable flash (bank 1) through its window: the host memory the core carved right
/// after the VM's RAM and maps there (see the core's `runtime::vm::Flash`). The guest reads
/// it directly while it reads as its array; the model programs and erases it here.
pub struct WindowFlash {
    /// Where the bank starts in the VMM's view.
    start: usize,
    /// Its size in bytes.
    size: u64,
}

impl WindowFlash {
    /// VM `vm`'s bank of `size` bytes after its `ram_size` bytes of RAM, if both fit its window.
    pub fn new(vm: VmId, ram_size: u64, size: u64) -> Option<Self> {
        let window = guest_window(vm)?;
        if ram_size.checked_add(size)? > GUEST_WINDOW_SIZE {
            return None;
        }
        Some(Self {
            start: usize::try_from(window.0.checked_add(ram_size)?).ok()?,
            size,
        })
    }

    /// The address in the VMM's view of `len` bytes at `offset`, if they lie in the bank.
    fn host(&self, offset: u64, len: usize) -> Result<usize, BackingError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(self.start + offset as usize),
            _ => Err(BackingError::OutOfRange),
        }
    }
}

impl FlashBacking for WindowFlash {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackingError> {
        let src = self.host(offset, buf.len())?;
        // SAFETY: `host` checked the range lies in the bank, which the core mapped in the
        // VM's window with its RAM (read/write, normal memory); disjoint from `buf`.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), BackingError> {
        let dst = self.host(offset, data.len())?;
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        Ok(())
    }
}
