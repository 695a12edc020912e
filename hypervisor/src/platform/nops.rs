//! Removes the NOP tokens from a flattened device tree, in place.
//!
//! Firmware that edits a tree with libfdt (QEMU with `-dtb`, U-Boot, EDK2) leaves `FDT_NOP`
//! tokens where it deleted a node or a property. The format allows them anywhere in the
//! structure block (Devicetree Specification v0.4, 5.4.1), but the `fdt` crate stops finding
//! sibling nodes after them, and stops walking nodes at all after a NOP among properties: the
//! machine would look as if it had no CPUs. So the core squeezes them out before it reads
//! the tree; the tree means exactly what it meant before.

/// The header's magic.
const MAGIC: u32 = 0xd00d_feed;
/// Header offsets (5.2): `totalsize`, `off_dt_struct`, `version`, `size_dt_struct`.
const TOTALSIZE: usize = 4;
const OFF_DT_STRUCT: usize = 8;
const VERSION: usize = 20;
const SIZE_DT_STRUCT: usize = 36;
/// The version from which the header has `size_dt_struct`.
const VERSION_WITH_STRUCT_SIZE: u32 = 17;

/// Structure block tokens (5.4.1).
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// Why a tree was left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqueezeError {
    /// Not a flattened device tree, or its header's sizes do not fit the bytes.
    BadHeader,
    /// A token or its data runs past the structure block, or an unknown token.
    BadStructure,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// The length of the token at `at` with its data, padded to 4 bytes; `None` if it does not
/// fit before `end` or is unknown.
fn token_len(b: &[u8], at: usize, end: usize) -> Option<(u32, usize)> {
    let token = be32(b, at)?;
    let len = match token {
        BEGIN_NODE => {
            let name = b.get(at + 4..end)?;
            let nul = name.iter().position(|&c| c == 0)?;
            4 + (nul + 1).next_multiple_of(4)
        }
        PROP => {
            let value = be32(b, at + 4)? as usize;
            12usize.checked_add(value.checked_next_multiple_of(4)?)?
        }
        END_NODE | NOP | END => 4,
        _ => return None,
    };
    (at.checked_add(len)? <= end).then_some((token, len))
}

/// Squeezes the NOP tokens out of the tree in `blob` (its `totalsize` bytes or more); returns
/// how many bytes the structure block shrank by. Nothing is changed unless the whole
/// structure block reads well.
pub fn squeeze_nops(blob: &mut [u8]) -> Result<usize, SqueezeError> {
    if be32(blob, 0) != Some(MAGIC) {
        return Err(SqueezeError::BadHeader);
    }
    let total = be32(blob, TOTALSIZE).ok_or(SqueezeError::BadHeader)? as usize;
    let start = be32(blob, OFF_DT_STRUCT).ok_or(SqueezeError::BadHeader)? as usize;
    let version = be32(blob, VERSION).ok_or(SqueezeError::BadHeader)?;
    if total > blob.len() || start >= total {
        return Err(SqueezeError::BadHeader);
    }
    let end = if version >= VERSION_WITH_STRUCT_SIZE {
        let size = be32(blob, SIZE_DT_STRUCT).ok_or(SqueezeError::BadHeader)? as usize;
        match start.checked_add(size) {
            Some(e) if e <= total => e,
            _ => return Err(SqueezeError::BadHeader),
        }
    } else {
        total
    };
    // First pass: every token must read, up to FDT_END.
    let mut at = start;
    let mut nops = 0;
    loop {
        let (token, len) = token_len(blob, at, end).ok_or(SqueezeError::BadStructure)?;
        if token == NOP {
            nops += 1;
        }
        at += len;
        if token == END {
            break;
        }
    }
    let used_end = at;
    if nops == 0 {
        return Ok(0);
    }
    // Second pass: move each token that is not a NOP down over the NOPs before it.
    let (mut read, mut write) = (start, start);
    while read < used_end {
        let Some((token, len)) = token_len(blob, read, used_end) else {
            break;
        };
        if token != NOP {
            blob.copy_within(read..read + len, write);
            write += len;
        }
        read += len;
    }
    blob[write..used_end].fill(0);
    let shrunk = used_end - write;
    if version >= VERSION_WITH_STRUCT_SIZE {
        let size = (write - start) as u32;
        put32(blob, SIZE_DT_STRUCT, size);
    }
    Ok(shrunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use fdt::Fdt;

    /// A tree whose /cpus follows a deleted node and whose /chosen has a deleted property:
    /// the NOPs a libfdt edit leaves (what `fdt_nop_node` and `fdt_nop_property` write).
    fn tree_with_nops() -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("deleted", "xxxxxxx").unwrap();
        w.property_string("bootargs", "console=ttyAMA0").unwrap();
        w.end_node(chosen).unwrap();
        let gone = w.begin_node("gone@0").unwrap();
        w.property_u32("x", 1).unwrap();
        w.end_node(gone).unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        let cpu = w.begin_node("cpu@0").unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.end_node(cpu).unwrap();
        w.end_node(cpus).unwrap();
        w.end_node(root).unwrap();
        let mut blob = w.finish().unwrap();
        nop_out(&mut blob, b"gone@0", true);
        nop_out(&mut blob, b"xxxxxxx", false);
        blob
    }

    /// Turns the node named `name` (whole), or the property whose value is `value`, into NOPs.
    fn nop_out(blob: &mut [u8], needle: &[u8], node: bool) {
        let start = be32(blob, OFF_DT_STRUCT).unwrap() as usize;
        let end = start + be32(blob, SIZE_DT_STRUCT).unwrap() as usize;
        let mut at = start;
        let mut depth_from = None;
        let mut depth = 0;
        while at < end {
            let (token, len) = token_len(blob, at, end).unwrap();
            let hit = blob[at..at + len]
                .windows(needle.len())
                .any(|w| w == needle);
            let nop = match (node, token) {
                (true, BEGIN_NODE) if hit => {
                    depth_from = Some(depth);
                    true
                }
                (false, PROP) => hit,
                _ => depth_from.is_some(),
            };
            match token {
                BEGIN_NODE => depth += 1,
                END_NODE => depth -= 1,
                _ => {}
            }
            if nop {
                for w in (at..at + len).step_by(4) {
                    put32(blob, w, NOP);
                }
            }
            if token == END_NODE && depth_from == Some(depth) {
                depth_from = None;
            }
            at += len;
        }
    }

    #[test]
    fn a_tree_with_nops_reads_whole_once_squeezed() {
        let mut blob = tree_with_nops();
        // What this module is for: the crate loses /cpus behind the NOPs, or panics.
        let raw = blob.clone();
        let found = std::panic::catch_unwind(|| {
            Fdt::new(&raw)
                .ok()
                .and_then(|f| f.find_node("/cpus/cpu@0").map(|_| ()))
        });
        assert!(!matches!(found, Ok(Some(()))));
        let shrunk = squeeze_nops(&mut blob).unwrap();
        assert!(shrunk > 0);
        let fdt = Fdt::new(&blob).unwrap();
        assert!(fdt.find_node("/cpus/cpu@0").is_some());
        assert!(fdt.find_node("/gone@0").is_none());
        assert_eq!(fdt.chosen().bootargs(), Some("console=ttyAMA0"));
        let chosen = fdt.find_node("/chosen").unwrap();
        assert!(chosen.properties().all(|p| p.name != "deleted"));
        assert_eq!(squeeze_nops(&mut blob), Ok(0), "nothing left to squeeze");
    }

    #[test]
    fn a_tree_without_nops_is_left_alone_and_bad_ones_unchanged() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.end_node(root).unwrap();
        let clean = w.finish().unwrap();
        let mut blob = clean.clone();
        assert_eq!(squeeze_nops(&mut blob), Ok(0));
        assert_eq!(blob, clean);
        let mut bad = tree_with_nops();
        let start = be32(&bad, OFF_DT_STRUCT).unwrap() as usize;
        put32(&mut bad, start, 7);
        let before = bad.clone();
        assert_eq!(squeeze_nops(&mut bad), Err(SqueezeError::BadStructure));
        assert_eq!(bad, before, "a tree that does not read is not touched");
        assert_eq!(squeeze_nops(&mut [0u8; 8]), Err(SqueezeError::BadHeader));
        let mut short = tree_with_nops();
        put32(&mut short, TOTALSIZE, u32::MAX);
        assert_eq!(squeeze_nops(&mut short), Err(SqueezeError::BadHeader));
    }

    #[test]
    fn any_bytes_get_an_answer() {
        let good = tree_with_nops();
        for cut in 0..good.len() {
            let mut b = good[..cut].to_vec();
            let _ = squeeze_nops(&mut b);
        }
        for i in 40..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            let _ = squeeze_nops(&mut b);
        }
    }
}
