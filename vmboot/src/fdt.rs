//! The guest's device tree, shaped like QEMU virt's so that Linux and FreeBSD guests built for
//! that machine boot unchanged.
//!
//! Every address and interrupt comes from [`abi::layout`]; this module only says how the
//! machine is described (Devicetree Specification v0.4; the Linux bindings `arm/gic-v3.yaml`,
//! `timer/arm,arch_timer.yaml`, `arm/psci.yaml`, `serial/pl011.yaml`, `virtio/mmio.yaml`).

use abi::layout::{
    FLASH_BANKS, FLASH_BANK_SIZE, FLASH_BASE, GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE,
    HTIMER_INTID, MAX_VCPUS, NR_SPIS, PL011_BASE, PL011_INTID, PL011_SIZE, PL031_BASE, PL031_INTID,
    PL031_SIZE, PTIMER_INTID, RAM_BASE, STIMER_INTID, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SPI_BASE,
    VIRTIO_MMIO_STRIDE, VTIMER_INTID,
};
use abi::{GuestPhysAddr, IntId, VcpuId};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use vm_fdt::FdtWriter;

/// Bytes on the flash banks' bus (QEMU virt's "width" 4: two x16 chips side by side).
const FLASH_BANK_WIDTH: u32 = 4;

/// Phandle of the interrupt controller.
pub const GIC_PHANDLE: u32 = 1;
/// Phandle of the fixed 24 MHz APB clock.
pub const CLOCK_PHANDLE: u32 = 2;

/// Frequency of the APB clock the PL011 is described with (QEMU virt's).
const APB_CLOCK_HZ: u32 = 24_000_000;

/// First cell of a GIC interrupt specifier: the interrupt's type (binding `arm,gic-v3`).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Third cell of a GIC interrupt specifier: the trigger (`include/dt-bindings/interrupt-controller/irq.h`).
const IRQ_TYPE_EDGE_RISING: u32 = 1;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// PSCI 0.2 function IDs given as the legacy (PSCI 0.1) properties, as QEMU does, for guests
/// that only read those (PSCI specification DEN0022, table "Function IDs").
const PSCI_CPU_SUSPEND_64: u32 = 0xc400_0001;
const PSCI_CPU_OFF: u32 = 0x8400_0002;
const PSCI_CPU_ON_64: u32 = 0xc400_0003;
const PSCI_MIGRATE_64: u32 = 0xc400_0005;

/// How the guest calls PSCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PsciMethod {
    /// `hvc #0`: the hypervisor answers (the normal case for a guest).
    #[default]
    Hvc,
    /// `smc #0`: trapped by HCR_EL2.TSC and answered all the same.
    Smc,
}

impl PsciMethod {
    /// The value of the `/psci` node's `method` property.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hvc => "hvc",
            Self::Smc => "smc",
        }
    }
}

/// One virtio-mmio transport, by slot number: slot `n` sits at
/// `VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_STRIDE` and raises SPI `VIRTIO_MMIO_SPI_BASE + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VirtioMmioSlot(pub u32);

impl VirtioMmioSlot {
    /// The SPI number (as device trees count) of this slot, if the distributor has it.
    pub fn spi(self) -> Option<u32> {
        let spi = VIRTIO_MMIO_SPI_BASE.checked_add(self.0)?;
        (spi < NR_SPIS).then_some(spi)
    }

    /// The base of this slot's register frame, if the slot can exist.
    pub fn base(self) -> Option<GuestPhysAddr> {
        self.spi()?;
        VIRTIO_MMIO_BASE.checked_add(VIRTIO_MMIO_STRIDE.checked_mul(u64::from(self.0))?)
    }
}

/// Everything the device tree describes that varies from guest to guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTreeConfig<'a> {
    /// Number of vCPUs (1..=[`MAX_VCPUS`]).
    pub vcpus: u32,
    /// Guest RAM size in bytes, from [`RAM_BASE`].
    pub mem_size: u64,
    /// The kernel command line (`/chosen/bootargs`).
    pub cmdline: &'a str,
    /// Where the initrd was placed and its length, if there is one.
    pub initrd: Option<(GuestPhysAddr, u64)>,
    /// How the guest calls PSCI.
    pub psci_method: PsciMethod,
    /// The virtio-mmio transports to describe.
    pub virtio_mmio: &'a [VirtioMmioSlot],
    /// Whether the machine has the PL011 (then it is also `stdout-path` and `serial0`).
    pub pl011: bool,
    /// Whether the machine has the PL031 real-time clock.
    pub pl031: bool,
    /// Whether the machine has QEMU virt's two CFI flash banks (a VM that boots firmware).
    pub flash: bool,
}

/// Why a device tree could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum FdtError {
    /// The vCPU count is 0 or above [`MAX_VCPUS`].
    BadVcpuCount(u32),
    /// RAM is empty or would run past the end of the address space.
    BadMemorySize(u64),
    /// The initrd range runs past the end of the address space.
    BadInitrd,
    /// The command line contains a NUL byte, which a device tree string cannot hold.
    CmdlineHasNul,
    /// A virtio-mmio slot whose interrupt the distributor does not have.
    BadVirtioSlot(u32),
    /// The same virtio-mmio slot named twice.
    DuplicateVirtioSlot(u32),
    /// The device tree writer refused (a bug here, or a tree over 4 GiB).
    Writer(vm_fdt::Error),
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadVcpuCount(n) => write!(f, "{n} vCPUs asked for; 1 to {MAX_VCPUS} supported"),
            Self::BadMemorySize(s) => write!(f, "guest RAM size {s:#x} is empty or too large"),
            Self::BadInitrd => write!(f, "initrd range runs past the end of the address space"),
            Self::CmdlineHasNul => write!(f, "kernel command line contains a NUL byte"),
            Self::BadVirtioSlot(n) => write!(f, "virtio-mmio slot {n} has no interrupt"),
            Self::DuplicateVirtioSlot(n) => write!(f, "virtio-mmio slot {n} given twice"),
            Self::Writer(e) => write!(f, "device tree writer: {e}"),
        }
    }
}

impl From<vm_fdt::Error> for FdtError {
    fn from(e: vm_fdt::Error) -> Self {
        Self::Writer(e)
    }
}

/// The name of the console node.
fn pl011_name() -> String {
    format!("pl011@{:x}", PL011_BASE.raw())
}

/// The path of the console node, for `stdout-path` and the `serial0` alias.
fn pl011_path() -> String {
    format!("/{}", pl011_name())
}

/// The PPI number (as device trees count) of a private interrupt.
fn ppi_number(intid: IntId) -> u32 {
    intid.0.saturating_sub(IntId::PPI_BASE)
}

/// The SPI number (as device trees count) of a shared interrupt.
fn spi_number(intid: IntId) -> u32 {
    intid.0.saturating_sub(IntId::SPI_BASE)
}

/// Generates the guest's flattened device tree blob.
pub fn generate(cfg: &DeviceTreeConfig) -> Result<Vec<u8>, FdtError> {
    let vcpus = usize::try_from(cfg.vcpus).map_err(|_| FdtError::BadVcpuCount(cfg.vcpus))?;
    if vcpus == 0 || vcpus > MAX_VCPUS {
        return Err(FdtError::BadVcpuCount(cfg.vcpus));
    }
    if cfg.mem_size == 0 || RAM_BASE.checked_add(cfg.mem_size).is_none() {
        return Err(FdtError::BadMemorySize(cfg.mem_size));
    }
    if cfg.cmdline.contains('\0') {
        return Err(FdtError::CmdlineHasNul);
    }
    let initrd = match cfg.initrd {
        Some((start, len)) => Some((start, start.checked_add(len).ok_or(FdtError::BadInitrd)?)),
        None => None,
    };
    let mut virtio = Vec::with_capacity(cfg.virtio_mmio.len());
    for (i, slot) in cfg.virtio_mmio.iter().enumerate() {
        let (Some(base), Some(spi)) = (slot.base(), slot.spi()) else {
            return Err(FdtError::BadVirtioSlot(slot.0));
        };
        if cfg
            .virtio_mmio
            .get(..i)
            .is_some_and(|earlier| earlier.contains(slot))
        {
            return Err(FdtError::DuplicateVirtioSlot(slot.0));
        }
        virtio.push((base, spi));
    }

    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", "rhyve virt")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", cfg.cmdline)?;
    if cfg.pl011 {
        w.property_string("stdout-path", &pl011_path())?;
    }
    if let Some((start, end)) = initrd {
        w.property_u64("linux,initrd-start", start.raw())?;
        w.property_u64("linux,initrd-end", end.raw())?;
    }
    w.end_node(chosen)?;

    let aliases = w.begin_node("aliases")?;
    if cfg.pl011 {
        w.property_string("serial0", &pl011_path())?;
    }
    w.end_node(aliases)?;

    let memory = w.begin_node(&format!("memory@{:x}", RAM_BASE.raw()))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[RAM_BASE.raw(), cfg.mem_size])?;
    w.end_node(memory)?;

    write_cpus(&mut w, vcpus)?;
    write_psci(&mut w, cfg.psci_method)?;
    write_gic(&mut w, vcpus)?;
    write_timer(&mut w)?;

    let clock = w.begin_node("apb-pclk")?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", APB_CLOCK_HZ)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.property_phandle(CLOCK_PHANDLE)?;
    w.end_node(clock)?;

    if cfg.pl011 {
        let uart = w.begin_node(&pl011_name())?;
        w.property_string_list("compatible", strings(&["arm,pl011", "arm,primecell"]))?;
        w.property_array_u64("reg", &[PL011_BASE.raw(), PL011_SIZE])?;
        w.property_array_u32(
            "interrupts",
            &[GIC_SPI, spi_number(PL011_INTID), IRQ_TYPE_LEVEL_HIGH],
        )?;
        w.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
        w.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
        w.end_node(uart)?;
    }

    if cfg.pl031 {
        let rtc = w.begin_node(&format!("pl031@{:x}", PL031_BASE.raw()))?;
        w.property_string_list("compatible", strings(&["arm,pl031", "arm,primecell"]))?;
        w.property_array_u64("reg", &[PL031_BASE.raw(), PL031_SIZE])?;
        w.property_array_u32(
            "interrupts",
            &[GIC_SPI, spi_number(PL031_INTID), IRQ_TYPE_LEVEL_HIGH],
        )?;
        w.property_string("clock-names", "apb_pclk")?;
        w.property_u32("clocks", CLOCK_PHANDLE)?;
        w.end_node(rtc)?;
    }

    for (base, spi) in virtio {
        let node = w.begin_node(&format!("virtio_mmio@{:x}", base.raw()))?;
        w.property_string("compatible", "virtio,mmio")?;
        w.property_array_u64("reg", &[base.raw(), VIRTIO_MMIO_STRIDE])?;
        w.property_array_u32("interrupts", &[GIC_SPI, spi, IRQ_TYPE_EDGE_RISING])?;
        w.property_null("dma-coherent")?;
        w.end_node(node)?;
    }

    if cfg.flash {
        // As QEMU virt's `virt_flash_fdt`: one node, a `reg` entry per bank, 32-bit wide.
        let node = w.begin_node(&format!("flash@{:x}", FLASH_BASE.raw()))?;
        w.property_string("compatible", "cfi-flash")?;
        let reg: Vec<u64> = (0..FLASH_BANKS)
            .flat_map(|b| [FLASH_BASE.raw() + b * FLASH_BANK_SIZE, FLASH_BANK_SIZE])
            .collect();
        w.property_array_u64("reg", &reg)?;
        w.property_u32("bank-width", FLASH_BANK_WIDTH)?;
        w.end_node(node)?;
    }

    w.end_node(root)?;
    Ok(w.finish()?)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `/cpus`: one node per vCPU, named and numbered by its MPIDR affinity as QEMU virt does.
fn write_cpus(w: &mut FdtWriter, vcpus: usize) -> Result<(), FdtError> {
    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for i in 0..vcpus {
        let index = u16::try_from(i).map_err(|_| FdtError::BadVcpuCount(vcpus as u32))?;
        // One address cell holds Aff2..Aff0; our vCPUs never use Aff3.
        let aff = u32::try_from(VcpuId(index).mpidr_affinity())
            .map_err(|_| FdtError::BadVcpuCount(vcpus as u32))?;
        let cpu = w.begin_node(&format!("cpu@{aff:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,arm-v8")?;
        w.property_u32("reg", aff)?;
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;
    Ok(())
}

fn write_psci(w: &mut FdtWriter, method: PsciMethod) -> Result<(), FdtError> {
    let psci = w.begin_node("psci")?;
    w.property_string_list(
        "compatible",
        strings(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]),
    )?;
    w.property_string("method", method.as_str())?;
    w.property_u32("cpu_suspend", PSCI_CPU_SUSPEND_64)?;
    w.property_u32("cpu_off", PSCI_CPU_OFF)?;
    w.property_u32("cpu_on", PSCI_CPU_ON_64)?;
    w.property_u32("migrate", PSCI_MIGRATE_64)?;
    w.end_node(psci)?;
    Ok(())
}

/// The GICv3: the distributor, then one contiguous redistributor region of `vcpus` frames.
fn write_gic(w: &mut FdtWriter, vcpus: usize) -> Result<(), FdtError> {
    let gicr_size = GICR_STRIDE * vcpus as u64; // vcpus <= MAX_VCPUS: cannot overflow
    let gic = w.begin_node(&format!("intc@{:x}", GICD_BASE.raw()))?;
    w.property_string("compatible", "arm,gic-v3")?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_null("ranges")?;
    w.property_u32("#redistributor-regions", 1)?;
    w.property_array_u64(
        "reg",
        &[GICD_BASE.raw(), GICD_SIZE, GICR_BASE.raw(), gicr_size],
    )?;
    w.property_phandle(GIC_PHANDLE)?;
    w.end_node(gic)?;
    Ok(())
}

/// The architected timer's four PPIs, in the binding's order: secure physical, non-secure
/// physical, virtual, hypervisor.
fn write_timer(w: &mut FdtWriter) -> Result<(), FdtError> {
    let mut cells = Vec::with_capacity(12);
    for intid in [STIMER_INTID, PTIMER_INTID, VTIMER_INTID, HTIMER_INTID] {
        cells.extend_from_slice(&[GIC_PPI, ppi_number(intid), IRQ_TYPE_LEVEL_HIGH]);
    }
    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    w.property_null("always-on")?;
    w.property_array_u32("interrupts", &cells)?;
    w.end_node(timer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdt::node::FdtNode;
    use fdt::Fdt;

    fn config(vcpus: u32) -> DeviceTreeConfig<'static> {
        DeviceTreeConfig {
            vcpus,
            mem_size: 256 << 20,
            cmdline: "console=ttyAMA0 earlycon",
            initrd: Some((GuestPhysAddr(0x4800_0000), 0x12_3456)),
            psci_method: PsciMethod::Hvc,
            virtio_mmio: &[],
            pl011: true,
            pl031: true,
            flash: false,
        }
    }

    fn u32s(node: FdtNode, name: &str) -> Vec<u32> {
        let p = node
            .property(name)
            .unwrap_or_else(|| panic!("{} has no {name}", node.name));
        p.value
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u64s(node: FdtNode, name: &str) -> Vec<u64> {
        let p = node
            .property(name)
            .unwrap_or_else(|| panic!("{} has no {name}", node.name));
        p.value
            .chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn string_list<'a>(node: FdtNode<'_, 'a>, name: &str) -> Vec<&'a str> {
        let p = node
            .property(name)
            .unwrap_or_else(|| panic!("{} has no {name}", node.name));
        p.value
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| core::str::from_utf8(s).unwrap())
            .collect()
    }

    fn str_prop<'a>(node: FdtNode<'_, 'a>, name: &str) -> &'a str {
        node.property(name)
            .and_then(|p| p.as_str())
            .unwrap_or_else(|| panic!("{} has no {name}", node.name))
    }

    #[test]
    fn root_and_memory() {
        let blob = generate(&config(1)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let root = fdt.find_node("/").unwrap();
        assert_eq!(str_prop(root, "compatible"), "linux,dummy-virt");
        assert_eq!(u32s(root, "#address-cells"), [2]);
        assert_eq!(u32s(root, "#size-cells"), [2]);
        assert_eq!(u32s(root, "interrupt-parent"), [GIC_PHANDLE]);
        let mem = fdt.find_node("/memory@40000000").unwrap();
        assert_eq!(str_prop(mem, "device_type"), "memory");
        assert_eq!(u64s(mem, "reg"), [0x4000_0000, 256 << 20]);
        let region = fdt.memory().regions().next().unwrap();
        assert_eq!(region.starting_address as u64, 0x4000_0000);
        assert_eq!(region.size, Some(256 << 20));
    }

    #[test]
    fn one_cpu_node_per_vcpu_with_its_affinity() {
        for n in [1u32, 4, 17, MAX_VCPUS as u32] {
            let blob = generate(&config(n)).unwrap();
            let fdt = Fdt::new(&blob).unwrap();
            let cpus = fdt.find_node("/cpus").unwrap();
            assert_eq!(u32s(cpus, "#address-cells"), [1]);
            assert_eq!(u32s(cpus, "#size-cells"), [0]);
            let nodes: Vec<_> = cpus.children().collect();
            assert_eq!(nodes.len(), n as usize);
            for (i, cpu) in nodes.into_iter().enumerate() {
                let aff = VcpuId(i as u16).mpidr_affinity() as u32;
                assert_eq!(cpu.name, format!("cpu@{aff:x}"));
                assert_eq!(u32s(cpu, "reg"), [aff]);
                assert_eq!(str_prop(cpu, "device_type"), "cpu");
                assert_eq!(str_prop(cpu, "compatible"), "arm,arm-v8");
                assert_eq!(str_prop(cpu, "enable-method"), "psci");
            }
        }
    }

    #[test]
    fn cpu_17_is_cluster_1_core_1() {
        let blob = generate(&config(18)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(
            u32s(fdt.find_node("/cpus/cpu@101").unwrap(), "reg"),
            [0x101]
        );
    }

    #[test]
    fn psci_method_and_compatible() {
        for method in [PsciMethod::Hvc, PsciMethod::Smc] {
            let blob = generate(&DeviceTreeConfig {
                psci_method: method,
                ..config(2)
            })
            .unwrap();
            let fdt = Fdt::new(&blob).unwrap();
            let psci = fdt.find_node("/psci").unwrap();
            assert_eq!(str_prop(psci, "method"), method.as_str());
            assert_eq!(
                string_list(psci, "compatible"),
                ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
            );
            assert_eq!(u32s(psci, "cpu_on"), [0xc400_0003]);
            assert_eq!(u32s(psci, "cpu_off"), [0x8400_0002]);
            assert_eq!(u32s(psci, "cpu_suspend"), [0xc400_0001]);
            assert_eq!(u32s(psci, "migrate"), [0xc400_0005]);
        }
    }

    #[test]
    fn gic_redistributors_scale_with_vcpus() {
        for n in [1u32, 3, 8] {
            let blob = generate(&config(n)).unwrap();
            let fdt = Fdt::new(&blob).unwrap();
            let gic = fdt.find_node("/intc@8000000").unwrap();
            assert_eq!(
                u64s(gic, "reg"),
                [0x0800_0000, 0x1_0000, 0x080A_0000, 0x2_0000 * u64::from(n)]
            );
            assert_eq!(str_prop(gic, "compatible"), "arm,gic-v3");
            assert_eq!(u32s(gic, "#interrupt-cells"), [3]);
            assert_eq!(u32s(gic, "#redistributor-regions"), [1]);
            assert!(gic.property("interrupt-controller").is_some());
            assert!(gic.property("ranges").is_some());
            assert_eq!(u32s(gic, "phandle"), [GIC_PHANDLE]);
            assert_eq!(fdt.find_phandle(GIC_PHANDLE).unwrap().name, "intc@8000000");
        }
    }

    #[test]
    fn timer_ppis_in_binding_order() {
        let blob = generate(&config(1)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let timer = fdt.find_node("/timer").unwrap();
        assert_eq!(str_prop(timer, "compatible"), "arm,armv8-timer");
        assert!(timer.property("always-on").is_some());
        assert_eq!(
            u32s(timer, "interrupts"),
            [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
        );
    }

    #[test]
    fn pl011_and_its_clock() {
        let blob = generate(&config(1)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let uart = fdt.find_node("/pl011@9000000").unwrap();
        assert_eq!(
            string_list(uart, "compatible"),
            ["arm,pl011", "arm,primecell"]
        );
        assert_eq!(u64s(uart, "reg"), [0x0900_0000, 0x1000]);
        assert_eq!(u32s(uart, "interrupts"), [0, 1, 4]);
        assert_eq!(string_list(uart, "clock-names"), ["uartclk", "apb_pclk"]);
        assert_eq!(u32s(uart, "clocks"), [CLOCK_PHANDLE, CLOCK_PHANDLE]);
        let clk = fdt.find_phandle(CLOCK_PHANDLE).unwrap();
        assert_eq!(clk.name, "apb-pclk");
        assert_eq!(str_prop(clk, "compatible"), "fixed-clock");
        assert_eq!(u32s(clk, "clock-frequency"), [24_000_000]);
        assert_eq!(u32s(clk, "#clock-cells"), [0]);
        assert_eq!(str_prop(clk, "clock-output-names"), "clk24mhz");
        assert_eq!(
            fdt.aliases().unwrap().resolve_node("serial0").unwrap().name,
            "pl011@9000000"
        );
    }

    #[test]
    fn pl031_at_qemu_virt_s_place_or_not_at_all() {
        let blob = generate(&config(1)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let rtc = fdt.find_node("/pl031@9010000").unwrap();
        assert_eq!(
            string_list(rtc, "compatible"),
            ["arm,pl031", "arm,primecell"]
        );
        assert_eq!(u64s(rtc, "reg"), [0x0901_0000, 0x1000]);
        assert_eq!(u32s(rtc, "interrupts"), [0, 2, 4], "SPI 2, level");
        assert_eq!(string_list(rtc, "clock-names"), ["apb_pclk"]);
        assert_eq!(u32s(rtc, "clocks"), [CLOCK_PHANDLE]);
        let without = generate(&DeviceTreeConfig {
            pl031: false,
            ..config(1)
        })
        .unwrap();
        assert!(!without.windows(5).any(|w| w == b"pl031"));
    }

    #[test]
    fn flash_as_qemu_virt_describes_it_or_not_at_all() {
        let blob = generate(&DeviceTreeConfig {
            flash: true,
            ..config(1)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let flash = fdt.find_node("/flash@0").unwrap();
        assert_eq!(string_list(flash, "compatible"), ["cfi-flash"]);
        assert_eq!(
            u64s(flash, "reg"),
            [0, 0x0400_0000, 0x0400_0000, 0x0400_0000],
            "two banks of 64 MiB"
        );
        assert_eq!(u32s(flash, "bank-width"), [4]);
        let without = generate(&config(1)).unwrap();
        assert!(!without.windows(9).any(|w| w == b"cfi-flash"));
    }

    #[test]
    fn chosen_bootargs_initrd_and_stdout() {
        let blob = generate(&config(1)).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let chosen = fdt.chosen();
        assert_eq!(chosen.bootargs(), Some("console=ttyAMA0 earlycon"));
        assert_eq!(chosen.stdout().unwrap().name, "pl011@9000000");
        let node = fdt.find_node("/chosen").unwrap();
        assert_eq!(u64s(node, "linux,initrd-start"), [0x4800_0000]);
        assert_eq!(u64s(node, "linux,initrd-end"), [0x4800_0000 + 0x12_3456]);
    }

    #[test]
    fn no_initrd_no_initrd_properties() {
        let blob = generate(&DeviceTreeConfig {
            initrd: None,
            ..config(1)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let node = fdt.find_node("/chosen").unwrap();
        assert!(node.property("linux,initrd-start").is_none());
        assert!(node.property("linux,initrd-end").is_none());
    }

    #[test]
    fn virtio_mmio_slots() {
        let slots = [VirtioMmioSlot(0), VirtioMmioSlot(3)];
        let blob = generate(&DeviceTreeConfig {
            virtio_mmio: &slots,
            ..config(1)
        })
        .unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let v0 = fdt.find_node("/virtio_mmio@a000000").unwrap();
        assert_eq!(str_prop(v0, "compatible"), "virtio,mmio");
        assert_eq!(u64s(v0, "reg"), [0x0A00_0000, 0x200]);
        assert_eq!(u32s(v0, "interrupts"), [0, 16, 1]);
        assert!(v0.property("dma-coherent").is_some());
        let v3 = fdt.find_node("/virtio_mmio@a000600").unwrap();
        assert_eq!(u32s(v3, "interrupts"), [0, 19, 1]);
        assert!(generate(&config(1)).is_ok_and(|b| !b.windows(11).any(|w| w == b"virtio_mmio")));
    }

    #[test]
    fn a_machine_without_the_pl011_names_no_uart() {
        let with = generate(&config(1)).unwrap();
        let fdt = Fdt::new(&with).unwrap();
        assert!(fdt.find_node("/pl011@9000000").is_some());
        assert_eq!(
            str_prop(fdt.find_node("/chosen").unwrap(), "stdout-path"),
            "/pl011@9000000"
        );
        let without = generate(&DeviceTreeConfig {
            pl011: false,
            ..config(1)
        })
        .unwrap();
        let fdt = Fdt::new(&without).unwrap();
        assert!(fdt.find_node("/pl011@9000000").is_none());
        assert!(fdt
            .find_node("/chosen")
            .unwrap()
            .property("stdout-path")
            .is_none());
        assert!(fdt
            .find_node("/aliases")
            .unwrap()
            .property("serial0")
            .is_none());
        assert!(!without.windows(5).any(|w| w == b"pl011"));
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(generate(&config(0)), Err(FdtError::BadVcpuCount(0)));
        assert_eq!(generate(&config(200)), Err(FdtError::BadVcpuCount(200)));
        assert_eq!(
            generate(&config(u32::MAX)),
            Err(FdtError::BadVcpuCount(u32::MAX))
        );
        assert_eq!(
            generate(&DeviceTreeConfig {
                mem_size: 0,
                ..config(1)
            }),
            Err(FdtError::BadMemorySize(0))
        );
        assert_eq!(
            generate(&DeviceTreeConfig {
                mem_size: u64::MAX,
                ..config(1)
            }),
            Err(FdtError::BadMemorySize(u64::MAX))
        );
        assert_eq!(
            generate(&DeviceTreeConfig {
                cmdline: "a\0b",
                ..config(1)
            }),
            Err(FdtError::CmdlineHasNul)
        );
        assert_eq!(
            generate(&DeviceTreeConfig {
                initrd: Some((GuestPhysAddr(u64::MAX), 2)),
                ..config(1)
            }),
            Err(FdtError::BadInitrd)
        );
        let bad = [VirtioMmioSlot(NR_SPIS)];
        assert_eq!(
            generate(&DeviceTreeConfig {
                virtio_mmio: &bad,
                ..config(1)
            }),
            Err(FdtError::BadVirtioSlot(NR_SPIS))
        );
        let dup = [VirtioMmioSlot(2), VirtioMmioSlot(2)];
        assert_eq!(
            generate(&DeviceTreeConfig {
                virtio_mmio: &dup,
                ..config(1)
            }),
            Err(FdtError::DuplicateVirtioSlot(2))
        );
    }
}
