//! `fdt_generate`: `vmboot::fdt::generate` for any `DeviceTreeConfig`: vCPU counts in and out of
//! range, any RAM size, any command line (NUL bytes included), any initrd range, either PSCI
//! method and any list of virtio-mmio slots.
//!
//! Invariants: it refuses exactly what it documents, with the documented error; otherwise the
//! blob parses back with the `fdt` crate and has exactly 9 + (pl011) + (pl031) + (flash) + vCPUs + slots nodes: one `cpu`
//! node per vCPU with its MPIDR affinity as `reg`, the memory node's `reg` = (RAM_BASE,
//! size), the GIC's `reg` covering one redistributor per vCPU, `/chosen` holding the command
//! line and initrd range given, the PSCI method, and one virtio-mmio node per slot, in order,
//! with its frame and interrupt.

use abi::layout::{
    GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE, MAX_VCPUS, NR_SPIS, RAM_BASE, VIRTIO_MMIO_BASE,
    VIRTIO_MMIO_SPI_BASE, VIRTIO_MMIO_STRIDE,
};
use abi::{GuestPhysAddr, VcpuId};
use arbitrary::Unstructured;
use fdt::node::FdtNode;
use fdt::Fdt;
use vmboot::fdt::{generate, DeviceTreeConfig, FdtError, PsciMethod, VirtioMmioSlot};

/// Nodes every tree has: root, chosen, aliases, memory, cpus, psci, intc, timer, apb-pclk
/// (plus the pl011, the pl031 and the flash when the machine has them).
const FIXED_NODES: usize = 9;

fn prop<'a>(node: FdtNode<'_, 'a>, name: &str) -> &'a [u8] {
    node.property(name)
        .unwrap_or_else(|| panic!("{} has no {name}", node.name))
        .value
}

fn u32s(node: FdtNode, name: &str) -> Vec<u32> {
    let v = prop(node, name);
    assert_eq!(v.len() % 4, 0, "{name} is not u32 cells");
    v.chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

fn u64s(node: FdtNode, name: &str) -> Vec<u64> {
    let v = prop(node, name);
    assert_eq!(v.len() % 8, 0, "{name} is not u64 cells");
    v.chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Checks a generated device tree against what it was generated from.
pub fn check_tree(
    blob: &[u8],
    vcpus: u32,
    mem_size: u64,
    cmdline: &str,
    initrd: Option<(u64, u64)>,
    machine: Option<(PsciMethod, &[VirtioMmioSlot], bool, bool, bool)>,
) {
    let (psci, slots, pl011, pl031, flash) =
        machine.unwrap_or((PsciMethod::Hvc, &[], true, false, false));
    let fdt = Fdt::new(blob).unwrap_or_else(|e| panic!("generated blob does not parse: {e:?}"));
    assert_eq!(fdt.total_size(), blob.len());
    assert_eq!(
        fdt.all_nodes().count(),
        FIXED_NODES
            + usize::from(pl011)
            + usize::from(pl031)
            + usize::from(flash)
            + vcpus as usize
            + slots.len(),
        "node count"
    );
    assert_eq!(fdt.find_node("/flash@0").is_some(), flash, "flash node");
    assert_eq!(
        fdt.find_node("/pl031@9010000").is_some(),
        pl031,
        "pl031 node"
    );
    assert_eq!(
        fdt.find_node("/pl011@9000000").is_some(),
        pl011,
        "pl011 node"
    );
    assert_eq!(
        fdt.find_node("/chosen")
            .expect("/chosen")
            .property("stdout-path")
            .is_some(),
        pl011,
        "stdout-path names the pl011 only when there is one"
    );

    let mem = fdt
        .find_node(&format!("/memory@{:x}", RAM_BASE.raw()))
        .expect("memory node");
    assert_eq!(u64s(mem, "reg"), [RAM_BASE.raw(), mem_size]);

    let cpus = fdt.find_node("/cpus").expect("/cpus");
    let nodes: Vec<_> = cpus.children().collect();
    assert_eq!(nodes.len(), vcpus as usize, "cpu nodes");
    for (i, cpu) in nodes.into_iter().enumerate() {
        let aff = VcpuId(i as u16).mpidr_affinity() as u32;
        assert_eq!(cpu.name, format!("cpu@{aff:x}"));
        assert_eq!(u32s(cpu, "reg"), [aff]);
    }

    let chosen = fdt.find_node("/chosen").expect("/chosen");
    let bootargs = prop(chosen, "bootargs");
    assert_eq!(
        bootargs.split_last(),
        Some((&0, cmdline.as_bytes())),
        "bootargs"
    );
    match initrd {
        Some((start, len)) => {
            assert_eq!(u64s(chosen, "linux,initrd-start"), [start]);
            assert_eq!(u64s(chosen, "linux,initrd-end"), [start + len]);
        }
        None => {
            assert!(chosen.property("linux,initrd-start").is_none());
            assert!(chosen.property("linux,initrd-end").is_none());
        }
    }

    let gic = fdt
        .find_node(&format!("/intc@{:x}", GICD_BASE.raw()))
        .expect("GIC node");
    assert_eq!(
        u64s(gic, "reg"),
        [
            GICD_BASE.raw(),
            GICD_SIZE,
            GICR_BASE.raw(),
            GICR_STRIDE * u64::from(vcpus)
        ]
    );
    let method = fdt.find_node("/psci").expect("/psci");
    assert_eq!(
        prop(method, "method"),
        format!("{}\0", psci.as_str()).as_bytes()
    );

    let virtio: Vec<_> = fdt
        .find_node("/")
        .expect("root")
        .children()
        .filter(|n| n.name.starts_with("virtio_mmio@"))
        .collect();
    assert_eq!(virtio.len(), slots.len(), "virtio-mmio nodes");
    for (node, slot) in virtio.into_iter().zip(slots) {
        let base = VIRTIO_MMIO_BASE.raw() + VIRTIO_MMIO_STRIDE * u64::from(slot.0);
        assert_eq!(node.name, format!("virtio_mmio@{base:x}"));
        assert_eq!(u64s(node, "reg"), [base, VIRTIO_MMIO_STRIDE]);
        assert_eq!(
            u32s(node, "interrupts"),
            [0, VIRTIO_MMIO_SPI_BASE + slot.0, 1]
        );
    }
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = one(&mut u);
}

fn one(u: &mut Unstructured) -> arbitrary::Result<()> {
    let vcpus = match u.arbitrary::<u8>()? {
        0 => 0,
        255 => u.arbitrary::<u32>()?,
        n => u32::from(n) % (MAX_VCPUS as u32 + 1) + 1,
    };
    let mem_size = match u.arbitrary::<u8>()? % 4 {
        0 => 0,
        1 => u64::MAX - u64::from(u.arbitrary::<u16>()?),
        _ => u.arbitrary()?,
    };
    let cmdline: String = u.arbitrary()?;
    let initrd = match u.arbitrary::<u8>()? % 3 {
        0 => None,
        1 => Some((u.arbitrary::<u64>()?, u.arbitrary::<u64>()?)),
        _ => Some((
            RAM_BASE.raw() + u64::from(u.arbitrary::<u32>()?),
            u64::from(u.arbitrary::<u32>()?),
        )),
    };
    let psci = if u.arbitrary()? {
        PsciMethod::Smc
    } else {
        PsciMethod::Hvc
    };
    let pl011: bool = u.arbitrary()?;
    let pl031: bool = u.arbitrary()?;
    let flash: bool = u.arbitrary()?;
    let mut slots = Vec::new();
    for _ in 0..u.arbitrary::<u8>()? % 12 {
        slots.push(VirtioMmioSlot(match u.arbitrary::<u8>()? {
            255 => u.arbitrary()?,
            n => u32::from(n) % 250,
        }));
    }

    let cfg = DeviceTreeConfig {
        vcpus,
        mem_size,
        cmdline: &cmdline,
        initrd: initrd.map(|(s, l)| (GuestPhysAddr(s), l)),
        psci_method: psci,
        virtio_mmio: &slots,
        pl011,
        pl031,
        flash,
    };
    let result = generate(&cfg);

    // The documented refusals, in the order `generate` checks them.
    let expected_err = if vcpus == 0 || vcpus as usize > MAX_VCPUS {
        Some(FdtError::BadVcpuCount(vcpus))
    } else if mem_size == 0 || RAM_BASE.raw().checked_add(mem_size).is_none() {
        Some(FdtError::BadMemorySize(mem_size))
    } else if cmdline.contains('\0') {
        Some(FdtError::CmdlineHasNul)
    } else if initrd.is_some_and(|(s, l)| s.checked_add(l).is_none()) {
        Some(FdtError::BadInitrd)
    } else {
        slots.iter().enumerate().find_map(|(i, s)| {
            let valid = VIRTIO_MMIO_SPI_BASE
                .checked_add(s.0)
                .is_some_and(|spi| spi < NR_SPIS);
            if !valid {
                Some(FdtError::BadVirtioSlot(s.0))
            } else if slots[..i].contains(s) {
                Some(FdtError::DuplicateVirtioSlot(s.0))
            } else {
                None
            }
        })
    };
    match (result, expected_err) {
        (Err(e), Some(x)) => assert_eq!(e, x),
        (Err(e), None) => panic!("generate refused a valid config: {e:?}"),
        (Ok(_), Some(x)) => panic!("generate accepted a config it must refuse with {x:?}"),
        (Ok(blob), None) => check_tree(
            &blob,
            vcpus,
            mem_size,
            &cmdline,
            initrd,
            Some((psci, &slots, pl011, pl031, flash)),
        ),
    }
    Ok(())
}
