//! `cfi_flash`: two CFI flash banks, one writable and one write-protected, driven by the same
//! arbitrary sequence of guest reads and writes (any offset, size and value, with commands
//! and the offsets firmware uses made likely).
//!
//! Invariants, after every step: SR.7 (ready) is always set and the status has no bit the
//! model never sets (SR.0..SR.3, SR.6); in read-array mode a read returns the backing bytes,
//! little-endian, with 0 past the end; reads never change the contents; an access of an
//! unsupported size or wholly past the end changes nothing; the write-protected bank's
//! contents never change. At the end, Read Array (enough to finish any open sequence) and
//! Clear Status bring both banks back to read-array with a clear status.

use arbitrary::{Arbitrary, Unstructured};
use vmm::cfi_flash::{CfiFlash, Geometry, Protection};

const MAX_OPS: usize = 1024;

/// Four 4 KiB blocks: the virt bank's shape (two x16 chips, one write buffer per block) at a
/// size a fuzzer can compare every step.
const GEOMETRY: Geometry = Geometry {
    sector_len: 4096,
    blocks: 4,
};
const SIZE: u64 = 4096 * 4;

/// The commands of the Intel/Sharp set and a few the model does not know.
const COMMANDS: [u8; 18] = [
    0x00, 0x01, 0x10, 0x20, 0x28, 0x2F, 0x40, 0x50, 0x60, 0x70, 0x90, 0x98, 0xD0, 0xE8, 0xF0, 0xFF,
    0x03, 0x1F,
];

/// The status bits the model may set: SR.4, SR.5, SR.7.
const STATUS_KNOWN: u8 = 0xB0;
const SR_READY: u8 = 0x80;

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Offset {
    /// Inside the bank.
    In(u16),
    /// Anywhere, past the end included.
    Raw(u64),
}

impl Offset {
    fn get(self) -> u64 {
        match self {
            Self::In(o) => u64::from(o) % SIZE,
            Self::Raw(o) => o,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Value {
    /// A command on both chips' lanes, as drivers send them.
    Command(u8),
    /// A small number: word counts.
    Count(u16),
    Raw(u64),
}

impl Value {
    fn get(self) -> u64 {
        match self {
            Self::Command(i) => {
                let c = u64::from(COMMANDS[usize::from(i) % COMMANDS.len()]);
                c | c << 16
            }
            Self::Count(n) => u64::from(n % 0x500),
            Self::Raw(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    Read(Offset, u8),
    Write(Offset, u8, Value),
    Reset,
}

/// Sizes: mostly the supported ones.
fn size(s: u8) -> u8 {
    [1, 2, 4, 8, 4, 4, 0, 3, 16][usize::from(s) % 9]
}

fn expected_array_read(contents: &[u8], offset: u64, size: u8) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate().take(usize::from(size)) {
        if let Some(at) = offset.checked_add(i as u64).filter(|&a| a < SIZE) {
            *b = contents[at as usize];
        }
    }
    u64::from_le_bytes(bytes)
}

fn check(f: &CfiFlash<Vec<u8>>) {
    let sr = f.status();
    assert_eq!(sr & SR_READY, SR_READY, "SR.7 clear: {sr:#x}");
    assert_eq!(sr & !STATUS_KNOWN, 0, "unexpected status bits: {sr:#x}");
}

fn step(f: &mut CfiFlash<Vec<u8>>, op: Op) {
    match op {
        Op::Read(o, s) => {
            let (offset, size) = (o.get(), size(s));
            let before = f.backing().clone();
            let array = f.in_read_array();
            let value = f.read(offset, size);
            assert_eq!(&before, f.backing(), "a read changed the contents");
            if !matches!(size, 1 | 2 | 4 | 8) {
                assert_eq!(value, 0, "a {size}-byte read");
            } else if array {
                assert_eq!(
                    value,
                    expected_array_read(&before, offset, size),
                    "array read of {size} at {offset:#x}"
                );
            }
        }
        Op::Write(o, s, v) => {
            let (offset, size) = (o.get(), size(s));
            let before = f.backing().clone();
            let (array, status) = (f.in_read_array(), f.status());
            f.write(offset, size, v.get());
            if !matches!(size, 1 | 2 | 4 | 8) || offset >= SIZE {
                assert_eq!(&before, f.backing(), "ignored write changed the contents");
                assert_eq!((array, status), (f.in_read_array(), f.status()));
            }
        }
        Op::Reset => {
            f.reset();
            assert!(f.in_read_array());
            assert_eq!(f.status(), SR_READY);
        }
    }
    check(f);
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let image: Vec<u8> = (0..SIZE).map(|i| (i ^ (i >> 8)) as u8).collect();
    let mut banks = [
        CfiFlash::new(GEOMETRY, image.clone(), Protection::Writable).expect("writable bank"),
        CfiFlash::new(GEOMETRY, image.clone(), Protection::WriteProtected).expect("protected bank"),
    ];
    for _ in 0..MAX_OPS {
        let Ok(op) = u.arbitrary::<Op>() else {
            break;
        };
        for f in &mut banks {
            step(f, op);
        }
        assert_eq!(
            banks[1].backing(),
            &image,
            "the write-protected bank changed"
        );
        if u.is_empty() {
            break;
        }
    }
    for f in &mut banks {
        // A buffered program takes at most 1024 data writes and a confirm; then Read Array
        // leaves query and status modes.
        for _ in 0..1030 {
            f.write(0, 4, 0x00FF_00FF);
        }
        f.write(0, 4, 0x0050_0050);
        assert!(f.in_read_array(), "not back in read-array");
        assert_eq!(f.status(), SR_READY, "errors survive Clear Status");
    }
}
