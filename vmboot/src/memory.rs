//! Guest memory as the loader sees it: a write/read interface over guest-physical addresses,
//! and a `Vec`-backed implementation for host tests.
//!
//! The EL2 core implements [`GuestMemory`] over the guest's own RAM; the loader never learns
//! where that RAM lives on the host.

use abi::GuestPhysAddr;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// Why a guest memory access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryError {
    /// `len` bytes at `ipa` are not all inside guest RAM.
    OutOfRange {
        /// First guest-physical address of the access.
        ipa: GuestPhysAddr,
        /// Length of the access in bytes.
        len: u64,
    },
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { ipa, len } => {
                write!(
                    f,
                    "{len:#x} bytes at guest address {ipa} lie outside guest RAM"
                )
            }
        }
    }
}

/// Byte access to a guest's RAM by guest-physical address.
pub trait GuestMemory {
    /// Copies `data` into guest RAM at `ipa`; writes nothing unless all of it fits.
    fn write(&mut self, ipa: GuestPhysAddr, data: &[u8]) -> Result<(), MemoryError>;
    /// Fills `buf` from guest RAM at `ipa`; reads nothing unless all of it is RAM.
    fn read(&self, ipa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError>;
}

/// The offset into guest RAM of `len` bytes at `ipa`, if they all lie in the `size` bytes of
/// RAM from `base`. Every step is checked: neither an address below `base` nor one near
/// `u64::MAX` can wrap. The VMM's window onto a guest's RAM adds this to the window's start.
pub fn ram_offset(
    base: GuestPhysAddr,
    size: u64,
    ipa: GuestPhysAddr,
    len: usize,
) -> Result<u64, MemoryError> {
    let err = MemoryError::OutOfRange {
        ipa,
        len: len as u64,
    };
    let off = ipa.raw().checked_sub(base.raw()).ok_or(err)?;
    let end = off.checked_add(len as u64).ok_or(err)?;
    if end > size {
        return Err(err);
    }
    Ok(off)
}

/// Guest RAM held in a `Vec`: one contiguous region starting at `base`.
#[derive(Clone, PartialEq, Eq)]
pub struct VecMemory {
    base: GuestPhysAddr,
    bytes: Vec<u8>,
}

impl VecMemory {
    /// `size` bytes of zeroed RAM starting at guest-physical `base`.
    pub fn new(base: GuestPhysAddr, size: usize) -> Self {
        Self {
            base,
            bytes: vec![0; size],
        }
    }

    /// The first guest-physical address of this RAM.
    pub fn base(&self) -> GuestPhysAddr {
        self.base
    }

    /// Size of this RAM in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The whole of this RAM, from `base` on.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The index range of `len` bytes at `ipa`, if they all lie inside this RAM. Every step is
    /// checked: neither a guest address below `base` nor one near `u64::MAX` can wrap.
    fn range(&self, ipa: GuestPhysAddr, len: usize) -> Result<Range<usize>, MemoryError> {
        let err = MemoryError::OutOfRange {
            ipa,
            len: len as u64,
        };
        let start = ipa.raw().checked_sub(self.base.raw()).ok_or(err)?;
        let start = usize::try_from(start).map_err(|_| err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.bytes.len() {
            return Err(err);
        }
        Ok(start..end)
    }
}

impl fmt::Debug for VecMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The contents would drown any test failure message; the shape is what matters.
        f.debug_struct("VecMemory")
            .field("base", &self.base)
            .field("size", &format_args!("{:#x}", self.bytes.len()))
            .finish()
    }
}

impl GuestMemory for VecMemory {
    fn write(&mut self, ipa: GuestPhysAddr, data: &[u8]) -> Result<(), MemoryError> {
        let range = self.range(ipa, data.len())?;
        let dst = self.bytes.get_mut(range).ok_or(MemoryError::OutOfRange {
            ipa,
            len: data.len() as u64,
        })?;
        dst.copy_from_slice(data);
        Ok(())
    }

    fn read(&self, ipa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), MemoryError> {
        let range = self.range(ipa, buf.len())?;
        let src = self.bytes.get(range).ok_or(MemoryError::OutOfRange {
            ipa,
            len: buf.len() as u64,
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: GuestPhysAddr = GuestPhysAddr(0x4000_0000);

    #[test]
    fn write_then_read_back() {
        let mut m = VecMemory::new(BASE, 0x1000);
        m.write(GuestPhysAddr(0x4000_0ffc), &[1, 2, 3, 4]).unwrap();
        let mut buf = [0; 4];
        m.read(GuestPhysAddr(0x4000_0ffc), &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        assert_eq!(&m.as_bytes()[0xffc..], &[1, 2, 3, 4]);
    }

    #[test]
    fn out_of_range_is_refused_without_side_effects() {
        let mut m = VecMemory::new(BASE, 0x1000);
        // One byte past the end.
        let ipa = GuestPhysAddr(0x4000_0ffd);
        assert_eq!(
            m.write(ipa, &[9; 4]),
            Err(MemoryError::OutOfRange { ipa, len: 4 })
        );
        assert!(
            m.as_bytes().iter().all(|&b| b == 0),
            "a refused write wrote"
        );
        // Below the base.
        assert!(m.read(GuestPhysAddr(0x3fff_ffff), &mut [0; 1]).is_err());
        // Addresses that would wrap.
        assert!(m.write(GuestPhysAddr(u64::MAX), &[0; 2]).is_err());
        assert!(m.read(GuestPhysAddr(u64::MAX - 1), &mut [0; 0x10]).is_err());
        // Empty accesses inside or at the end are fine.
        assert!(m.write(GuestPhysAddr(0x4000_1000), &[]).is_ok());
    }

    #[test]
    fn ram_offsets_stay_inside_ram() {
        let size = 0x2000;
        assert_eq!(ram_offset(BASE, size, BASE, 0x2000), Ok(0));
        assert_eq!(
            ram_offset(BASE, size, GuestPhysAddr(0x4000_1ff8), 8),
            Ok(0x1ff8)
        );
        assert_eq!(
            ram_offset(BASE, size, GuestPhysAddr(0x4000_2000), 0),
            Ok(0x2000)
        );
        for (ipa, len) in [
            (0x4000_1ff9, 8),
            (0x3fff_ffff, 1),
            (0x4000_2000, 1),
            (u64::MAX, 2),
            (0x4000_0000, usize::MAX),
        ] {
            assert_eq!(
                ram_offset(BASE, size, GuestPhysAddr(ipa), len),
                Err(MemoryError::OutOfRange {
                    ipa: GuestPhysAddr(ipa),
                    len: len as u64
                }),
                "{ipa:#x}+{len:#x}"
            );
        }
    }

    #[test]
    fn error_names_the_access() {
        let e = MemoryError::OutOfRange {
            ipa: GuestPhysAddr(0x1234),
            len: 0x10,
        };
        assert_eq!(
            alloc::format!("{e}"),
            "0x10 bytes at guest address 0x1234 lie outside guest RAM"
        );
    }
}
