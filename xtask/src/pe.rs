//! `image-headers`: the flat image (`target/rhyve.bin`) is both an arm64 Image (QEMU
//! `-kernel`, U-Boot `booti`) and a PE/COFF EFI application (UEFI), as its boot code lays
//! them out (`hypervisor/src/arch/aarch64/boot.rs`). Checked here on the bytes, because a
//! loader that disagrees only shows it on a board: the DOS signature over code0, the PE
//! header's offset in the Image header's res5, an AArch64 PE32+ EFI application whose
//! sections map file offsets one to one and end where the file ends, an entry point in its
//! code, and one image size in both headers. Read by hand after Microsoft's "PE Format"
//! ("MS-DOS Stub", "COFF File Header", "Optional Header", "Section Table").

use std::path::Path;

use crate::error::IoContext;
use crate::image::{has_arm64_image_magic, u16_at, u32_at, u64_at};
use crate::scenarios::Outcome;

/// The step's name.
const STEP: &str = "image-headers";
/// Where the DOS header keeps the PE header's offset (e_lfanew): the Image header's res5.
const PE_OFFSET_AT: usize = 0x3c;
/// The Image header's image_size.
const IMAGE_SIZE_AT: usize = 16;
/// The COFF header's size after "PE\0\0".
const COFF_SIZE: usize = 20;
/// One section header.
const SECTION_SIZE: usize = 40;
/// IMAGE_FILE_MACHINE_ARM64.
const MACHINE_ARM64: u16 = 0xaa64;
/// The PE32+ optional header's magic.
const PE32_PLUS: u16 = 0x20b;
/// IMAGE_SUBSYSTEM_EFI_APPLICATION.
const EFI_APPLICATION: u16 = 10;
/// IMAGE_SCN_MEM_EXECUTE.
const SCN_EXECUTE: u32 = 0x2000_0000;

/// Fields of the COFF file header, from its start (after "PE\0\0").
mod coff {
    pub const MACHINE: usize = 0;
    pub const NUMBER_OF_SECTIONS: usize = 2;
    pub const SIZE_OF_OPTIONAL_HEADER: usize = 16;
}

/// Fields of the PE32+ optional header, from its start.
mod optional {
    pub const MAGIC: usize = 0;
    pub const ADDRESS_OF_ENTRY_POINT: usize = 16;
    pub const IMAGE_BASE: usize = 24;
    pub const SIZE_OF_IMAGE: usize = 56;
    pub const SIZE_OF_HEADERS: usize = 60;
    pub const SUBSYSTEM: usize = 68;
    /// The fixed part, before the data directories.
    pub const FIXED_SIZE: usize = 112;
}

/// Fields of a section header, from its start.
mod section {
    pub const VIRTUAL_SIZE: usize = 8;
    pub const VIRTUAL_ADDRESS: usize = 12;
    pub const SIZE_OF_RAW_DATA: usize = 16;
    pub const POINTER_TO_RAW_DATA: usize = 20;
    pub const CHARACTERISTICS: usize = 36;
}

/// One section header, as far as the checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Section {
    va: u32,
    virtual_size: u32,
    raw_size: u32,
    raw_at: u32,
    flags: u32,
}

/// What is wrong with the image's headers; empty if nothing.
pub fn problems(bin: &[u8]) -> Vec<String> {
    match check(bin) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e],
    }
}

fn check(bin: &[u8]) -> Result<(), String> {
    let short = |what: &str| format!("the image is too short for its {what}");
    if !has_arm64_image_magic(bin) {
        return Err("no arm64 Image header (\"ARM\\x64\" at 0x38)".into());
    }
    if bin.get(..2) != Some(b"MZ") {
        return Err("no DOS signature \"MZ\" at 0 (code0): UEFI will not load it".into());
    }
    let pe = u32_at(bin, PE_OFFSET_AT) as usize;
    let opt = pe + 4 + COFF_SIZE;
    if bin.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(format!("no \"PE\\0\\0\" at {pe:#x}, where 0x3c points"));
    }
    let opt_end = opt + optional::FIXED_SIZE;
    if bin.len() < opt_end {
        return Err(short("PE headers"));
    }
    let machine = u16_at(bin, pe + 4 + coff::MACHINE);
    if machine != MACHINE_ARM64 {
        return Err(format!(
            "PE machine {machine:#x}, not AArch64 ({MACHINE_ARM64:#x})"
        ));
    }
    let sections = u16_at(bin, pe + 4 + coff::NUMBER_OF_SECTIONS) as usize;
    let opt_size = u16_at(bin, pe + 4 + coff::SIZE_OF_OPTIONAL_HEADER) as usize;
    if u16_at(bin, opt + optional::MAGIC) != PE32_PLUS {
        return Err("the optional header is not PE32+".into());
    }
    let entry = u32_at(bin, opt + optional::ADDRESS_OF_ENTRY_POINT);
    let image_base = u64_at(bin, opt + optional::IMAGE_BASE);
    let size_of_image = u32_at(bin, opt + optional::SIZE_OF_IMAGE);
    let size_of_headers = u32_at(bin, opt + optional::SIZE_OF_HEADERS);
    let subsystem = u16_at(bin, opt + optional::SUBSYSTEM);
    if subsystem != EFI_APPLICATION {
        return Err(format!(
            "subsystem {subsystem}, not an EFI application ({EFI_APPLICATION})"
        ));
    }
    if image_base != 0 {
        return Err(format!(
            "ImageBase {image_base:#x}: the image is linked at 0"
        ));
    }
    let image_size = u64_at(bin, IMAGE_SIZE_AT);
    if u64::from(size_of_image) != image_size {
        return Err(format!(
            "SizeOfImage {size_of_image:#x} but the Image header's image_size {image_size:#x}"
        ));
    }
    let table = opt + opt_size;
    if bin.len() < table + sections * SECTION_SIZE {
        return Err(short("section table"));
    }
    let mut end = size_of_headers;
    let mut entry_in_code = false;
    for i in 0..sections {
        let h = table + i * SECTION_SIZE;
        let s = Section {
            virtual_size: u32_at(bin, h + section::VIRTUAL_SIZE),
            va: u32_at(bin, h + section::VIRTUAL_ADDRESS),
            raw_size: u32_at(bin, h + section::SIZE_OF_RAW_DATA),
            raw_at: u32_at(bin, h + section::POINTER_TO_RAW_DATA),
            flags: u32_at(bin, h + section::CHARACTERISTICS),
        };
        if s.va != end || s.raw_at != s.va {
            return Err(format!(
                "section {i} at {:#x} (file {:#x}): sections must follow each other from {end:#x} with file offsets equal to addresses",
                s.va, s.raw_at
            ));
        }
        if s.raw_size > s.virtual_size {
            return Err(format!("section {i} has more file data than memory"));
        }
        entry_in_code |=
            s.flags & SCN_EXECUTE != 0 && (s.va..s.va + s.virtual_size).contains(&entry);
        end = s.va + s.virtual_size;
        if i + 1 == sections {
            let file_end = s.raw_at as usize + s.raw_size as usize;
            if file_end != bin.len() {
                return Err(format!(
                    "the last section's file data ends at {file_end:#x}, the image at {:#x}",
                    bin.len()
                ));
            }
        }
    }
    if end != size_of_image {
        return Err(format!(
            "the sections end at {end:#x}, SizeOfImage is {size_of_image:#x}"
        ));
    }
    if !entry_in_code {
        return Err(format!(
            "the entry point {entry:#x} is in no executable section"
        ));
    }
    Ok(())
}

/// The `image-headers` step on the flat image at `bin`.
pub fn test_step(bin: &Path) -> Outcome {
    let name = STEP.to_string();
    println!("xtask: headers of {} ({STEP})", bin.display());
    match std::fs::read(bin).ctx(|| format!("reading {}", bin.display())) {
        Ok(b) => Outcome {
            name,
            failures: problems(&b)
                .into_iter()
                .map(|p| format!("{}: {p}", bin.display()))
                .collect(),
            console: None,
        },
        Err(e) => Outcome::not_run(name, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image laid out as the boot code lays rhyve's: headers in the first page, .text,
    /// then .data with `bss` bytes of .bss past its file data.
    fn image(text: u32, data: u32, bss: u32) -> Vec<u8> {
        let size = 0x1000 + text + data + bss;
        let mut b = vec![0u8; (0x1000 + text + data) as usize];
        b[..2].copy_from_slice(b"MZ");
        b[16..24].copy_from_slice(&u64::from(size).to_le_bytes());
        b[0x38..0x3c].copy_from_slice(b"ARM\x64");
        b[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        let coff = 0x44;
        b[coff..coff + 2].copy_from_slice(&MACHINE_ARM64.to_le_bytes());
        b[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
        let opt_size: u16 = 112 + 6 * 8;
        b[coff + 16..coff + 18].copy_from_slice(&opt_size.to_le_bytes());
        let opt = coff + COFF_SIZE;
        b[opt..opt + 2].copy_from_slice(&PE32_PLUS.to_le_bytes());
        b[opt + 16..opt + 20].copy_from_slice(&0x1010u32.to_le_bytes());
        b[opt + 56..opt + 60].copy_from_slice(&size.to_le_bytes());
        b[opt + 60..opt + 64].copy_from_slice(&0x1000u32.to_le_bytes());
        b[opt + 68..opt + 70].copy_from_slice(&EFI_APPLICATION.to_le_bytes());
        let table = opt + opt_size as usize;
        for (i, (va, vsize, raw, flags)) in [
            (0x1000, text, text, 0x6000_0020u32),
            (0x1000 + text, data + bss, data, 0xc000_0040),
        ]
        .into_iter()
        .enumerate()
        {
            let h = table + i * SECTION_SIZE;
            b[h + 8..h + 12].copy_from_slice(&vsize.to_le_bytes());
            b[h + 12..h + 16].copy_from_slice(&va.to_le_bytes());
            b[h + 16..h + 20].copy_from_slice(&raw.to_le_bytes());
            b[h + 20..h + 24].copy_from_slice(&va.to_le_bytes());
            b[h + 36..h + 40].copy_from_slice(&flags.to_le_bytes());
        }
        b
    }

    #[test]
    fn an_image_that_is_both_passes() {
        assert_eq!(
            problems(&image(0x2000, 0x1200, 0x3e00)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_broken_header_is_named() {
        let ok = image(0x2000, 0x1200, 0x3e00);
        let broken = |f: &dyn Fn(&mut Vec<u8>), says: &str| {
            let mut b = ok.clone();
            f(&mut b);
            let p = problems(&b);
            assert!(p.len() == 1 && p[0].contains(says), "{says}: {p:?}");
        };
        broken(&|b| b[0] = 0x62, "MZ");
        broken(&|b| b[0x3c] = 0x48, "where 0x3c points");
        broken(&|b| b[0x45] = 0x86, "not AArch64");
        broken(&|b| b[17] ^= 1, "image_size");
        broken(&|b| b.truncate(b.len() - 0x200), "ends at");
        broken(&|b| b.extend([0; 0x200]), "ends at");
        broken(
            &|b| b[0x68..0x6c].copy_from_slice(&0x4000u32.to_le_bytes()),
            "entry point",
        );
        broken(&|b| b[0x38] = 0, "arm64 Image");
        assert!(!problems(&ok[..0x80]).is_empty());
    }
}
