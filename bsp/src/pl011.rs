//! The Arm PrimeCell PL011 UART (PL011 TRM, DDI 0183), polled for output, with receive
//! interrupts for input.

use crate::console::Uart;
use core::ptr::NonNull;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// UARTFR (3.3.3).
    pub FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) []
    ],
    /// UARTIMSC / UARTICR (3.3.10, 3.3.13).
    pub INT [
        /// Receive timeout.
        RT OFFSET(6) NUMBITS(1) [],
        /// Receive.
        RX OFFSET(4) NUMBITS(1) []
    ],
    /// UARTDR (3.3.1).
    pub DR [
        /// The character.
        DATA OFFSET(0) NUMBITS(8) []
    ]
}

register_structs! {
    /// The registers the driver uses.
    pub Pl011Regs {
        (0x000 => dr: ReadWrite<u32, DR::Register>),
        (0x004 => _r0),
        (0x018 => fr: ReadOnly<u32, FR::Register>),
        (0x01c => _r1),
        (0x038 => imsc: ReadWrite<u32, INT::Register>),
        (0x03c => _r2),
        (0x044 => icr: WriteOnly<u32, INT::Register>),
        (0x048 => @END),
    }
}

/// A PL011.
pub struct Pl011 {
    regs: NonNull<Pl011Regs>,
}

// SAFETY: the driver holds only the frame's address; its users serialise access (the core's
// console lock).
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// The PL011 whose register frame is at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a PL011 frame (or of memory laid out as one), accessible
    /// for as long as the driver is used, and used by nothing else meanwhile.
    pub unsafe fn new(base: usize) -> Option<Self> {
        NonNull::new(base as *mut Pl011Regs).map(|regs| Self { regs })
    }

    fn regs(&self) -> &Pl011Regs {
        // SAFETY: `new`'s contract: a valid, accessible frame.
        unsafe { self.regs.as_ref() }
    }
}

impl Uart for Pl011 {
    fn put(&mut self, byte: u8) {
        while self.regs().fr.is_set(FR::TXFF) {}
        self.regs().dr.write(DR::DATA.val(u32::from(byte)));
    }

    fn get(&mut self) -> Option<u8> {
        if self.regs().fr.is_set(FR::RXFE) {
            None
        } else {
            Some(self.regs().dr.read(DR::DATA) as u8)
        }
    }

    fn set_rx_interrupt(&mut self, on: bool) {
        if on {
            self.regs().imsc.write(INT::RX::SET + INT::RT::SET);
        } else {
            self.regs().imsc.set(0);
        }
    }

    fn clear_rx_interrupt(&mut self) {
        self.regs().icr.write(INT::RX::SET + INT::RT::SET);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers as plain memory: what the driver writes stays there for the test to read.
    struct Model([u32; core::mem::size_of::<Pl011Regs>() / 4]);

    const DR_WORD: usize = core::mem::offset_of!(Pl011Regs, dr) / 4;
    const FR_WORD: usize = core::mem::offset_of!(Pl011Regs, fr) / 4;
    const IMSC_WORD: usize = core::mem::offset_of!(Pl011Regs, imsc) / 4;
    const ICR_WORD: usize = core::mem::offset_of!(Pl011Regs, icr) / 4;

    fn uart(model: &mut Model) -> Pl011 {
        // SAFETY: the model is laid out as the frame and outlives the driver in each test.
        unsafe { Pl011::new(model.0.as_mut_ptr() as usize) }.expect("non-null")
    }

    #[test]
    fn output_goes_to_the_data_register() {
        let mut m = Model([0; core::mem::size_of::<Pl011Regs>() / 4]);
        uart(&mut m).put(b'r');
        assert_eq!(m.0[DR_WORD], u32::from(b'r'));
    }

    #[test]
    fn input_is_read_while_the_fifo_is_not_empty() {
        let mut m = Model([0; core::mem::size_of::<Pl011Regs>() / 4]);
        m.0[FR_WORD] = FR::RXFE::SET.value;
        assert_eq!(uart(&mut m).get(), None);
        m.0[FR_WORD] = 0;
        m.0[DR_WORD] = 0x100 | u32::from(b'x');
        // Only the character: the error bits above it are not data.
        assert_eq!(uart(&mut m).get(), Some(b'x'));
    }

    #[test]
    fn receive_interrupts_on_off_and_cleared() {
        let mut m = Model([0; core::mem::size_of::<Pl011Regs>() / 4]);
        let rx = (INT::RX::SET + INT::RT::SET).value;
        uart(&mut m).set_rx_interrupt(true);
        assert_eq!(m.0[IMSC_WORD], rx);
        uart(&mut m).clear_rx_interrupt();
        assert_eq!(m.0[ICR_WORD], rx);
        uart(&mut m).set_rx_interrupt(false);
        assert_eq!(m.0[IMSC_WORD], 0);
    }
}
