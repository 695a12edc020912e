//! `pl011`: the PL011 model driven by an arbitrary sequence of guest reads and writes (any
//! offset, any value) and bytes arriving from the host, against a shadow receive FIFO.
//!
//! Invariants, after every step: the receive FIFO never holds more than 32 bytes, and holds
//! exactly what the shadow says, in order (DR reads return the oldest byte, or 0 when empty;
//! loopback writes land in it; a full FIFO refuses a byte and a loopback overrun sets OE);
//! `push_rx` refuses a byte exactly when the FIFO is at its capacity (1 with the FIFOs off);
//! the interrupt line is `RIS & IMSC != 0` and MIS reads as that; TXRIS is always set; RTRIS
//! only with data waiting; RXRIS only at or above the trigger level; FR's RXFE/RXFF/TXFE match
//! the FIFO; bytes are transmitted exactly when DR is written outside loopback; reads of
//! anything but DR, and writes to offsets the map does not have, change nothing.

use std::collections::VecDeque;

use arbitrary::{Arbitrary, Unstructured};
use vmm::pl011::{offset, Pl011, FIFO_DEPTH};

const MAX_OPS: usize = 1024;

/// Every register offset the model maps.
const MAPPED: [u64; 22] = [
    offset::DR,
    offset::RSR_ECR,
    offset::FR,
    offset::ILPR,
    offset::IBRD,
    offset::FBRD,
    offset::LCR_H,
    offset::CR,
    offset::IFLS,
    offset::IMSC,
    offset::RIS,
    offset::MIS,
    offset::ICR,
    offset::DMACR,
    offset::PERIPH_ID0,
    offset::PERIPH_ID0 + 4,
    offset::PERIPH_ID0 + 8,
    offset::PERIPH_ID0 + 12,
    offset::PCELL_ID0,
    offset::PCELL_ID0 + 4,
    offset::PCELL_ID0 + 8,
    offset::PCELL_ID0 + 12,
];

// UARTFR bits.
const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFF: u32 = 1 << 6;
const FR_TXFE: u32 = 1 << 7;
// Interrupt bits (IMSC/RIS/MIS/ICR).
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
const INT_OE: u32 = 1 << 10;
const LCR_H_FEN: u32 = 1 << 4;
const CR_LBE: u32 = 1 << 7;
const RSR_OE: u32 = 1 << 3;

/// A register offset: mostly mapped ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Offset {
    Mapped(u8),
    Raw(u64),
}

impl Offset {
    fn get(self) -> u64 {
        match self {
            Self::Mapped(i) => MAPPED[usize::from(i) % MAPPED.len()],
            Self::Raw(o) => o,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    Read(Offset),
    Write(Offset, u32),
    Push(u8),
    /// A burst of bytes from the host, as a console paste.
    Burst(u8, u8),
}

/// The RX trigger level from LCR_H and IFLS, per DDI 0183G §3.3.9.
fn trigger(uart: &mut Pl011) -> usize {
    if uart.read(offset::LCR_H) & LCR_H_FEN == 0 {
        return 1;
    }
    match (uart.read(offset::IFLS) >> 3) & 0b111 {
        0 => FIFO_DEPTH / 8,
        1 => FIFO_DEPTH / 4,
        3 => FIFO_DEPTH * 3 / 4,
        4 => FIFO_DEPTH * 7 / 8,
        _ => FIFO_DEPTH / 2,
    }
}

fn capacity(uart: &mut Pl011) -> usize {
    if uart.read(offset::LCR_H) & LCR_H_FEN != 0 {
        FIFO_DEPTH
    } else {
        1
    }
}

struct World {
    uart: Pl011,
    shadow: VecDeque<u8>,
}

impl World {
    fn push(&mut self, byte: u8) {
        let cap = capacity(&mut self.uart);
        let accepted = self.uart.push_rx(byte);
        assert_eq!(
            accepted,
            self.shadow.len() < cap,
            "push_rx with {} bytes waiting, capacity {cap}",
            self.shadow.len()
        );
        if accepted {
            self.shadow.push_back(byte);
        }
        // A level change on arrival: RXRIS follows the trigger level.
        let ris = self.uart.read(offset::RIS);
        let at_level = self.shadow.len() >= trigger(&mut self.uart);
        if accepted {
            assert_eq!(ris & INT_RX != 0, at_level, "RXRIS after a push");
            assert!(ris & INT_RT != 0, "RTRIS after a push");
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Read(o) => {
                let off = o.get();
                let before = format!("{:?}", self.uart);
                let value = self.uart.read(off);
                if off == offset::DR {
                    let expected = self.shadow.pop_front().map_or(0, u32::from);
                    assert_eq!(value & 0xff, expected, "DR read");
                    if self.shadow.is_empty() {
                        assert_eq!(self.uart.read(offset::RIS) & INT_RT, 0, "RTRIS when empty");
                    }
                } else {
                    assert_eq!(
                        before,
                        format!("{:?}", self.uart),
                        "read of {off:#x} has effects"
                    );
                    if !MAPPED.contains(&off) {
                        assert_eq!(value, 0, "unmapped offset {off:#x} reads {value:#x}");
                    }
                }
            }
            Op::Write(o, value) => {
                let off = o.get();
                let before = format!("{:?}", self.uart);
                let loopback = self.uart.read(offset::CR) & CR_LBE != 0;
                let cap = capacity(&mut self.uart);
                let mut sent = Vec::new();
                self.uart.write(off, value, &mut |b| sent.push(b));
                if off == offset::DR {
                    let byte = value as u8;
                    if loopback {
                        assert!(sent.is_empty(), "loopback transmitted");
                        if self.shadow.len() < cap {
                            self.shadow.push_back(byte);
                        } else {
                            assert_ne!(self.uart.read(offset::RSR_ECR) & RSR_OE, 0, "no OE");
                            assert_ne!(self.uart.read(offset::RIS) & INT_OE, 0, "no OERIS");
                        }
                    } else {
                        assert_eq!(sent, [byte], "DR write transmitted {sent:?}");
                    }
                } else {
                    assert!(sent.is_empty(), "a write to {off:#x} transmitted");
                    if !MAPPED.contains(&off) {
                        assert_eq!(before, format!("{:?}", self.uart), "unmapped write");
                    }
                    if off == offset::LCR_H || off == offset::IFLS {
                        let ris = self.uart.read(offset::RIS);
                        let at_level = self.shadow.len() >= trigger(&mut self.uart);
                        assert_eq!(ris & INT_RX != 0, at_level, "RXRIS after a level change");
                    }
                }
            }
            Op::Push(b) => self.push(b),
            Op::Burst(b, n) => {
                for i in 0..n % 40 {
                    self.push(b.wrapping_add(i));
                }
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let u = &mut self.uart;
        let pending = u.rx_pending();
        assert!(
            pending <= FIFO_DEPTH,
            "{pending} bytes in a {FIFO_DEPTH}-byte FIFO"
        );
        assert_eq!(pending, self.shadow.len(), "FIFO length");

        let ris = u.read(offset::RIS);
        let imsc = u.read(offset::IMSC);
        let mis = u.read(offset::MIS);
        assert_eq!(mis, ris & imsc, "MIS != RIS & IMSC");
        assert_eq!(u.irq_level(), ris & imsc != 0, "irq_level vs RIS & IMSC");
        assert_ne!(ris & INT_TX, 0, "TXRIS clear");
        if ris & INT_RT != 0 {
            assert!(pending > 0, "RTRIS with an empty FIFO");
        }
        if ris & INT_RX != 0 {
            assert!(pending >= trigger(u), "RXRIS below the trigger level");
        }

        let fr = u.read(offset::FR);
        assert_eq!(fr & FR_RXFE != 0, pending == 0, "FR.RXFE");
        assert_eq!(fr & FR_RXFF != 0, pending >= capacity(u), "FR.RXFF");
        assert_eq!(fr & (FR_TXFE | FR_TXFF | FR_BUSY), FR_TXFE, "TX flags");
    }
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut world = World {
        uart: Pl011::new(),
        shadow: VecDeque::new(),
    };
    world.check();
    for _ in 0..MAX_OPS {
        let Ok(op) = u.arbitrary::<Op>() else {
            break;
        };
        world.step(op);
        if u.is_empty() {
            break;
        }
    }
}
