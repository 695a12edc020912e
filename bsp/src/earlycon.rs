//! The console a command line's `earlycon=` option names, in Linux's forms
//! (`Documentation/admin-guide/kernel-parameters.txt`): the last resort when the tree names
//! no UART rhyve can drive.
//!
//! `earlycon=pl011,0x9000000`, `earlycon=pl011,mmio32,0x9000000`,
//! `earlycon=uart8250,mmio32,0xfe660000,1500000n8` (also `uart`, `ns16550`, `ns16550a`),
//! `earlycon=ec_imx6q,0x30890000` (also `ec_imx21`), `earlycon=cdns,0xff000000`.

use crate::bus::Width;
use crate::console::{Config, Kind};

/// The console of the first `earlycon=` option of `bootargs` that rhyve can drive.
pub fn parse(bootargs: &str) -> Option<Config> {
    bootargs
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("earlycon="))
        .find_map(parse_one)
}

/// One option's value: `name,[iotype,]address[,options]`.
fn parse_one(value: &str) -> Option<Config> {
    let mut fields = value.split(',');
    let kind = match fields.next()? {
        "pl011" => Kind::Pl011,
        "uart8250" | "uart" | "ns16550" | "ns16550a" => Kind::Ns16550,
        "ec_imx6q" | "ec_imx21" => Kind::Imx,
        "cdns" => Kind::Cadence,
        _ => return None,
    };
    let mut field = fields.next()?;
    // Linux's iotypes, and the 16550 stride and width each implies.
    let io = match field {
        "mmio" => Some((0, Width::Byte)),
        "mmio16" => Some((1, Width::Half)),
        "mmio32" => Some((2, Width::Word)),
        // Big-endian registers and x86 port I/O: nothing rhyve can reach.
        "mmio32be" | "io" => return None,
        _ => None,
    };
    if io.is_some() {
        field = fields.next()?;
    }
    let mut config = Config::new(kind, parse_address(field)?);
    if let (true, Some((shift, width))) = (kind.has_stride(), io) {
        config.reg_shift = shift;
        config.reg_io_width = width;
    }
    Some(config)
}

/// A `0x`-prefixed hexadecimal or a decimal address.
fn parse_address(text: &str) -> Option<usize> {
    let n = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16).ok()?,
        None => text.parse().ok()?,
    };
    (n != 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(kind: Kind, base: usize, reg_shift: u8, reg_io_width: Width) -> Option<Config> {
        Some(Config {
            kind,
            base,
            reg_shift,
            reg_io_width,
        })
    }

    #[test]
    fn linux_forms() {
        assert_eq!(
            parse("earlycon=pl011,0x9000000"),
            Some(Config::new(Kind::Pl011, 0x900_0000))
        );
        assert_eq!(
            parse("earlycon=pl011,mmio32,0x9000000"),
            Some(Config::new(Kind::Pl011, 0x900_0000))
        );
        assert_eq!(
            parse("console=ttyS2 earlycon=uart8250,mmio32,0xfeb50000,1500000n8 quiet"),
            with(Kind::Ns16550, 0xfeb5_0000, 2, Width::Word)
        );
        assert_eq!(
            parse("earlycon=uart,mmio32,0xfe660000"),
            with(Kind::Ns16550, 0xfe66_0000, 2, Width::Word)
        );
        assert_eq!(
            parse("earlycon=uart8250,mmio,0x10000000"),
            with(Kind::Ns16550, 0x1000_0000, 0, Width::Byte)
        );
        assert_eq!(
            parse("earlycon=ns16550a,mmio16,0x1000"),
            with(Kind::Ns16550, 0x1000, 1, Width::Half)
        );
        // No iotype: 8-bit accesses, as Linux's default.
        assert_eq!(
            parse("earlycon=uart8250,0x1000"),
            with(Kind::Ns16550, 0x1000, 0, Width::Byte)
        );
        assert_eq!(
            parse("earlycon=ec_imx6q,0x30890000,115200"),
            Some(Config::new(Kind::Imx, 0x3089_0000))
        );
        assert_eq!(
            parse("earlycon=ec_imx21,0x02020000"),
            Some(Config::new(Kind::Imx, 0x0202_0000))
        );
        assert_eq!(
            parse("earlycon=cdns,0xff000000"),
            Some(Config::new(Kind::Cadence, 0xff00_0000))
        );
        assert_eq!(
            parse("earlycon=pl011,150994944"),
            Some(Config::new(Kind::Pl011, 0x900_0000))
        );
    }

    #[test]
    fn what_is_not_a_console_rhyve_can_drive() {
        for line in [
            "",
            "console=ttyAMA0",
            // Bare `earlycon`: Linux then uses stdout-path, which rhyve tried first.
            "earlycon",
            "earlycon=",
            "earlycon=uart8250,io,0x3f8",
            "earlycon=uart8250,mmio32be,0x1000",
            "earlycon=sbi",
            "earlycon=pl011",
            "earlycon=pl011,mmio32",
            "earlycon=pl011,0xzz",
            "earlycon=pl011,0x0",
            "earlycon=ec_imx6q,",
            "earlycon=meson,0xff803000",
        ] {
            assert_eq!(parse(line), None, "{line:?}");
        }
        // The first usable option wins.
        assert_eq!(
            parse("earlycon=sbi earlycon=cdns,0xff010000 earlycon=pl011,0x9000000"),
            Some(Config::new(Kind::Cadence, 0xff01_0000))
        );
    }
}
