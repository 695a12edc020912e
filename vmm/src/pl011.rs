//! An ARM PL011 UART (PrimeCell UART r1p5, ARM DDI 0183G) as a plain state machine: the
//! guest's console at [`abi::layout::PL011_BASE`].
//!
//! The model has no clock. Transmitted bytes leave at once through the caller's sink, so the
//! transmit FIFO is always empty; received bytes wait in a 32-entry FIFO the caller fills with
//! [`Pl011::push_rx`]. What follows from that (DDI 0183G §3.4 "Interrupts"):
//! - TXRIS is always asserted: the transmitter can always take data.
//! - RXRIS is asserted when the receive FIFO reaches its IFLS trigger level (one byte with the
//!   FIFOs disabled) and cleared when reads take it below, or by ICR.
//! - RTRIS (receive timeout) is asserted as soon as the FIFO holds data, since there is no
//!   bit period to time out with, and cleared when the FIFO empties, or by ICR. Drivers read
//!   until RXFE either way.
//!
//! Like QEMU's model, DR transmits whether or not the guest set CR.UARTEN and CR.TXE
//! (early consoles and bare-metal programs write DR without enabling anything), except in
//! loopback mode (CR.LBE), where the byte goes to the receive FIFO as on the hardware.
//! Unknown and unaligned offsets read as 0 and ignore writes; no value a guest writes panics.
//!
//! The state is a plain struct with no pointers, so it can be saved and restored.

use tock_registers::fields::FieldValue;
use tock_registers::{register_bitfields, LocalRegisterCopy};

/// Depth of the receive FIFO (and of the transmit FIFO the model does not need).
pub const FIFO_DEPTH: usize = 32;

/// UARTPeriphID0..3: part number 0x011, designer 0x41 (ARM), revision 1.
const PERIPH_ID: [u8; 4] = [0x11, 0x10, 0x14, 0x00];
/// UARTPCellID0..3: the PrimeCell identification every AMBA device carries.
const CELL_ID: [u8; 4] = [0x0d, 0xf0, 0x05, 0xb1];

register_bitfields! [u32,
    /// UARTDR, data register (§3.3.1).
    DR [
        DATA OFFSET(0) NUMBITS(8) [],
        FE OFFSET(8) NUMBITS(1) [],
        PE OFFSET(9) NUMBITS(1) [],
        BE OFFSET(10) NUMBITS(1) [],
        OE OFFSET(11) NUMBITS(1) []
    ],
    /// UARTRSR / UARTECR, receive status / error clear (§3.3.2).
    RSR [
        FE OFFSET(0) NUMBITS(1) [],
        PE OFFSET(1) NUMBITS(1) [],
        BE OFFSET(2) NUMBITS(1) [],
        OE OFFSET(3) NUMBITS(1) []
    ],
    /// UARTFR, flag register (§3.3.3).
    FR [
        CTS OFFSET(0) NUMBITS(1) [],
        DSR OFFSET(1) NUMBITS(1) [],
        DCD OFFSET(2) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) [],
        RXFE OFFSET(4) NUMBITS(1) [],
        TXFF OFFSET(5) NUMBITS(1) [],
        RXFF OFFSET(6) NUMBITS(1) [],
        TXFE OFFSET(7) NUMBITS(1) [],
        RI OFFSET(8) NUMBITS(1) []
    ],
    /// UARTILPR, IrDA low-power counter (§3.3.4).
    ILPR [
        ILPDVSR OFFSET(0) NUMBITS(8) []
    ],
    /// UARTIBRD, integer baud rate divisor (§3.3.5).
    IBRD [
        BAUD_DIVINT OFFSET(0) NUMBITS(16) []
    ],
    /// UARTFBRD, fractional baud rate divisor (§3.3.6).
    FBRD [
        BAUD_DIVFRAC OFFSET(0) NUMBITS(6) []
    ],
    /// UARTLCR_H, line control (§3.3.7).
    LCR_H [
        BRK OFFSET(0) NUMBITS(1) [],
        PEN OFFSET(1) NUMBITS(1) [],
        EPS OFFSET(2) NUMBITS(1) [],
        STP2 OFFSET(3) NUMBITS(1) [],
        FEN OFFSET(4) NUMBITS(1) [],
        WLEN OFFSET(5) NUMBITS(2) [],
        SPS OFFSET(7) NUMBITS(1) []
    ],
    /// UARTCR, control (§3.3.8).
    CR [
        UARTEN OFFSET(0) NUMBITS(1) [],
        SIREN OFFSET(1) NUMBITS(1) [],
        SIRLP OFFSET(2) NUMBITS(1) [],
        LBE OFFSET(7) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        RXE OFFSET(9) NUMBITS(1) [],
        DTR OFFSET(10) NUMBITS(1) [],
        RTS OFFSET(11) NUMBITS(1) [],
        OUT1 OFFSET(12) NUMBITS(1) [],
        OUT2 OFFSET(13) NUMBITS(1) [],
        RTSEN OFFSET(14) NUMBITS(1) [],
        CTSEN OFFSET(15) NUMBITS(1) []
    ],
    /// UARTIFLS, interrupt FIFO level select (§3.3.9).
    IFLS [
        TXIFLSEL OFFSET(0) NUMBITS(3) [
            OneEighth = 0,
            OneQuarter = 1,
            Half = 2,
            ThreeQuarters = 3,
            SevenEighths = 4
        ],
        RXIFLSEL OFFSET(3) NUMBITS(3) [
            OneEighth = 0,
            OneQuarter = 1,
            Half = 2,
            ThreeQuarters = 3,
            SevenEighths = 4
        ]
    ],
    /// The interrupt bits, laid out alike in UARTIMSC, UARTRIS, UARTMIS and UARTICR
    /// (§3.3.10 to §3.3.13).
    INT [
        RIM OFFSET(0) NUMBITS(1) [],
        CTSM OFFSET(1) NUMBITS(1) [],
        DCDM OFFSET(2) NUMBITS(1) [],
        DSRM OFFSET(3) NUMBITS(1) [],
        RX OFFSET(4) NUMBITS(1) [],
        TX OFFSET(5) NUMBITS(1) [],
        RT OFFSET(6) NUMBITS(1) [],
        FE OFFSET(7) NUMBITS(1) [],
        PE OFFSET(8) NUMBITS(1) [],
        BE OFFSET(9) NUMBITS(1) [],
        OE OFFSET(10) NUMBITS(1) []
    ],
    /// UARTDMACR, DMA control (§3.3.14).
    DMACR [
        RXDMAE OFFSET(0) NUMBITS(1) [],
        TXDMAE OFFSET(1) NUMBITS(1) [],
        DMAONERR OFFSET(2) NUMBITS(1) []
    ],
    /// UARTPeriphID0..3 and UARTPCellID0..3: one identification byte each (§3.3.15, §3.3.16).
    ID [
        BYTE OFFSET(0) NUMBITS(8) []
    ]
];

/// Register offsets (DDI 0183G table 3-1).
pub mod offset {
    /// Data.
    pub const DR: u64 = 0x000;
    /// Receive status (read) / error clear (write).
    pub const RSR_ECR: u64 = 0x004;
    /// Flags.
    pub const FR: u64 = 0x018;
    /// IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// Integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// Fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// Line control.
    pub const LCR_H: u64 = 0x02c;
    /// Control.
    pub const CR: u64 = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x03c;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// Interrupt clear.
    pub const ICR: u64 = 0x044;
    /// DMA control.
    pub const DMACR: u64 = 0x048;
    /// UARTPeriphID0; PeriphID1..3 and PCellID0..3 follow at 4-byte steps.
    pub const PERIPH_ID0: u64 = 0xfe0;
    /// UARTPCellID0.
    pub const PCELL_ID0: u64 = 0xff0;
}

type Reg<R> = LocalRegisterCopy<u32, R>;

/// A PL011's state.
#[derive(Debug, Clone)]
pub struct Pl011 {
    /// Receive FIFO: `rx_len` bytes from `rx_head`, wrapping.
    rx: [u8; FIFO_DEPTH],
    rx_head: usize,
    rx_len: usize,
    rsr: Reg<RSR::Register>,
    ilpr: Reg<ILPR::Register>,
    ibrd: Reg<IBRD::Register>,
    fbrd: Reg<FBRD::Register>,
    lcr_h: Reg<LCR_H::Register>,
    cr: Reg<CR::Register>,
    ifls: Reg<IFLS::Register>,
    imsc: Reg<INT::Register>,
    /// The latched raw interrupt bits; TX is added on reading (see the module header).
    ris: Reg<INT::Register>,
    dmacr: Reg<DMACR::Register>,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

/// One entry of the register map: where it is, how it reads, how it writes.
struct Register {
    offset: u64,
    read: fn(&mut Pl011) -> u32,
    write: fn(&mut Pl011, u32, &mut dyn FnMut(u8)),
}

fn ignore_write(_: &mut Pl011, _: u32, _: &mut dyn FnMut(u8)) {}

fn id_byte(b: u8) -> u32 {
    ID::BYTE.val(u32::from(b)).value
}

/// The register map. Registers not listed read as 0 and ignore writes.
const REGISTERS: &[Register] = &[
    Register {
        offset: offset::DR,
        read: Pl011::read_dr,
        write: Pl011::write_dr,
    },
    Register {
        offset: offset::RSR_ECR,
        read: |s| s.rsr.get(),
        // Any write to UARTECR clears all four error bits.
        write: |s, _, _| s.rsr.set(0),
    },
    Register {
        offset: offset::FR,
        read: |s| s.fr(),
        write: ignore_write,
    },
    Register {
        offset: offset::ILPR,
        read: |s| s.ilpr.get(),
        write: |s, v, _| s.ilpr.write(ILPR::ILPDVSR.val(v)),
    },
    Register {
        offset: offset::IBRD,
        read: |s| s.ibrd.get(),
        write: |s, v, _| s.ibrd.write(IBRD::BAUD_DIVINT.val(v)),
    },
    Register {
        offset: offset::FBRD,
        read: |s| s.fbrd.get(),
        write: |s, v, _| s.fbrd.write(FBRD::BAUD_DIVFRAC.val(v)),
    },
    Register {
        offset: offset::LCR_H,
        read: |s| s.lcr_h.get(),
        write: |s, v, _| {
            s.lcr_h.set(v & lcr_h_fields().mask());
            s.update_rx_level();
        },
    },
    Register {
        offset: offset::CR,
        read: |s| s.cr.get(),
        write: |s, v, _| s.cr.set(v & cr_fields().mask()),
    },
    Register {
        offset: offset::IFLS,
        read: |s| s.ifls.get(),
        write: |s, v, _| {
            s.ifls.write(
                IFLS::TXIFLSEL.val(IFLS::TXIFLSEL.read(v))
                    + IFLS::RXIFLSEL.val(IFLS::RXIFLSEL.read(v)),
            );
            s.update_rx_level();
        },
    },
    Register {
        offset: offset::IMSC,
        read: |s| s.imsc.get(),
        write: |s, v, _| s.imsc.set(v & int_fields().mask()),
    },
    Register {
        offset: offset::RIS,
        read: |s| s.ris(),
        write: ignore_write,
    },
    Register {
        offset: offset::MIS,
        read: |s| s.mis(),
        write: ignore_write,
    },
    Register {
        offset: offset::ICR,
        read: |_| 0,
        // Write 1 to clear; TX reasserts at once, as the transmitter is still ready.
        write: |s, v, _| {
            let ris = s.ris.get();
            s.ris.set(ris & !(v & int_fields().mask()));
        },
    },
    Register {
        offset: offset::DMACR,
        read: |s| s.dmacr.get(),
        write: |s, v, _| {
            let all = DMACR::RXDMAE::SET + DMACR::TXDMAE::SET + DMACR::DMAONERR::SET;
            s.dmacr.set(v & all.mask());
        },
    },
    Register {
        offset: offset::PERIPH_ID0,
        read: |_| id_byte(PERIPH_ID[0]),
        write: ignore_write,
    },
    Register {
        offset: offset::PERIPH_ID0 + 4,
        read: |_| id_byte(PERIPH_ID[1]),
        write: ignore_write,
    },
    Register {
        offset: offset::PERIPH_ID0 + 8,
        read: |_| id_byte(PERIPH_ID[2]),
        write: ignore_write,
    },
    Register {
        offset: offset::PERIPH_ID0 + 12,
        read: |_| id_byte(PERIPH_ID[3]),
        write: ignore_write,
    },
    Register {
        offset: offset::PCELL_ID0,
        read: |_| id_byte(CELL_ID[0]),
        write: ignore_write,
    },
    Register {
        offset: offset::PCELL_ID0 + 4,
        read: |_| id_byte(CELL_ID[1]),
        write: ignore_write,
    },
    Register {
        offset: offset::PCELL_ID0 + 8,
        read: |_| id_byte(CELL_ID[2]),
        write: ignore_write,
    },
    Register {
        offset: offset::PCELL_ID0 + 12,
        read: |_| id_byte(CELL_ID[3]),
        write: ignore_write,
    },
];

/// Every bit of UARTLCR_H.
fn lcr_h_fields() -> FieldValue<u32, LCR_H::Register> {
    LCR_H::BRK::SET
        + LCR_H::PEN::SET
        + LCR_H::EPS::SET
        + LCR_H::STP2::SET
        + LCR_H::FEN::SET
        + LCR_H::WLEN.val(LCR_H::WLEN.mask)
        + LCR_H::SPS::SET
}

/// Every bit of UARTCR.
fn cr_fields() -> FieldValue<u32, CR::Register> {
    CR::UARTEN::SET
        + CR::SIREN::SET
        + CR::SIRLP::SET
        + CR::LBE::SET
        + CR::TXE::SET
        + CR::RXE::SET
        + CR::DTR::SET
        + CR::RTS::SET
        + CR::OUT1::SET
        + CR::OUT2::SET
        + CR::RTSEN::SET
        + CR::CTSEN::SET
}

/// Every interrupt bit.
fn int_fields() -> FieldValue<u32, INT::Register> {
    INT::RIM::SET
        + INT::CTSM::SET
        + INT::DCDM::SET
        + INT::DSRM::SET
        + INT::RX::SET
        + INT::TX::SET
        + INT::RT::SET
        + INT::FE::SET
        + INT::PE::SET
        + INT::BE::SET
        + INT::OE::SET
}

impl Pl011 {
    /// A PL011 in its reset state (DDI 0183G table 3-1): transmit and receive enabled but the
    /// UART off, FIFOs disabled, both FIFO levels at one half, all interrupts masked.
    pub fn new() -> Self {
        let mut cr = Reg::new(0);
        cr.write(CR::TXE::SET + CR::RXE::SET);
        let mut ifls = Reg::new(0);
        ifls.write(IFLS::TXIFLSEL::Half + IFLS::RXIFLSEL::Half);
        Self {
            rx: [0; FIFO_DEPTH],
            rx_head: 0,
            rx_len: 0,
            rsr: Reg::new(0),
            ilpr: Reg::new(0),
            ibrd: Reg::new(0),
            fbrd: Reg::new(0),
            lcr_h: Reg::new(0),
            cr,
            ifls,
            imsc: Reg::new(0),
            ris: Reg::new(0),
            dmacr: Reg::new(0),
        }
    }

    fn register(offset: u64) -> Option<&'static Register> {
        REGISTERS.iter().find(|r| r.offset == offset)
    }

    /// A guest load from `offset` in the UART's frame.
    pub fn read(&mut self, offset: u64) -> u32 {
        match Self::register(offset) {
            Some(r) => (r.read)(self),
            None => 0,
        }
    }

    /// A guest store of `value` to `offset`; transmitted bytes go to `tx`.
    pub fn write(&mut self, offset: u64, value: u32, tx: &mut dyn FnMut(u8)) {
        if let Some(r) = Self::register(offset) {
            (r.write)(self, value, tx);
        }
    }

    /// Offers a received byte. Returns `false` when the receive FIFO is full (one byte deep
    /// with the FIFOs disabled): the caller keeps the byte and offers it again later.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        if self.rx_len >= self.rx_capacity() {
            return false;
        }
        let tail = (self.rx_head + self.rx_len) % FIFO_DEPTH;
        if let Some(slot) = self.rx.get_mut(tail) {
            *slot = byte;
            self.rx_len += 1;
        }
        // Data is waiting: the (instant) receive timeout fires, and so may the level.
        self.ris.modify(INT::RT::SET);
        self.update_rx_level();
        true
    }

    /// Whether the UART's interrupt line is asserted (UARTINTR: any unmasked raw interrupt).
    pub fn irq_level(&self) -> bool {
        self.mis() != 0
    }

    /// How many received bytes wait in the FIFO.
    pub fn rx_pending(&self) -> usize {
        self.rx_len
    }

    /// UARTFR as a read would return it (reading it has no side effects).
    pub fn flags(&self) -> u32 {
        self.fr()
    }

    /// Whether a data register write can change what the guest sees: only in loopback mode,
    /// where the byte goes to the receiver. Otherwise the transmitter drains at once and a
    /// write may be handled later without the guest noticing.
    pub fn tx_has_visible_effect(&self) -> bool {
        self.cr.is_set(CR::LBE)
    }

    fn rx_capacity(&self) -> usize {
        if self.lcr_h.is_set(LCR_H::FEN) {
            FIFO_DEPTH
        } else {
            1
        }
    }

    /// The receive FIFO fill level at which RXRIS asserts.
    fn rx_trigger(&self) -> usize {
        if !self.lcr_h.is_set(LCR_H::FEN) {
            return 1;
        }
        use IFLS::RXIFLSEL::Value as Level;
        match self.ifls.read_as_enum(IFLS::RXIFLSEL) {
            Some(Level::OneEighth) => FIFO_DEPTH / 8,
            Some(Level::OneQuarter) => FIFO_DEPTH / 4,
            Some(Level::ThreeQuarters) => FIFO_DEPTH * 3 / 4,
            Some(Level::SevenEighths) => FIFO_DEPTH * 7 / 8,
            // The reserved encodings are given the reset level.
            Some(Level::Half) | None => FIFO_DEPTH / 2,
        }
    }

    /// Sets or clears RXRIS by the FIFO level, and clears RTRIS once the FIFO is empty.
    fn update_rx_level(&mut self) {
        if self.rx_len >= self.rx_trigger() {
            self.ris.modify(INT::RX::SET);
        } else {
            self.ris.modify(INT::RX::CLEAR);
        }
        if self.rx_len == 0 {
            self.ris.modify(INT::RT::CLEAR);
        }
    }

    fn pop_rx(&mut self) -> Option<u8> {
        if self.rx_len == 0 {
            return None;
        }
        let byte = self.rx.get(self.rx_head).copied();
        self.rx_head = (self.rx_head + 1) % FIFO_DEPTH;
        self.rx_len -= 1;
        self.update_rx_level();
        byte
    }

    fn read_dr(&mut self) -> u32 {
        // An empty FIFO reads as 0 (the hardware returns stale data).
        self.pop_rx()
            .map_or(0, |b| DR::DATA.val(u32::from(b)).value)
    }

    fn write_dr(&mut self, value: u32, tx: &mut dyn FnMut(u8)) {
        let byte = DR::DATA.read(value) as u8;
        if self.cr.is_set(CR::LBE) {
            // Loopback: the byte arrives at our own receiver; if it has no room, the byte is
            // lost and that is an overrun.
            if !self.push_rx(byte) {
                self.rsr.modify(RSR::OE::SET);
                self.ris.modify(INT::OE::SET);
            }
        } else {
            tx(byte);
        }
    }

    fn fr(&self) -> u32 {
        let mut fr: Reg<FR::Register> = Reg::new(0);
        // The transmitter drains at once: never busy, never full, always empty.
        fr.modify(FR::TXFE::SET);
        if self.rx_len == 0 {
            fr.modify(FR::RXFE::SET);
        }
        if self.rx_len >= self.rx_capacity() {
            fr.modify(FR::RXFF::SET);
        }
        fr.get()
    }

    fn ris(&self) -> u32 {
        self.ris.get() | INT::TX::SET.value
    }

    fn mis(&self) -> u32 {
        self.ris() & self.imsc.get()
    }
}

#[cfg(test)]
mod tests {
    use super::offset::*;
    use super::*;
    use alloc::vec::Vec;

    fn no_tx(_: u8) {
        panic!("nothing should be transmitted");
    }

    fn fr(u: &mut Pl011) -> Reg<FR::Register> {
        Reg::new(u.read(FR))
    }

    /// The guest's usual setup: FIFOs on, UART on.
    fn enabled() -> Pl011 {
        let mut u = Pl011::new();
        u.write(
            LCR_H,
            (LCR_H::FEN::SET + LCR_H::WLEN.val(3)).value,
            &mut no_tx,
        );
        u.write(
            CR,
            (CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET).value,
            &mut no_tx,
        );
        u
    }

    #[test]
    fn id_registers_identify_a_pl011() {
        let mut u = Pl011::new();
        let ids: Vec<u32> = (0..8).map(|i| u.read(PERIPH_ID0 + 4 * i)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // Linux's amba bus assembles them into the peripheral and cell IDs.
        let periph = ids[..4]
            .iter()
            .enumerate()
            .fold(0, |a, (i, &b)| a | b << (8 * i));
        assert_eq!(periph & 0x000f_ffff, 0x0004_1011);
    }

    #[test]
    fn reset_values() {
        let mut u = Pl011::new();
        assert_eq!(u.read(CR), 0x300);
        assert_eq!(u.read(IFLS), 0x12);
        assert_eq!(u.read(FR), 0x90, "TXFE and RXFE");
        assert_eq!(u.read(IMSC), 0);
        assert!(!u.irq_level());
    }

    #[test]
    fn tx_bytes_reach_the_sink_enabled_or_not() {
        let mut out = Vec::new();
        let mut u = Pl011::new();
        u.write(DR, u32::from(b'h'), &mut |b| out.push(b));
        let mut u = enabled();
        for &c in b"ello" {
            // The upper bits of a DR write are not data.
            u.write(DR, 0xffff_ff00 | u32::from(c), &mut |b| out.push(b));
        }
        assert_eq!(out, b"hello");
        assert!(fr(&mut u).is_set(FR::TXFE));
        assert!(!fr(&mut u).is_set(FR::TXFF));
        assert!(!fr(&mut u).is_set(FR::BUSY));
    }

    #[test]
    fn rx_fifo_keeps_order_and_refuses_when_full() {
        let mut u = enabled();
        assert!(fr(&mut u).is_set(FR::RXFE));
        for i in 0..FIFO_DEPTH as u8 {
            assert!(u.push_rx(b'a' + i), "byte {i} refused");
            assert!(!fr(&mut u).is_set(FR::RXFE));
        }
        assert!(fr(&mut u).is_set(FR::RXFF));
        assert!(!u.push_rx(b'!'), "a full FIFO took a byte");
        for i in 0..FIFO_DEPTH as u8 {
            assert_eq!(u.read(DR), u32::from(b'a' + i));
            assert!(!fr(&mut u).is_set(FR::RXFF));
        }
        assert!(fr(&mut u).is_set(FR::RXFE));
        assert_eq!(u.read(DR), 0, "an empty FIFO reads 0");
        // The ring wraps correctly after a full cycle.
        assert!(u.push_rx(b'x') && u.push_rx(b'y'));
        assert_eq!((u.read(DR), u.read(DR)), (u32::from(b'x'), u32::from(b'y')));
    }

    #[test]
    fn without_fifos_the_receiver_holds_one_byte() {
        let mut u = Pl011::new();
        assert!(u.push_rx(1));
        assert!(fr(&mut u).is_set(FR::RXFF));
        assert!(!u.push_rx(2));
        assert_eq!(u.read(DR), 1);
        assert!(u.push_rx(2));
    }

    #[test]
    fn irq_follows_imsc_and_icr() {
        let mut u = enabled();
        // TX is always ready: its interrupt follows the mask alone, and ICR cannot drop it.
        assert!(!u.irq_level());
        u.write(IMSC, INT::TX::SET.value, &mut no_tx);
        assert!(u.irq_level());
        u.write(ICR, int_fields().mask(), &mut no_tx);
        assert!(u.irq_level());
        assert_eq!(u.read(MIS), INT::TX::SET.value);
        u.write(IMSC, 0, &mut no_tx);
        assert!(!u.irq_level());

        // RX timeout: one byte is enough, reading it clears it.
        u.write(IMSC, INT::RT::SET.value, &mut no_tx);
        assert!(u.push_rx(b'a'));
        assert!(u.irq_level());
        assert_eq!(u.read(MIS), INT::RT::SET.value);
        u.read(DR);
        assert!(!u.irq_level());

        // ...and ICR clears it with data still waiting, until more arrives.
        assert!(u.push_rx(b'b'));
        assert!(u.irq_level());
        u.write(ICR, INT::RT::SET.value, &mut no_tx);
        assert!(!u.irq_level());
        assert_eq!(u.read(RIS) & INT::RT::SET.value, 0);
        assert!(u.push_rx(b'c'));
        assert!(u.irq_level());
        while !fr(&mut u).is_set(FR::RXFE) {
            u.read(DR);
        }
        assert!(!u.irq_level());
    }

    #[test]
    fn rx_level_interrupt_uses_the_ifls_trigger() {
        let mut u = enabled();
        u.write(IFLS, IFLS::RXIFLSEL::OneQuarter.value, &mut no_tx);
        u.write(IMSC, INT::RX::SET.value, &mut no_tx);
        for i in 0..7 {
            assert!(u.push_rx(i));
            assert!(!u.irq_level(), "RX asserted at {} bytes", i + 1);
        }
        assert!(u.push_rx(7));
        assert!(u.irq_level(), "RX not asserted at 8 bytes (1/4 of 32)");
        u.read(DR);
        assert!(!u.irq_level(), "RX still asserted below the trigger");
        // With FIFOs disabled the trigger is one byte.
        let mut u = Pl011::new();
        u.write(IMSC, INT::RX::SET.value, &mut no_tx);
        assert!(u.push_rx(0));
        assert!(u.irq_level());
    }

    #[test]
    fn loopback_feeds_the_receiver_and_overruns() {
        let mut u = enabled();
        u.write(
            CR,
            (CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET + CR::LBE::SET).value,
            &mut no_tx,
        );
        for i in 0..=FIFO_DEPTH as u32 {
            u.write(DR, i, &mut no_tx);
        }
        assert_eq!(u.rx_pending(), FIFO_DEPTH);
        assert_eq!(u.read(RSR_ECR), RSR::OE::SET.value);
        assert_ne!(u.read(RIS) & INT::OE::SET.value, 0);
        u.write(RSR_ECR, 0, &mut no_tx);
        assert_eq!(u.read(RSR_ECR), 0);
        assert_eq!(u.read(DR), 0);
        assert_eq!(u.read(DR), 1);
    }

    #[test]
    fn registers_keep_only_their_fields() {
        let mut u = Pl011::new();
        u.write(IBRD, 0xffff_ffff, &mut no_tx);
        u.write(FBRD, 0xffff_ffff, &mut no_tx);
        u.write(ILPR, 0xffff_ffff, &mut no_tx);
        u.write(LCR_H, 0xffff_ffff, &mut no_tx);
        u.write(CR, 0xffff_ffff, &mut no_tx);
        u.write(IFLS, 0xffff_ffff, &mut no_tx);
        u.write(IMSC, 0xffff_ffff, &mut no_tx);
        u.write(DMACR, 0xffff_ffff, &mut no_tx);
        assert_eq!(u.read(IBRD), 0xffff);
        assert_eq!(u.read(FBRD), 0x3f);
        assert_eq!(u.read(ILPR), 0xff);
        assert_eq!(u.read(LCR_H), 0xff);
        assert_eq!(u.read(CR), 0xff87);
        assert_eq!(u.read(IFLS), 0x3f);
        assert_eq!(u.read(IMSC), 0x7ff);
        assert_eq!(u.read(DMACR), 0x7);
        // Read-only registers ignore writes; write-only ICR reads 0.
        u.write(FR, 0, &mut no_tx);
        assert_eq!(u.read(FR), 0x90);
        u.write(RIS, 0, &mut no_tx);
        assert_eq!(u.read(RIS), INT::TX::SET.value);
        assert_eq!(u.read(ICR), 0);
        u.write(PERIPH_ID0, 0, &mut no_tx);
        assert_eq!(u.read(PERIPH_ID0), 0x11);
    }

    #[test]
    fn unknown_and_unaligned_offsets_read_zero_and_ignore_writes() {
        let mut u = enabled();
        let known: Vec<u64> = REGISTERS
            .iter()
            .map(|r| r.offset)
            .filter(|&o| o != DR)
            .collect();
        let before: Vec<u32> = known.iter().map(|&o| u.read(o)).collect();
        for off in [
            0x008,
            0x01c,
            0x04c,
            0x100,
            0xfdc,
            0x001,
            0x031,
            0x1000,
            u64::MAX,
        ] {
            assert_eq!(u.read(off), 0, "offset {off:#x}");
            u.write(off, 0xffff_ffff, &mut no_tx);
        }
        let after: Vec<u32> = known.iter().map(|&o| u.read(o)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn every_offset_and_value_is_survived() {
        // A xorshift generator: the same "random" values every run.
        let mut x: u32 = 0x1234_5678;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut u = Pl011::new();
        let mut sent = 0usize;
        for round in 0..4 {
            for off in 0..0x1000u64 {
                let v = next();
                u.write(off, v, &mut |_| sent += 1);
                let _ = u.read(off);
                if off % 64 == 0 {
                    let _ = u.push_rx(v as u8);
                }
                let _ = u.irq_level();
                assert!(
                    u.rx_pending() <= FIFO_DEPTH,
                    "round {round} offset {off:#x}"
                );
            }
            for v in [0, u32::MAX] {
                for off in 0..0x1000u64 {
                    u.write(off, v, &mut |_| sent += 1);
                }
            }
        }
        assert!(sent > 0);
    }
}
