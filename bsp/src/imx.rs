//! The NXP i.MX UART (`fsl,imx21-uart`, `fsl,imx6q-uart`, `fsl,imx8mp-uart`, ...; i.MX 8M
//! reference manual, "UART"), polled for output, with receive interrupts for input.
//!
//! 32-bit registers. The firmware has set the line up (UFCR, UBIR/UBMR): only the receive
//! interrupt enables are changed, and the receiver is turned on (UCR2.RXEN) if the firmware
//! left it off, as a loader that only prints does (and QEMU's `-kernel`, which runs no
//! firmware): without it no typed byte arrives.

use crate::bus::Bus;
use crate::console::Uart;
use tock_registers::register_bitfields;
use tock_registers::LocalRegisterCopy;

/// Register offsets.
mod reg {
    /// URXD, the receiver.
    pub const URXD: usize = 0x00;
    /// UTXD, the transmitter.
    pub const UTXD: usize = 0x40;
    /// UCR1.
    pub const UCR1: usize = 0x80;
    /// UCR2.
    pub const UCR2: usize = 0x84;
    /// UCR4.
    pub const UCR4: usize = 0x8c;
    /// USR1.
    pub const USR1: usize = 0x94;
    /// USR2.
    pub const USR2: usize = 0x98;
    /// UTS, the test register (FIFO state).
    pub const UTS: usize = 0xb4;
}

register_bitfields! {u32,
    /// Receiver register.
    pub URXD [
        /// The character is valid.
        CHARRDY OFFSET(15) NUMBITS(1) [],
        /// Some error (overrun, frame, break, parity) came with it.
        ERR OFFSET(14) NUMBITS(1) [],
        /// The character.
        RX_DATA OFFSET(0) NUMBITS(8) []
    ],
    /// Transmitter register.
    pub UTXD [
        /// The character.
        TX_DATA OFFSET(0) NUMBITS(8) []
    ],
    /// Control register 1.
    pub UCR1 [
        /// Receiver ready interrupt (the FIFO reached UFCR.RXTL).
        RRDYEN OFFSET(9) NUMBITS(1) [],
        /// The UART is enabled.
        UARTEN OFFSET(0) NUMBITS(1) []
    ],
    /// Control register 2.
    pub UCR2 [
        /// The receiver is enabled.
        RXEN OFFSET(1) NUMBITS(1) [],
        /// Software reset, active low: written as read (1), or the UART resets.
        SRST OFFSET(0) NUMBITS(1) []
    ],
    /// Control register 4.
    pub UCR4 [
        /// Receive data ready interrupt (any byte, whatever the FIFO's threshold).
        DREN OFFSET(0) NUMBITS(1) []
    ],
    /// Status register 1.
    pub USR1 [
        /// Receiver ready (level at or above the threshold).
        RRDY OFFSET(9) NUMBITS(1) [],
        /// Aging timer expired (write 1 to clear).
        AGTIM OFFSET(8) NUMBITS(1) []
    ],
    /// Status register 2.
    pub USR2 [
        /// Transmit FIFO empty.
        TXFE OFFSET(14) NUMBITS(1) [],
        /// Transmission complete.
        TXDC OFFSET(3) NUMBITS(1) [],
        /// Receive data ready.
        RDR OFFSET(0) NUMBITS(1) []
    ],
    /// Test register.
    pub UTS [
        /// Receive FIFO empty.
        RXEMPTY OFFSET(5) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFULL OFFSET(4) NUMBITS(1) []
    ]
}

/// An i.MX UART.
pub struct ImxUart<B> {
    bus: B,
}

impl<B: Bus> ImxUart<B> {
    /// The UART on `bus`.
    pub fn new(bus: B) -> Self {
        Self { bus }
    }

    fn read<R: tock_registers::RegisterLongName>(
        &mut self,
        offset: usize,
    ) -> LocalRegisterCopy<u32, R> {
        LocalRegisterCopy::new(self.bus.read(offset))
    }
}

impl<B: Bus> Uart for ImxUart<B> {
    fn put(&mut self, byte: u8) {
        while self.read::<UTS::Register>(reg::UTS).is_set(UTS::TXFULL) {}
        self.bus
            .write(reg::UTXD, UTXD::TX_DATA.val(u32::from(byte)).value);
    }

    fn get(&mut self) -> Option<u8> {
        if !self.read::<USR2::Register>(reg::USR2).is_set(USR2::RDR) {
            return None;
        }
        Some(self.read::<URXD::Register>(reg::URXD).read(URXD::RX_DATA) as u8)
    }

    fn set_rx_interrupt(&mut self, on: bool) {
        // RRDYEN for a full threshold, DREN for the lone typed byte below it.
        let mut ucr1 = self.read::<UCR1::Register>(reg::UCR1);
        let mut ucr4 = self.read::<UCR4::Register>(reg::UCR4);
        if on {
            let ucr2 = self.read::<UCR2::Register>(reg::UCR2);
            if !ucr2.is_set(UCR2::RXEN) {
                // Read-modify-write keeps SRST as read (1: out of reset).
                self.bus
                    .write(reg::UCR2, ucr2.get() | UCR2::RXEN::SET.value);
            }
            ucr1.modify(UCR1::RRDYEN::SET);
            ucr4.modify(UCR4::DREN::SET);
        } else {
            ucr1.modify(UCR1::RRDYEN::CLEAR);
            ucr4.modify(UCR4::DREN::CLEAR);
        }
        self.bus.write(reg::UCR1, ucr1.get());
        self.bus.write(reg::UCR4, ucr4.get());
    }

    fn clear_rx_interrupt(&mut self) {
        // RRDY and RDR follow the FIFO's level and clear as it is drained; the aging timer
        // (if the firmware enabled it) is the one sticky receive status.
        self.bus.write(reg::USR1, USR1::AGTIM::SET.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::model::Regs;

    #[test]
    fn output_waits_while_the_fifo_is_full() {
        let mut m = Regs::default();
        let full = UTS::TXFULL::SET.value;
        m.script(reg::UTS, &[full, full, 0]);
        ImxUart::new(&mut m).put(b'i');
        assert_eq!(m.reads_of(reg::UTS), 3);
        assert_eq!(m.writes, [(reg::UTXD, u32::from(b'i'))]);
    }

    #[test]
    fn input_is_read_while_data_is_ready() {
        let mut m = Regs::default();
        assert_eq!(ImxUart::new(&mut m).get(), None);
        assert_eq!(m.reads_of(reg::URXD), 0);
        m.set(reg::USR2, (USR2::RDR::SET + USR2::TXFE::SET).value);
        // The status bits above the character are not data.
        m.set(
            reg::URXD,
            (URXD::CHARRDY::SET + URXD::ERR::SET + URXD::RX_DATA.val(u32::from(b'm'))).value,
        );
        assert_eq!(ImxUart::new(&mut m).get(), Some(b'm'));
    }

    #[test]
    fn receive_interrupts_on_off_and_cleared() {
        let mut m = Regs::default();
        // The firmware's UCR1: the UART on; that stays.
        m.set(reg::UCR1, UCR1::UARTEN::SET.value);
        ImxUart::new(&mut m).set_rx_interrupt(true);
        assert_eq!(
            m.get(reg::UCR1),
            (UCR1::UARTEN::SET + UCR1::RRDYEN::SET).value
        );
        assert_eq!(m.get(reg::UCR4), UCR4::DREN::SET.value);
        assert_eq!(
            m.get(reg::UCR2),
            UCR2::RXEN::SET.value,
            "the receiver turned on"
        );
        ImxUart::new(&mut m).clear_rx_interrupt();
        assert_eq!(m.writes_to(reg::USR1), [USR1::AGTIM::SET.value]);
        ImxUart::new(&mut m).set_rx_interrupt(false);
        assert_eq!(m.get(reg::UCR1), UCR1::UARTEN::SET.value);
        assert_eq!(m.get(reg::UCR4), 0);
        assert_eq!(m.get(reg::UCR2), UCR2::RXEN::SET.value, "left on");
    }

    #[test]
    fn a_receiver_the_firmware_enabled_is_not_written() {
        let mut m = Regs::default();
        let firmware = (UCR2::SRST::SET + UCR2::RXEN::SET).value | 1 << 2;
        m.set(reg::UCR2, firmware);
        ImxUart::new(&mut m).set_rx_interrupt(true);
        assert_eq!(m.writes_to(reg::UCR2), [0u32; 0]);
        let mut off = Regs::default();
        off.set(reg::UCR2, UCR2::SRST::SET.value);
        ImxUart::new(&mut off).set_rx_interrupt(true);
        assert_eq!(
            off.writes_to(reg::UCR2),
            [(UCR2::SRST::SET + UCR2::RXEN::SET).value],
            "SRST written as read, so the UART is not reset"
        );
    }
}
