//! The 8250/16550 UART family (`ns16550a`, `ns16550`) and the Synopsys DesignWare APB UART
//! built on it (`snps,dw-apb-uart`: Rockchip, Allwinner, many others), polled for output, with
//! receive interrupts for input.
//!
//! Registers are 8-bit, `1 << reg-shift` bytes apart, accessed `reg-io-width` bytes at a time
//! (the DesignWare UART decodes only 32-bit accesses). The firmware has set the line up: the
//! baud rate and framing (LCR, DLL/DLM) are left as they are.
//!
//! The `uart_16550` crate does not fit: its MMIO port makes 8-bit accesses only, its register
//! offsets stop at the scratch register (no DesignWare USR), and its backend is sealed, so it
//! can be neither given 32-bit accesses nor tested against a model of the registers.

use crate::bus::Bus;
use crate::console::Uart;
use tock_registers::register_bitfields;
use tock_registers::LocalRegisterCopy;

/// Register numbers (the byte offset is the number shifted left by `reg-shift`).
mod reg {
    /// RBR (read) / THR (write), with LCR.DLAB clear.
    pub const DATA: usize = 0;
    /// IER.
    pub const IER: usize = 1;
    /// IIR (read).
    pub const IIR: usize = 2;
    /// MCR.
    pub const MCR: usize = 4;
    /// LSR.
    pub const LSR: usize = 5;
    /// DesignWare USR.
    pub const USR: usize = 0x1f;
}

register_bitfields! {u8,
    /// Interrupt enable register.
    pub IER [
        /// Receiver line status (errors, break).
        ELSI OFFSET(2) NUMBITS(1) [],
        /// Transmit holding register empty.
        ETBEI OFFSET(1) NUMBITS(1) [],
        /// Received data available (and, FIFOs on, the character timeout).
        ERBFI OFFSET(0) NUMBITS(1) []
    ],
    /// Interrupt identification register.
    pub IIR [
        /// The highest-priority pending interrupt.
        IID OFFSET(0) NUMBITS(4) [
            ModemStatus = 0x0,
            NoInterrupt = 0x1,
            ThrEmpty = 0x2,
            RxData = 0x4,
            RxLineStatus = 0x6,
            /// DesignWare: LCR was written while the UART was busy; cleared by reading USR.
            BusyDetect = 0x7,
            CharTimeout = 0xc
        ]
    ],
    /// Modem control register.
    pub MCR [
        /// OUT2: gates the interrupt line on PC-style wiring; harmless elsewhere.
        OUT2 OFFSET(3) NUMBITS(1) []
    ],
    /// Line status register.
    pub LSR [
        /// Transmitter empty (holding register and shift register).
        TEMT OFFSET(6) NUMBITS(1) [],
        /// Transmit holding register (or FIFO) empty.
        THRE OFFSET(5) NUMBITS(1) [],
        /// Overrun error.
        OE OFFSET(1) NUMBITS(1) [],
        /// Data ready.
        DR OFFSET(0) NUMBITS(1) []
    ],
    /// DesignWare UART status register.
    pub USR [
        /// The UART is busy (transferring).
        BUSY OFFSET(0) NUMBITS(1) []
    ]
}

/// Which member of the family: what it adds to the 16550's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A plain 16550A.
    Ns16550,
    /// The DesignWare APB UART: the busy-detect interrupt, cleared through USR.
    DesignWare,
}

/// A 16550-compatible UART.
pub struct Ns16550<B> {
    bus: B,
    shift: u8,
    variant: Variant,
}

impl<B: Bus> Ns16550<B> {
    /// The UART on `bus`, its registers `1 << reg_shift` bytes apart.
    pub fn new(bus: B, reg_shift: u8, variant: Variant) -> Self {
        Self {
            bus,
            shift: reg_shift,
            variant,
        }
    }

    fn read(&mut self, reg: usize) -> u8 {
        // The registers are 8 bits wide, whatever the access width.
        self.bus.read(reg << self.shift) as u8
    }

    fn write(&mut self, reg: usize, value: u8) {
        self.bus.write(reg << self.shift, u32::from(value));
    }

    fn lsr(&mut self) -> LocalRegisterCopy<u8, LSR::Register> {
        LocalRegisterCopy::new(self.read(reg::LSR))
    }
}

impl<B: Bus> Uart for Ns16550<B> {
    fn put(&mut self, byte: u8) {
        while !self.lsr().is_set(LSR::THRE) {}
        self.write(reg::DATA, byte);
    }

    fn get(&mut self) -> Option<u8> {
        // Reading LSR also clears its error bits: a broken byte is still passed on.
        self.lsr().is_set(LSR::DR).then(|| self.read(reg::DATA))
    }

    fn set_rx_interrupt(&mut self, on: bool) {
        // IER whole: whatever the firmware enabled (transmit-empty, modem status) would
        // otherwise keep the line raised with nobody to clear it.
        let ier = if on { IER::ERBFI::SET.value } else { 0 };
        if on {
            let mut mcr = LocalRegisterCopy::<u8, MCR::Register>::new(self.read(reg::MCR));
            mcr.modify(MCR::OUT2::SET);
            self.write(reg::MCR, mcr.get());
        }
        self.write(reg::IER, ier);
    }

    fn clear_rx_interrupt(&mut self) {
        // Received-data and timeout interrupts clear as the FIFO is drained; line status
        // clears on the LSR read each `get` makes. Only busy-detect needs a read of its own.
        let iir = LocalRegisterCopy::<u8, IIR::Register>::new(self.read(reg::IIR));
        if self.variant == Variant::DesignWare && iir.matches_all(IIR::IID::BusyDetect) {
            let _ = self.read(reg::USR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::model::Regs;

    fn uart(m: &mut Regs, shift: u8, variant: Variant) -> Ns16550<&mut Regs> {
        Ns16550::new(m, shift, variant)
    }

    #[test]
    fn output_waits_for_the_holding_register_to_empty() {
        let mut m = Regs::default();
        let thre = u32::from(LSR::THRE::SET.value);
        m.script(reg::LSR, &[0, 0, thre]);
        uart(&mut m, 0, Variant::Ns16550).put(b'r');
        assert_eq!(m.reads_of(reg::LSR), 3);
        assert_eq!(m.writes_to(reg::DATA), [u32::from(b'r')]);
    }

    #[test]
    fn registers_are_a_stride_apart() {
        // RK3588: `reg-shift = <2>`, `reg-io-width = <4>`.
        let mut m = Regs::default();
        m.set(reg::LSR << 2, u32::from(LSR::THRE::SET.value));
        uart(&mut m, 2, Variant::DesignWare).put(b'k');
        assert_eq!(m.reads, [0x14]);
        assert_eq!(m.writes, [(0x00, u32::from(b'k'))]);
        uart(&mut m, 2, Variant::DesignWare).set_rx_interrupt(true);
        assert_eq!(m.get(0x04), u32::from(IER::ERBFI::SET.value));
        assert_eq!(m.get(0x10), u32::from(MCR::OUT2::SET.value));
    }

    #[test]
    fn input_is_read_while_data_is_ready() {
        let mut m = Regs::default();
        assert_eq!(uart(&mut m, 0, Variant::Ns16550).get(), None);
        assert_eq!(m.reads_of(reg::DATA), 0, "no data read when none is ready");
        m.set(reg::LSR, u32::from((LSR::DR::SET + LSR::OE::SET).value));
        m.set(reg::DATA, u32::from(b'x'));
        assert_eq!(uart(&mut m, 0, Variant::Ns16550).get(), Some(b'x'));
    }

    #[test]
    fn receive_interrupts_on_off_and_cleared() {
        let mut m = Regs::default();
        // What firmware may leave on: transmit-empty and line status.
        m.set(
            reg::IER,
            u32::from((IER::ETBEI::SET + IER::ELSI::SET).value),
        );
        m.set(reg::MCR, 0x3);
        uart(&mut m, 0, Variant::Ns16550).set_rx_interrupt(true);
        assert_eq!(m.get(reg::IER), u32::from(IER::ERBFI::SET.value));
        // OUT2 added; DTR and RTS kept.
        assert_eq!(m.get(reg::MCR), 0x3 | u32::from(MCR::OUT2::SET.value));
        m.set(reg::IIR, u32::from(IIR::IID::RxData.value));
        uart(&mut m, 0, Variant::Ns16550).clear_rx_interrupt();
        assert_eq!(m.reads_of(reg::IIR), 1);
        uart(&mut m, 0, Variant::Ns16550).set_rx_interrupt(false);
        assert_eq!(m.get(reg::IER), 0);
    }

    #[test]
    fn designware_busy_detect_is_cleared_through_usr() {
        let mut m = Regs::default();
        m.set(reg::IIR << 2, u32::from(IIR::IID::BusyDetect.value));
        uart(&mut m, 2, Variant::DesignWare).clear_rx_interrupt();
        assert_eq!(m.reads_of(0x7c), 1, "USR read at 0x1f << 2");
        // A plain 16550 has no USR: 0x7 means nothing there, and nothing is read.
        let mut m = Regs::default();
        m.set(reg::IIR, u32::from(IIR::IID::BusyDetect.value));
        uart(&mut m, 0, Variant::Ns16550).clear_rx_interrupt();
        assert_eq!(m.reads, [reg::IIR]);
    }
}
