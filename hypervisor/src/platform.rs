//! The machine as its firmware's device tree describes it: RAM, CPUs, GIC, console UART,
//! PSCI conduit, and where the loader put the boot bundle.
//!
//! Nothing about the board is hard-coded here; `bsp` adds only what a tree cannot say. This is
//! plain logic over the tree's bytes: the image calls it on the firmware's tree at boot, the
//! host tests call it on real trees (`tests/dtb/`).

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
const MAX_RANGES: usize = 16;

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

/// What the core needs to know about the machine.
#[derive(Debug, Default)]
pub struct Platform {
    /// Console UART: its driver and where it is (see [`console::find`]).
    pub uart: Option<console::ConsoleUart>,
    /// Console UART interrupt (an SPI's INTID).
    pub uart_intid: Option<u32>,
    /// GICv3 distributor base.
    pub gicd: usize,
    /// GICv3 redistributor regions (base, size).
    pub gicr: List<(u64, u64), 4>,
    /// MPIDR of every CPU, in device-tree order.
    pub cpus: List<u64, MAX_CPUS>,
    /// How to reach PSCI.
    pub psci: Option<Conduit>,
    /// RAM.
    pub ram: List<RamRange, MAX_RANGES>,
    /// Ranges of RAM that are not ours to use.
    pub reserved: List<(u64, u64), MAX_RANGES>,
    /// The boot bundle (the "initrd" the loader placed), start and end.
    pub bundle: Option<(u64, u64)>,
    /// Test hook from the hypervisor's own command line (`rhyve.vmm_fault=pl011-write:N`):
    /// make the VMM's UART model fail on purpose.
    pub vmm_fault: abi::vmm::FaultPlan,
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

/// Why the tree could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformError {
    /// No valid device tree at the address in x0.
    NoDeviceTree,
    /// No `arm,gic-v3` node with two reg ranges.
    NoGicV3,
    /// No /memory node.
    NoMemory,
}

impl core::fmt::Display for PlatformError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoDeviceTree => "no valid device tree at the address the loader passed in x0",
            Self::NoGicV3 => {
                "the device tree has no GICv3 (an arm,gic-v3 node with distributor and redistributor ranges): rhyve needs a GICv3"
            }
            Self::NoMemory => {
                "the device tree has no RAM (no /memory node with device_type \"memory\" and a reg)"
            }
        })
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

/// Reads the machine description from the firmware's tree.
pub fn discover(fdt: &Fdt<'_>) -> Result<Platform, PlatformError> {
    let mut p = Platform::default();

    for node in fdt.all_nodes() {
        if node.name == "memory" || node.name.starts_with("memory@") {
            let is_mem = node
                .property("device_type")
                .and_then(|d| d.as_str())
                .is_some_and(|s| s == "memory");
            if let (true, Some(regs)) = (is_mem, node.reg()) {
                for r in regs {
                    p.ram.push(RamRange {
                        start: r.starting_address as u64,
                        size: r.size.unwrap_or(0) as u64,
                    });
                }
            }
        }
    }
    if p.ram.as_slice().is_empty() {
        return Err(PlatformError::NoMemory);
    }

    let gic = fdt
        .find_compatible(&["arm,gic-v3"])
        .ok_or(PlatformError::NoGicV3)?;
    let mut regs = gic.reg().ok_or(PlatformError::NoGicV3)?;
    let d = regs.next().ok_or(PlatformError::NoGicV3)?;
    p.gicd = d.starting_address as usize;
    for r in regs {
        p.gicr
            .push((r.starting_address as u64, r.size.unwrap_or(0) as u64));
    }
    if p.gicr.as_slice().is_empty() {
        return Err(PlatformError::NoGicV3);
    }

    if let Some(cpus) = fdt.find_node("/cpus") {
        for cpu in cpus.children() {
            let is_cpu = cpu
                .property("device_type")
                .and_then(|d| d.as_str())
                .is_some_and(|s| s == "cpu");
            if let (true, Some(reg)) = (is_cpu, cpu.property("reg")) {
                if let Some(mpidr) = be_u64(reg.value) {
                    p.cpus.push(mpidr);
                }
            }
        }
    }

    if let Some(psci) = fdt.find_node("/psci") {
        p.psci = match psci.property("method").and_then(|m| m.as_str()) {
            Some("smc") => Some(Conduit::Smc),
            Some("hvc") => Some(Conduit::Hvc),
            _ => None,
        };
    }

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

    for r in fdt.memory_reservations() {
        p.reserved.push((r.address() as u64, r.size() as u64));
    }
    if let Some(resv) = fdt.find_node("/reserved-memory") {
        for child in resv.children() {
            if let Some(regs) = child.reg() {
                for r in regs {
                    p.reserved
                        .push((r.starting_address as u64, r.size.unwrap_or(0) as u64));
                }
            }
        }
    }
    Ok(p)
}

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
        let no_gic = edited(t.clone(), b"arm,gic-v3\0", b"arm,gic-v9\0");
        assert_eq!(discover_bytes(&no_gic).unwrap_err(), PlatformError::NoGicV3);
        // The memory node's `device_type` value (its name is `memory@...`).
        let no_ram = edited(t.clone(), b"memory\0", b"memorx\0");
        assert_eq!(
            discover_bytes(&no_ram).unwrap_err(),
            PlatformError::NoMemory
        );
        let no_psci = edited(t.clone(), b"smc\0", b"xyz\0");
        assert_eq!(discover_bytes(&no_psci).unwrap().psci, None);
        // A machine without an RTC still boots (its time starts at 0).
        let no_rtc = edited(t.clone(), b"arm,pl031\0", b"arm,pl039\0");
        assert_eq!(discover_bytes(&no_rtc).unwrap().rtc, None);
        assert_eq!(
            discover_bytes(&t[..64]).unwrap_err(),
            PlatformError::NoDeviceTree
        );
    }
}
