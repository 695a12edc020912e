//! How a driver reaches its registers: through [`Bus`], so the same driver code runs on the
//! machine's frame ([`Mmio`]) and, in the host tests, on a model of the device.

use core::ptr::NonNull;

/// Register access at a byte offset into a device's frame.
pub trait Bus {
    /// Reads the register at `offset`.
    fn read(&mut self, offset: usize) -> u32;
    /// Writes the register at `offset`.
    fn write(&mut self, offset: usize, value: u32);
}

/// The width of every access a frame takes (a node's `reg-io-width`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8-bit accesses.
    Byte,
    /// 16-bit accesses.
    Half,
    /// 32-bit accesses (the only kind some UARTs, like the DesignWare one, decode).
    Word,
}

impl Width {
    /// The width of `bytes`-byte accesses, if it is one a driver can make.
    pub fn from_bytes(bytes: u8) -> Option<Self> {
        match bytes {
            1 => Some(Self::Byte),
            2 => Some(Self::Half),
            4 => Some(Self::Word),
            _ => None,
        }
    }
}

/// A device's register frame in the machine's physical (identity-mapped) address space.
pub struct Mmio {
    base: NonNull<u8>,
    width: Width,
}

// SAFETY: the bus holds only the frame's address; its users serialise access (the core's
// console lock, or a single CPU before any other runs).
unsafe impl Send for Mmio {}

impl Mmio {
    /// The frame at `base`, accessed `width` at a time.
    ///
    /// # Safety
    /// `base` must be the address of the device's frame, accessible as device memory (MMU off
    /// or identity-mapped) for as long as the bus is used, with every offset a driver uses
    /// inside it, and used by nothing else meanwhile.
    pub unsafe fn new(base: usize, width: Width) -> Option<Self> {
        NonNull::new(base as *mut u8).map(|base| Self { base, width })
    }
}

impl Bus for Mmio {
    fn read(&mut self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract: the offset is inside the frame, aligned to the width the
        // drivers use it at, and reading it is what the device expects.
        unsafe {
            let at = self.base.as_ptr().add(offset);
            match self.width {
                Width::Byte => u32::from(at.read_volatile()),
                Width::Half => u32::from(at.cast::<u16>().read_volatile()),
                Width::Word => at.cast::<u32>().read_volatile(),
            }
        }
    }

    fn write(&mut self, offset: usize, value: u32) {
        // SAFETY: as for `read`. The narrower widths take the register's low bits, which
        // are all its 8- or 16-bit registers hold.
        unsafe {
            let at = self.base.as_ptr().add(offset);
            match self.width {
                Width::Byte => at.write_volatile(value as u8),
                Width::Half => at.cast::<u16>().write_volatile(value as u16),
                Width::Word => at.cast::<u32>().write_volatile(value),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod model {
    //! A register file the tests give the drivers, with hooks a device's behaviour hangs on.

    use super::Bus;
    use std::collections::HashMap;

    /// Registers as a map: what the driver writes stays there, every access is recorded.
    #[derive(Default)]
    pub struct Regs {
        /// The registers' current values.
        pub values: HashMap<usize, u32>,
        /// Every write, in order.
        pub writes: Vec<(usize, u32)>,
        /// Every read, in order.
        pub reads: Vec<usize>,
        /// Values a read of an offset returns first, one per read, before `values`.
        pub script: HashMap<usize, Vec<u32>>,
    }

    impl Regs {
        /// Sets a register.
        pub fn set(&mut self, offset: usize, value: u32) {
            self.values.insert(offset, value);
        }

        /// A register's value.
        pub fn get(&self, offset: usize) -> u32 {
            self.values.get(&offset).copied().unwrap_or(0)
        }

        /// Makes the next reads of `offset` return `values`, in order.
        pub fn script(&mut self, offset: usize, values: &[u32]) {
            self.script
                .insert(offset, values.iter().rev().copied().collect());
        }

        /// How often `offset` was read.
        pub fn reads_of(&self, offset: usize) -> usize {
            self.reads.iter().filter(|&&o| o == offset).count()
        }

        /// The values written to `offset`, in order.
        pub fn writes_to(&self, offset: usize) -> Vec<u32> {
            self.writes
                .iter()
                .filter(|(o, _)| *o == offset)
                .map(|(_, v)| *v)
                .collect()
        }
    }

    impl Bus for &mut Regs {
        fn read(&mut self, offset: usize) -> u32 {
            self.reads.push(offset);
            if let Some(v) = self.script.get_mut(&offset).and_then(|s| s.pop()) {
                return v;
            }
            self.get(offset)
        }

        fn write(&mut self, offset: usize, value: u32) {
            self.writes.push((offset, value));
            self.set(offset, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_take_the_frame_s_width() {
        let mut frame = [0u32; 4];
        let base = frame.as_mut_ptr() as usize;
        // SAFETY: the array is the frame; it outlives the buses; offsets stay inside it.
        let mut byte = unsafe { Mmio::new(base, Width::Byte) }.expect("non-null");
        byte.write(4, 0x1234_5678);
        assert_eq!(byte.read(4), 0x78);
        // SAFETY: as above.
        let mut word = unsafe { Mmio::new(base, Width::Word) }.expect("non-null");
        assert_eq!(word.read(4), 0x78);
        word.write(8, 0xdead_beef);
        // SAFETY: as above.
        let mut half = unsafe { Mmio::new(base, Width::Half) }.expect("non-null");
        assert_eq!(half.read(8), 0xbeef);
        assert_eq!(frame[2], 0xdead_beef);
        assert_eq!(Width::from_bytes(4), Some(Width::Word));
        assert_eq!(Width::from_bytes(3), None);
        // SAFETY: a null base is refused before any access.
        assert!(unsafe { Mmio::new(0, Width::Word) }.is_none());
    }
}
