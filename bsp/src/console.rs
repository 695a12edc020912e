//! The machine's console UART as the core uses it, whatever its kind: polled output, input
//! taken on its receive interrupt.

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
    /// Arm PrimeCell PL011 (QEMU virt, many Arm boards).
    Pl011,
}

/// Each kind and the `compatible` strings it drives.
const DRIVERS: &[(Kind, &[&str])] = &[(Kind::Pl011, &["arm,pl011", "arm,sbsa-uart"])];

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
        assert_eq!(Kind::from_compatible(["ns16550a"]), None);
        assert!(Kind::all_compatibles().any(|c| c == "arm,pl011"));
    }
}
