//! The boot bundle: one file that carries the VM descriptions (`config`) and the files they
//! name (kernels, initrds) to the hypervisor.
//!
//! The bundle reaches the hypervisor the way an initrd reaches a kernel (QEMU `-initrd`, U-Boot
//! `booti kernel initrd:size fdt`), so the machine's device tree tells where it is. The layout
//! is little-endian:
//!
//! | offset | size | field                                                  |
//! |--------|------|--------------------------------------------------------|
//! | 0      | 8    | magic `RHYVBNDL`                                       |
//! | 8      | 4    | version (2)                                            |
//! | 12     | 4    | header size (48; at least that, within the bundle)     |
//! | 16     | 4    | flags (none defined; must be 0)                        |
//! | 20     | 4    | number of files                                        |
//! | 24     | 16   | configuration text (UTF-8, `vmboot::config`): offset, length |
//! | 40     | 8    | file table: offset (number of files × 32 bytes)        |
//!
//! Each entry of the file table:
//!
//! | offset | size | field                                  |
//! |--------|------|----------------------------------------|
//! | 0      | 16   | name (UTF-8, not empty, unique): offset, length |
//! | 16     | 16   | contents: offset, length               |
//!
//! Offsets count from the start of the bundle. Everything is checked before use, in this
//! order: length, magic, version, header size, flags, the configuration's bounds and UTF-8,
//! the file table's bounds, then each file in turn (its name's bounds, UTF-8, emptiness and
//! uniqueness, then its contents' bounds). The bundle comes from a file a user named, and a
//! bad one must be refused with a reason.

use alloc::vec::Vec;
use core::fmt;

/// The bundle's magic.
pub const MAGIC: [u8; 8] = *b"RHYVBNDL";
/// The only version this code reads and writes.
pub const VERSION: u32 = 2;
/// Size of the version-2 header.
pub const HEADER_SIZE: usize = 48;
/// Size of one file table entry.
pub const FILE_ENTRY_SIZE: usize = 32;

/// Header fields, by offset.
mod field {
    pub const VERSION: usize = 8;
    pub const HEADER_SIZE: usize = 12;
    pub const FLAGS: usize = 16;
    pub const FILE_COUNT: usize = 20;
    pub const CONFIG: usize = 24;
    pub const FILE_TABLE: usize = 40;
    /// In a file table entry.
    pub const NAME: usize = 0;
    /// In a file table entry.
    pub const CONTENTS: usize = 16;
}

/// What a bundle carries: the VM descriptions and the files they name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// The configuration text (`vmboot::config::parse` reads it).
    pub config: &'a str,
    /// The files, by name, in bundle order.
    pub files: Vec<(&'a str, &'a [u8])>,
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
    /// A header size smaller than version 2's, or past the end of the bundle.
    BadHeaderSize(u32),
    /// Flags this code does not know.
    UnknownFlags(u32),
    /// The named section (`"configuration"`, `"file table"`) lies (partly) outside the bundle.
    SectionOutOfBounds(&'static str),
    /// The configuration text is not UTF-8.
    ConfigNotUtf8,
    /// File `n`'s name lies (partly) outside the bundle.
    FileNameOutOfBounds(u32),
    /// File `n`'s name is not UTF-8.
    FileNameNotUtf8(u32),
    /// File `n` has an empty name.
    EmptyFileName(u32),
    /// File `n` has the name of an earlier file.
    DuplicateFile(u32),
    /// File `n`'s contents lie (partly) outside the bundle.
    FileOutOfBounds(u32),
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "bundle shorter than its {HEADER_SIZE}-byte header"),
            Self::BadMagic => write!(f, "not a rhyve boot bundle (bad magic)"),
            Self::UnsupportedVersion(v) => {
                write!(
                    f,
                    "bundle version {v} unsupported (want {VERSION}; rebuild it)"
                )
            }
            Self::BadHeaderSize(s) => {
                write!(
                    f,
                    "bundle header size {s} below {HEADER_SIZE} or past its end"
                )
            }
            Self::UnknownFlags(x) => write!(f, "bundle flags {x:#x} unknown"),
            Self::SectionOutOfBounds(s) => write!(f, "bundle {s} lies outside the bundle"),
            Self::ConfigNotUtf8 => write!(f, "bundle configuration is not UTF-8"),
            Self::FileNameOutOfBounds(n) => {
                write!(f, "bundle file {n}: name lies outside the bundle")
            }
            Self::FileNameNotUtf8(n) => write!(f, "bundle file {n}: name is not UTF-8"),
            Self::EmptyFileName(n) => write!(f, "bundle file {n}: empty name"),
            Self::DuplicateFile(n) => write!(f, "bundle file {n}: name of an earlier file"),
            Self::FileOutOfBounds(n) => {
                write!(f, "bundle file {n}: contents lie outside the bundle")
            }
        }
    }
}

/// The little-endian `u32` at `off`; `b` is at least the header long.
fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(v)
}

/// The little-endian `u64` at `off`; `b` is at least `off + 8` long.
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// `b[off..off + len]`, if it is inside `b`.
fn slice(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let end = off.checked_add(len)?;
    if end > b.len() as u64 {
        return None;
    }
    Some(&b[off as usize..end as usize])
}

/// The bytes named by the (offset, length) pair at `at` in `b`.
fn section(b: &[u8], at: usize) -> Option<&[u8]> {
    slice(b, u64_at(b, at), u64_at(b, at + 8))
}

impl<'a> Bundle<'a> {
    /// Reads a bundle, checking every field (see the module documentation for the order).
    pub fn parse(b: &'a [u8]) -> Result<Self, BundleError> {
        if b.len() < HEADER_SIZE {
            return Err(BundleError::Truncated);
        }
        if b[..8] != MAGIC {
            return Err(BundleError::BadMagic);
        }
        let version = u32_at(b, field::VERSION);
        if version != VERSION {
            return Err(BundleError::UnsupportedVersion(version));
        }
        let header_size = u32_at(b, field::HEADER_SIZE);
        if !(HEADER_SIZE..=b.len()).contains(&(header_size as usize)) {
            return Err(BundleError::BadHeaderSize(header_size));
        }
        let flags = u32_at(b, field::FLAGS);
        if flags != 0 {
            return Err(BundleError::UnknownFlags(flags));
        }
        let config =
            section(b, field::CONFIG).ok_or(BundleError::SectionOutOfBounds("configuration"))?;
        let config = core::str::from_utf8(config).map_err(|_| BundleError::ConfigNotUtf8)?;
        let count = u32_at(b, field::FILE_COUNT);
        let table = u64_at(b, field::FILE_TABLE);
        slice(b, table, u64::from(count) * FILE_ENTRY_SIZE as u64)
            .ok_or(BundleError::SectionOutOfBounds("file table"))?;
        let mut files: Vec<(&'a str, &'a [u8])> = Vec::new();
        for n in 0..count {
            // Inside the bundle: the table's bounds were checked.
            let entry = table as usize + n as usize * FILE_ENTRY_SIZE;
            let name =
                section(b, entry + field::NAME).ok_or(BundleError::FileNameOutOfBounds(n))?;
            let name = core::str::from_utf8(name).map_err(|_| BundleError::FileNameNotUtf8(n))?;
            if name.is_empty() {
                return Err(BundleError::EmptyFileName(n));
            }
            if files.iter().any(|(other, _)| *other == name) {
                return Err(BundleError::DuplicateFile(n));
            }
            let contents =
                section(b, entry + field::CONTENTS).ok_or(BundleError::FileOutOfBounds(n))?;
            files.push((name, contents));
        }
        Ok(Self { config, files })
    }

    /// The contents of the file called `name`.
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        self.files
            .iter()
            .find_map(|&(n, contents)| (n == name).then_some(contents))
    }

    /// Writes this bundle: header, configuration, file table, then each file's name and
    /// contents, each 8-byte aligned. [`Bundle::parse`] reads it back as `self` when the names
    /// are non-empty and distinct.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn align(out: &mut Vec<u8>) -> usize {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            out.len()
        }
        fn put_u64(out: &mut [u8], at: usize, v: usize) {
            out[at..at + 8].copy_from_slice(&(v as u64).to_le_bytes());
        }
        fn push_section(out: &mut Vec<u8>, pair_at: usize, data: &[u8]) {
            let off = align(out);
            out.extend_from_slice(data);
            put_u64(out, pair_at, off);
            put_u64(out, pair_at + 8, data.len());
        }
        let mut out = Vec::from([0u8; HEADER_SIZE]);
        out[..8].copy_from_slice(&MAGIC);
        out[field::VERSION..field::VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        out[field::HEADER_SIZE..field::HEADER_SIZE + 4]
            .copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        out[field::FILE_COUNT..field::FILE_COUNT + 4]
            .copy_from_slice(&(self.files.len() as u32).to_le_bytes());
        push_section(&mut out, field::CONFIG, self.config.as_bytes());
        let table = align(&mut out);
        put_u64(&mut out, field::FILE_TABLE, table);
        out.resize(table + self.files.len() * FILE_ENTRY_SIZE, 0);
        for (i, (name, contents)) in self.files.iter().enumerate() {
            let entry = table + i * FILE_ENTRY_SIZE;
            push_section(&mut out, entry + field::NAME, name.as_bytes());
            push_section(&mut out, entry + field::CONTENTS, contents);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn sample() -> Bundle<'static> {
        Bundle {
            config: "[[vm]]\nname = \"a\"\n",
            files: vec![("build/guest/Image", b"kernel bytes"), ("rd", b"initrd")],
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let bytes = sample().to_bytes();
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b, sample());
        assert_eq!(b.file("rd"), Some(&b"initrd"[..]));
        assert_eq!(b.file("build/guest/Image"), Some(&b"kernel bytes"[..]));
        assert_eq!(b.file("Image"), None);
    }

    #[test]
    fn empty_bundle_and_empty_file_round_trip() {
        for b in [
            Bundle {
                config: "",
                files: vec![],
            },
            Bundle {
                config: "x",
                files: vec![("empty", b"")],
            },
        ] {
            assert_eq!(Bundle::parse(&b.to_bytes()), Ok(b));
        }
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
    fn version_1_is_refused() {
        let mut b = sample().to_bytes();
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(Bundle::parse(&b), Err(BundleError::UnsupportedVersion(1)));
        assert_eq!(
            BundleError::UnsupportedVersion(1).to_string(),
            "bundle version 1 unsupported (want 2; rebuild it)"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let good = sample().to_bytes();
        let table = u64_at(&good, field::FILE_TABLE) as usize;
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            Bundle::parse(&b).map(|_| ())
        };
        assert_eq!(patch(0, b"X"), Err(BundleError::BadMagic));
        assert_eq!(
            patch(field::HEADER_SIZE, &47u32.to_le_bytes()),
            Err(BundleError::BadHeaderSize(47))
        );
        assert_eq!(
            patch(field::HEADER_SIZE, &u32::MAX.to_le_bytes()),
            Err(BundleError::BadHeaderSize(u32::MAX))
        );
        assert_eq!(
            patch(field::FLAGS, &1u32.to_le_bytes()),
            Err(BundleError::UnknownFlags(1))
        );
        assert_eq!(
            patch(field::CONFIG + 8, &u64::MAX.to_le_bytes()),
            Err(BundleError::SectionOutOfBounds("configuration"))
        );
        let config = u64_at(&good, field::CONFIG) as usize;
        assert_eq!(patch(config, &[0xff]), Err(BundleError::ConfigNotUtf8));
        assert_eq!(
            patch(field::FILE_COUNT, &u32::MAX.to_le_bytes()),
            Err(BundleError::SectionOutOfBounds("file table"))
        );
        assert_eq!(
            patch(field::FILE_TABLE, &u64::MAX.to_le_bytes()),
            Err(BundleError::SectionOutOfBounds("file table"))
        );
        let second = table + FILE_ENTRY_SIZE;
        assert_eq!(
            patch(second + field::NAME, &u64::MAX.to_le_bytes()),
            Err(BundleError::FileNameOutOfBounds(1))
        );
        assert_eq!(
            patch(second + field::NAME + 8, &0u64.to_le_bytes()),
            Err(BundleError::EmptyFileName(1))
        );
        let name = u64_at(&good, second + field::NAME) as usize;
        assert_eq!(patch(name, &[0xff]), Err(BundleError::FileNameNotUtf8(1)));
        // File 1 named as file 0.
        let mut pair = [0u8; 16];
        pair.copy_from_slice(&good[table + field::NAME..table + field::NAME + 16]);
        assert_eq!(
            patch(second + field::NAME, &pair),
            Err(BundleError::DuplicateFile(1))
        );
        assert_eq!(
            patch(
                second + field::CONTENTS + 8,
                &(good.len() as u64).to_le_bytes()
            ),
            Err(BundleError::FileOutOfBounds(1))
        );
    }
}
