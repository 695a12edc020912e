//! The machine's console UART as the core uses it, whatever its kind: polled output, input
//! taken on its receive interrupt.

use crate::bus::{Mmio, Width};
use crate::cadence::Cadence;
use crate::imx::ImxUart;
use crate::ns16550::{Ns16550, Variant};
use crate::pl011::Pl011;

/// A console UART driver.
pub trait Uart {
    /// Sends one byte, waiting while the transmit FIFO is full.
    fn put(&mut self, byte: u8);
    /// Takes one received byte, if any.
    fn get(&mut self) -> Option<u8>;
    /// Turns the receive interrupts on or off.
    fn set_rx_interrupt(&mut self, on: bool);
    /// Clears a pending receive interrupt (before draining the FIFO: a byte that arrives after
    /// the last "empty" check then raises it again).
    fn clear_rx_interrupt(&mut self);
}

/// The console UARTs rhyve has a driver for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Arm PrimeCell PL011 (QEMU virt, Versal, many Arm boards).
    Pl011,
    /// A plain 8250/16550A.
    Ns16550,
    /// The Synopsys DesignWare APB UART, a 16550 with a busy-detect interrupt (Rockchip,
    /// Allwinner, ...).
    DwApbUart,
    /// The NXP i.MX UART.
    Imx,
    /// The Cadence UART (Xilinx Zynq, ZynqMP).
    Cadence,
}

/// Each kind and the `compatible` strings it drives. SoC-specific nodes list one of these as
/// their fallback (`"rockchip,rk3588-uart", "snps,dw-apb-uart"`, `"fsl,imx8mp-uart",
/// "fsl,imx6q-uart"`), as Linux's drivers expect.
const DRIVERS: &[(Kind, &[&str])] = &[
    (Kind::Pl011, &["arm,pl011", "arm,sbsa-uart"]),
    (Kind::Ns16550, &["ns16550a", "ns16550"]),
    (Kind::DwApbUart, &["snps,dw-apb-uart"]),
    (
        Kind::Imx,
        &["fsl,imx6q-uart", "fsl,imx53-uart", "fsl,imx21-uart"],
    ),
    (
        Kind::Cadence,
        &["xlnx,xuartps", "cdns,uart-r1p8", "cdns,uart-r1p12"],
    ),
];

impl Kind {
    /// The driver for a node with these `compatible` strings, if rhyve has one.
    pub fn from_compatible<'a>(compatible: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        compatible.into_iter().find_map(|c| {
            DRIVERS
                .iter()
                .find(|(_, names)| names.contains(&c))
                .map(|(kind, _)| *kind)
        })
    }

    /// Every `compatible` string some driver takes.
    pub fn all_compatibles() -> impl Iterator<Item = &'static str> {
        DRIVERS.iter().flat_map(|(_, names)| names.iter().copied())
    }

    /// The kind's name, for the log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pl011 => "PL011",
            Self::Ns16550 => "16550",
            Self::DwApbUart => "DesignWare APB UART",
            Self::Imx => "i.MX UART",
            Self::Cadence => "Cadence UART",
        }
    }

    /// Whether the node's `reg-shift` and `reg-io-width` apply: the 16550 family's
    /// registers are placed by them; the others have one fixed layout of 32-bit registers.
    pub fn has_stride(self) -> bool {
        matches!(self, Self::Ns16550 | Self::DwApbUart)
    }
}

/// A console UART: its driver and what the driver needs to know of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The driver.
    pub kind: Kind,
    /// The register frame's physical address.
    pub base: usize,
    /// Registers are `1 << reg_shift` bytes apart (`reg-shift`; the 16550 family only).
    pub reg_shift: u8,
    /// Every access is this wide (`reg-io-width`; the 16550 family only, whose default is
    /// one byte; the others always take 32-bit accesses).
    pub reg_io_width: Width,
}

impl Config {
    /// A UART of kind `kind` at `base`, with its kind's defaults: registers a byte apart,
    /// accessed a byte at a time for the 16550 family, 32 bits for the others.
    pub fn new(kind: Kind, base: usize) -> Self {
        Self {
            kind,
            base,
            reg_shift: 0,
            reg_io_width: if kind.has_stride() {
                Width::Byte
            } else {
                Width::Word
            },
        }
    }
}

/// The driver of one console UART, of any kind rhyve has: what the core holds.
pub enum Console {
    /// A PL011.
    Pl011(Pl011),
    /// A 16550 or DesignWare APB UART.
    Ns16550(Ns16550<Mmio>),
    /// An i.MX UART.
    Imx(ImxUart<Mmio>),
    /// A Cadence UART.
    Cadence(Cadence<Mmio>),
}

impl Console {
    /// The driver `config` describes.
    ///
    /// # Safety
    /// `config.base` must be the address of such a UART's register frame, accessible as
    /// device memory (MMU off, or identity-mapped) for as long as the driver is used, and
    /// used by nothing else meanwhile.
    pub unsafe fn new(config: &Config) -> Option<Self> {
        let width = if config.kind.has_stride() {
            config.reg_io_width
        } else {
            Width::Word
        };
        // SAFETY: the caller's guarantee.
        let bus = unsafe { Mmio::new(config.base, width) }?;
        Some(match config.kind {
            // SAFETY: the caller's guarantee.
            Kind::Pl011 => Self::Pl011(unsafe { Pl011::new(config.base) }?),
            Kind::Ns16550 => Self::Ns16550(Ns16550::new(bus, config.reg_shift, Variant::Ns16550)),
            Kind::DwApbUart => {
                Self::Ns16550(Ns16550::new(bus, config.reg_shift, Variant::DesignWare))
            }
            Kind::Imx => Self::Imx(ImxUart::new(bus)),
            Kind::Cadence => Self::Cadence(Cadence::new(bus)),
        })
    }
}

impl Uart for Console {
    fn put(&mut self, byte: u8) {
        match self {
            Self::Pl011(u) => u.put(byte),
            Self::Ns16550(u) => u.put(byte),
            Self::Imx(u) => u.put(byte),
            Self::Cadence(u) => u.put(byte),
        }
    }

    fn get(&mut self) -> Option<u8> {
        match self {
            Self::Pl011(u) => u.get(),
            Self::Ns16550(u) => u.get(),
            Self::Imx(u) => u.get(),
            Self::Cadence(u) => u.get(),
        }
    }

    fn set_rx_interrupt(&mut self, on: bool) {
        match self {
            Self::Pl011(u) => u.set_rx_interrupt(on),
            Self::Ns16550(u) => u.set_rx_interrupt(on),
            Self::Imx(u) => u.set_rx_interrupt(on),
            Self::Cadence(u) => u.set_rx_interrupt(on),
        }
    }

    fn clear_rx_interrupt(&mut self) {
        match self {
            Self::Pl011(u) => u.clear_rx_interrupt(),
            Self::Ns16550(u) => u.clear_rx_interrupt(),
            Self::Imx(u) => u.clear_rx_interrupt(),
            Self::Cadence(u) => u.clear_rx_interrupt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_by_compatible() {
        assert_eq!(
            Kind::from_compatible(["arm,pl011", "arm,primecell"]),
            Some(Kind::Pl011)
        );
        assert_eq!(Kind::from_compatible(["arm,sbsa-uart"]), Some(Kind::Pl011));
        assert_eq!(Kind::from_compatible(["ns16550a"]), Some(Kind::Ns16550));
        assert_eq!(
            Kind::from_compatible(["rockchip,rk3588-uart", "snps,dw-apb-uart"]),
            Some(Kind::DwApbUart)
        );
        assert_eq!(
            Kind::from_compatible(["fsl,imx8mp-uart", "fsl,imx6q-uart"]),
            Some(Kind::Imx)
        );
        assert_eq!(
            Kind::from_compatible(["cdns,uart-r1p12", "xlnx,xuartps"]),
            Some(Kind::Cadence)
        );
        // The i.MX 9's LPUART is another device.
        assert_eq!(Kind::from_compatible(["fsl,imx93-lpuart"]), None);
        assert!(Kind::all_compatibles().any(|c| c == "arm,pl011"));
    }

    #[test]
    fn defaults_by_kind() {
        let dw = Config::new(Kind::DwApbUart, 0xfeb5_0000);
        assert_eq!((dw.reg_shift, dw.reg_io_width), (0, Width::Byte));
        let imx = Config::new(Kind::Imx, 0x3089_0000);
        assert_eq!(imx.reg_io_width, Width::Word);
    }

    #[test]
    fn the_console_drives_the_configured_kind() {
        // A 16550 frame, 4-byte stride and accesses: THRE set in LSR (0x14).
        let mut frame = [0u32; 8];
        frame[5] = 1 << 5;
        let config = Config {
            reg_shift: 2,
            reg_io_width: Width::Word,
            ..Config::new(Kind::DwApbUart, frame.as_mut_ptr() as usize)
        };
        // SAFETY: the array stands for the frame and outlives the driver.
        let mut c = unsafe { Console::new(&config) }.expect("non-null");
        c.put(b'q');
        assert_eq!(frame[0], u32::from(b'q'));
        // SAFETY: a null base is refused before any access.
        assert!(unsafe { Console::new(&Config::new(Kind::Imx, 0)) }.is_none());
    }
}
