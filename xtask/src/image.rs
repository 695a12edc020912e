//! The hypervisor ELF -> the flat binary QEMU and U-Boot load (`target/rhyve.bin`).
//!
//! Every PT_LOAD segment is laid out at `p_vaddr - lowest p_vaddr`, its `p_filesz` bytes copied
//! from the file; gaps are zero and the output ends with the last byte of file data (the image
//! zeroes its own bss, so a segment with no file data adds nothing). The ELF64 structures are read by hand (ELF-64 Object File Format,
//! version 1.5: "ELF Header", "Program Header Table").

use std::fmt;

/// `e_machine` for AArch64.
const EM_AARCH64: u16 = 183;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// Size of an ELF64 header.
pub(crate) const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
const PHDR_SIZE: usize = 56;
/// A flat image larger than this means a bad address in the ELF, not a real hypervisor.
const MAX_IMAGE: u64 = 256 << 20;

/// Why an ELF file could not be flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than the structure being read.
    Truncated(&'static str),
    /// Not an ELF file at all.
    NotElf,
    /// ELF, but not 64-bit little-endian.
    NotElf64Le,
    /// An ELF for another machine.
    WrongMachine(u16),
    /// `e_phentsize` is not 56.
    BadPhentsize(u16),
    /// No PT_LOAD segment.
    NoLoadSegments,
    /// Segment `index`'s file data lies outside the file.
    SegmentOutsideFile(usize),
    /// Segment `index` has `p_filesz > p_memsz`.
    FileszOverMemsz(usize),
    /// Segments `a` and `b` overlap in memory.
    Overlap(usize, usize),
    /// The flat image would be larger than [`MAX_IMAGE`].
    TooLarge(u64),
    /// `e_shentsize` is not 64.
    BadShentsize(u16),
    /// Section `index` lies outside the file.
    SectionOutsideFile(usize),
    /// No symbol table (`.symtab`): a stripped image.
    NoSymbolTable,
    /// Symbol `index`'s name lies outside its string table.
    SymbolNameOutside(usize),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "file too short for its {what}"),
            Self::NotElf => write!(f, "not an ELF file (no \\x7fELF magic)"),
            Self::NotElf64Le => write!(f, "not a 64-bit little-endian ELF"),
            Self::WrongMachine(m) => write!(f, "ELF for machine {m}, not AArch64 ({EM_AARCH64})"),
            Self::BadPhentsize(s) => write!(f, "program header size {s}, expected {PHDR_SIZE}"),
            Self::NoLoadSegments => write!(f, "no PT_LOAD segments"),
            Self::SegmentOutsideFile(i) => write!(f, "segment {i}'s data lies outside the file"),
            Self::FileszOverMemsz(i) => write!(f, "segment {i} has p_filesz > p_memsz"),
            Self::Overlap(a, b) => write!(f, "PT_LOAD segments {a} and {b} overlap"),
            Self::TooLarge(n) => write!(
                f,
                "flat image would be {n} bytes (> {MAX_IMAGE}): bad p_vaddr?"
            ),
            Self::BadShentsize(s) => write!(f, "section header size {s}, expected 64"),
            Self::SectionOutsideFile(i) => write!(f, "section {i} lies outside the file"),
            Self::NoSymbolTable => write!(f, "no symbol table (.symtab): is the ELF stripped?"),
            Self::SymbolNameOutside(i) => {
                write!(f, "symbol {i}'s name lies outside its string table")
            }
        }
    }
}

impl std::error::Error for ElfError {}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// One PT_LOAD segment, as far as flattening cares.
#[derive(Debug, Clone, Copy)]
struct Load {
    index: usize,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

/// Checks the ELF header: an AArch64 ELF64, little-endian, whole. Its fields may then be read.
pub(crate) fn check_header(elf: &[u8]) -> Result<(), ElfError> {
    if elf.len() < 4 || elf[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if elf.len() < EHDR_SIZE {
        return Err(ElfError::Truncated("ELF header"));
    }
    // e_ident[EI_CLASS] = ELFCLASS64 (2), e_ident[EI_DATA] = ELFDATA2LSB (1).
    if elf[4] != 2 || elf[5] != 1 {
        return Err(ElfError::NotElf64Le);
    }
    let machine = u16_at(elf, 18);
    if machine != EM_AARCH64 {
        return Err(ElfError::WrongMachine(machine));
    }
    Ok(())
}

fn load_segments(elf: &[u8]) -> Result<Vec<Load>, ElfError> {
    check_header(elf)?;
    let phoff = u64_at(elf, 32);
    let phentsize = u16_at(elf, 54);
    let phnum = u16_at(elf, 56) as u64;
    if phentsize as usize != PHDR_SIZE {
        return Err(ElfError::BadPhentsize(phentsize));
    }
    let table_end = phnum
        .checked_mul(PHDR_SIZE as u64)
        .and_then(|n| n.checked_add(phoff))
        .ok_or(ElfError::Truncated("program header table"))?;
    if table_end > elf.len() as u64 {
        return Err(ElfError::Truncated("program header table"));
    }
    let mut loads = Vec::new();
    for index in 0..phnum as usize {
        let ph = &elf[phoff as usize + index * PHDR_SIZE..][..PHDR_SIZE];
        if u32_at(ph, 0) != PT_LOAD {
            continue;
        }
        let seg = Load {
            index,
            offset: u64_at(ph, 8),
            vaddr: u64_at(ph, 16),
            filesz: u64_at(ph, 32),
            memsz: u64_at(ph, 40),
        };
        if seg
            .offset
            .checked_add(seg.filesz)
            .is_none_or(|end| end > elf.len() as u64)
        {
            return Err(ElfError::SegmentOutsideFile(index));
        }
        if seg.filesz > seg.memsz {
            return Err(ElfError::FileszOverMemsz(index));
        }
        loads.push(seg);
    }
    if loads.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    Ok(loads)
}

/// Lays out an AArch64 ELF64's PT_LOAD segments as one flat binary (see the module comment).
pub fn flatten(elf: &[u8]) -> Result<Vec<u8>, ElfError> {
    let mut loads = load_segments(elf)?;
    loads.sort_by_key(|l| l.vaddr);
    for w in loads.windows(2) {
        // Overlap in memory (p_memsz), not just file data: bss under the next segment is a bug.
        if w[0]
            .vaddr
            .checked_add(w[0].memsz)
            .is_none_or(|end| end > w[1].vaddr)
        {
            return Err(ElfError::Overlap(w[0].index, w[1].index));
        }
    }
    let base = loads[0].vaddr;
    // Segments without file data (bss only) add nothing: the image zeroes its own bss.
    let end = loads
        .iter()
        .filter(|l| l.filesz > 0)
        .map(|l| l.vaddr - base + l.filesz)
        .max()
        .unwrap_or(0);
    if end > MAX_IMAGE {
        return Err(ElfError::TooLarge(end));
    }
    let mut out = vec![0u8; end as usize];
    for l in loads.iter().filter(|l| l.filesz > 0) {
        let at = (l.vaddr - base) as usize;
        let data = &elf[l.offset as usize..(l.offset + l.filesz) as usize];
        out[at..at + data.len()].copy_from_slice(data);
    }
    Ok(out)
}

/// Whether `image` carries the arm64 Image header magic ("ARM\x64" at offset 56), which makes
/// QEMU and U-Boot boot it as a kernel (at EL2 under `virtualization=on`).
pub fn has_arm64_image_magic(image: &[u8]) -> bool {
    image.get(56..60) == Some(b"ARM\x64")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic ELF: header, program headers, then each segment's data.
    fn synth(segs: &[(u32, u64, &[u8], u64)]) -> Vec<u8> {
        let phoff = EHDR_SIZE as u64;
        let mut data_off = phoff + (segs.len() * PHDR_SIZE) as u64;
        let mut elf = vec![0u8; EHDR_SIZE];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[6] = 1;
        elf[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN: a PIE
        elf[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        elf[32..40].copy_from_slice(&phoff.to_le_bytes());
        elf[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        elf[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        elf[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        let mut payload = Vec::new();
        for &(ptype, vaddr, data, memsz) in segs {
            let mut ph = [0u8; PHDR_SIZE];
            ph[..4].copy_from_slice(&ptype.to_le_bytes());
            ph[8..16].copy_from_slice(&data_off.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            elf.extend_from_slice(&ph);
            payload.extend_from_slice(data);
            data_off += data.len() as u64;
        }
        elf.extend_from_slice(&payload);
        elf
    }

    #[test]
    fn segments_land_at_their_offsets_with_zero_gaps() {
        let elf = synth(&[
            (PT_LOAD, 0x1000, b"RW", 0x100), // bss after the data: not in the output
            (PT_LOAD, 0x0, b"code", 4),
            (6, 0x5000, b"PHDR", 4), // not PT_LOAD: ignored
        ]);
        let bin = flatten(&elf).unwrap();
        assert_eq!(bin.len(), 0x1002);
        assert_eq!(&bin[..4], b"code");
        assert!(bin[4..0x1000].iter().all(|&b| b == 0));
        assert_eq!(&bin[0x1000..], b"RW");
    }

    #[test]
    fn lowest_vaddr_is_the_base() {
        let elf = synth(&[
            (PT_LOAD, 0xffff_0000_4008_0000, b"a", 1),
            (PT_LOAD, 0xffff_0000_4008_0010, b"b", 1),
        ]);
        let bin = flatten(&elf).unwrap();
        assert_eq!(bin.len(), 0x11);
        assert_eq!((bin[0], bin[0x10]), (b'a', b'b'));
    }

    #[test]
    fn bss_only_segment_past_the_data_adds_nothing() {
        let elf = synth(&[(PT_LOAD, 0, b"xy", 2), (PT_LOAD, 0x1000, b"", 0x8000)]);
        assert_eq!(flatten(&elf).unwrap(), b"xy");
    }

    #[test]
    fn bad_inputs_are_named() {
        assert_eq!(flatten(b"MZ\0\0"), Err(ElfError::NotElf));
        assert_eq!(
            flatten(b"\x7fELF\x02\x01"),
            Err(ElfError::Truncated("ELF header"))
        );
        let good = synth(&[(PT_LOAD, 0, b"code", 4)]);
        let mut e = good.clone();
        e[4] = 1;
        assert_eq!(flatten(&e), Err(ElfError::NotElf64Le));
        let mut e = good.clone();
        e[18] = 62;
        assert_eq!(flatten(&e), Err(ElfError::WrongMachine(62)));
        let mut e = good.clone();
        e[56] = 200;
        assert_eq!(
            flatten(&e),
            Err(ElfError::Truncated("program header table"))
        );
        let e = good[..good.len() - 1].to_vec();
        assert_eq!(flatten(&e), Err(ElfError::SegmentOutsideFile(0)));
        assert_eq!(
            flatten(&synth(&[(6, 0, b"x", 1)])),
            Err(ElfError::NoLoadSegments)
        );
        assert_eq!(
            flatten(&synth(&[(PT_LOAD, 0, b"xy", 1)])),
            Err(ElfError::FileszOverMemsz(0))
        );
        assert_eq!(
            flatten(&synth(&[
                (PT_LOAD, 0, b"ab", 0x20),
                (PT_LOAD, 0x10, b"c", 1)
            ])),
            Err(ElfError::Overlap(0, 1))
        );
        assert_eq!(
            flatten(&synth(&[
                (PT_LOAD, 0, b"a", 1),
                (PT_LOAD, 1 << 40, b"b", 1)
            ])),
            Err(ElfError::TooLarge((1 << 40) + 1))
        );
    }

    #[test]
    fn every_truncation_is_refused_not_panicking() {
        let elf = synth(&[(PT_LOAD, 0, b"code", 4), (PT_LOAD, 0x10, b"data", 8)]);
        for len in 0..elf.len() {
            assert!(flatten(&elf[..len]).is_err(), "length {len} accepted");
        }
    }

    #[test]
    fn image_magic() {
        let mut img = vec![0u8; 64];
        assert!(!has_arm64_image_magic(&img));
        img[56..60].copy_from_slice(b"ARM\x64");
        assert!(has_arm64_image_magic(&img));
        assert!(!has_arm64_image_magic(&img[..58]));
    }
}
