//! `bundle`: `vmboot::bundle::Bundle::parse` of arbitrary bytes, and the round trip of a bundle
//! built from arbitrary parts.
//!
//! Invariants: `parse` refuses with the first failing check of the documented order
//! (truncated, magic, version, header size, flags, configuration bounds and UTF-8, file table
//! bounds, then per file: name bounds, UTF-8, empty, duplicate, contents bounds), as a
//! reference reading of the layout says; an accepted bundle's configuration, names and
//! contents are the input's slices at the offsets and lengths the header and table give; and
//! `parse(to_bytes(b)) == b`, both for a parsed bundle and for one built from parts (which
//! parse refuses exactly when a name is empty or repeated).

use arbitrary::Unstructured;
use vmboot::bundle::{Bundle, BundleError, FILE_ENTRY_SIZE, HEADER_SIZE, MAGIC, VERSION};

/// Header offsets, as the module documentation's table gives them.
const VERSION_AT: usize = 8;
const HEADER_SIZE_AT: usize = 12;
const FLAGS_AT: usize = 16;
const COUNT_AT: usize = 20;
const CONFIG_AT: usize = 24;
const TABLE_AT: usize = 40;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The (offset, length) pair at `at`.
fn pair(b: &[u8], at: usize) -> (u64, u64) {
    (u64_at(b, at), u64_at(b, at + 8))
}

/// Whether the (offset, length) pair lies inside `b`.
fn inside(b: &[u8], (off, len): (u64, u64)) -> bool {
    off.checked_add(len)
        .is_some_and(|end| end <= b.len() as u64)
}

/// Whether `part` is the slice `whole[off..off + len]`.
fn is_slice_at(whole: &[u8], part: &[u8], (off, len): (u64, u64)) -> bool {
    part.len() as u64 == len && part.as_ptr() as usize == whole.as_ptr() as usize + off as usize
}

fn bytes_at(b: &[u8], (off, len): (u64, u64)) -> &[u8] {
    &b[off as usize..(off + len) as usize]
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_parse(rest),
        1 => {
            // A well-formed header and in-range pairs in front of arbitrary contents, so that
            // the per-file checks are reached often.
            let mut b = rest.to_vec();
            if b.len() >= HEADER_SIZE {
                let len = b.len() as u64;
                b[..8].copy_from_slice(&MAGIC);
                b[VERSION_AT..VERSION_AT + 4].copy_from_slice(&VERSION.to_le_bytes());
                b[HEADER_SIZE_AT..HEADER_SIZE_AT + 4]
                    .copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
                b[FLAGS_AT..FLAGS_AT + 4].copy_from_slice(&0u32.to_le_bytes());
                let count = u32_at(&b, COUNT_AT) % 8;
                b[COUNT_AT..COUNT_AT + 4].copy_from_slice(&count.to_le_bytes());
                let mut fields = vec![CONFIG_AT, CONFIG_AT + 8, TABLE_AT];
                let table = u64_at(&b, TABLE_AT) % len;
                let entries = (len - table) as usize / FILE_ENTRY_SIZE;
                for e in 0..entries.min(count as usize) {
                    let at = table as usize + e * FILE_ENTRY_SIZE;
                    fields.extend((0..4).map(|k| at + 8 * k));
                }
                if mode & 0x80 == 0 {
                    for at in fields {
                        let v = u64_at(&b, at) % len;
                        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            check_parse(&b);
        }
        _ => {
            let mut u = Unstructured::new(rest);
            let _ = check_built(&mut u);
        }
    }
}

/// What `parse` must answer for `b`, read independently from the layout tables.
fn expected(b: &[u8]) -> Result<(), BundleError> {
    if b.len() < HEADER_SIZE {
        return Err(BundleError::Truncated);
    }
    if b[..8] != MAGIC {
        return Err(BundleError::BadMagic);
    }
    if u32_at(b, VERSION_AT) != VERSION {
        return Err(BundleError::UnsupportedVersion(u32_at(b, VERSION_AT)));
    }
    let hs = u32_at(b, HEADER_SIZE_AT);
    if (hs as usize) < HEADER_SIZE || hs as usize > b.len() {
        return Err(BundleError::BadHeaderSize(hs));
    }
    if u32_at(b, FLAGS_AT) != 0 {
        return Err(BundleError::UnknownFlags(u32_at(b, FLAGS_AT)));
    }
    let config = pair(b, CONFIG_AT);
    if !inside(b, config) {
        return Err(BundleError::SectionOutOfBounds("configuration"));
    }
    if std::str::from_utf8(bytes_at(b, config)).is_err() {
        return Err(BundleError::ConfigNotUtf8);
    }
    let count = u32_at(b, COUNT_AT);
    let table = u64_at(b, TABLE_AT);
    if !inside(b, (table, u64::from(count) * FILE_ENTRY_SIZE as u64)) {
        return Err(BundleError::SectionOutOfBounds("file table"));
    }
    let mut names: Vec<&[u8]> = Vec::new();
    for n in 0..count {
        let entry = table as usize + n as usize * FILE_ENTRY_SIZE;
        let name = pair(b, entry);
        if !inside(b, name) {
            return Err(BundleError::FileNameOutOfBounds(n));
        }
        let name = bytes_at(b, name);
        if std::str::from_utf8(name).is_err() {
            return Err(BundleError::FileNameNotUtf8(n));
        }
        if name.is_empty() {
            return Err(BundleError::EmptyFileName(n));
        }
        if names.contains(&name) {
            return Err(BundleError::DuplicateFile(n));
        }
        names.push(name);
        if !inside(b, pair(b, entry + 16)) {
            return Err(BundleError::FileOutOfBounds(n));
        }
    }
    Ok(())
}

fn check_parse(b: &[u8]) {
    let parsed = Bundle::parse(b);
    let bundle = match (parsed, expected(b)) {
        (Err(e), Err(x)) => return assert_eq!(e, x),
        (Ok(_), Err(x)) => panic!("parse accepted a bundle it must refuse with {x:?}"),
        (Err(e), Ok(())) => panic!("parse refused a valid bundle with {e:?}"),
        (Ok(bundle), Ok(())) => bundle,
    };
    assert!(
        is_slice_at(b, bundle.config.as_bytes(), pair(b, CONFIG_AT)),
        "config slice"
    );
    assert_eq!(bundle.files.len() as u32, u32_at(b, COUNT_AT));
    let table = u64_at(b, TABLE_AT) as usize;
    for (n, (name, contents)) in bundle.files.iter().enumerate() {
        let entry = table + n * FILE_ENTRY_SIZE;
        assert!(
            is_slice_at(b, name.as_bytes(), pair(b, entry)),
            "name {n} slice"
        );
        assert!(
            is_slice_at(b, contents, pair(b, entry + 16)),
            "contents {n} slice"
        );
        assert_eq!(bundle.file(name), Some(*contents), "file({name:?})");
    }
    round_trip(&bundle);
}

fn round_trip(bundle: &Bundle) {
    let bytes = bundle.to_bytes();
    assert_eq!(
        Bundle::parse(&bytes).as_ref(),
        Ok(bundle),
        "parse(to_bytes(b)) != b"
    );
}

fn check_built(u: &mut Unstructured) -> arbitrary::Result<()> {
    let config: String = u.arbitrary()?;
    let files: Vec<(String, Vec<u8>)> = u.arbitrary()?;
    let bundle = Bundle {
        config: &config,
        files: files
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect(),
    };
    let bytes = bundle.to_bytes();
    let first_bad = files.iter().enumerate().find_map(|(i, (name, _))| {
        if name.is_empty() {
            Some(BundleError::EmptyFileName(i as u32))
        } else if files[..i].iter().any(|(other, _)| other == name) {
            Some(BundleError::DuplicateFile(i as u32))
        } else {
            None
        }
    });
    let parsed = Bundle::parse(&bytes);
    match first_bad {
        Some(e) => assert_eq!(parsed, Err(e)),
        None => {
            assert_eq!(parsed, Ok(bundle.clone()));
            // Sections are 8-byte aligned and after the header.
            let mut pairs = vec![CONFIG_AT];
            let table = u64_at(&bytes, TABLE_AT) as usize;
            assert_eq!(table % 8, 0);
            assert!(table >= HEADER_SIZE);
            pairs.extend((0..files.len()).flat_map(|n| {
                let e = table + n * FILE_ENTRY_SIZE;
                [e, e + 16]
            }));
            for at in pairs {
                let (off, _) = pair(&bytes, at);
                assert_eq!(off % 8, 0);
                assert!(off >= HEADER_SIZE as u64);
            }
        }
    }
    Ok(())
}
