//! Host tests of the CFI flash bank, driven as U-Boot's CFI driver and EDK2's NorFlashDxe
//! drive QEMU virt's flash.

use super::*;

/// A small bank with the virt bank's shape: 4 KiB blocks (one write buffer), 4 of them.
const SMALL: Geometry = Geometry {
    sector_len: 4096,
    blocks: 4,
};

fn bank(geometry: Geometry, protection: Protection) -> CfiFlash<Vec<u8>> {
    let size = geometry.size() as usize;
    CfiFlash::new(geometry, vec![0xFF; size], protection).unwrap()
}

/// A command as a driver puts it on the bus for `port` bytes of `chip`-byte chips: the
/// command byte in the low byte of each chip's lane (U-Boot's `flash_make_cmd`, EDK2's
/// `CREATE_DUAL_CMD`).
fn make_cmd(command: u8, port: u8, chip: u8) -> u64 {
    (0..port / chip).fold(0, |acc, k| acc | (u64::from(command) << (8 * chip * k)))
}

/// EDK2's `SEND_NOR_COMMAND`: a 32-bit write of the command on both chips.
fn send<B: FlashBacking>(f: &mut CfiFlash<B>, offset: u64, command: u8) {
    f.write(offset, 4, make_cmd(command, 4, 2));
}

const SR_READY: u64 = 0x0080_0080;
/// EDK2's error bits: erase, program, VPP, block locked, on both chips.
const SR_ERRORS: u64 = 0x003A_003A;

/// EDK2's `NorFlashWaitForStatus`: Read Status, then poll until both chips are ready;
/// returns the status word.
fn wait_ready<B: FlashBacking>(f: &mut CfiFlash<B>, offset: u64) -> u64 {
    send(f, offset, cmd::READ_STATUS);
    for _ in 0..16 {
        let sr = f.read(offset, 4);
        if sr & SR_READY == SR_READY {
            return sr;
        }
    }
    panic!("flash never became ready");
}

#[test]
fn qemu_virt_geometry_is_valid_and_64_mib() {
    assert!(Geometry::QEMU_VIRT.is_valid());
    assert_eq!(Geometry::QEMU_VIRT.size(), 64 << 20);
}

#[test]
fn bad_geometries_and_sizes_are_refused() {
    for g in [
        Geometry {
            sector_len: 3 * 4096,
            blocks: 4,
        },
        Geometry {
            sector_len: 2048,
            blocks: 4,
        },
        Geometry {
            sector_len: 4096,
            blocks: 3,
        },
        Geometry {
            sector_len: 4096,
            blocks: 0x2_0000,
        },
        Geometry {
            sector_len: 4096,
            blocks: 0,
        },
    ] {
        assert_eq!(
            CfiFlash::new(g, vec![0; 4096], Protection::Writable).err(),
            Some(FlashError::BadGeometry),
            "{g:?}"
        );
    }
    assert_eq!(
        CfiFlash::new(SMALL, vec![0; 100], Protection::Writable).err(),
        Some(FlashError::SizeMismatch {
            expected: 16384,
            actual: 100
        })
    );
}

/// The table QEMU 7.2 fills for a virt bank (`pflash_cfi01_fill_cfi_table` with width 4,
/// device-width 2, 256 blocks of 256 KiB): each chip 32 MiB with 256 blocks of 128 KiB and
/// a 2 KiB write buffer.
#[test]
fn cfi_table_matches_qemu_virt() {
    let t = cfi_table(&Geometry::QEMU_VIRT);
    let expected: [(usize, u8); 24] = [
        (0x10, b'Q'),
        (0x11, b'R'),
        (0x12, b'Y'),
        (0x13, 0x01),
        (0x15, 0x31),
        (0x1B, 0x45),
        (0x1C, 0x55),
        (0x1F, 0x07),
        (0x20, 0x07),
        (0x21, 0x0A),
        (0x23, 0x04),
        (0x24, 0x04),
        (0x25, 0x04),
        (0x27, 25),
        (0x28, 0x02),
        (0x2A, 0x0B),
        (0x2C, 0x01),
        (0x2D, 0xFF),
        (0x2E, 0x00),
        (0x2F, 0x00),
        (0x30, 0x02),
        (0x31, b'P'),
        (0x34, b'1'),
        (0x3F, 0x01),
    ];
    for (offset, value) in expected {
        assert_eq!(t[offset], value, "CFI byte {offset:#x}");
    }
    assert!(t[..0x10].iter().all(|&b| b == 0));
}

/// U-Boot's `flash_detect_cfi`: for each port width and chip width, reset (AMD then Intel),
/// write the query command at 0x55 words, and look for "QRY" at 0x10 words. Then read the
/// query structure bytewise (`flash_read_uchar`) and size the bank as `flash_get_size` does.
#[test]
fn uboot_cfi_probe_finds_the_virt_geometry() {
    let mut f = bank(Geometry::QEMU_VIRT, Protection::Writable);
    let mut found = None;
    'probe: for cfi_offset in [0x55u64, 0x555] {
        for port in [1u8, 2, 4, 8] {
            for chip in (0..4).map(|s| 1u8 << s).filter(|&c| c <= port) {
                let port64 = u64::from(port);
                f.write(0, port, make_cmd(cmd::AMD_RESET, port, chip));
                f.write(0, port, make_cmd(cmd::READ_ARRAY, port, chip));
                f.write(
                    cfi_offset * port64,
                    port,
                    make_cmd(cmd::CFI_QUERY, port, chip),
                );
                let qry = [b'Q', b'R', b'Y'].iter().enumerate().all(|(i, &c)| {
                    f.read((0x10 + i as u64) * port64, port) == make_cmd(c, port, chip)
                });
                if qry {
                    found = Some((port, chip));
                    break 'probe;
                }
            }
        }
    }
    assert_eq!(
        found,
        Some((4, 2)),
        "U-Boot should see a x32 bank of x16 chips"
    );

    let byte = |f: &mut CfiFlash<Vec<u8>>, at: u64| f.read(at * 4, 1) as u32;
    let size_ratio = 4 / 2;
    assert_eq!(
        byte(&mut f, 0x13) | (byte(&mut f, 0x14) << 8),
        0x0001,
        "Intel cmdset"
    );
    let dev_size = 1u32 << byte(&mut f, 0x27);
    assert_eq!(dev_size * size_ratio, 64 << 20);
    assert_eq!(byte(&mut f, 0x2C), 1, "one erase region");
    let region = (0..4).fold(0u32, |acc, i| acc | (byte(&mut f, 0x2D + i) << (8 * i)));
    let count = (region & 0xFFFF) + 1;
    let sector = (region >> 16) * 256 * size_ratio;
    assert_eq!((count, sector), (256, 256 * 1024));
    assert_eq!(
        (1u32 << byte(&mut f, 0x2A)) * size_ratio,
        4096,
        "write buffer"
    );

    // Identifier codes (`cmdset_intel_read_jedec_ids`), then back to the array.
    f.write(0, 4, make_cmd(cmd::READ_ARRAY, 4, 2));
    f.write(0, 4, make_cmd(cmd::READ_ID, 4, 2));
    assert_eq!(f.read(0, 4), 0x0089_0089);
    assert_eq!(f.read(4, 4), 0x0018_0018);
    assert_eq!(f.read(8, 4), 0, "blocks read as unlocked");
    assert_eq!(f.read(0, 8), 0x0018_0018_0089_0089);
    f.write(0, 4, make_cmd(cmd::READ_ARRAY, 4, 2));
    assert!(f.in_read_array());
    assert_eq!(f.read(0, 8), u64::MAX);
}

#[test]
fn query_mode_ignores_everything_but_read_array() {
    let mut f = bank(SMALL, Protection::Writable);
    send(&mut f, 0x55 * 4, cmd::CFI_QUERY);
    for c in [
        cmd::READ_STATUS,
        cmd::AMD_RESET,
        cmd::CLEAR_STATUS,
        cmd::PROGRAM,
    ] {
        send(&mut f, 0, c);
        assert_eq!(f.read(0x10 * 4, 4), 0x0051_0051);
    }
    assert_eq!(f.read(0x52 * 4, 4), 0, "past the table");
    send(&mut f, 0, cmd::READ_ARRAY);
    assert!(f.in_read_array());
}

/// EDK2's NorFlashDxe write path: unlock the block, erase it, program words one by one,
/// polling the status after each, then read the block back as array.
#[test]
fn edk2_erase_and_word_program() {
    let mut f = bank(SMALL, Protection::Writable);
    let block = SMALL.sector_len;
    // Dirty the block first through a word program.
    send(&mut f, block + 8, cmd::PROGRAM);
    f.write(block + 8, 4, 0);
    assert_eq!(wait_ready(&mut f, block) & SR_ERRORS, 0);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(f.read(block + 8, 4), 0);

    // NorFlashUnlockSingleBlock.
    send(&mut f, block, cmd::LOCK_SETUP);
    send(&mut f, block, cmd::CONFIRM);
    send(&mut f, block, cmd::READ_ARRAY);
    // NorFlashEraseSingleBlock.
    send(&mut f, block, cmd::BLOCK_ERASE);
    send(&mut f, block, cmd::CONFIRM);
    assert_eq!(wait_ready(&mut f, block) & SR_ERRORS, 0);
    send(&mut f, block, cmd::READ_ARRAY);
    for at in (block..2 * block).step_by(8) {
        assert_eq!(f.read(at, 8), u64::MAX, "erased at {at:#x}");
    }

    // NorFlashWriteSingleWord, for a few words.
    for i in 0..16u64 {
        let at = block + 0x100 + 4 * i;
        send(&mut f, at, cmd::PROGRAM);
        f.write(at, 4, 0xA5A5_0000 | i);
        assert_eq!(wait_ready(&mut f, at) & SR_ERRORS, 0);
    }
    send(&mut f, block, cmd::READ_ARRAY);
    for i in 0..16u64 {
        assert_eq!(f.read(block + 0x100 + 4 * i, 4), 0xA5A5_0000 | i);
    }
    // Neighbouring blocks are untouched; reads of every size see the same bytes.
    assert_eq!(f.read(block - 8, 8), u64::MAX);
    assert_eq!(f.read(block + 0x100, 1), 0x00);
    assert_eq!(f.read(block + 0x102, 2), 0xA5A5);
    assert_eq!(f.read(block + 0x101, 4), 0x01A5_A500);
    assert_eq!(f.read(block + 0x100, 8), 0xA5A5_0001_A5A5_0000);
}

/// EDK2's NorFlashWriteBuffer: setup at the buffer address, poll for the buffer, the word
/// count - 1 on both chips, the words, the confirm, poll.
#[test]
fn buffered_program_writes_on_confirm() {
    let mut f = bank(SMALL, Protection::Writable);
    let buf = 2 * SMALL.sector_len + 0x80;
    let words = 32u64;
    send(&mut f, buf, cmd::BUFFERED_PROGRAM);
    assert_eq!(f.read(buf, 4) & SR_READY, SR_READY, "buffer available");
    f.write(buf, 4, make_cmd((words - 1) as u8, 4, 2));
    for i in 0..words {
        f.write(buf + 4 * i, 4, 0x1234_0000 | i);
        if i + 1 < words {
            // Nothing reaches the array before the confirm.
            assert_eq!(f.backing()[(buf + 4 * i) as usize], 0xFF);
        }
    }
    send(&mut f, buf, cmd::CONFIRM);
    assert_eq!(wait_ready(&mut f, buf) & SR_ERRORS, 0);
    send(&mut f, buf, cmd::READ_ARRAY);
    for i in 0..words {
        assert_eq!(f.read(buf + 4 * i, 4), 0x1234_0000 | i);
    }
    assert_eq!(f.read(buf - 4, 4), 0xFFFF_FFFF);
    assert_eq!(f.read(buf + 4 * words, 4), 0xFFFF_FFFF);
}

#[test]
fn malformed_buffered_programs_are_sequence_errors() {
    let both = u64::from(STATUS::PROGRAM_ERROR::SET.value | STATUS::ERASE_ERROR::SET.value);
    type Case<'a> = &'a dyn Fn(&mut CfiFlash<Vec<u8>>);
    let cases: [Case; 3] = [
        // A count larger than the 4 KiB buffer (1024 words).
        &|f| f.write(0, 4, make_cmd(0, 4, 2) | 0x0400),
        // Data outside the buffer's window.
        &|f| {
            f.write(0, 4, 1);
            f.write(WRITE_BUFFER_BYTES, 4, 0);
        },
        // No confirm.
        &|f| {
            f.write(0, 4, 0);
            f.write(0, 4, 0);
            send(f, 0, cmd::READ_ARRAY);
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut f = bank(SMALL, Protection::Writable);
        send(&mut f, 0, cmd::BUFFERED_PROGRAM);
        case(&mut f);
        assert_eq!(f.read(0, 1) & both, both, "case {i}");
        assert!(
            f.backing().iter().all(|&b| b == 0xFF),
            "case {i} programmed"
        );
        // Clear Status returns to read-array with SR.7 still set.
        send(&mut f, 0, cmd::CLEAR_STATUS);
        assert!(f.in_read_array());
        assert_eq!(f.status(), 0x80);
    }
}

#[test]
fn erase_without_confirm_is_a_sequence_error_and_erases_nothing() {
    let mut f = bank(SMALL, Protection::Writable);
    send(&mut f, 0, cmd::PROGRAM);
    f.write(0, 4, 0);
    send(&mut f, 0, cmd::BLOCK_ERASE);
    send(&mut f, 0, cmd::PROGRAM);
    assert_eq!(f.read(0, 4), 0x0030_0030 | SR_READY);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(f.read(0, 4), 0);
    // Read Array in place of the confirm abandons the erase quietly, as in QEMU.
    send(&mut f, 0, cmd::CLEAR_STATUS);
    send(&mut f, 0, cmd::BLOCK_ERASE);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(f.status(), 0x80);
    assert_eq!(f.read(0, 4), 0);
}

#[test]
fn status_register_reads_on_every_lane_until_read_array() {
    let mut f = bank(SMALL, Protection::Writable);
    send(&mut f, 0, cmd::READ_STATUS);
    assert_eq!(f.read(0x123, 1), 0x80);
    assert_eq!(f.read(0x122, 2), 0x80);
    assert_eq!(f.read(0x120, 4), SR_READY);
    assert_eq!(f.read(0x120, 8), SR_READY | SR_READY << 32);
    // Status mode takes a new command at once (QEMU's wcycle stays 0).
    send(&mut f, 0, cmd::READ_ID);
    assert_eq!(f.read(0, 2), 0x89);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(f.read(0x120, 4), 0xFFFF_FFFF);
}

/// The firmware bank: as in QEMU with a read-only drive, programs report SR.4, erases SR.5,
/// and the contents stay as they were.
#[test]
fn write_protected_bank_reports_errors_and_keeps_its_contents() {
    let size = SMALL.size() as usize;
    let image: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let mut f = CfiFlash::new(SMALL, image.clone(), Protection::WriteProtected).unwrap();
    send(&mut f, 0x40, cmd::PROGRAM);
    f.write(0x40, 4, 0);
    assert_eq!(wait_ready(&mut f, 0x40), SR_READY | 0x0010_0010);
    send(&mut f, 0, cmd::CLEAR_STATUS);
    send(&mut f, 0, cmd::BLOCK_ERASE);
    send(&mut f, 0, cmd::CONFIRM);
    assert_eq!(wait_ready(&mut f, 0), SR_READY | 0x0020_0020);
    send(&mut f, 0, cmd::CLEAR_STATUS);
    send(&mut f, 0, cmd::BUFFERED_PROGRAM);
    f.write(0, 4, 0);
    f.write(0, 4, 0);
    send(&mut f, 0, cmd::CONFIRM);
    assert_eq!(wait_ready(&mut f, 0), SR_READY | 0x0010_0010);
    // The lock commands are accepted and change nothing.
    send(&mut f, 0, cmd::LOCK_SETUP);
    send(&mut f, 0, cmd::CONFIRM);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(
        f.read(0x40, 4),
        u64::from(u32::from_le_bytes([0xC0, 0xC7, 0xCE, 0xD5]))
    );
    assert_eq!(f.into_backing(), image);
}

#[test]
fn reset_returns_to_read_array_with_a_clear_status() {
    let mut f = bank(SMALL, Protection::WriteProtected);
    send(&mut f, 0, cmd::PROGRAM);
    f.write(0, 4, 0);
    send(&mut f, 0, cmd::CFI_QUERY);
    f.reset();
    assert!(f.in_read_array());
    assert_eq!(f.status(), 0x80);
}

#[test]
fn accesses_past_the_end_and_of_odd_sizes_do_nothing() {
    let mut f = bank(SMALL, Protection::Writable);
    let end = SMALL.size();
    assert_eq!(f.read(end - 2, 4), 0xFFFF, "bytes past the end read as 0");
    assert_eq!(f.read(end - 4, 8), 0xFFFF_FFFF);
    assert_eq!(f.read(end, 4), 0);
    assert_eq!(f.read(u64::MAX, 8), 0);
    assert_eq!(f.read(0, 3), 0);
    f.write(end, 4, u64::from(cmd::READ_STATUS));
    f.write(u64::MAX - 3, 8, u64::from(cmd::READ_STATUS));
    f.write(0, 16, u64::from(cmd::READ_STATUS));
    assert!(f.in_read_array());
    // A program straddling the end writes only the bytes inside.
    send(&mut f, end - 2, cmd::PROGRAM);
    f.write(end - 2, 4, 0);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(f.read(end - 4, 4), 0x0000_FFFF);
}

/// An 8-byte store is two bus cycles: a command and its data can arrive together.
#[test]
fn an_eight_byte_store_is_two_bus_cycles() {
    let mut f = bank(SMALL, Protection::Writable);
    f.write(0x10, 8, 0x5555_AAAA_0000_0040);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(f.read(0x14, 4), 0x5555_AAAA);
    assert_eq!(f.read(0x10, 4), 0xFFFF_FFFF);
}

/// A tiny deterministic PRNG (xorshift64*), so the hostile test is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Random commands, data, sizes and offsets (some past the end) for a few thousand steps:
/// no panic; the write-protected bank never changes; afterwards Clear Status and Read Array
/// bring either bank back to reading its contents.
#[test]
fn hostile_sequences_never_panic() {
    const COMMANDS: [u8; 18] = [
        0x00, 0x01, 0x10, 0x20, 0x28, 0x2F, 0x40, 0x50, 0x60, 0x70, 0x90, 0x98, 0xD0, 0xE8, 0xF0,
        0xFF, 0x03, 0x1F,
    ];
    let size = SMALL.size() as usize;
    let image: Vec<u8> = (0..size).map(|i| (i ^ (i >> 8)) as u8).collect();
    for protection in [Protection::Writable, Protection::WriteProtected] {
        let mut f = CfiFlash::new(SMALL, image.clone(), protection).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            let size = rng.pick(&[1u8, 2, 4, 8, 4, 4, 3, 0, 16]);
            let offset = match rng.next() % 8 {
                0 => rng.next(),
                1 => SMALL.size() - rng.next() % 8,
                _ => rng.next() % (SMALL.size() + 64),
            };
            if rng.next().is_multiple_of(3) {
                let _ = f.read(offset, size);
            } else {
                let value = match rng.next() % 3 {
                    0 => rng.next(),
                    1 => make_cmd(rng.pick(&COMMANDS), 4, 2),
                    _ => rng.next() % 0x500,
                };
                f.write(offset, size, value);
            }
            assert_eq!(f.status() & 0x80, 0x80, "always ready");
        }
        // Finish whatever sequence is open, then leave query mode and clear the errors.
        for _ in 0..1100 {
            send(&mut f, 0, cmd::READ_ARRAY);
        }
        send(&mut f, 0, cmd::CLEAR_STATUS);
        assert!(f.in_read_array());
        assert_eq!(f.status(), 0x80);
        let contents = f.into_backing();
        match protection {
            Protection::WriteProtected => assert_eq!(contents, image),
            // The walk does reach the array (else it tests little).
            Protection::Writable => assert_ne!(contents, image),
        }
    }
}

#[test]
fn a_blank_write_protected_bank_answers_queries_and_reads_its_fill() {
    let blank = Blank {
        size: SMALL.size(),
        fill: 0,
    };
    let mut f = CfiFlash::new(SMALL, blank, Protection::WriteProtected).unwrap();
    assert_eq!(f.read(0x100, 4), 0, "read-array: the fill");
    // U-Boot's probe of the firmware bank: CFI query, then back to read-array.
    send(&mut f, 0x55 * 4, cmd::CFI_QUERY);
    assert!(!f.in_read_array());
    let qry: Vec<u8> = (0x10..0x13).map(|i| f.read(i * 4, 4) as u8).collect();
    assert_eq!(qry, b"QRY");
    send(&mut f, 0, cmd::READ_ARRAY);
    assert!(f.in_read_array());
    // A program changes nothing and fails; nothing is stored.
    send(&mut f, 0x40, cmd::PROGRAM);
    f.write(0x40, 4, 0x1234_5678);
    assert_eq!(wait_ready(&mut f, 0x40), SR_READY | 0x0010_0010);
    send(&mut f, 0, cmd::READ_ARRAY);
    assert_eq!(f.read(0x40, 4), 0);
    assert_eq!(
        Blank {
            size: 8,
            fill: 0xff
        }
        .read(4, &mut [0; 5]),
        Err(BackingError::OutOfRange)
    );
}
