//! Which UART is the machine's console: the one `/chosen/stdout-path` names, else the first
//! enabled UART rhyve has a driver for, else the one the command line's `earlycon=` names.
//!
//! It reads nothing else of the tree, so the core can call it on its own before
//! [`super::discover`]: whatever else the tree lacks, rhyve can then say so.

use bsp::bus::Width;
use bsp::console::{Config, Kind};
use fdt::node::FdtNode;
use fdt::Fdt;

/// Where the console's description came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The node `/chosen/stdout-path` names.
    StdoutPath,
    /// The first enabled UART node rhyve has a driver for.
    FirstEnabled,
    /// The `earlycon=` option of `/chosen/bootargs`.
    Earlycon,
}

impl Source {
    /// How the log says it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::StdoutPath => "the tree's stdout-path",
            Self::FirstEnabled => "the tree's first enabled UART",
            Self::Earlycon => "earlycon= in bootargs",
        }
    }
}

/// The console UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleUart {
    /// Its driver and what the driver needs.
    pub config: Config,
    /// Its interrupt (an SPI's INTID), if the node names one.
    pub intid: Option<u32>,
    /// Where it was found.
    pub source: Source,
}

/// The machine's console UART, if the tree names one rhyve can drive.
pub fn find(fdt: &Fdt<'_>) -> Option<ConsoleUart> {
    let chosen = node_at(fdt, "/chosen");
    let string = |name| chosen.as_ref()?.property(name)?.as_str();
    let stdout = string("stdout-path")
        .or_else(|| string("linux,stdout-path"))
        .and_then(|path| stdout_node(fdt, path))
        .and_then(|node| from_node(&node, Source::StdoutPath));
    stdout
        .or_else(|| {
            fdt.all_nodes()
                .find_map(|node| from_node(&node, Source::FirstEnabled))
        })
        .or_else(|| {
            Some(ConsoleUart {
                config: bsp::earlycon::parse(string("bootargs")?)?,
                intid: None,
                source: Source::Earlycon,
            })
        })
}

/// The node a `stdout-path` value names: a path or an alias, with the line's options
/// (`:115200n8`) left off.
fn stdout_node<'b, 'a>(fdt: &'b Fdt<'a>, value: &str) -> Option<FdtNode<'b, 'a>> {
    let name = value.split(':').next().unwrap_or(value);
    if name.starts_with('/') {
        node_at(fdt, name)
    } else {
        let aliases = node_at(fdt, "/aliases")?;
        node_at(fdt, aliases.property(name)?.as_str()?)
    }
}

/// The node at the absolute `path`, each component matched as Linux does: by full name, or by
/// name without unit address when the component has none.
///
/// It walks the children itself: `Fdt::find_node` loses its way past a node holding NOP
/// tokens, which libfdt leaves wherever firmware edited the tree (QEMU and U-Boot do), and
/// then finds no node after it.
pub fn node_at<'b, 'a>(fdt: &'b Fdt<'a>, path: &str) -> Option<FdtNode<'b, 'a>> {
    let mut node = fdt.all_nodes().next()?;
    for part in path.strip_prefix('/')?.split('/').filter(|p| !p.is_empty()) {
        node = node.children().find(|c| {
            c.name == part || (!part.contains('@') && c.name.split('@').next() == Some(part))
        })?;
    }
    Some(node)
}

/// A node's status allows its use: `status` absent, `"okay"` or the older `"ok"`.
fn enabled(node: &FdtNode<'_, '_>) -> bool {
    node.property("status")
        .and_then(|s| s.as_str())
        .is_none_or(|s| s == "okay" || s == "ok")
}

/// The largest `reg-shift` taken: registers 256 bytes apart are already no UART's.
const MAX_REG_SHIFT: u32 = 8;

/// The console `node` describes, if it is an enabled UART rhyve can drive.
fn from_node(node: &FdtNode<'_, '_>, source: Source) -> Option<ConsoleUart> {
    let kind = Kind::from_compatible(node.compatible()?.all())?;
    if !enabled(node) {
        return None;
    }
    let base = node.reg()?.next()?.starting_address as usize;
    let mut config = Config::new(kind, base);
    if kind.has_stride() {
        let cell = |name| {
            node.property(name)
                .map(|p| p.as_usize().and_then(|v| u32::try_from(v).ok()))
        };
        // A value rhyve cannot honour makes the node unusable, not silently misdriven.
        if let Some(shift) = cell("reg-shift") {
            config.reg_shift = shift.filter(|&s| s <= MAX_REG_SHIFT)? as u8;
        }
        if let Some(width) = cell("reg-io-width") {
            config.reg_io_width = Width::from_bytes(u8::try_from(width?).ok()?)?;
        }
    }
    Some(ConsoleUart {
        config,
        intid: node
            .property("interrupts")
            .and_then(|p| super::spi_intid(p.value)),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// A UART node to put in a test tree.
    #[derive(Clone, Copy)]
    struct Node {
        name: &'static str,
        compatible: &'static [&'static str],
        base: u64,
        status: Option<&'static str>,
        reg_shift: Option<u32>,
        reg_io_width: Option<u32>,
        spi: Option<u32>,
    }

    const PL011: Node = Node {
        name: "pl011@9000000",
        compatible: &["arm,pl011", "arm,primecell"],
        base: 0x900_0000,
        status: None,
        reg_shift: None,
        reg_io_width: None,
        spi: Some(1),
    };

    /// RK3588's UART2, as its tree describes it.
    const RK_UART2: Node = Node {
        name: "serial@feb50000",
        compatible: &["rockchip,rk3588-uart", "snps,dw-apb-uart"],
        base: 0xfeb5_0000,
        status: Some("okay"),
        reg_shift: Some(2),
        reg_io_width: Some(4),
        spi: Some(333),
    };

    /// A tree of `uarts` under the root, with `/chosen`'s `stdout-path` and `bootargs` and
    /// `/aliases` as given.
    fn tree(
        stdout: Option<(&str, &str)>,
        bootargs: Option<&str>,
        aliases: &[(&str, &str)],
        uarts: &[Node],
    ) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        if let Some((prop, path)) = stdout {
            w.property_string(prop, path).unwrap();
        }
        if let Some(args) = bootargs {
            w.property_string("bootargs", args).unwrap();
        }
        w.end_node(chosen).unwrap();
        if !aliases.is_empty() {
            let a = w.begin_node("aliases").unwrap();
            for (name, path) in aliases {
                w.property_string(name, path).unwrap();
            }
            w.end_node(a).unwrap();
        }
        for u in uarts {
            let n = w.begin_node(u.name).unwrap();
            w.property_string_list(
                "compatible",
                u.compatible.iter().map(|s| s.to_string()).collect(),
            )
            .unwrap();
            w.property_array_u64("reg", &[u.base, 0x1000]).unwrap();
            if let Some(s) = u.status {
                w.property_string("status", s).unwrap();
            }
            if let Some(v) = u.reg_shift {
                w.property_u32("reg-shift", v).unwrap();
            }
            if let Some(v) = u.reg_io_width {
                w.property_u32("reg-io-width", v).unwrap();
            }
            if let Some(spi) = u.spi {
                w.property_array_u32("interrupts", &[0, spi, 4]).unwrap();
            }
            w.end_node(n).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// `tree` with a NOP token between sibling nodes, as libfdt leaves them where firmware
    /// deleted a node (QEMU does, for the memory node it rewrites; devicetree spec 5.4.1:
    /// FDT_NOP is ignored).
    fn with_nops(tree: &[u8]) -> Vec<u8> {
        let be = |at: usize| u32::from_be_bytes(tree[at..at + 4].try_into().unwrap()) as usize;
        let (off_struct, size_struct) = (be(8), be(36));
        let mut out = tree[..off_struct].to_vec();
        let mut at = off_struct;
        let mut added = 0;
        while at < off_struct + size_struct {
            let token = be(at);
            let len = match token {
                // FDT_BEGIN_NODE: the name, NUL-terminated, padded to 4 bytes.
                1 => 4 + (tree[at + 4..].iter().position(|&b| b == 0).unwrap() + 1).div_ceil(4) * 4,
                // FDT_PROP: length and name offset, then the value, padded.
                3 => 12 + be(at + 4).div_ceil(4) * 4,
                _ => 4,
            };
            out.extend_from_slice(&tree[at..at + len]);
            // FDT_END_NODE followed by FDT_BEGIN_NODE.
            if token == 2 && be(at + len) == 1 {
                out.extend_from_slice(&4u32.to_be_bytes());
                added += 4;
            }
            at += len;
        }
        out.extend_from_slice(&tree[at..]);
        let mut set = |field: usize, value: usize| {
            out[field..field + 4].copy_from_slice(&(value as u32).to_be_bytes())
        };
        set(4, tree.len() + added);
        set(12, be(12) + added);
        set(36, size_struct + added);
        out
    }

    #[test]
    fn paths_past_nop_tokens() {
        // The UART one level down, as SoC trees have it.
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("stdout-path", "serial2:1500000n8")
            .unwrap();
        w.end_node(chosen).unwrap();
        let aliases = w.begin_node("aliases").unwrap();
        w.property_string("serial2", "/soc/serial@feb50000")
            .unwrap();
        w.end_node(aliases).unwrap();
        let soc = w.begin_node("soc").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_null("ranges").unwrap();
        let n = w.begin_node("serial@feb50000").unwrap();
        w.property_string_list("compatible", vec!["snps,dw-apb-uart".into()])
            .unwrap();
        w.property_array_u64("reg", &[0xfeb5_0000, 0x100]).unwrap();
        w.end_node(n).unwrap();
        w.end_node(soc).unwrap();
        w.end_node(root).unwrap();
        let nested = with_nops(&w.finish().unwrap());
        let fdt = Fdt::new(&nested).unwrap();
        // What `Fdt::find_node` would not find.
        assert!(fdt.find_node("/soc/serial@feb50000").is_none());
        assert!(node_at(&fdt, "/soc/serial@feb50000").is_some());
        assert!(node_at(&fdt, "/soc/serial").is_some());
        assert!(node_at(&fdt, "/soc/serial@feb5").is_none());
        let c = find(&fdt).unwrap();
        assert_eq!((c.config.base, c.source), (0xfeb5_0000, Source::StdoutPath));
    }

    fn find_in(bytes: &[u8]) -> Option<ConsoleUart> {
        find(&Fdt::new(bytes).unwrap())
    }

    #[test]
    fn stdout_path_through_an_alias_with_options() {
        // The PL011 comes first in the tree, but stdout-path names the DesignWare UART.
        let t = tree(
            Some(("stdout-path", "serial2:1500000n8")),
            None,
            &[
                ("serial0", "/pl011@9000000"),
                ("serial2", "/serial@feb50000"),
            ],
            &[PL011, RK_UART2],
        );
        let c = find_in(&t).unwrap();
        assert_eq!(c.source, Source::StdoutPath);
        assert_eq!(c.config.kind, Kind::DwApbUart);
        assert_eq!(c.config.base, 0xfeb5_0000);
        assert_eq!(
            (c.config.reg_shift, c.config.reg_io_width),
            (2, Width::Word)
        );
        assert_eq!(c.intid, Some(32 + 333));
    }

    #[test]
    fn stdout_path_as_a_path_and_the_legacy_property() {
        for prop in ["stdout-path", "linux,stdout-path"] {
            let t = tree(
                Some((prop, "/serial@feb50000:115200n8")),
                None,
                &[],
                &[PL011, RK_UART2],
            );
            let c = find_in(&t).unwrap();
            assert_eq!(
                (c.config.kind, c.source),
                (Kind::DwApbUart, Source::StdoutPath)
            );
        }
    }

    #[test]
    fn disabled_nodes_are_passed_over() {
        let off = Node {
            status: Some("disabled"),
            ..PL011
        };
        let imx = Node {
            name: "serial@30890000",
            compatible: &["fsl,imx8mp-uart", "fsl,imx6q-uart"],
            base: 0x3089_0000,
            status: Some("okay"),
            reg_shift: None,
            reg_io_width: None,
            spi: Some(27),
        };
        // No stdout-path: the first enabled one.
        let c = find_in(&tree(None, None, &[], &[off, imx])).unwrap();
        assert_eq!((c.config.kind, c.source), (Kind::Imx, Source::FirstEnabled));
        assert_eq!(c.config, Config::new(Kind::Imx, 0x3089_0000));
        // A stdout-path naming a disabled node: the same.
        let t = tree(
            Some(("stdout-path", "serial0")),
            None,
            &[("serial0", "/pl011@9000000")],
            &[off, imx],
        );
        assert_eq!(find_in(&t).unwrap().source, Source::FirstEnabled);
    }

    #[test]
    fn stride_and_width_of_the_16550_family() {
        let ns = Node {
            name: "uart@10000000",
            compatible: &["ns16550a"],
            base: 0x1000_0000,
            status: None,
            reg_shift: None,
            reg_io_width: None,
            spi: None,
        };
        // Neither property: registers a byte apart, byte accesses.
        let c = find_in(&tree(None, None, &[], &[ns])).unwrap();
        assert_eq!(c.config, Config::new(Kind::Ns16550, 0x1000_0000));
        assert_eq!(c.intid, None);
        let wide = Node {
            reg_shift: Some(1),
            reg_io_width: Some(2),
            ..ns
        };
        let c = find_in(&tree(None, None, &[], &[wide])).unwrap();
        assert_eq!(
            (c.config.reg_shift, c.config.reg_io_width),
            (1, Width::Half)
        );
        // An 8-byte width or a 1 KiB stride is nothing rhyve can drive: the next UART.
        for bad in [
            Node {
                reg_io_width: Some(8),
                ..ns
            },
            Node {
                reg_shift: Some(10),
                ..ns
            },
        ] {
            let c = find_in(&tree(None, None, &[], &[bad, PL011])).unwrap();
            assert_eq!(c.config.kind, Kind::Pl011);
        }
        // The PL011 has one layout: a stray reg-shift changes nothing.
        let odd = Node {
            reg_shift: Some(2),
            ..PL011
        };
        let c = find_in(&tree(None, None, &[], &[odd])).unwrap();
        assert_eq!(c.config, Config::new(Kind::Pl011, 0x900_0000));
    }

    #[test]
    fn earlycon_when_the_tree_has_no_uart_rhyve_drives() {
        let meson = Node {
            name: "serial@ff803000",
            compatible: &["amlogic,meson-gx-uart"],
            base: 0xff80_3000,
            status: None,
            reg_shift: None,
            reg_io_width: None,
            spi: None,
        };
        let t = tree(
            Some(("stdout-path", "serial0:115200n8")),
            Some("console=ttyS2 earlycon=uart8250,mmio32,0xfeb50000"),
            &[("serial0", "/serial@ff803000")],
            &[meson],
        );
        let c = find_in(&t).unwrap();
        assert_eq!(c.source, Source::Earlycon);
        assert_eq!(
            (c.config.kind, c.config.base, c.config.reg_shift),
            (Kind::Ns16550, 0xfeb5_0000, 2)
        );
        assert_eq!(c.intid, None);
        // Nothing at all.
        assert_eq!(find_in(&tree(None, Some("quiet"), &[], &[meson])), None);
        assert_eq!(find_in(&tree(None, None, &[], &[])), None);
        // An alias that leads nowhere.
        let t = tree(Some(("stdout-path", "serial9")), None, &[], &[]);
        assert_eq!(find_in(&t), None);
    }
}
