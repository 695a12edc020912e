//! The machine as its firmware's device tree describes it: RAM, CPUs, GIC, console UART,
//! PSCI conduit, and where the loader put the boot bundle.
//!
//! Nothing about the board is hard-coded here; `bsp` adds only what a tree cannot say
//! (`bsp::quirks`). This is plain logic over the tree's bytes: the image calls it on the
//! firmware's tree at boot, the host tests call it on QEMU's trees (`testdata/dtb/`) and
//! synthetic ones, and `cargo xtask test` (dt-corpus) on the board trees of Debian's kernel.
//!
//! What a board's tree says, as the Linux bindings have it:
//! - RAM: every `/memory*` node (`device_type = "memory"`), every entry of its `reg` (cells as
//!   the root says); entries of size 0 are the boot loader's to fill and are skipped.
//! - Reserved: `/memreserve/` entries and every `/reserved-memory` child with a `reg`
//!   (`no-map` or not). Children with only `size` (and `alloc-ranges`) are pools the OS
//!   that boots allocates; rhyve allocates none, so they are counted and left alone.
//! - GIC: an `arm,gic-v3` node: `reg` is the distributor, then `#redistributor-regions`
//!   (default 1) redistributor regions; `redistributor-stride` if present; its `interrupts`
//!   is the maintenance interrupt. A GICv2 is refused by name.
//! - Timer: the `arm,armv8-timer` node's `interrupts` (secure, non-secure, virtual, hyp PPIs)
//!   and `clock-frequency` (for firmware that left CNTFRQ_EL0 at 0).
//! - PSCI: an `arm,psci*` node (or `/psci`) and its `method`; a board that has PSCI and does
//!   not say so has a quirk in `bsp`.

use fdt::Fdt;

pub mod console;
pub mod nops;

/// How the firmware (PSCI, SMCCC) is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `smc #0` (EL3 firmware; QEMU's built-in PSCI when the hypervisor runs at EL2).
    Smc,
    /// `hvc #0`.
    Hvc,
}

/// A physical range that is RAM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RamRange {
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Most CPUs, RAM ranges and reserved ranges tracked (fixed arrays: this runs before the heap).
pub const MAX_CPUS: usize = 64;
/// Most RAM ranges (all `reg` entries of all `/memory` nodes).
pub const MAX_RANGES: usize = 16;
/// Most reserved ranges (`/memreserve/` and `/reserved-memory`): boards with TF-A, OP-TEE,
/// DSPs and co-processors have a dozen or more.
pub const MAX_RESERVED: usize = 32;
/// Most GICv3 redistributor regions (`#redistributor-regions`).
pub const MAX_GICR_REGIONS: usize = 8;

/// A fixed-capacity list (no heap exists when the tree is read).
#[derive(Clone, Copy, Debug)]
pub struct List<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for List<T, N> {
    fn default() -> Self {
        Self {
            items: [T::default(); N],
            len: 0,
        }
    }
}

impl<T: Copy + Default, const N: usize> List<T, N> {
    /// Appends `item`; returns false when full.
    pub fn push(&mut self, item: T) -> bool {
        if self.len == N {
            return false;
        }
        self.items[self.len] = item;
        self.len += 1;
        true
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// A short text of the tree kept without a heap (a board's name, for messages); cut at
/// [`Name::CAPACITY`] bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; Name::CAPACITY],
    len: u8,
}

impl Name {
    /// Longest text kept (errors carry two, and stay small enough to return by value).
    pub const CAPACITY: usize = 40;

    /// `text`, cut at a character boundary if it is too long.
    pub fn new(text: &str) -> Self {
        let mut len = text.len().min(Self::CAPACITY);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl Default for Name {
    fn default() -> Self {
        Self::new("")
    }
}

impl core::fmt::Debug for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which board a tree describes: the root's `model` and first `compatible`, for messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Board {
    /// The root's `model` (empty if none).
    pub model: Name,
    /// The root's first `compatible` string (empty if none).
    pub compatible: Name,
}

impl core::fmt::Display for Board {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.model.as_str(), self.compatible.as_str()) {
            ("", "") => f.write_str("this board (its tree has no model or compatible)"),
            ("", c) => write!(f, "the board \"{c}\""),
            (m, "") => write!(f, "\"{m}\""),
            (m, c) => write!(f, "\"{m}\" ({c})"),
        }
    }
}

/// The machine's own interrupts as its tree numbers them (INTIDs). The guests' virtual
/// machine has its own numbers (`abi::layout`): these are the physical ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostIntids {
    /// The GIC's maintenance interrupt (the GIC node's `interrupts`).
    pub maintenance: u32,
    /// The secure EL1 physical timer (the timer node's first interrupt; unused by rhyve).
    pub secure_timer: u32,
    /// The non-secure EL1 physical timer (second): a guest's CNTP.
    pub phys_timer: u32,
    /// The EL1 virtual timer (third): a guest's CNTV.
    pub virt_timer: u32,
    /// The EL2 physical timer (fourth): rhyve's own.
    pub hyp_timer: u32,
}

/// What the core needs to know about the machine.
#[derive(Debug, Default)]
pub struct Platform {
    /// Console UART: its driver and where it is (see [`console::find`]).
    pub uart: Option<console::ConsoleUart>,
    /// Console UART interrupt (an SPI's INTID).
    pub uart_intid: Option<u32>,
    /// Which board (root `model` and `compatible`).
    pub board: Board,
    /// GICv3 distributor base.
    pub gicd: usize,
    /// GICv3 redistributor regions (base, size), `#redistributor-regions` of them.
    pub gicr: List<(u64, u64), MAX_GICR_REGIONS>,
    /// The distance between two redistributors (`redistributor-stride`); `None`: as
    /// GICR_TYPER.VLPIS says on the machine (two or four 64 KiB frames).
    pub gicr_stride: Option<u64>,
    /// The machine's GIC maintenance and timer interrupts.
    pub intids: HostIntids,
    /// The timer node's `clock-frequency`: the counter's frequency when the firmware left
    /// CNTFRQ_EL0 at 0.
    pub timer_frequency: Option<u64>,
    /// MPIDR of every CPU, in device-tree order.
    pub cpus: List<u64, MAX_CPUS>,
    /// How to reach PSCI (always set by [`discover`]: a tree without it is refused).
    pub psci: Option<Conduit>,
    /// The board's quirks from `bsp`, when one was needed (PSCI the tree does not name).
    pub quirk: Option<&'static bsp::quirks::Quirk>,
    /// RAM.
    pub ram: List<RamRange, MAX_RANGES>,
    /// Ranges of RAM that are not ours to use: `/memreserve/` and `/reserved-memory`.
    pub reserved: List<(u64, u64), MAX_RESERVED>,
    /// `/reserved-memory` children without `reg` (pools the booted OS allocates from its
    /// `alloc-ranges`): nothing is reserved for them.
    pub reserved_dynamic: usize,
    /// The boot bundle (the "initrd" the loader placed), start and end.
    pub bundle: Option<(u64, u64)>,
    /// Test hook from the hypervisor's own command line (`rhyve.vmm_fault=pl011-write:N`):
    /// make the VMM's UART model fail on purpose.
    pub vmm_fault: abi::vmm::FaultPlan,
    /// The hypervisor's command line asks it to raise guests' virtual IRQs with HCR_EL2.VI
    /// (`rhyve.virq=hcr`), for a machine whose GIC does not signal them from the list
    /// registers.
    pub virq_by_hcr: bool,
    /// The machine's PL031 real-time clock (`arm,pl031`): its register frame, where the
    /// time of day is read at boot.
    pub rtc: Option<u64>,
    /// The machine's virtio-mmio transports (`virtio,mmio` nodes), in tree order: the
    /// candidates for the devices the VMM drives (see `host_devices`).
    pub virtio_mmio: List<VirtioMmioNode, MAX_VIRTIO_MMIO>,
}

/// Most virtio-mmio transports read from the tree (QEMU virt has 32).
pub const MAX_VIRTIO_MMIO: usize = 64;

/// One `virtio,mmio` node.
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtioMmioNode {
    /// Its register frame.
    pub base: u64,
    /// The frame's size.
    pub size: u64,
    /// Its interrupt, if it is an SPI (INTID).
    pub intid: Option<u32>,
}

/// The INTID of the first interrupt of a node's `interrupts`, if it is a GIC SPI.
fn spi_intid(prop: &[u8]) -> Option<u32> {
    if prop.len() < 8 {
        return None;
    }
    let kind = u32::from_be_bytes(prop[0..4].try_into().ok()?);
    let num = u32::from_be_bytes(prop[4..8].try_into().ok()?);
    (kind == GIC_SPI).then_some(abi::IntId::spi(num).0)
}

/// The hypervisor option that plans a VMM fault.
const VMM_FAULT_OPTION: &str = "rhyve.vmm_fault=pl011-write:";

/// The hypervisor option that makes it raise virtual IRQs with HCR_EL2.VI.
const VIRQ_BY_HCR_OPTION: &str = "rhyve.virq=hcr";

/// Whether a command line has [`VIRQ_BY_HCR_OPTION`].
pub fn parse_virq_by_hcr(bootargs: &str) -> bool {
    bootargs.split_whitespace().any(|w| w == VIRQ_BY_HCR_OPTION)
}

/// The VMM fault planned by a command line, if any.
pub fn parse_vmm_fault(bootargs: &str) -> abi::vmm::FaultPlan {
    bootargs
        .split_whitespace()
        .find_map(|w| w.strip_prefix(VMM_FAULT_OPTION))
        .and_then(|n| n.parse::<u32>().ok())
        .map_or(
            abi::vmm::FaultPlan::default(),
            abi::vmm::FaultPlan::pl011_write,
        )
}

/// Why the tree could not be used. Each names the board, for the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformError {
    /// No valid device tree at the address in x0.
    NoDeviceTree,
    /// The interrupt controller is a GICv2 (`compatible` names it); rhyve needs a GICv3.
    GicV2Only {
        /// The board.
        board: Board,
        /// The GIC node's `compatible` string that says GICv2.
        compatible: &'static str,
    },
    /// No `arm,gic-v3` node (and no GICv2 either).
    NoGicV3 {
        /// The board.
        board: Board,
    },
    /// The `arm,gic-v3` node's `reg` has fewer ranges than the distributor and its
    /// `#redistributor-regions`.
    NoRedistributors {
        /// The board.
        board: Board,
        /// Redistributor regions the node says it has.
        regions: usize,
    },
    /// The `arm,gic-v3` node has no `interrupts` naming its maintenance interrupt as a PPI.
    NoMaintenanceInterrupt {
        /// The board.
        board: Board,
    },
    /// No `arm,armv8-timer` node with four PPIs in the GIC's numbering.
    NoTimer {
        /// The board.
        board: Board,
    },
    /// No CPU under `/cpus`.
    NoCpus {
        /// The board.
        board: Board,
    },
    /// No RAM: no `/memory` node, or only entries of size 0 (the boot loader's to fill).
    NoMemory {
        /// The board.
        board: Board,
    },
    /// No PSCI node with method `smc` or `hvc`, and no quirk for the board.
    NoPsci {
        /// The board.
        board: Board,
    },
    /// More of something than rhyve keeps (fixed arrays: the tree is read before the heap).
    TooMany {
        /// The board.
        board: Board,
        /// What there was too much of.
        what: &'static str,
        /// How many rhyve keeps.
        max: usize,
    },
}

impl core::fmt::Display for PlatformError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoDeviceTree => {
                f.write_str("no device tree at the address the loader passed (x0)")
            }
            Self::GicV2Only { board, compatible } => write!(
                f,
                "{board}: its interrupt controller is a GICv2 ({compatible}); rhyve needs a \
                 GICv3 (arm,gic-v3) for its guests' virtual interrupts"
            ),
            Self::NoGicV3 { board } => write!(
                f,
                "{board}: no GICv3 (arm,gic-v3) in the device tree; rhyve needs one"
            ),
            Self::NoRedistributors { board, regions } => write!(
                f,
                "{board}: the GICv3 node's reg has no room for its {regions} redistributor \
                 region(s) after the distributor"
            ),
            Self::NoMaintenanceInterrupt { board } => write!(
                f,
                "{board}: the GICv3 node has no interrupts property naming its maintenance \
                 interrupt (a PPI)"
            ),
            Self::NoTimer { board } => write!(
                f,
                "{board}: no arm,armv8-timer node with its four PPIs (secure, non-secure, \
                 virtual, hypervisor) on the GICv3"
            ),
            Self::NoCpus { board } => write!(f, "{board}: no CPU under /cpus"),
            Self::NoMemory { board } => write!(
                f,
                "{board}: no RAM in the device tree (/memory is missing or of size 0: the \
                 boot loader fills it in, so boot rhyve through the board's boot loader)"
            ),
            Self::NoPsci { board } => write!(
                f,
                "{board}: no PSCI node with method \"smc\" or \"hvc\", and no quirk in \
                 bsp/src/quirks.rs says how to reach its firmware; rhyve needs PSCI to start \
                 and stop CPUs"
            ),
            Self::TooMany { board, what, max } => {
                write!(f, "{board}: more {what} than rhyve keeps ({max})")
            }
        }
    }
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u32::from_be_bytes(bytes.try_into().ok()?) as u64),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// GIC interrupt specifier type cell: 0 = SPI, 1 = PPI.
const GIC_SPI: u32 = 0;
/// The type cell of a PPI.
const GIC_PPI: u32 = 1;

/// `compatible` strings of GICs before v3 (the Linux bindings' arm,gic list): a tree with one
/// of these and no `arm,gic-v3` is refused by name.
const GICV2_COMPATIBLES: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "arm,gic-v2",
    "arm,pl390",
    "arm,arm11mp-gic",
    "arm,arm1176jzf-devchip-gic",
    "arm,eb11mp-gic",
    "arm,tc11mp-gic",
    "brcm,brahma-b15-gic",
    "nvidia,tegra210-agic",
    "qcom,msm-8660-qgic",
    "qcom,msm-qgic2",
];

/// The `compatible` strings of a PSCI node.
const PSCI_COMPATIBLES: &[&str] = &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];

/// Reads the machine description from the firmware's tree.
pub fn discover(fdt: &Fdt<'_>) -> Result<Platform, PlatformError> {
    let mut p = Platform {
        board: board(fdt),
        ..Platform::default()
    };
    read_gic(fdt, &mut p)?;
    read_cpus(fdt, &mut p)?;
    read_psci(fdt, &mut p)?;
    read_memory(fdt, &mut p)?;

    if let Some(chosen) = fdt.find_node("/chosen") {
        let start = chosen
            .property("linux,initrd-start")
            .and_then(|v| be_u64(v.value));
        let end = chosen
            .property("linux,initrd-end")
            .and_then(|v| be_u64(v.value));
        if let (Some(s), Some(e)) = (start, end) {
            if e > s {
                p.bundle = Some((s, e));
            }
        }
        if let Some(args) = chosen.property("bootargs").and_then(|v| v.as_str()) {
            p.vmm_fault = parse_vmm_fault(args);
            p.virq_by_hcr = parse_virq_by_hcr(args);
        }
    }
    p.uart = console::find(fdt);
    p.uart_intid = p.uart.and_then(|u| u.intid);

    for node in fdt.all_nodes() {
        let virtio = node
            .compatible()
            .is_some_and(|c| c.all().any(|s| s == "virtio,mmio"));
        let reg = node.reg().and_then(|mut r| r.next());
        if let (true, Some(reg)) = (virtio, reg) {
            p.virtio_mmio.push(VirtioMmioNode {
                base: reg.starting_address as u64,
                size: reg.size.unwrap_or(0) as u64,
                intid: node
                    .property("interrupts")
                    .and_then(|prop| spi_intid(prop.value)),
            });
        }
    }

    p.rtc = fdt
        .find_compatible(&[bsp::pl031::COMPATIBLE])
        .and_then(|n| n.reg()?.next())
        .map(|r| r.starting_address as u64);

    read_reserved(fdt, &mut p)?;
    Ok(p)
}

/// The root's `model` and first `compatible`.
fn board(fdt: &Fdt<'_>) -> Board {
    let root = fdt.find_node("/");
    let text = |name: &str| {
        root.and_then(|r| r.property(name))
            .and_then(|v| v.value.split(|&b| b == 0).next())
            .and_then(|b| core::str::from_utf8(b).ok())
            .map_or_else(Name::default, Name::new)
    };
    Board {
        model: text("model"),
        compatible: text("compatible"),
    }
}

/// The big-endian cell `n` of a property, if it has one.
fn cell(prop: &[u8], n: usize) -> Option<u32> {
    let bytes = prop.get(n * 4..n * 4 + 4)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// The INTID of a GIC interrupt specifier (type cell, number cell, flags...), if it names a
/// PPI or an SPI.
fn specifier_intid(spec: &[u8]) -> Option<u32> {
    let num = cell(spec, 1)?;
    match cell(spec, 0)? {
        GIC_SPI => num.checked_add(abi::IntId::SPI_BASE),
        GIC_PPI if num < 16 => Some(abi::IntId::ppi(num).0),
        _ => None,
    }
}

/// The INTIDs of an `interrupts` property of `cells`-cell specifiers (a GIC's
/// `#interrupt-cells`: 3, or 4 with a PPI partition).
fn intids(prop: &[u8], cells: usize) -> impl Iterator<Item = Option<u32>> + '_ {
    prop.chunks_exact(cells.max(2) * 4).map(specifier_intid)
}

/// A node's `status` allows its use (absent, "okay" or "ok").
fn available(node: &fdt::node::FdtNode<'_, '_>) -> bool {
    node.property("status")
        .and_then(|s| s.as_str())
        .is_none_or(|s| s == "okay" || s == "ok")
}

/// The GICv3: distributor, redistributor regions and stride, maintenance interrupt; then the
/// timer, whose PPIs are in the GIC's numbering. A GICv2 is refused by name.
fn read_gic(fdt: &Fdt<'_>, p: &mut Platform) -> Result<(), PlatformError> {
    let board = p.board;
    let Some(gic) = fdt.find_compatible(&["arm,gic-v3"]) else {
        let v2 = fdt.all_nodes().find_map(|n| {
            n.compatible()?
                .all()
                .find_map(|c| GICV2_COMPATIBLES.iter().find(|v| **v == c).copied())
        });
        return Err(match v2 {
            Some(compatible) => PlatformError::GicV2Only { board, compatible },
            None => PlatformError::NoGicV3 { board },
        });
    };
    let regions = gic
        .property("#redistributor-regions")
        .and_then(|v| cell(v.value, 0))
        .map_or(1, |n| n as usize);
    if regions > MAX_GICR_REGIONS {
        return Err(PlatformError::TooMany {
            board,
            what: "GICv3 redistributor regions",
            max: MAX_GICR_REGIONS,
        });
    }
    // The distributor, the redistributor regions; then GICv2-compatible frames (GICC, GICH,
    // GICV), which rhyve does not use.
    let mut regs = gic.reg().into_iter().flatten();
    let no_gicr = PlatformError::NoRedistributors { board, regions };
    let d = regs.next().ok_or(no_gicr)?;
    p.gicd = d.starting_address as usize;
    for r in regs.take(regions) {
        p.gicr
            .push((r.starting_address as u64, r.size.unwrap_or(0) as u64));
    }
    if regions == 0 || p.gicr.as_slice().len() < regions {
        return Err(no_gicr);
    }
    p.gicr_stride = gic
        .property("redistributor-stride")
        .and_then(|v| be_u64(v.value))
        .filter(|&s| s > 0);

    let cells = gic.interrupt_cells().unwrap_or(3);
    p.intids.maintenance = gic
        .property("interrupts")
        .and_then(|v| intids(v.value, cells).next().flatten())
        .filter(|&i| abi::IntId(i).is_private())
        .ok_or(PlatformError::NoMaintenanceInterrupt { board })?;

    let gic_phandle = gic.property("phandle").and_then(|v| cell(v.value, 0));
    let no_timer = PlatformError::NoTimer { board };
    let timer = fdt
        .find_compatible(&["arm,armv8-timer", "arm,armv7-timer"])
        .ok_or(no_timer)?;
    // Its PPIs are the GIC's only if it is the timer's interrupt parent (its own, or the
    // root's that it inherits).
    let parent = timer
        .property("interrupt-parent")
        .or_else(|| fdt.find_node("/")?.property("interrupt-parent"))
        .and_then(|v| cell(v.value, 0));
    if parent.is_some() && gic_phandle.is_some() && parent != gic_phandle {
        return Err(no_timer);
    }
    let prop = timer.property("interrupts").ok_or(no_timer)?;
    let mut ppis = intids(prop.value, cells).map(|i| i.filter(|&i| abi::IntId(i).is_private()));
    let mut next = || ppis.next().flatten().ok_or(no_timer);
    p.intids.secure_timer = next()?;
    p.intids.phys_timer = next()?;
    p.intids.virt_timer = next()?;
    p.intids.hyp_timer = next()?;
    p.timer_frequency = timer
        .property("clock-frequency")
        .and_then(|v| be_u64(v.value))
        .filter(|&f| f > 0);
    Ok(())
}

/// The CPUs' MPIDRs, from `/cpus`.
fn read_cpus(fdt: &Fdt<'_>, p: &mut Platform) -> Result<(), PlatformError> {
    let board = p.board;
    if let Some(cpus) = fdt.find_node("/cpus") {
        for cpu in cpus.children() {
            let is_cpu = cpu
                .property("device_type")
                .and_then(|d| d.as_str())
                .is_some_and(|s| s == "cpu");
            if let (true, true, Some(reg)) = (is_cpu, available(&cpu), cpu.property("reg")) {
                if let Some(mpidr) = be_u64(reg.value) {
                    if !p.cpus.push(mpidr) {
                        return Err(PlatformError::TooMany {
                            board,
                            what: "CPUs",
                            max: MAX_CPUS,
                        });
                    }
                }
            }
        }
    }
    if p.cpus.as_slice().is_empty() {
        return Err(PlatformError::NoCpus { board });
    }
    Ok(())
}

/// The PSCI conduit: the tree's PSCI node, else the board's quirk, else the board is refused.
fn read_psci(fdt: &Fdt<'_>, p: &mut Platform) -> Result<(), PlatformError> {
    let node = fdt
        .find_compatible(PSCI_COMPATIBLES)
        .or_else(|| fdt.find_node("/psci"));
    p.psci = node
        .and_then(|n| n.property("method"))
        .and_then(|m| m.as_str())
        .and_then(|m| match m {
            "smc" => Some(Conduit::Smc),
            "hvc" => Some(Conduit::Hvc),
            _ => None,
        });
    if p.psci.is_none() {
        let compatible = fdt
            .find_node("/")
            .and_then(|r| r.compatible())
            .into_iter()
            .flat_map(|c| c.all());
        if let Some(q) = bsp::quirks::lookup(compatible) {
            p.psci = q.psci.map(|c| match c {
                bsp::quirks::PsciConduit::Smc => Conduit::Smc,
                bsp::quirks::PsciConduit::Hvc => Conduit::Hvc,
            });
            p.quirk = Some(q);
        }
    }
    match p.psci {
        Some(_) => Ok(()),
        None => Err(PlatformError::NoPsci { board: p.board }),
    }
}

/// RAM: every entry of every `/memory*` node at the root; entries of size 0 skipped.
fn read_memory(fdt: &Fdt<'_>, p: &mut Platform) -> Result<(), PlatformError> {
    let board = p.board;
    let root = fdt
        .find_node("/")
        .ok_or(PlatformError::NoMemory { board })?;
    for node in root.children() {
        let named = node.name == "memory" || node.name.starts_with("memory@");
        let is_mem = node
            .property("device_type")
            .and_then(|d| d.as_str())
            .is_some_and(|s| s == "memory");
        if !(named && is_mem && available(&node)) {
            continue;
        }
        for r in node.reg().into_iter().flatten() {
            let size = r.size.unwrap_or(0) as u64;
            if size == 0 {
                continue;
            }
            let range = RamRange {
                start: r.starting_address as u64,
                size,
            };
            if !p.ram.push(range) {
                return Err(PlatformError::TooMany {
                    board,
                    what: "RAM ranges",
                    max: MAX_RANGES,
                });
            }
        }
    }
    if p.ram.as_slice().is_empty() {
        return Err(PlatformError::NoMemory { board });
    }
    Ok(())
}

/// What is not ours in RAM: `/memreserve/` entries and `/reserved-memory` children with a
/// `reg` (`no-map` or not: rhyve maps neither into a guest). Disabled children are kept too:
/// reserving more is safe, reserving less is not.
fn read_reserved(fdt: &Fdt<'_>, p: &mut Platform) -> Result<(), PlatformError> {
    let board = p.board;
    let too_many = PlatformError::TooMany {
        board,
        what: "reserved memory ranges",
        max: MAX_RESERVED,
    };
    for r in fdt.memory_reservations() {
        if r.size() > 0 && !p.reserved.push((r.address() as u64, r.size() as u64)) {
            return Err(too_many);
        }
    }
    if let Some(resv) = fdt.find_node("/reserved-memory") {
        for child in resv.children() {
            let Some(regs) = child.reg() else {
                if child.property("size").is_some() {
                    p.reserved_dynamic += 1;
                }
                continue;
            };
            for r in regs {
                let size = r.size.unwrap_or(0) as u64;
                if size > 0 && !p.reserved.push((r.starting_address as u64, size)) {
                    return Err(too_many);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod synthetic;

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str) -> std::vec::Vec<u8> {
        let path = format!("{}/testdata/dtb/{name}.dtb", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn discover_bytes(bytes: &[u8]) -> Result<Platform, PlatformError> {
        discover(&Fdt::new(bytes).map_err(|_| PlatformError::NoDeviceTree)?)
    }

    /// What every QEMU virt tree here has (values from `dtc -O dts` of the files).
    fn check_qemu_virt(p: &Platform, cpus: u64, ram: RamRange) {
        assert_eq!(p.ram.as_slice(), &[ram]);
        let mpidrs: std::vec::Vec<u64> = (0..cpus).collect();
        assert_eq!(p.cpus.as_slice(), mpidrs.as_slice());
        assert_eq!(p.gicd, 0x0800_0000);
        assert_eq!(p.gicr.as_slice(), &[(0x080a_0000, 0x00f6_0000)]);
        assert_eq!(p.psci, Some(Conduit::Smc));
        let uart = p.uart.expect("a console");
        let pl011 = bsp::console::Config::new(bsp::console::Kind::Pl011, 0x0900_0000);
        assert_eq!(
            (uart.config, uart.source),
            (pl011, console::Source::StdoutPath)
        );
        // `interrupts = <0 1 4>`: SPI 1.
        assert_eq!(p.uart_intid, Some(32 + 1));
        assert_eq!(p.bundle, Some((0x4800_0000, 0x4800_0000 + 100_000)));
        assert_eq!(p.rtc, Some(0x0901_0000));
        let virtio = p.virtio_mmio.as_slice();
        assert_eq!(virtio.len(), 32);
        for (n, node) in virtio.iter().enumerate() {
            assert_eq!(node.base, 0x0a00_0000 + 0x200 * n as u64, "transport {n}");
            assert_eq!(node.size, 0x200);
            assert_eq!(node.intid, Some(32 + 16 + n as u32));
        }
    }

    const RAM_768M: RamRange = RamRange {
        start: 0x4000_0000,
        size: 768 << 20,
    };

    #[test]
    fn qemu_virt_one_four_eight_cpus() {
        for cpus in [1, 4, 8] {
            let p = discover_bytes(&tree(&format!("qemu-virt-smp{cpus}"))).unwrap();
            check_qemu_virt(&p, cpus, RAM_768M);
            assert!(p.reserved.as_slice().is_empty());
            assert_eq!(p.vmm_fault, abi::vmm::FaultPlan::default());
        }
    }

    #[test]
    fn qemu_virt_highmem_ram_past_4g_and_bootargs() {
        let p = discover_bytes(&tree("qemu-virt-highmem")).unwrap();
        let six_g = RamRange {
            start: 0x4000_0000,
            size: 6 << 30,
        };
        check_qemu_virt(&p, 8, six_g);
        assert!(six_g.start + six_g.size > 1 << 32);
        assert_eq!(p.vmm_fault, abi::vmm::FaultPlan::pl011_write(7));
        assert!(!p.virq_by_hcr);
    }

    #[test]
    fn the_virq_option_is_one_word_of_the_command_line() {
        assert!(parse_virq_by_hcr("console=x rhyve.virq=hcr quiet"));
        assert!(!parse_virq_by_hcr("rhyve.virq=hcrx rhyve.virq"));
        assert!(!parse_virq_by_hcr(""));
    }

    #[test]
    fn reserved_memory_and_memreserve() {
        let p = discover_bytes(&tree("qemu-virt-reserved")).unwrap();
        check_qemu_virt(&p, 4, RAM_768M);
        assert_eq!(
            p.reserved.as_slice(),
            &[
                (0x7f00_0000, 0x10_0000),
                (0x7e00_0000, 0x80_0000),
                (0x7e80_0000, 0x20_0000)
            ]
        );
    }

    /// `bytes` with the first `from` replaced by `to` (same length): a tree that says
    /// something else.
    fn edited(mut bytes: std::vec::Vec<u8>, from: &[u8], to: &[u8]) -> std::vec::Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("present");
        bytes[at..at + to.len()].copy_from_slice(to);
        bytes
    }

    #[test]
    fn trees_without_what_rhyve_needs_are_refused() {
        let t = tree("qemu-virt-smp1");
        let board = Board {
            model: Name::new("linux,dummy-virt"),
            compatible: Name::new("linux,dummy-virt"),
        };
        let no_gic = edited(t.clone(), b"arm,gic-v3\0", b"arm,gic-v9\0");
        assert_eq!(
            discover_bytes(&no_gic).unwrap_err(),
            PlatformError::NoGicV3 { board }
        );
        // The memory node's `device_type` value (its name is `memory@...`).
        let no_ram = edited(t.clone(), b"memory\0", b"memorx\0");
        assert_eq!(
            discover_bytes(&no_ram).unwrap_err(),
            PlatformError::NoMemory { board }
        );
        // QEMU virt has no quirk: without a PSCI method it is refused.
        let no_psci = edited(t.clone(), b"smc\0", b"xyz\0");
        assert_eq!(
            discover_bytes(&no_psci).unwrap_err(),
            PlatformError::NoPsci { board }
        );
        // A machine without an RTC still boots (its time starts at 0).
        let no_rtc = edited(t.clone(), b"arm,pl031\0", b"arm,pl039\0");
        assert_eq!(discover_bytes(&no_rtc).unwrap().rtc, None);
        assert_eq!(
            discover_bytes(&t[..64]).unwrap_err(),
            PlatformError::NoDeviceTree
        );
    }
}
