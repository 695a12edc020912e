//! `platform::discover` on real boards' device trees, checked against an independent reading
//! of the same trees: `dtc -I dtb -O dts` turns each into text, and the small parser here
//! reads the properties the bindings define (memory, reserved memory, GIC, timer, CPUs, PSCI)
//! from that text, sharing no code with `discover` or the `fdt` crate.
//!
//! The board trees come from Debian's arm64 kernel package: `cargo xtask test` (step
//! dt-corpus) fetches and unpacks them and runs this with `RHYVE_DT_CORPUS` naming the
//! directory (`.../usr/lib/linux-image-*/`); the QEMU trees of `testdata/dtb/` are checked
//! the same way. Needs `dtc` and `fdtput` (Debian's device-tree-compiler), which xtask
//! installs. Ignored by a plain `cargo test`, which has neither the corpus nor, perhaps, dtc.
//!
//! A board tree that leaves RAM to the boot loader (no `/memory`, or `reg = <0 0 0 0>`) must
//! be refused with `NoMemory` naming the board; it is then given a `/memory` node with
//! `fdtput`, as U-Boot does, and must be accepted with that RAM and everything else it has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use fdt::Fdt;
use hypervisor::platform::{self, Conduit, Platform, PlatformError};

/// What a board must come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Accepted, PSCI from its tree.
    Accept,
    /// Accepted, PSCI from the bsp quirk table (the tree has none).
    AcceptByQuirk,
    /// Refused: its GIC is a GICv2.
    RefuseGicV2,
}

/// Where a tree comes from.
#[derive(Clone, Copy)]
enum Source {
    /// Debian's kernel package, path under its dtb directory, without `.dtb`.
    Debian(&'static str),
    /// `hypervisor/testdata/dtb/`, file name without `.dtb`.
    Testdata(&'static str),
}

const BOARDS: &[(Source, Verdict)] = &[
    (Source::Debian("freescale/imx8mp-evk"), Verdict::Accept),
    (Source::Debian("freescale/imx8mq-evk"), Verdict::Accept),
    (Source::Debian("freescale/fsl-ls1088a-rdb"), Verdict::Accept),
    (Source::Debian("freescale/fsl-lx2160a-rdb"), Verdict::Accept),
    (Source::Debian("rockchip/rk3399-rockpro64"), Verdict::Accept),
    (
        Source::Debian("rockchip/rk3568-bpi-r2-pro"),
        Verdict::Accept,
    ),
    (Source::Testdata("qemu-virt-smp4"), Verdict::Accept),
    (Source::Testdata("qemu-virt-highmem"), Verdict::Accept),
    (Source::Testdata("qemu-virt-reserved"), Verdict::Accept),
    (Source::Testdata("qemu-versal-virt"), Verdict::AcceptByQuirk),
    (
        Source::Debian("broadcom/bcm2711-rpi-4-b"),
        Verdict::RefuseGicV2,
    ),
    (Source::Debian("arm/juno-r2"), Verdict::RefuseGicV2),
    (
        Source::Debian("xilinx/zynqmp-zcu102-rev1.0"),
        Verdict::RefuseGicV2,
    ),
];

/// The RAM a boot loader would add to a tree that has none: 2 GiB above the first 2 MiB
/// (which TF-A keeps on Rockchip boards). Any value would do: it is read back through dtc.
const FILLED_RAM: (u64, u64) = (0x20_0000, 0x7fe0_0000);

// ---- The independent reading: dts text to a tree of nodes ----

/// A property's value as dtc prints it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Empty,
    Cells(Vec<u32>),
    Strings(Vec<String>),
    Bytes(Vec<u8>),
}

#[derive(Debug, Default)]
struct Node {
    name: String,
    props: BTreeMap<String, Value>,
    children: Vec<Node>,
}

#[derive(Debug, Default)]
struct Dts {
    root: Node,
    memreserve: Vec<(u64, u64)>,
}

fn number(tok: &str) -> u64 {
    let tok = tok.trim();
    match tok.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => tok.parse(),
    }
    .unwrap_or_else(|_| panic!("not a number: {tok:?}"))
}

fn parse_value(text: &str) -> Value {
    let text = text.trim();
    if text.starts_with('<') {
        let cells = text
            .split(['<', '>', ','])
            .flat_map(str::split_whitespace)
            .map(|t| number(t) as u32)
            .collect();
        Value::Cells(cells)
    } else if text.starts_with('"') {
        // `"a\0b"` (dtc's way for a list), or `"a", "b"`.
        let mut out = Vec::new();
        for quoted in text.split("\", \"") {
            let inner = quoted.trim_matches('"');
            out.extend(inner.split("\\0").map(String::from));
        }
        Value::Strings(out)
    } else if text.starts_with('[') {
        Value::Bytes(
            text.trim_matches(['[', ']'])
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect(),
        )
    } else {
        panic!("unknown value {text:?}")
    }
}

fn parse_dts(text: &str) -> Dts {
    let mut dts = Dts::default();
    let mut stack: Vec<Node> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line == "/dts-v1/;" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("/memreserve/") {
            let nums: Vec<u64> = rest
                .trim_end_matches(';')
                .split_whitespace()
                .map(number)
                .collect();
            dts.memreserve.push((nums[0], nums[1]));
        } else if let Some(name) = line.strip_suffix(" {") {
            // dtc prints no labels from a dtb; a `label: ` would go here.
            let name = name.rsplit(": ").next().unwrap();
            stack.push(Node {
                name: name.to_string(),
                ..Node::default()
            });
        } else if line == "};" {
            let node = stack.pop().expect("balanced braces");
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None => dts.root = node,
            }
        } else if let Some(prop) = line.strip_suffix(';') {
            let node = stack.last_mut().expect("a property inside a node");
            match prop.split_once(" = ") {
                Some((name, value)) => node.props.insert(name.to_string(), parse_value(value)),
                None => node.props.insert(prop.to_string(), Value::Empty),
            };
        } else {
            panic!("dts line not understood: {line:?}");
        }
    }
    assert!(stack.is_empty(), "unbalanced dts");
    dts
}

impl Node {
    fn cells(&self, name: &str) -> Option<&[u32]> {
        match self.props.get(name)? {
            Value::Cells(c) => Some(c),
            _ => None,
        }
    }
    fn cell(&self, name: &str) -> Option<u32> {
        self.cells(name).and_then(|c| c.first().copied())
    }
    fn strings(&self, name: &str) -> Vec<String> {
        match self.props.get(name) {
            Some(Value::Strings(s)) => s.clone(),
            _ => Vec::new(),
        }
    }
    fn string(&self, name: &str) -> Option<String> {
        self.strings(name).into_iter().next()
    }
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn compatible_with(&self, c: &str) -> bool {
        self.strings("compatible").iter().any(|s| s == c)
    }
    fn okay(&self) -> bool {
        self.string("status")
            .is_none_or(|s| s == "okay" || s == "ok")
    }
    /// This node or a descendant matching `f`, with its parent (depth-first, tree order).
    fn find<'a>(&'a self, f: &dyn Fn(&Node) -> bool) -> Option<(&'a Node, &'a Node)> {
        for c in &self.children {
            if f(c) {
                return Some((c, self));
            }
            if let Some(found) = c.find(f) {
                return Some(found);
            }
        }
        None
    }
    /// `#address-cells` / `#size-cells` this node gives its children (defaults 2 and 1).
    fn child_cells(&self) -> (usize, usize) {
        (
            self.cell("#address-cells").unwrap_or(2) as usize,
            self.cell("#size-cells").unwrap_or(1) as usize,
        )
    }
}

fn join(cells: &[u32]) -> u64 {
    cells.iter().fold(0, |acc, &c| (acc << 32) | u64::from(c))
}

/// A `reg` as (address, size) pairs, by the parent's cells.
fn reg(node: &Node, parent: &Node) -> Vec<(u64, u64)> {
    let (ac, sc) = parent.child_cells();
    node.cells("reg")
        .unwrap_or(&[])
        .chunks_exact(ac + sc)
        .map(|e| (join(&e[..ac]), join(&e[ac..])))
        .collect()
}

/// The INTIDs of an `interrupts` property of `n`-cell GIC specifiers (SPI 0, PPI 1).
fn gic_intids(cells: &[u32], n: usize) -> Vec<u32> {
    cells
        .chunks_exact(n)
        .map(|s| match s[0] {
            0 => s[1] + 32,
            1 => s[1] + 16,
            t => panic!("interrupt type {t}"),
        })
        .collect()
}

/// What the dts says, in `Platform`'s terms.
#[derive(Debug, PartialEq)]
struct Reading {
    model: String,
    compatible: String,
    ram: Vec<(u64, u64)>,
    reserved: Vec<(u64, u64)>,
    reserved_dynamic: usize,
    cpus: Vec<u64>,
    gicd: u64,
    gicr: Vec<(u64, u64)>,
    gicr_stride: Option<u64>,
    /// maintenance, secure, non-secure, virtual, hyp.
    intids: [u32; 5],
    timer_frequency: Option<u64>,
    psci: Option<Conduit>,
}

/// The GICv2 `compatible` strings this reading knows (a subset is enough for the corpus).
const GICV2: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,gic-v2",
    "arm,pl390",
];

fn read_dts(d: &Dts) -> Result<Reading, String> {
    let root = &d.root;
    let model = root.string("model").unwrap_or_default();
    let compatible = root.string("compatible").unwrap_or_default();
    let Some((gic, gic_parent)) = root.find(&|n| n.compatible_with("arm,gic-v3")) else {
        let v2 = root
            .find(&|n| GICV2.iter().any(|c| n.compatible_with(c)))
            .map(|(n, _)| n.strings("compatible").join(","));
        return Err(format!("GICv2 {}", v2.unwrap_or_default()));
    };
    let regions = gic.cell("#redistributor-regions").unwrap_or(1) as usize;
    let gic_reg = reg(gic, gic_parent);
    let icells = gic.cell("#interrupt-cells").unwrap() as usize;
    let maintenance = gic_intids(gic.cells("interrupts").unwrap(), icells)[0];
    let (timer, _) = root
        .find(&|n| n.compatible_with("arm,armv8-timer"))
        .unwrap();
    let t = gic_intids(timer.cells("interrupts").unwrap(), icells);

    let cpus_node = root.child("cpus").unwrap();
    let cpus = cpus_node
        .children
        .iter()
        .filter(|c| c.string("device_type").as_deref() == Some("cpu") && c.okay())
        .map(|c| join(c.cells("reg").unwrap()))
        .collect();

    let psci = root
        .find(&|n| n.name == "psci" || n.compatible_with("arm,psci-0.2"))
        .and_then(|(n, _)| n.string("method"))
        .map(|m| match m.as_str() {
            "smc" => Conduit::Smc,
            "hvc" => Conduit::Hvc,
            m => panic!("method {m}"),
        });

    let ram = root
        .children
        .iter()
        .filter(|c| c.name == "memory" || c.name.starts_with("memory@"))
        .filter(|c| c.string("device_type").as_deref() == Some("memory") && c.okay())
        .flat_map(|c| reg(c, root))
        .filter(|r| r.1 > 0)
        .collect();

    let mut reserved: Vec<(u64, u64)> = d.memreserve.iter().copied().filter(|r| r.1 > 0).collect();
    let mut reserved_dynamic = 0;
    if let Some(rm) = root.child("reserved-memory") {
        for c in &rm.children {
            if c.props.contains_key("reg") {
                reserved.extend(reg(c, rm).into_iter().filter(|r| r.1 > 0));
            } else if c.props.contains_key("size") {
                reserved_dynamic += 1;
            }
        }
    }

    Ok(Reading {
        model,
        compatible,
        ram,
        reserved,
        reserved_dynamic,
        cpus,
        gicd: gic_reg[0].0,
        gicr: gic_reg[1..1 + regions].to_vec(),
        gicr_stride: gic.cells("redistributor-stride").map(join),
        intids: [maintenance, t[0], t[1], t[2], t[3]],
        timer_frequency: timer.cell("clock-frequency").map(u64::from),
        psci,
    })
}

/// `Platform` in the same terms, to compare.
fn reading_of(p: &Platform) -> Reading {
    let i = p.intids;
    Reading {
        model: p.board.model.as_str().into(),
        compatible: p.board.compatible.as_str().into(),
        ram: p.ram.as_slice().iter().map(|r| (r.start, r.size)).collect(),
        reserved: p.reserved.as_slice().to_vec(),
        reserved_dynamic: p.reserved_dynamic,
        cpus: p.cpus.as_slice().to_vec(),
        gicd: p.gicd as u64,
        gicr: p.gicr.as_slice().to_vec(),
        gicr_stride: p.gicr_stride,
        intids: [
            i.maintenance,
            i.secure_timer,
            i.phys_timer,
            i.virt_timer,
            i.hyp_timer,
        ],
        timer_frequency: p.timer_frequency,
        psci: if p.quirk.is_some() { None } else { p.psci },
    }
}

// ---- Running it ----

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (Debian: apt-get install device-tree-compiler)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn dts_of(path: &Path) -> Dts {
    let text = run(Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(path));
    parse_dts(&String::from_utf8(text).unwrap())
}

/// A copy of `path` with a `/memory` node, as a boot loader adds one.
fn with_ram(path: &Path, scratch: &Path) -> PathBuf {
    let out = scratch.join(path.file_name().unwrap());
    std::fs::copy(path, &out).unwrap();
    let node = format!("/memory@{:x}", FILLED_RAM.0);
    let reg = [
        FILLED_RAM.0 >> 32,
        FILLED_RAM.0 & 0xffff_ffff,
        FILLED_RAM.1 >> 32,
        FILLED_RAM.1 & 0xffff_ffff,
    ]
    .map(|c| format!("{c:#x}"));
    run(Command::new("fdtput").arg("-c").arg(&out).arg(&node));
    run(Command::new("fdtput")
        .args(["-t", "s"])
        .arg(&out)
        .args([&node, "device_type", "memory"]));
    run(Command::new("fdtput")
        .args(["-t", "x"])
        .arg(&out)
        .args([node.as_str(), "reg"])
        .args(&reg));
    out
}

fn discover_file(path: &Path) -> Result<Platform, PlatformError> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    platform::discover(&Fdt::new(&bytes).map_err(|_| PlatformError::NoDeviceTree)?)
}

fn mib(ranges: &[(u64, u64)]) -> String {
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    format!("{} bank(s), {} MiB", ranges.len(), total >> 20)
}

/// Checks one board; its table row, or why it failed.
fn check(name: &str, path: &Path, verdict: Verdict, scratch: &Path) -> Result<String, String> {
    let expected = read_dts(&dts_of(path));
    let got = discover_file(path);
    match (verdict, expected, got) {
        (
            Verdict::RefuseGicV2,
            Err(v2),
            Err(e @ PlatformError::GicV2Only { board, compatible }),
        ) => {
            let d = dts_of(path);
            let model = d.root.string("model").unwrap_or_default();
            let first = d.root.string("compatible").unwrap_or_default();
            let msg = e.to_string();
            if board.model.as_str() != model
                || board.compatible.as_str() != first
                || !v2.contains(compatible)
                || !msg.contains(&model)
                || !msg.contains("GICv3")
            {
                return Err(format!("refused, but not as the tree says ({v2}): {msg}"));
            }
            Ok(format!("| {name} | refused: {msg} | | | | |"))
        }
        (Verdict::RefuseGicV2, e, g) => Err(format!(
            "expected a GICv2 refusal; dts: {e:?}; discover: {g:?}"
        )),
        (_, Err(e), _) => Err(format!("dts reading: {e}")),
        (_, Ok(expected), got) => {
            let mut note = String::new();
            let (expected, got) = if expected.ram.is_empty() {
                // The boot loader's to fill: refused by name first, then filled.
                match got {
                    Err(PlatformError::NoMemory { board })
                        if board.model.as_str() == expected.model =>
                    {
                        note.push_str(
                            " once RAM is added (the tree has none: refused NoMemory by name)",
                        );
                    }
                    other => {
                        return Err(format!(
                            "no RAM in the tree, expected NoMemory, got {other:?}"
                        ))
                    }
                }
                let filled = with_ram(path, scratch);
                let expected = read_dts(&dts_of(&filled)).map_err(|e| e.to_string())?;
                if expected.ram != [FILLED_RAM] {
                    return Err(format!("fdtput did not add the RAM: {:?}", expected.ram));
                }
                (expected, discover_file(&filled))
            } else {
                (expected, got)
            };
            let p = got.map_err(|e| format!("refused: {e}"))?;
            let got = reading_of(&p);
            let quirk = verdict == Verdict::AcceptByQuirk;
            if got != expected {
                return Err(format!("discover differs from dtc's reading:\n  dts:      {expected:?}\n  discover: {got:?}"));
            }
            if quirk != p.quirk.is_some() || p.psci.is_none() {
                return Err(format!(
                    "PSCI: expected {} , got {:?} quirk {:?}",
                    if quirk { "by quirk" } else { "from the tree" },
                    p.psci,
                    p.quirk.map(|q| q.compatible)
                ));
            }
            let psci = match (p.psci, quirk) {
                (Some(c), false) => format!("{c:?}"),
                (Some(c), true) => format!("{c:?} (quirk)"),
                (None, _) => unreachable!(),
            };
            let i = p.intids;
            Ok(format!(
                "| {name} | accepted{note} | {} | {} | GICD {:#x}, GICR {}{} | {psci} | maint {}, timers {}/{}/{}/{} |",
                mib(&got.ram) + &if got.reserved.is_empty() { String::new() } else { format!(", {} reserved", got.reserved.len()) },
                got.cpus.len(),
                got.gicd,
                got.gicr.iter().map(|(b, s)| format!("{b:#x}+{s:#x}")).collect::<Vec<_>>().join(" "),
                got.gicr_stride.map_or(String::new(), |s| format!(" stride {s:#x}")),
                i.maintenance, i.secure_timer, i.phys_timer, i.virt_timer, i.hyp_timer,
            ))
        }
    }
}

#[test]
#[ignore = "needs the board trees: `cargo xtask test` runs it as dt-corpus"]
fn board_trees_against_dtc() {
    let corpus = std::env::var_os("RHYVE_DT_CORPUS").map(PathBuf::from).expect(
        "RHYVE_DT_CORPUS names the dtb directory of Debian's arm64 kernel package (cargo xtask test sets it)",
    );
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dtb");
    let scratch = std::env::temp_dir().join(format!("rhyve-dt-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &(source, verdict) in BOARDS {
        let (name, path) = match source {
            Source::Debian(n) => (n, corpus.join(format!("{n}.dtb"))),
            Source::Testdata(n) => (n, testdata.join(format!("{n}.dtb"))),
        };
        match check(name, &path, verdict, &scratch) {
            Ok(row) => rows.push(row),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("| board | verdict | memory | CPUs | GIC regions | PSCI | host INTIDs (maint, timers S/NS/V/H) |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_dts_reader_reads_what_dtc_prints() {
    let d = parse_dts(
        "/dts-v1/;\n/memreserve/\t0x80000000 0x10000;\n/ {\n\tmodel = \"B\";\n\tcompatible = \"v,b\\0v,s\";\n\
         \t#address-cells = <0x02>;\n\t#size-cells = <0x02>;\n\tmemory@0 {\n\t\tdevice_type = \"memory\";\n\
         \t\treg = <0x00 0x00 0x00 0x80000000 0x08 0x00 0x00 0x80000000>;\n\t};\n\tx {\n\t\tno-map;\n\t\tb = [01 ff];\n\t};\n};\n",
    );
    assert_eq!(d.memreserve, [(0x8000_0000, 0x1_0000)]);
    assert_eq!(d.root.strings("compatible"), ["v,b", "v,s"]);
    let m = d.root.child("memory@0").unwrap();
    assert_eq!(
        reg(m, &d.root),
        [(0, 0x8000_0000), (0x8_0000_0000, 0x8000_0000)]
    );
    let x = d.root.child("x").unwrap();
    assert_eq!(x.props["no-map"], Value::Empty);
    assert_eq!(x.props["b"], Value::Bytes(vec![1, 0xff]));
}
