//! The boot bundle: one file that carries a guest's kernel, initrd, command line and shape to
//! the hypervisor.
//!
//! The bundle reaches the hypervisor the way an initrd reaches a kernel (QEMU `-initrd`, U-Boot
//! `booti kernel initrd:size fdt`), so the machine's device tree tells where it is. The layout
//! is little-endian:
//!
//! | offset | size | field                                    |
//! |--------|------|------------------------------------------|
//! | 0      | 8    | magic `RHYVBNDL`                         |
//! | 8      | 4    | version (1)                              |
//! | 12     | 4    | header size (80)                         |
//! | 16     | 4    | vCPU count                               |
//! | 20     | 4    | flags (none defined; must be 0)          |
//! | 24     | 8    | guest RAM size in bytes                  |
//! | 32     | 16   | kernel: offset, length                   |
//! | 48     | 16   | initrd: offset, length (length 0: none)  |
//! | 64     | 16   | command line (UTF-8): offset, length     |
//!
//! Offsets count from the start of the bundle. Everything is checked before use: the bundle
//! comes from a file a user named, and a bad one must be refused with a reason.

use alloc::vec::Vec;
use core::fmt;

/// The bundle's magic.
pub const MAGIC: [u8; 8] = *b"RHYVBNDL";
/// The only version this code reads and writes.
pub const VERSION: u32 = 1;
/// Size of the version-1 header.
pub const HEADER_SIZE: usize = 80;

/// What a bundle describes: one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest RAM size in bytes.
    pub mem_size: u64,
    /// The kernel (arm64 Image, or a raw binary).
    pub kernel: &'a [u8],
    /// The initrd, if any.
    pub initrd: Option<&'a [u8]>,
    /// The kernel command line.
    pub cmdline: &'a str,
}

/// Why a bundle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleError {
    /// Shorter than its header.
    Truncated,
    /// The magic is not `RHYVBNDL`.
    BadMagic,
    /// A version this code does not read.
    UnsupportedVersion(u32),
    /// A header size smaller than version 1's.
    BadHeaderSize(u32),
    /// Flags this code does not know.
    UnknownFlags(u32),
    /// The named section lies (partly) outside the bundle.
    SectionOutOfBounds(&'static str),
    /// The command line is not UTF-8.
    CmdlineNotUtf8,
    /// The kernel section is empty.
    NoKernel,
    /// The vCPU count is zero.
    NoVcpus,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "bundle shorter than its {HEADER_SIZE}-byte header"),
            Self::BadMagic => write!(f, "not a rhyve boot bundle (bad magic)"),
            Self::UnsupportedVersion(v) => {
                write!(f, "bundle version {v} unsupported (want {VERSION})")
            }
            Self::BadHeaderSize(s) => write!(f, "bundle header size {s} too small"),
            Self::UnknownFlags(x) => write!(f, "bundle flags {x:#x} unknown"),
            Self::SectionOutOfBounds(s) => write!(f, "bundle {s} section lies outside the bundle"),
            Self::CmdlineNotUtf8 => write!(f, "bundle command line is not UTF-8"),
            Self::NoKernel => write!(f, "bundle has no kernel"),
            Self::NoVcpus => write!(f, "bundle asks for zero vCPUs"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// The bytes of the section whose (offset, length) pair is at `field` in the header.
fn section<'a>(b: &'a [u8], field: usize, name: &'static str) -> Result<&'a [u8], BundleError> {
    let off = u64_at(b, field);
    let len = u64_at(b, field + 8);
    let end = off
        .checked_add(len)
        .ok_or(BundleError::SectionOutOfBounds(name))?;
    if end > b.len() as u64 {
        return Err(BundleError::SectionOutOfBounds(name));
    }
    Ok(&b[off as usize..end as usize])
}

impl<'a> Bundle<'a> {
    /// Reads a bundle, checking every field.
    pub fn parse(b: &'a [u8]) -> Result<Self, BundleError> {
        if b.len() < HEADER_SIZE {
            return Err(BundleError::Truncated);
        }
        if b[..8] != MAGIC {
            return Err(BundleError::BadMagic);
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(BundleError::UnsupportedVersion(version));
        }
        let header_size = u32_at(b, 12);
        if (header_size as usize) < HEADER_SIZE {
            return Err(BundleError::BadHeaderSize(header_size));
        }
        let flags = u32_at(b, 20);
        if flags != 0 {
            return Err(BundleError::UnknownFlags(flags));
        }
        let vcpus = u32_at(b, 16);
        if vcpus == 0 {
            return Err(BundleError::NoVcpus);
        }
        let kernel = section(b, 32, "kernel")?;
        if kernel.is_empty() {
            return Err(BundleError::NoKernel);
        }
        let initrd = section(b, 48, "initrd")?;
        let cmdline = core::str::from_utf8(section(b, 64, "command line")?)
            .map_err(|_| BundleError::CmdlineNotUtf8)?;
        Ok(Self {
            vcpus,
            mem_size: u64_at(b, 24),
            kernel,
            initrd: (!initrd.is_empty()).then_some(initrd),
            cmdline,
        })
    }

    /// Writes this bundle: header, then kernel, initrd and command line, each 8-byte aligned.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn push_section(out: &mut Vec<u8>, header: &mut [u8], field: usize, data: &[u8]) {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            header[field..field + 8].copy_from_slice(&(out.len() as u64).to_le_bytes());
            header[field + 8..field + 16].copy_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(data);
        }
        let mut header = [0u8; HEADER_SIZE];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        header[16..20].copy_from_slice(&self.vcpus.to_le_bytes());
        header[24..32].copy_from_slice(&self.mem_size.to_le_bytes());
        let mut out = Vec::from(header);
        push_section(&mut out, &mut header, 32, self.kernel);
        push_section(&mut out, &mut header, 48, self.initrd.unwrap_or(&[]));
        push_section(&mut out, &mut header, 64, self.cmdline.as_bytes());
        out[..HEADER_SIZE].copy_from_slice(&header);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bundle<'static> {
        Bundle {
            vcpus: 2,
            mem_size: 256 << 20,
            kernel: b"kernel bytes",
            initrd: Some(b"initrd"),
            cmdline: "console=ttyAMA0",
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample().to_bytes();
        assert_eq!(Bundle::parse(&bytes), Ok(sample()));
    }

    #[test]
    fn no_initrd_round_trips_as_none() {
        let b = Bundle {
            initrd: None,
            ..sample()
        };
        assert_eq!(Bundle::parse(&b.to_bytes()).unwrap().initrd, None);
    }

    #[test]
    fn every_truncation_is_refused_not_panicking() {
        let bytes = sample().to_bytes();
        for len in 0..bytes.len() {
            assert!(
                Bundle::parse(&bytes[..len]).is_err(),
                "length {len} accepted"
            );
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let good = sample().to_bytes();
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(Bundle::parse(&b), Err(BundleError::BadMagic));
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(Bundle::parse(&b), Err(BundleError::UnsupportedVersion(2)));
        let mut b = good.clone();
        b[16..20].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Bundle::parse(&b), Err(BundleError::NoVcpus));
        let mut b = good.clone();
        b[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Bundle::parse(&b),
            Err(BundleError::SectionOutOfBounds("kernel"))
        );
        let mut b = good.clone();
        let cmd_off = u64_at(&b, 64) as usize;
        b[cmd_off] = 0xff;
        assert_eq!(Bundle::parse(&b), Err(BundleError::CmdlineNotUtf8));
    }
}
