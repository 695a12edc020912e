//! The arm64 Linux `Image` header: tells an Image kernel from a raw binary and says where an
//! Image must be placed and how much memory it occupies.
//!
//! Layout (Linux `Documentation/arch/arm64/booting.rst`, "Call the kernel image"), all fields
//! little-endian:
//!
//! | offset | size | field                                          |
//! |--------|------|------------------------------------------------|
//! | 0      | 4    | code0 (executable code)                        |
//! | 4      | 4    | code1                                          |
//! | 8      | 8    | text_offset: image load offset from 2 MiB base |
//! | 16     | 8    | image_size: effective image size (incl. bss)   |
//! | 24     | 8    | flags                                          |
//! | 32     | 24   | res2, res3, res4                               |
//! | 56     | 4    | magic `ARM\x64`                                |
//! | 60     | 4    | res5 (PE header offset for EFI stubs)          |

use core::fmt;
use tock_registers::{register_bitfields, LocalRegisterCopy};

/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// The magic at offset 56, read as a little-endian `u32`: `ARM\x64`.
pub const MAGIC: u32 = 0x644d_5241;
/// Alignment of the base `text_offset` counts from.
pub const BASE_ALIGN: u64 = 2 << 20;
/// Granule `text_offset` must be a multiple of.
pub const TEXT_OFFSET_ALIGN: u64 = 4 << 10;
/// The `text_offset` of every kernel older than Linux 3.17 (whose `image_size` is 0).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// The largest `image_size` believed: no arm64 kernel comes near 1 GiB, and a field that
/// claims more is a corrupt header, not a kernel.
pub const MAX_IMAGE_SIZE: u64 = 1 << 30;

const OFF_CODE0: usize = 0;
const OFF_CODE1: usize = 4;
const OFF_TEXT_OFFSET: usize = 8;
const OFF_IMAGE_SIZE: usize = 16;
const OFF_FLAGS: usize = 24;
const OFF_MAGIC: usize = 56;

register_bitfields! [u64,
    /// The header's `flags` field (booting.rst, "Header notes").
    pub ImageFlags [
        /// Kernel endianness: 1 = big-endian.
        BE OFFSET(0) NUMBITS(1) [
            Little = 0,
            Big = 1
        ],
        /// Kernel page size.
        PAGE_SIZE OFFSET(1) NUMBITS(2) [
            Unspecified = 0,
            K4 = 1,
            K16 = 2,
            K64 = 3
        ],
        /// Physical placement: whether the 2 MiB-aligned base should sit near the start of
        /// DRAM (memory below it is not in the linear map) or may be anywhere.
        PHYS_PLACEMENT OFFSET(3) NUMBITS(1) [
            NearDramBase = 0,
            Anywhere = 1
        ]
    ]
];

/// The fields of a valid Image header, with the pre-3.17 defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// The first instruction word.
    pub code0: u32,
    /// The second instruction word.
    pub code1: u32,
    /// Where the image goes, counted from a 2 MiB-aligned base (0x80000 for legacy kernels).
    pub text_offset: u64,
    /// Memory the image occupies from its load address, bss included: the header's
    /// `image_size`, or the file's length for a legacy kernel (which does not say).
    pub image_size: u64,
    /// The header's flags (zero for a legacy kernel, which has none).
    pub flags: u64,
    /// Whether the header predates Linux 3.17 (`image_size` 0).
    pub legacy: bool,
}

impl ImageHeader {
    /// The kernel's page size in bytes, if the header says.
    pub fn page_size(&self) -> Option<u64> {
        let flags: LocalRegisterCopy<u64, ImageFlags::Register> =
            LocalRegisterCopy::new(self.flags);
        match flags.read_as_enum(ImageFlags::PAGE_SIZE)? {
            ImageFlags::PAGE_SIZE::Value::Unspecified => None,
            ImageFlags::PAGE_SIZE::Value::K4 => Some(4 << 10),
            ImageFlags::PAGE_SIZE::Value::K16 => Some(16 << 10),
            ImageFlags::PAGE_SIZE::Value::K64 => Some(64 << 10),
        }
    }

    /// Whether the kernel may be placed anywhere in RAM (rather than near its start).
    pub fn placement_anywhere(&self) -> bool {
        let flags: LocalRegisterCopy<u64, ImageFlags::Register> =
            LocalRegisterCopy::new(self.flags);
        flags.matches_all(ImageFlags::PHYS_PLACEMENT::Anywhere)
    }
}

/// What a kernel file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// An arm64 Linux `Image` (or anything else carrying its header, such as U-Boot or an
    /// EFI-stub kernel).
    Image(ImageHeader),
    /// A raw binary with no header, entered at its first byte (bare-metal programs written for
    /// QEMU virt).
    Raw,
}

/// Why an Image header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// The kernel is big-endian; guests run little-endian here.
    BigEndian,
    /// `text_offset` is not a 4 KiB multiple below 2 MiB.
    BadTextOffset(u64),
    /// `image_size` is smaller than the file itself.
    ImageSizeTooSmall {
        /// The header's `image_size`.
        image_size: u64,
        /// The file's length.
        file_len: u64,
    },
    /// The image claims (or is) more than [`MAX_IMAGE_SIZE`].
    ImageTooLarge(u64),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BigEndian => write!(f, "kernel Image is big-endian; only little-endian guests run"),
            Self::BadTextOffset(t) => write!(
                f,
                "kernel Image text_offset {t:#x} is not a multiple of {TEXT_OFFSET_ALIGN:#x} below {BASE_ALIGN:#x}"
            ),
            Self::ImageSizeTooSmall { image_size, file_len } => write!(
                f,
                "kernel Image image_size {image_size:#x} is smaller than the file ({file_len:#x} bytes)"
            ),
            Self::ImageTooLarge(s) => {
                write!(f, "kernel Image size {s:#x} exceeds the {MAX_IMAGE_SIZE:#x}-byte limit")
            }
        }
    }
}

/// An Image header with these fields (res2-res5 zero), as a loader or a test writes one;
/// [`inspect`] reads it back.
pub fn header(code0: u32, text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_SIZE] {
    let mut h = [0u8; HEADER_SIZE];
    h[OFF_CODE0..OFF_CODE0 + 4].copy_from_slice(&code0.to_le_bytes());
    h[OFF_TEXT_OFFSET..OFF_TEXT_OFFSET + 8].copy_from_slice(&text_offset.to_le_bytes());
    h[OFF_IMAGE_SIZE..OFF_IMAGE_SIZE + 8].copy_from_slice(&image_size.to_le_bytes());
    h[OFF_FLAGS..OFF_FLAGS + 8].copy_from_slice(&flags.to_le_bytes());
    h[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC.to_le_bytes());
    h
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let bytes = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Tells an Image kernel from a raw binary, and checks an Image's header.
///
/// A file shorter than the header, or without the magic, is [`KernelKind::Raw`].
pub fn inspect(kernel: &[u8]) -> Result<KernelKind, ImageError> {
    let (Some(header), Some(MAGIC)) = (kernel.get(..HEADER_SIZE), u32_at(kernel, OFF_MAGIC)) else {
        return Ok(KernelKind::Raw);
    };
    // Every read below is inside the 64 bytes just taken, so none can fail; treating a failure
    // as "no header" keeps this function free of panics all the same.
    let (Some(code0), Some(code1), Some(raw_text_offset), Some(raw_image_size), Some(flags)) = (
        u32_at(header, OFF_CODE0),
        u32_at(header, OFF_CODE1),
        u64_at(header, OFF_TEXT_OFFSET),
        u64_at(header, OFF_IMAGE_SIZE),
        u64_at(header, OFF_FLAGS),
    ) else {
        return Ok(KernelKind::Raw);
    };
    let file_len = kernel.len() as u64;

    if raw_image_size == 0 {
        // Before 3.17 text_offset was written in the kernel's own endianness and there were
        // no flags, so the only sign of a big-endian kernel is a byte-swapped 0x80000.
        if raw_text_offset == LEGACY_TEXT_OFFSET.swap_bytes() {
            return Err(ImageError::BigEndian);
        }
        if file_len > MAX_IMAGE_SIZE {
            return Err(ImageError::ImageTooLarge(file_len));
        }
        return Ok(KernelKind::Image(ImageHeader {
            code0,
            code1,
            text_offset: LEGACY_TEXT_OFFSET,
            image_size: file_len,
            flags: 0,
            legacy: true,
        }));
    }

    let f: LocalRegisterCopy<u64, ImageFlags::Register> = LocalRegisterCopy::new(flags);
    if f.matches_all(ImageFlags::BE::Big) {
        return Err(ImageError::BigEndian);
    }
    if raw_text_offset % TEXT_OFFSET_ALIGN != 0 || raw_text_offset >= BASE_ALIGN {
        return Err(ImageError::BadTextOffset(raw_text_offset));
    }
    if raw_image_size > MAX_IMAGE_SIZE {
        return Err(ImageError::ImageTooLarge(raw_image_size));
    }
    if raw_image_size < file_len {
        return Err(ImageError::ImageSizeTooSmall {
            image_size: raw_image_size,
            file_len,
        });
    }
    Ok(KernelKind::Image(ImageHeader {
        code0,
        code1,
        text_offset: raw_text_offset,
        image_size: raw_image_size,
        flags,
        legacy: false,
    }))
}

/// Test helpers shared with the loader's tests: a header as a 6.x kernel writes it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use alloc::vec::Vec;

    /// `b 0x...` over the header (what the EFI stub's `MZ` replaces), as code0.
    pub const BRANCH: u32 = 0x1400_0010;

    /// A `len`-byte kernel file with a valid header.
    pub fn image(len: usize, text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut k: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        k[OFF_CODE0..OFF_CODE0 + 4].copy_from_slice(&BRANCH.to_le_bytes());
        k[OFF_CODE1..OFF_CODE1 + 4].copy_from_slice(&0u32.to_le_bytes());
        k[OFF_TEXT_OFFSET..OFF_TEXT_OFFSET + 8].copy_from_slice(&text_offset.to_le_bytes());
        k[OFF_IMAGE_SIZE..OFF_IMAGE_SIZE + 8].copy_from_slice(&image_size.to_le_bytes());
        k[OFF_FLAGS..OFF_FLAGS + 8].copy_from_slice(&flags.to_le_bytes());
        k[32..56].fill(0);
        k[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC.to_le_bytes());
        k[60..64].fill(0);
        k
    }

    /// Flags of a 4 KiB-page little-endian kernel that may be placed anywhere.
    pub fn modern_flags() -> u64 {
        (ImageFlags::BE::Little + ImageFlags::PAGE_SIZE::K4 + ImageFlags::PHYS_PLACEMENT::Anywhere)
            .value
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn modern_header_is_accepted_with_its_fields() {
        let k = image(0x1000, 0, 0x3_0000, modern_flags());
        let KernelKind::Image(h) = inspect(&k).unwrap() else {
            panic!("not seen as an Image")
        };
        assert_eq!(h.code0, BRANCH);
        assert_eq!(h.code1, 0);
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x3_0000);
        assert!(!h.legacy);
        assert_eq!(h.page_size(), Some(4096));
        assert!(h.placement_anywhere());
    }

    #[test]
    fn text_offset_0x80000_is_accepted() {
        let k = image(0x1000, 0x8_0000, 0x1000, 0);
        let KernelKind::Image(h) = inspect(&k).unwrap() else {
            panic!("not seen as an Image")
        };
        assert_eq!(h.text_offset, 0x8_0000);
        assert_eq!(h.page_size(), None);
        assert!(!h.placement_anywhere());
    }

    #[test]
    fn legacy_header_gets_0x80000_and_the_file_length() {
        let k = image(0x2345, 0x8_0000, 0, 0xdead);
        let KernelKind::Image(h) = inspect(&k).unwrap() else {
            panic!("not seen as an Image")
        };
        assert!(h.legacy);
        assert_eq!(h.text_offset, 0x8_0000);
        assert_eq!(h.image_size, 0x2345);
        assert_eq!(h.flags, 0, "flags do not exist before 3.17");
    }

    #[test]
    fn legacy_big_endian_is_refused() {
        let k = image(0x1000, 0x8_0000u64.swap_bytes(), 0, 0);
        assert_eq!(inspect(&k), Err(ImageError::BigEndian));
    }

    #[test]
    fn every_truncation_is_raw_or_refused() {
        let k = image(HEADER_SIZE, 0, 0x1000, modern_flags());
        for len in 0..HEADER_SIZE {
            assert_eq!(inspect(&k[..len]), Ok(KernelKind::Raw), "length {len}");
        }
        assert!(matches!(inspect(&k), Ok(KernelKind::Image(_))));
    }

    #[test]
    fn bad_magic_is_raw() {
        let mut k = image(0x1000, 0, 0x1000, 0);
        k[OFF_MAGIC + 3] = 0x65;
        assert_eq!(inspect(&k), Ok(KernelKind::Raw));
        assert_eq!(inspect(&[]), Ok(KernelKind::Raw));
    }

    #[test]
    fn big_endian_is_refused() {
        let flags = (ImageFlags::BE::Big + ImageFlags::PAGE_SIZE::K4).value;
        assert_eq!(
            inspect(&image(0x1000, 0, 0x1000, flags)),
            Err(ImageError::BigEndian)
        );
    }

    #[test]
    fn image_size_smaller_than_file_is_refused() {
        assert_eq!(
            inspect(&image(0x1001, 0, 0x1000, 0)),
            Err(ImageError::ImageSizeTooSmall {
                image_size: 0x1000,
                file_len: 0x1001
            })
        );
    }

    #[test]
    fn absurd_image_size_is_refused() {
        let size = MAX_IMAGE_SIZE + 1;
        assert_eq!(
            inspect(&image(0x1000, 0, size, 0)),
            Err(ImageError::ImageTooLarge(size))
        );
        assert_eq!(
            inspect(&image(0x1000, 0, u64::MAX, 0)),
            Err(ImageError::ImageTooLarge(u64::MAX))
        );
    }

    #[test]
    fn bad_text_offsets_are_refused() {
        for t in [
            0x10,
            0x8_0001,
            BASE_ALIGN,
            u64::MAX,
            0x8_0000u64.swap_bytes(),
        ] {
            assert_eq!(
                inspect(&image(0x1000, t, 0x1000, 0)),
                Err(ImageError::BadTextOffset(t))
            );
        }
        assert!(inspect(&image(0x1000, BASE_ALIGN - TEXT_OFFSET_ALIGN, 0x1000, 0)).is_ok());
    }

    #[test]
    fn errors_display_their_values() {
        let s = alloc::format!("{}", ImageError::BadTextOffset(0x10));
        assert!(s.contains("0x10"), "{s}");
    }
}
