//! `bundle`: `vmm::bundle::Bundle::parse` of arbitrary bytes, and the round trip of a bundle
//! built from arbitrary parts.
//!
//! Invariants: `parse` refuses with the first failing check of the documented order
//! (truncated, magic, version, header size, flags, vCPUs, sections); a parsed bundle's
//! sections are slices of the input at the offsets and lengths its header gives, its
//! vCPU count is nonzero, its kernel nonempty and its initrd, if any, nonempty; and
//! `parse(to_bytes(b)) == b`, both for a parsed bundle and for one built from parts.

use arbitrary::Unstructured;
use vmm::bundle::{Bundle, BundleError, HEADER_SIZE, MAGIC, VERSION};

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The (offset, length) of the section whose pair is at `field`.
fn section(b: &[u8], field: usize) -> (u64, u64) {
    (u64_at(b, field), u64_at(b, field + 8))
}

/// Whether `part` is the slice `whole[off..off + len]`.
fn is_slice_at(whole: &[u8], part: &[u8], (off, len): (u64, u64)) -> bool {
    let start = whole.as_ptr() as usize;
    part.len() as u64 == len && part.as_ptr() as usize == start + off as usize
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_parse(rest),
        1 => {
            // A well-formed header in front of arbitrary fields and contents, so that the
            // section checks are reached often.
            let mut b = rest.to_vec();
            if b.len() >= HEADER_SIZE {
                b[..8].copy_from_slice(&MAGIC);
                b[8..12].copy_from_slice(&VERSION.to_le_bytes());
                b[20..24].copy_from_slice(&0u32.to_le_bytes());
                for field in [32, 48, 64] {
                    let len = b.len() as u64;
                    let (off, size) = section(&b, field);
                    if mode & 0x80 == 0 && len > 0 {
                        b[field..field + 8].copy_from_slice(&(off % len).to_le_bytes());
                        b[field + 8..field + 16].copy_from_slice(&(size % len).to_le_bytes());
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

fn check_parse(b: &[u8]) {
    let parsed = Bundle::parse(b);
    let expected_err = if b.len() < HEADER_SIZE {
        Some(BundleError::Truncated)
    } else if b[..8] != MAGIC {
        Some(BundleError::BadMagic)
    } else if u32_at(b, 8) != VERSION {
        Some(BundleError::UnsupportedVersion(u32_at(b, 8)))
    } else if (u32_at(b, 12) as usize) < HEADER_SIZE {
        Some(BundleError::BadHeaderSize(u32_at(b, 12)))
    } else if u32_at(b, 20) != 0 {
        Some(BundleError::UnknownFlags(u32_at(b, 20)))
    } else if u32_at(b, 16) == 0 {
        Some(BundleError::NoVcpus)
    } else {
        None
    };
    let bundle = match (parsed, expected_err) {
        (Err(e), Some(x)) => return assert_eq!(e, x),
        (Ok(_), Some(x)) => panic!("parse accepted a bundle it must refuse with {x:?}"),
        (Err(e), None) => {
            // Only the section checks remain; each must be true of the bytes.
            let inside = |(off, len): (u64, u64)| {
                off.checked_add(len)
                    .is_some_and(|end| end <= b.len() as u64)
            };
            match e {
                BundleError::SectionOutOfBounds(name) => {
                    let field = match name {
                        "kernel" => 32,
                        "initrd" => 48,
                        "command line" => 64,
                        other => panic!("unknown section {other}"),
                    };
                    assert!(!inside(section(b, field)), "{name} refused but inside");
                }
                BundleError::NoKernel => assert_eq!(section(b, 32).1, 0),
                BundleError::CmdlineNotUtf8 => {
                    let (off, len) = section(b, 64);
                    assert!(std::str::from_utf8(&b[off as usize..(off + len) as usize]).is_err());
                }
                other => panic!("unexpected refusal {other:?}"),
            }
            return;
        }
        (Ok(bundle), None) => bundle,
    };

    assert_ne!(bundle.vcpus, 0);
    assert_eq!(bundle.vcpus, u32_at(b, 16));
    assert_eq!(bundle.mem_size, u64_at(b, 24));
    assert!(!bundle.kernel.is_empty());
    assert!(
        is_slice_at(b, bundle.kernel, section(b, 32)),
        "kernel slice"
    );
    match bundle.initrd {
        Some(i) => {
            assert!(!i.is_empty());
            assert!(is_slice_at(b, i, section(b, 48)), "initrd slice");
        }
        None => assert_eq!(section(b, 48).1, 0),
    }
    assert!(
        is_slice_at(b, bundle.cmdline.as_bytes(), section(b, 64)),
        "cmdline slice"
    );
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
    let vcpus: u32 = u.arbitrary()?;
    let mem_size: u64 = u.arbitrary()?;
    let kernel: Vec<u8> = u.arbitrary()?;
    let initrd: Option<Vec<u8>> = u.arbitrary()?;
    let cmdline: String = u.arbitrary()?;
    let bundle = Bundle {
        vcpus,
        mem_size,
        kernel: &kernel,
        initrd: initrd.as_deref(),
        cmdline: &cmdline,
    };
    let bytes = bundle.to_bytes();
    let parsed = Bundle::parse(&bytes);
    if vcpus == 0 {
        assert_eq!(parsed, Err(BundleError::NoVcpus));
    } else if kernel.is_empty() {
        assert_eq!(parsed, Err(BundleError::NoKernel));
    } else {
        // An empty initrd is written as none.
        let normal = Bundle {
            initrd: bundle.initrd.filter(|i| !i.is_empty()),
            ..bundle.clone()
        };
        assert_eq!(parsed, Ok(normal));
        // Sections are 8-byte aligned, after the header.
        for field in [32, 48, 64] {
            let (off, _) = section(&bytes, field);
            assert_eq!(off % 8, 0);
            assert!(off >= HEADER_SIZE as u64);
        }
    }
    Ok(())
}
