//! What rhyve's UEFI entry (the image run as an EFI application) hands the core, and the
//! plain logic it needs on the way: where the boot bundle is next to the image, which parts of
//! the firmware's memory map stay out of guest RAM.
//!
//! The entry itself (`runtime::efi`) reads the bundle from the EFI system partition into pages
//! it allocates, exits boot services and enters the core as a loader would, x0 = the device
//! tree, plus the address of a [`Handoff`]: UEFI's device tree has no `/chosen/linux,initrd-*`
//! for the bundle, and its `/memory` covers RAM the firmware keeps after boot services.

use uefi_raw::protocol::device_path::{DeviceSubType, DeviceType};
use uefi_raw::table::boot::MemoryType;

/// [`Handoff::magic`]: "RHYVEFI1".
pub const HANDOFF_MAGIC: u64 = u64::from_le_bytes(*b"RHYVEFI1");
/// Most ranges a [`Handoff`] keeps out of guest RAM; more are merged (see [`Kept::add`]).
pub const MAX_KEPT: usize = 16;
/// The bundle's file name, in the directory the image was loaded from.
pub const BUNDLE_NAME: &str = "bundle.bin";
/// Longest path (UCS-2 units, with its NUL) the bundle's may be.
pub const MAX_PATH: usize = 256;

/// Ranges of memory, sorted, disjoint and not adjacent, at most [`MAX_KEPT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// How many of `ranges` are used.
    pub len: u64,
    /// (start, size), by start.
    pub ranges: [(u64, u64); MAX_KEPT],
}

impl Kept {
    /// The ranges.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.ranges[..(self.len as usize).min(MAX_KEPT)]
    }

    /// Adds `[start, start + size)`, merged with any range it overlaps or touches. With no room
    /// left, the two ranges with the smallest gap between them become one that covers the gap
    /// too: more memory kept from guests, never less.
    pub fn add(&mut self, start: u64, size: u64) {
        let end = start.saturating_add(size);
        if end <= start {
            return;
        }
        let mut all = [(0u64, 0u64); MAX_KEPT + 1];
        let mut n = 0;
        let (mut s, mut e) = (start, end);
        let mut placed = false;
        for &(rs, rsize) in self.as_slice() {
            let re = rs + rsize;
            if re < s {
                all[n] = (rs, re);
                n += 1;
            } else if rs > e {
                if !placed {
                    all[n] = (s, e);
                    n += 1;
                    placed = true;
                }
                all[n] = (rs, re);
                n += 1;
            } else {
                s = s.min(rs);
                e = e.max(re);
            }
        }
        if !placed {
            all[n] = (s, e);
            n += 1;
        }
        if n > MAX_KEPT {
            let i = (0..n - 1)
                .min_by_key(|&i| all[i + 1].0 - all[i].1)
                .unwrap_or(0);
            all[i].1 = all[i + 1].1;
            all.copy_within(i + 2..n, i + 1);
            n -= 1;
        }
        self.len = n as u64;
        for (slot, &(s, e)) in self.ranges.iter_mut().zip(&all[..n]) {
            *slot = (s, e - s);
        }
    }
}

/// What the UEFI entry hands the core (its address in x1 of `primary_entry_efi`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handoff {
    /// [`HANDOFF_MAGIC`].
    pub magic: u64,
    /// The boot bundle, read from the ESP: first byte.
    pub bundle_start: u64,
    /// The boot bundle: past its last byte.
    pub bundle_end: u64,
    /// The firmware's memory the core must leave alone (see [`kept_after_exit`]).
    pub kept: Kept,
}

impl Handoff {
    /// The record at `addr`, if it carries [`HANDOFF_MAGIC`].
    ///
    /// # Safety
    /// `addr` must be the address the UEFI entry passed, of a `Handoff` it filled.
    pub unsafe fn read(addr: usize) -> Option<Self> {
        // SAFETY: per the caller; `read_volatile` copies the record out before anything may
        // reuse its page.
        let h = unsafe { core::ptr::read_volatile(addr as *const Self) };
        (h.magic == HANDOFF_MAGIC && h.bundle_end > h.bundle_start).then_some(h)
    }
}

/// Whether memory of type `ty` stays the firmware's after ExitBootServices (UEFI 2.10, table
/// 7-6 "Memory Type Usage after ExitBootServices()"): everything but loader code and data,
/// boot services code and data and conventional memory. Runtime services code and data,
/// reserved, unusable, ACPI, MMIO and persistent memory, and types this code does not know,
/// are kept from guests.
pub fn kept_after_exit(ty: MemoryType) -> bool {
    !matches!(
        ty,
        MemoryType::LOADER_CODE
            | MemoryType::LOADER_DATA
            | MemoryType::BOOT_SERVICES_CODE
            | MemoryType::BOOT_SERVICES_DATA
            | MemoryType::CONVENTIONAL
    )
}

/// The path of the last file-path node (UEFI 2.10, 10.3.5.4 "File Path Media Device Path")
/// of the device path in `path` (its nodes up to the end node), as UCS-2 units without the
/// NUL: where the firmware found the image on its device.
pub fn image_file_path(path: &[u8]) -> Option<impl Iterator<Item = u16> + '_> {
    /// A node's header: type, subtype, 16-bit length.
    const HEADER: usize = 4;
    let mut found = None;
    let mut at = 0;
    while let Some(h) = path.get(at..at + HEADER) {
        let (ty, sub) = (DeviceType(h[0]), DeviceSubType(h[1]));
        let len = u16::from_le_bytes([h[2], h[3]]) as usize;
        if ty == DeviceType::END && sub == DeviceSubType::END_ENTIRE {
            break;
        }
        let node = path.get(at..at.checked_add(len)?)?;
        if len < HEADER {
            return None;
        }
        if ty == DeviceType::MEDIA && sub == DeviceSubType::MEDIA_FILE_PATH {
            found = Some(&node[HEADER..]);
        }
        at += len;
    }
    let units = found?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    Some(units)
}

/// The path of [`BUNDLE_NAME`] in the directory of the file at `image` (UCS-2, as
/// [`image_file_path`] gives it), written to `out` with its NUL; its length without the NUL.
/// A path with no directory (`BOOTAA64.EFI`) puts the bundle at the root.
pub fn bundle_path(image: impl Iterator<Item = u16>, out: &mut [u16; MAX_PATH]) -> Option<usize> {
    const SEP: u16 = b'\\' as u16;
    let mut len = 0;
    let mut dir_end = 0;
    for u in image {
        *out.get_mut(len)? = u;
        len += 1;
        if u == SEP || u == u16::from(b'/') {
            out[len - 1] = SEP;
            dir_end = len;
        }
    }
    if dir_end == 0 {
        out[0] = SEP;
        dir_end = 1;
    }
    let mut len = dir_end;
    for u in BUNDLE_NAME.encode_utf16() {
        *out.get_mut(len)? = u;
        len += 1;
    }
    *out.get_mut(len)? = 0;
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn kept(ranges: &[(u64, u64)]) -> Kept {
        let mut k = Kept::default();
        for &(s, z) in ranges {
            k.add(s, z);
        }
        k
    }

    #[test]
    fn kept_ranges_are_sorted_and_merged() {
        let k = kept(&[
            (0x5000, 0x1000),
            (0x1000, 0x1000),
            (0x2000, 0x1000),
            (0x9000, 0),
        ]);
        assert_eq!(k.as_slice(), [(0x1000, 0x2000), (0x5000, 0x1000)]);
        // Overlapping the two: one range.
        let k = kept(&[(0x5000, 0x1000), (0x1000, 0x1000), (0x1800, 0x4000)]);
        assert_eq!(k.as_slice(), [(0x1000, 0x5000)]);
    }

    #[test]
    fn too_many_ranges_merge_across_the_smallest_gap() {
        let mut ranges: Vec<(u64, u64)> = (0..MAX_KEPT as u64)
            .map(|i| (i * 0x10_0000, 0x1000))
            .collect();
        // One more, close behind the third: it joins the third across its small gap.
        ranges.push((2 * 0x10_0000 + 0x2000, 0x1000));
        let k = kept(&ranges);
        assert_eq!(k.as_slice().len(), MAX_KEPT);
        assert_eq!(k.as_slice()[2], (2 * 0x10_0000, 0x3000));
        // Every byte asked for is still kept.
        for &(s, z) in &ranges {
            assert!(k
                .as_slice()
                .iter()
                .any(|&(ks, kz)| s >= ks && s + z <= ks + kz));
        }
    }

    #[test]
    fn runtime_and_reserved_memory_stay_the_firmware_s() {
        for ty in [
            MemoryType::RESERVED,
            MemoryType::RUNTIME_SERVICES_CODE,
            MemoryType::RUNTIME_SERVICES_DATA,
            MemoryType::ACPI_NON_VOLATILE,
            MemoryType::MMIO,
            MemoryType(0x7000_0001),
        ] {
            assert!(kept_after_exit(ty), "{ty:?}");
        }
        for ty in [
            MemoryType::LOADER_DATA,
            MemoryType::BOOT_SERVICES_DATA,
            MemoryType::CONVENTIONAL,
        ] {
            assert!(!kept_after_exit(ty), "{ty:?}");
        }
    }

    /// A device path: a hardware node, then a file path node for `file`, then the end.
    fn device_path(file: &str) -> Vec<u8> {
        let mut p = vec![1, 4, 8, 0, 0xaa, 0xbb, 0xcc, 0xdd];
        let name: Vec<u8> = file
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        p.extend([4, 4]);
        p.extend(((4 + name.len()) as u16).to_le_bytes());
        p.extend(name);
        p.extend([0x7f, 0xff, 4, 0]);
        p
    }

    fn bundle_for(file: &str) -> Option<String> {
        let path = device_path(file);
        let mut out = [0u16; MAX_PATH];
        let len = bundle_path(image_file_path(&path)?, &mut out)?;
        assert_eq!(out[len], 0);
        Some(String::from_utf16(&out[..len]).unwrap())
    }

    #[test]
    fn the_bundle_is_next_to_the_image() {
        assert_eq!(
            bundle_for("\\EFI\\BOOT\\BOOTAA64.EFI").as_deref(),
            Some("\\EFI\\BOOT\\bundle.bin")
        );
        assert_eq!(bundle_for("\\rhyve.efi").as_deref(), Some("\\bundle.bin"));
        assert_eq!(bundle_for("rhyve.efi").as_deref(), Some("\\bundle.bin"));
        assert_eq!(
            bundle_for("/EFI/rhyve/rhyve.efi").as_deref(),
            Some("\\EFI\\rhyve\\bundle.bin")
        );
        let long = format!("\\{}\\rhyve.efi", "d".repeat(MAX_PATH));
        assert_eq!(bundle_for(&long), None);
    }

    #[test]
    fn a_device_path_without_a_file_or_with_a_bad_node_has_no_path() {
        let mut p = device_path("\\x.efi");
        p.drain(8..p.len() - 4);
        assert!(image_file_path(&p).is_none());
        // A node whose length runs past the bytes, or is shorter than its header.
        let mut p = device_path("\\x.efi");
        p[2] = 200;
        assert!(image_file_path(&p).is_none());
        let mut p = device_path("\\x.efi");
        p[2] = 2;
        assert!(image_file_path(&p).is_none());
    }

    #[test]
    fn the_handoff_needs_its_magic() {
        let mut h = Handoff {
            magic: HANDOFF_MAGIC,
            bundle_start: 0x4800_0000,
            bundle_end: 0x4900_0000,
            kept: Kept::default(),
        };
        // SAFETY: the address of a live Handoff.
        assert_eq!(unsafe { Handoff::read(&h as *const _ as usize) }, Some(h));
        h.magic = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { Handoff::read(&h as *const _ as usize) }, None);
    }
}
