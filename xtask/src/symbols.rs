//! The privilege line, checked on the EL2 image: the core links no device model.
//!
//! Device models (`vmm::pl011`, `vmm::pl031`, `vmm::virtio`) run in the VMM partition at EL1; the core links
//! only `abi` and `vmboot`. A dependency that pulls a model back into the core still builds, so
//! `cargo xtask test` reads the image's symbol table after building it and fails on any name
//! from those modules ([`FORBIDDEN`]): an `nm -C | grep` without needing binutils.
//!
//! The table is read by hand (ELF-64 Object File Format, version 1.5: "Sections", "Symbol
//! Table", "String Table"). Names stay mangled; rustc spells a path's segments the same way in
//! both its schemes, each identifier after its length: `vmm::virtio::net::MacAddr` is
//! `...3vmm6virtio3net7MacAddr...` in a v0 name (`_R...`) and a legacy one (`_ZN...`), and a
//! legacy name writes a type inside a generic argument as `vmm..virtio..net..MacAddr`. A name
//! that is not Rust's, or already demangled, spells it `vmm::virtio`.

use std::path::Path;

use crate::error::IoContext;
use crate::image::{check_header, u16_at, u32_at, u64_at, ElfError, EHDR_SIZE};
use crate::scenarios::Outcome;

/// The modules whose code must not be in the core's image: `(crate, module)`.
pub const FORBIDDEN: [(&str, &str); 4] = [
    ("vmm", "virtio"),
    ("vmm", "pl011"),
    ("vmm", "pl031"),
    ("vmm", "cfi_flash"),
];

/// The step's name in `cargo xtask test`.
pub const STEP: &str = "image-symbols";

/// Size of an ELF64 section header.
const SHDR_SIZE: usize = 64;
/// `sh_type` of the symbol table.
const SHT_SYMTAB: u32 = 2;
/// Size of an ELF64 symbol.
const SYM_SIZE: usize = 24;
/// Offending names a failure lists before it counts the rest.
const SHOWN: usize = 10;

/// One section header, as far as finding the symbols cares.
#[derive(Debug, Clone, Copy)]
struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

/// The bytes of section `index`, checked to lie in the file.
fn section_data<'a>(
    elf: &'a [u8],
    sections: &[Section],
    index: usize,
) -> Result<&'a [u8], ElfError> {
    let s = sections
        .get(index)
        .ok_or(ElfError::SectionOutsideFile(index))?;
    s.offset
        .checked_add(s.size)
        .filter(|end| *end <= elf.len() as u64)
        .map(|end| &elf[s.offset as usize..end as usize])
        .ok_or(ElfError::SectionOutsideFile(index))
}

/// The names in the ELF's symbol table (`.symtab`), in table order, empty ones left out.
pub fn symbol_names(elf: &[u8]) -> Result<Vec<&str>, ElfError> {
    check_header(elf)?;
    let shoff = u64_at(elf, 40);
    let shentsize = u16_at(elf, 58);
    let shnum = u16_at(elf, 60) as u64;
    if shentsize as usize != SHDR_SIZE {
        return Err(ElfError::BadShentsize(shentsize));
    }
    let table_end = shnum
        .checked_mul(SHDR_SIZE as u64)
        .and_then(|n| n.checked_add(shoff))
        .ok_or(ElfError::Truncated("section header table"))?;
    if table_end > elf.len() as u64 || (shnum > 0 && shoff < EHDR_SIZE as u64) {
        return Err(ElfError::Truncated("section header table"));
    }
    let sections: Vec<Section> = (0..shnum as usize)
        .map(|i| {
            let sh = &elf[shoff as usize + i * SHDR_SIZE..][..SHDR_SIZE];
            Section {
                kind: u32_at(sh, 4),
                offset: u64_at(sh, 24),
                size: u64_at(sh, 32),
                link: u32_at(sh, 40),
            }
        })
        .collect();
    let symtab = sections
        .iter()
        .position(|s| s.kind == SHT_SYMTAB)
        .ok_or(ElfError::NoSymbolTable)?;
    let symbols = section_data(elf, &sections, symtab)?;
    let strings = section_data(elf, &sections, sections[symtab].link as usize)?;
    let mut names = Vec::new();
    for (index, sym) in symbols.chunks_exact(SYM_SIZE).enumerate() {
        let at = u32_at(sym, 0) as usize;
        let rest = strings
            .get(at..)
            .ok_or(ElfError::SymbolNameOutside(index))?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ElfError::SymbolNameOutside(index))?;
        // Names are bytes to ELF; one that is not UTF-8 is no Rust path either.
        match std::str::from_utf8(&rest[..len]) {
            Ok("") | Err(_) => {}
            Ok(name) => names.push(name),
        }
    }
    Ok(names)
}

/// The forbidden module (`vmm::virtio`) whose code the symbol `name` is, or mentions.
pub fn forbidden_path(name: &str) -> Option<String> {
    FORBIDDEN.into_iter().find_map(|(krate, module)| {
        // Mangled (v0 or legacy): the length prefixes bound the identifiers, so only a digit
        // before the first one could make it part of a longer one.
        let mangled = format!("{}{krate}{}{module}", krate.len(), module.len());
        let found = occurs(name, &mangled, |c| !c.is_ascii_digit(), |_| true)
            || occurs(
                name,
                &format!("{krate}..{module}"),
                is_not_ident,
                is_not_ident,
            )
            || occurs(
                name,
                &format!("{krate}::{module}"),
                is_not_ident,
                is_not_ident,
            );
        found.then(|| format!("{krate}::{module}"))
    })
}

/// Whether `pattern` occurs in `name` after the start or a character `before` accepts, and
/// before the end or a character `after` accepts.
fn occurs(name: &str, pattern: &str, before: fn(char) -> bool, after: fn(char) -> bool) -> bool {
    name.match_indices(pattern).any(|(at, _)| {
        name[..at].chars().next_back().is_none_or(before)
            && name[at + pattern.len()..].chars().next().is_none_or(after)
    })
}

/// Whether `c` cannot be part of an identifier.
fn is_not_ident(c: char) -> bool {
    !(c.is_alphanumeric() || c == '_')
}

/// The symbols of the ELF `elf` that belong to a forbidden module, with that module.
pub fn offenders(elf: &[u8]) -> Result<Vec<(String, &str)>, ElfError> {
    Ok(symbol_names(elf)?
        .into_iter()
        .filter_map(|name| forbidden_path(name).map(|path| (path, name)))
        .collect())
}

/// The `image-symbols` step of `cargo xtask test`: the EL2 image at `elf` (just built) links
/// no device model.
pub fn test_step(elf: &Path) -> Outcome {
    let name = STEP.to_string();
    println!("xtask: symbols of {} ({STEP})", elf.display());
    let bytes = match std::fs::read(elf).ctx(|| format!("reading {}", elf.display())) {
        Ok(b) => b,
        Err(e) => return Outcome::not_run(name, e.to_string()),
    };
    let failures = match offenders(&bytes) {
        Err(e) => vec![format!("{}: {e}", elf.display())],
        Ok(found) if found.is_empty() => vec![],
        Ok(found) => {
            let mut lines = vec![format!(
                "the EL2 image links {} symbols of device models, which belong to the VMM \
                 partition only (a crate the core depends on pulls them in):",
                found.len()
            )];
            lines.extend(
                found
                    .iter()
                    .take(SHOWN)
                    .map(|(path, sym)| format!("{path}: {sym}")),
            );
            if found.len() > SHOWN {
                lines.push(format!("... and {} more", found.len() - SHOWN));
            }
            vec![lines.join("\n    ")]
        }
    };
    Outcome {
        name,
        failures,
        console: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic AArch64 ELF64 with sections: null, `.symtab` (one null symbol, then one per
    /// name), `.strtab`.
    fn synth(names: &[&str]) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; SYM_SIZE];
        for n in names {
            let mut sym = [0u8; SYM_SIZE];
            sym[..4].copy_from_slice(&(strtab.len() as u32).to_le_bytes());
            symtab.extend_from_slice(&sym);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let mut elf = vec![0u8; EHDR_SIZE];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[6] = 1;
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        let sym_off = elf.len() as u64;
        elf.extend_from_slice(&symtab);
        let str_off = elf.len() as u64;
        elf.extend_from_slice(&strtab);
        let shoff = elf.len() as u64;
        elf[40..48].copy_from_slice(&shoff.to_le_bytes());
        elf[58..60].copy_from_slice(&(SHDR_SIZE as u16).to_le_bytes());
        elf[60..62].copy_from_slice(&3u16.to_le_bytes());
        let header = |kind: u32, offset: u64, size: u64, link: u32| {
            let mut sh = [0u8; SHDR_SIZE];
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[24..32].copy_from_slice(&offset.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            sh[40..44].copy_from_slice(&link.to_le_bytes());
            sh
        };
        elf.extend_from_slice(&[0u8; SHDR_SIZE]);
        elf.extend_from_slice(&header(SHT_SYMTAB, sym_off, symtab.len() as u64, 2));
        elf.extend_from_slice(&header(3, str_off, strtab.len() as u64, 0));
        elf
    }

    /// Names of the image before vmboot existed, as rustc (v0) and nm -C wrote them.
    const LEAKED: [&str; 4] = [
        "_RNvMs3_NtCs9tarpvH5xq0_5alloc7raw_vecINtB5_6RawVecNtNtNtCsdpgKChkJee7_3vmm6virtio6switch5EntryE8grow_oneBS_",
        "_RNvXs_NtNtCsdpgKChkJee7_3vmm6virtio3netNtB4_7MacAddrNtNtCs4UisI3NN3Ga_4core3fmt7Display3fmt",
        "<vmm::virtio::net::MacAddr as core::fmt::Display>::fmt",
        "_ZN4core3ptr52drop_in_place$LT$vmm..pl011..Pl011$GT$17h0123456789abcdefE",
    ];

    #[test]
    fn device_model_symbols_are_found_in_every_spelling() {
        let legacy = "_ZN3vmm5pl0115Pl0115write17h0123456789abcdefE";
        for name in LEAKED.into_iter().chain([legacy]) {
            assert!(forbidden_path(name).is_some(), "{name}");
        }
        assert_eq!(forbidden_path(LEAKED[0]).as_deref(), Some("vmm::virtio"));
        assert_eq!(forbidden_path(legacy).as_deref(), Some("vmm::pl011"));
    }

    #[test]
    fn the_core_s_own_names_pass() {
        for name in [
            // abi::vmm::VirtioKind::slot, and the core's own vmm calls.
            "_RNvMs1_NtCsabc_3abi3vmmNtB5_10VirtioKind4slot",
            "_RNvNtCsxyz_10hypervisor7vmmcall6handle",
            // vmboot's loader and config.
            "_RNvNtCsqrs_6vmboot6loader4load",
            "<vmboot::config::VmDesc as core::clone::Clone>::clone",
            // A longer identifier that merely contains the segments.
            "_ZN13vmm6virtiofoo3bar17h0123456789abcdefE",
            "rvmm::virtio_like",
            "bsp::pl011::Uart::write",
            "",
        ] {
            assert_eq!(forbidden_path(name), None, "{name}");
        }
    }

    #[test]
    fn the_symbol_table_is_read_and_checked() {
        let clean = ["_start", "_RNvNtCsqrs_6vmboot6loader4load"];
        let elf = synth(&clean);
        assert_eq!(symbol_names(&elf).unwrap(), clean);
        assert_eq!(offenders(&elf).unwrap(), []);

        let dirty = synth(&["_start", LEAKED[0], LEAKED[1]]);
        let found = offenders(&dirty).unwrap();
        assert_eq!(
            found,
            [
                ("vmm::virtio".to_string(), LEAKED[0]),
                ("vmm::virtio".to_string(), LEAKED[1])
            ]
        );
    }

    #[test]
    fn a_stripped_or_broken_elf_is_refused() {
        let elf = synth(&["_start"]);
        // No .symtab: the second section is not one.
        let mut stripped = elf.clone();
        let shoff = u64_at(&elf, 40) as usize;
        stripped[shoff + SHDR_SIZE + 4] = 0;
        assert_eq!(symbol_names(&stripped), Err(ElfError::NoSymbolTable));
        // Every truncation is an error, never a panic.
        for len in 0..elf.len() {
            assert!(symbol_names(&elf[..len]).is_err(), "length {len} accepted");
        }
        let mut bad = elf.clone();
        bad[58] = 40;
        assert_eq!(symbol_names(&bad), Err(ElfError::BadShentsize(40)));
        // A name offset past the string table.
        let mut bad = elf.clone();
        bad[EHDR_SIZE + SYM_SIZE..][..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(symbol_names(&bad), Err(ElfError::SymbolNameOutside(1)));
    }
}
