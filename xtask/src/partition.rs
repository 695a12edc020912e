//! Partition tables for the disk images the firmware tests boot: an MBR with one partition
//! (what U-Boot's distro boot scans), or a GPT with one (the UEFI specification's, for an EFI
//! system partition). Pure: the bytes of the table's sectors, which the caller writes into the
//! image; the partition's contents are someone else's.
//!
//! Layouts: the MBR as the UEFI specification's "Legacy Master Boot Record" (UEFI 2.10,
//! 5.2.1), the GPT header and entries as its 5.3.2 and 5.3.3.

/// Bytes in a sector (the only size QEMU's virtio-blk and the firmwares' tables assume here).
pub const SECTOR: u64 = 512;
/// The first sector of the one partition: 1 MiB in, as partitioning tools align it.
pub const FIRST_LBA: u64 = (1 << 20) / SECTOR;

/// MBR partition type of a FAT32 file system addressed by LBA.
pub const MBR_FAT32_LBA: u8 = 0x0c;
/// MBR partition type of a GPT disk's protective entry.
const MBR_PROTECTIVE: u8 = 0xee;
/// GPT partition type of an EFI system partition, C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub const GPT_ESP: Guid = Guid(
    0xc12a_7328,
    0xf81f,
    0x11d2,
    [0xba, 0x4b, 0, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b],
);

/// Offsets in the MBR sector.
const MBR_SIGNATURE_AT: usize = 440;
const MBR_ENTRY_AT: usize = 446;
const MBR_BOOT_SIGNATURE: [u8; 2] = [0x55, 0xaa];
/// The MBR entry's "active" flag, which U-Boot's distro boot looks for first.
const MBR_ACTIVE: u8 = 0x80;
/// The CHS address of an LBA partition past CHS's reach: tools write the largest there is.
const CHS_PAST_END: [u8; 3] = [0xfe, 0xff, 0xff];

/// GPT: entries in the table, and the size of each (UEFI 5.3.2: at least 16 KiB of entries).
const GPT_ENTRIES: u64 = 128;
const GPT_ENTRY_SIZE: u64 = 128;
/// Sectors the entry array takes.
const GPT_ENTRY_SECTORS: u64 = GPT_ENTRIES * GPT_ENTRY_SIZE / SECTOR;
/// The header's size and revision 1.0.
const GPT_HEADER_SIZE: u32 = 92;
const GPT_REVISION: u32 = 0x0001_0000;

/// A GUID as the UEFI specification writes it: the first three fields are stored
/// little-endian, the last eight bytes as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub u32, pub u16, pub u16, pub [u8; 8]);

impl Guid {
    /// Its 16 bytes on disk.
    pub fn bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&self.0.to_le_bytes());
        b[4..6].copy_from_slice(&self.1.to_le_bytes());
        b[6..8].copy_from_slice(&self.2.to_le_bytes());
        b[8..].copy_from_slice(&self.3);
        b
    }

    /// A version-4-shaped GUID made from `seed`, so an image built twice from the same
    /// inputs is the same image.
    pub fn from_seed(seed: u64) -> Self {
        let hi = seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
        let mut tail = hi.to_be_bytes();
        tail[0] = (tail[0] & 0x3f) | 0x80; // the variant
        Self(
            (seed >> 32) as u32,
            (seed >> 16) as u16,
            (seed as u16 & 0x0fff) | 0x4000, // the version
            tail,
        )
    }
}

/// The partition table of a disk of `disk_sectors` sectors with one partition of
/// `part_sectors` sectors at [`FIRST_LBA`]: the sectors to write and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// (first LBA, bytes): the MBR, and for a GPT its primary and backup header and entries.
    pub writes: Vec<(u64, Vec<u8>)>,
}

/// The sectors a disk needs for one partition of `part_sectors` behind an MBR.
pub fn mbr_disk_sectors(part_sectors: u64) -> u64 {
    FIRST_LBA + part_sectors
}

/// The sectors a disk needs for one partition of `part_sectors` behind a GPT (its backup
/// entries and header at the end).
pub fn gpt_disk_sectors(part_sectors: u64) -> u64 {
    FIRST_LBA + part_sectors + GPT_ENTRY_SECTORS + 1
}

/// One MBR partition entry (16 bytes).
fn mbr_entry(active: bool, kind: u8, first: u64, sectors: u64) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = if active { MBR_ACTIVE } else { 0 };
    e[1..4].copy_from_slice(&CHS_PAST_END);
    e[4] = kind;
    e[5..8].copy_from_slice(&CHS_PAST_END);
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    e[8..12].copy_from_slice(&clamp(first).to_le_bytes());
    e[12..16].copy_from_slice(&clamp(sectors).to_le_bytes());
    e
}

/// An MBR sector with `entry` as its first partition.
fn mbr_sector(signature: u32, entry: [u8; 16]) -> Vec<u8> {
    let mut s = vec![0u8; SECTOR as usize];
    s[MBR_SIGNATURE_AT..MBR_SIGNATURE_AT + 4].copy_from_slice(&signature.to_le_bytes());
    s[MBR_ENTRY_AT..MBR_ENTRY_AT + 16].copy_from_slice(&entry);
    s[510..].copy_from_slice(&MBR_BOOT_SIGNATURE);
    s
}

/// An MBR with one active partition of type `kind` and `part_sectors` sectors at
/// [`FIRST_LBA`]; `signature` is the disk's identifier.
pub fn mbr(kind: u8, part_sectors: u64, signature: u32) -> Table {
    Table {
        writes: vec![(
            0,
            mbr_sector(signature, mbr_entry(true, kind, FIRST_LBA, part_sectors)),
        )],
    }
}

/// A GPT with one partition of type `kind`, named `name`, `part_sectors` sectors at
/// [`FIRST_LBA`], on a disk of [`gpt_disk_sectors`]; the disk's and the partition's own
/// GUIDs come from `seed`.
pub fn gpt(kind: Guid, name: &str, part_sectors: u64, seed: u64) -> Table {
    let disk_sectors = gpt_disk_sectors(part_sectors);
    let last = disk_sectors - 1;
    let backup_entries = last - GPT_ENTRY_SECTORS;
    let mut entries = vec![0u8; (GPT_ENTRIES * GPT_ENTRY_SIZE) as usize];
    entries[..16].copy_from_slice(&kind.bytes());
    entries[16..32].copy_from_slice(&Guid::from_seed(seed ^ 1).bytes());
    entries[32..40].copy_from_slice(&FIRST_LBA.to_le_bytes());
    entries[40..48].copy_from_slice(&(FIRST_LBA + part_sectors - 1).to_le_bytes());
    for (i, unit) in name.encode_utf16().take(36).enumerate() {
        entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
    }
    let entries_crc = crc32(&entries);
    let header = |mine: u64, other: u64, entries_at: u64| {
        let mut h = vec![0u8; SECTOR as usize];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&GPT_REVISION.to_le_bytes());
        h[12..16].copy_from_slice(&GPT_HEADER_SIZE.to_le_bytes());
        h[24..32].copy_from_slice(&mine.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        // Usable: after the primary entries, before the backup entries.
        h[40..48].copy_from_slice(&(2 + GPT_ENTRY_SECTORS).to_le_bytes());
        h[48..56].copy_from_slice(&(backup_entries - 1).to_le_bytes());
        h[56..72].copy_from_slice(&Guid::from_seed(seed).bytes());
        h[72..80].copy_from_slice(&entries_at.to_le_bytes());
        h[80..84].copy_from_slice(&(GPT_ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(GPT_ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h[..GPT_HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    // The protective MBR covers the whole disk but its first sector (UEFI 5.2.3).
    let protective = mbr_sector(0, mbr_entry(false, MBR_PROTECTIVE, 1, disk_sectors - 1));
    Table {
        writes: vec![
            (0, protective),
            (1, header(1, last, 2)),
            (2, entries.clone()),
            (backup_entries, entries),
            (last, header(last, 1, backup_entries)),
        ],
    }
}

/// CRC-32 as the GPT uses it (IEEE 802.3: reflected, polynomial 0xEDB88320, inverted).
pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| {
        (0..8).fold(crc ^ u32::from(b), |c, _| {
            if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn le64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn the_esp_type_guid_is_stored_mixed_endian() {
        // As `sgdisk` and the specification's tables show it on disk.
        assert_eq!(
            GPT_ESP.bytes(),
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
        let g = Guid::from_seed(42).bytes();
        assert_eq!(
            (g[7] >> 4, g[8] >> 6),
            (4, 0b10),
            "version 4, RFC 4122 variant"
        );
        assert_eq!(Guid::from_seed(42), Guid::from_seed(42));
        assert_ne!(Guid::from_seed(42), Guid::from_seed(43));
    }

    #[test]
    fn an_mbr_has_one_active_lba_partition() {
        let t = mbr(MBR_FAT32_LBA, 4096, 0x1234_5678);
        let [(0, s)] = t.writes.as_slice() else {
            panic!("{:?}", t.writes.len())
        };
        assert_eq!(s.len(), 512);
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        assert_eq!(le32(s, 440), 0x1234_5678);
        assert_eq!((s[446], s[450]), (0x80, 0x0c));
        assert_eq!((le32(s, 454), le32(s, 458)), (2048, 4096));
        // The other three entries are empty.
        assert!(s[462..510].iter().all(|&b| b == 0));
        assert_eq!(mbr_disk_sectors(4096), 2048 + 4096);
    }

    #[test]
    fn a_gpt_is_consistent_with_its_backup_and_its_checksums() {
        let part = 8192;
        let t = gpt(GPT_ESP, "EFI system partition", part, 7);
        let disk = gpt_disk_sectors(part);
        let last = disk - 1;
        let at = |lba: u64| &t.writes.iter().find(|(l, _)| *l == lba).unwrap().1;
        // Protective MBR: type 0xEE over the whole disk but LBA 0, not active.
        let pmbr = at(0);
        assert_eq!((pmbr[446], pmbr[450]), (0, 0xee));
        assert_eq!((le32(pmbr, 454), le32(pmbr, 458) as u64), (1, disk - 1));
        for (mine, other, entries_at) in [(1, last, 2), (last, 1, last - 32)] {
            let h = at(mine);
            assert_eq!(&h[..8], b"EFI PART");
            assert_eq!(
                (le64(h, 24), le64(h, 32), le64(h, 72)),
                (mine, other, entries_at)
            );
            assert_eq!((le64(h, 40), le64(h, 48)), (34, last - 33));
            let mut zeroed = h[..92].to_vec();
            zeroed[16..20].fill(0);
            assert_eq!(le32(h, 16), crc32(&zeroed), "header CRC");
            let entries = at(entries_at);
            assert_eq!(entries.len(), 128 * 128);
            assert_eq!(le32(h, 88), crc32(entries), "entries CRC");
            assert_eq!(&entries[..16], &GPT_ESP.bytes());
            assert_eq!(
                (le64(entries, 32), le64(entries, 40)),
                (2048, 2048 + part - 1)
            );
            assert_eq!(&entries[56..62], &[b'E', 0, b'F', 0, b'I', 0]);
            // The partition ends before the backup entries begin.
            assert!(2048 + part - 1 <= le64(h, 48));
        }
        // The same inputs, the same table.
        assert_eq!(t, gpt(GPT_ESP, "EFI system partition", part, 7));
    }
}
