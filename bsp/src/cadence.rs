//! The Cadence UART of Xilinx Zynq, ZynqMP and Versal (`xlnx,xuartps`, `cdns,uart-r1p8`,
//! `cdns,uart-r1p12`; Zynq UltraScale+ TRM, "UART Controller"), polled for output, with
//! receive interrupts for input.
//!
//! 32-bit registers. The firmware has set the line up (CR, MR, the baud generator); only the
//! receive interrupts and their trigger level are changed.

use crate::bus::Bus;
use crate::console::Uart;
use tock_registers::register_bitfields;
use tock_registers::LocalRegisterCopy;

/// Register offsets. Control, mode and mask are named for the tests, which check the driver
/// leaves them alone.
#[cfg_attr(not(test), allow(dead_code))]
mod reg {
    /// Control.
    pub const CR: usize = 0x00;
    /// Mode.
    pub const MR: usize = 0x04;
    /// Interrupt enable (write 1 to enable).
    pub const IER: usize = 0x08;
    /// Interrupt disable (write 1 to disable).
    pub const IDR: usize = 0x0c;
    /// Interrupt mask (read: which are enabled).
    pub const IMR: usize = 0x10;
    /// Channel interrupt status (write 1 to clear).
    pub const ISR: usize = 0x14;
    /// Receiver timeout, in units of 4 bit times; 0 turns it off.
    pub const RXTOUT: usize = 0x1c;
    /// Receiver FIFO trigger level.
    pub const RXWM: usize = 0x20;
    /// Channel status.
    pub const SR: usize = 0x2c;
    /// The FIFOs.
    pub const FIFO: usize = 0x30;
}

register_bitfields! {u32,
    /// The interrupts, as IER, IDR, IMR and ISR lay them out.
    pub INT [
        /// Receiver timeout: no byte for RXTOUT, with bytes in the FIFO.
        TIMEOUT OFFSET(8) NUMBITS(1) [],
        /// Receiver overflow.
        ROVR OFFSET(5) NUMBITS(1) [],
        /// Transmit FIFO empty.
        TEMPTY OFFSET(3) NUMBITS(1) [],
        /// The receive FIFO reached RXWM.
        RTRIG OFFSET(0) NUMBITS(1) []
    ],
    /// Channel status register.
    pub SR [
        /// Transmit FIFO full.
        TXFULL OFFSET(4) NUMBITS(1) [],
        /// Transmit FIFO empty.
        TXEMPTY OFFSET(3) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXEMPTY OFFSET(1) NUMBITS(1) []
    ],
    /// Receiver FIFO trigger level register.
    pub RXWM [
        /// The level, in bytes (0 turns the trigger off).
        RTRIG OFFSET(0) NUMBITS(6) []
    ],
    /// Receiver timeout register.
    pub RXTOUT [
        /// The timeout.
        RTO OFFSET(0) NUMBITS(8) []
    ],
    /// The FIFO register.
    pub FIFO [
        /// The character.
        DATA OFFSET(0) NUMBITS(8) []
    ]
}

/// The receive interrupts the driver uses.
const RX: u32 = INT::RTRIG::SET.value | INT::TIMEOUT::SET.value;

/// A Cadence UART.
pub struct Cadence<B> {
    bus: B,
}

impl<B: Bus> Cadence<B> {
    /// The UART on `bus`.
    pub fn new(bus: B) -> Self {
        Self { bus }
    }

    fn sr(&mut self) -> LocalRegisterCopy<u32, SR::Register> {
        LocalRegisterCopy::new(self.bus.read(reg::SR))
    }
}

impl<B: Bus> Uart for Cadence<B> {
    fn put(&mut self, byte: u8) {
        while self.sr().is_set(SR::TXFULL) {}
        self.bus
            .write(reg::FIFO, FIFO::DATA.val(u32::from(byte)).value);
    }

    fn get(&mut self) -> Option<u8> {
        if self.sr().is_set(SR::RXEMPTY) {
            return None;
        }
        let data = LocalRegisterCopy::<u32, FIFO::Register>::new(self.bus.read(reg::FIFO));
        Some(data.read(FIFO::DATA) as u8)
    }

    fn set_rx_interrupt(&mut self, on: bool) {
        if on {
            // A typed byte must interrupt on its own: the trigger at one byte (the reset level
            // is 32), and the timeout on in case the firmware set a higher level meanwhile.
            self.bus.write(reg::RXWM, RXWM::RTRIG.val(1).value);
            if LocalRegisterCopy::<u32, RXTOUT::Register>::new(self.bus.read(reg::RXTOUT))
                .read(RXTOUT::RTO)
                == 0
            {
                self.bus.write(reg::RXTOUT, RXTOUT::RTO.val(10).value);
            }
            self.bus.write(reg::IER, RX);
        } else {
            self.bus.write(reg::IDR, RX);
        }
    }

    fn clear_rx_interrupt(&mut self) {
        self.bus.write(reg::ISR, RX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::model::Regs;

    #[test]
    fn output_waits_while_the_fifo_is_full() {
        let mut m = Regs::default();
        let full = SR::TXFULL::SET.value;
        m.script(reg::SR, &[full, full, full, SR::TXEMPTY::SET.value]);
        Cadence::new(&mut m).put(b'c');
        assert_eq!(m.reads_of(reg::SR), 4);
        assert_eq!(m.writes, [(reg::FIFO, u32::from(b'c'))]);
    }

    #[test]
    fn input_is_read_while_the_fifo_is_not_empty() {
        let mut m = Regs::default();
        m.set(reg::SR, SR::RXEMPTY::SET.value);
        assert_eq!(Cadence::new(&mut m).get(), None);
        assert_eq!(m.reads_of(reg::FIFO), 0);
        m.set(reg::SR, 0);
        m.set(reg::FIFO, 0x300 | u32::from(b'z'));
        assert_eq!(Cadence::new(&mut m).get(), Some(b'z'));
    }

    #[test]
    fn receive_interrupts_on_off_and_cleared() {
        let mut m = Regs::default();
        Cadence::new(&mut m).set_rx_interrupt(true);
        assert_eq!(m.writes_to(reg::IER), [RX]);
        assert_eq!(m.get(reg::RXWM), 1);
        assert_eq!(m.get(reg::RXTOUT), 10);
        // A timeout the firmware chose is kept.
        let mut m = Regs::default();
        m.set(reg::RXTOUT, 4);
        Cadence::new(&mut m).set_rx_interrupt(true);
        assert!(m.writes_to(reg::RXTOUT).is_empty());
        Cadence::new(&mut m).clear_rx_interrupt();
        assert_eq!(m.writes_to(reg::ISR), [RX]);
        Cadence::new(&mut m).set_rx_interrupt(false);
        assert_eq!(m.writes_to(reg::IDR), [RX]);
        // Enabling and disabling are separate registers: nothing else is touched.
        assert!(m.writes_to(reg::CR).is_empty() && m.writes_to(reg::MR).is_empty());
        assert_eq!(m.reads_of(reg::IMR), 0);
    }
}
