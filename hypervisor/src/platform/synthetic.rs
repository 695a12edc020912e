//! `discover` on small trees built here with vm-fdt, one board feature each: memory banks and
//! holes, reserved memory, redistributor regions and stride, the timer's and the GIC's
//! interrupts, PSCI and its quirk, and the GICv2 a board is refused for; and QEMU's Versal
//! tree, which needs the quirk.

use super::*;
use std::string::{String, ToString};
use std::vec::Vec;
use vm_fdt::{FdtReserveEntry, FdtWriter};

/// What a synthetic board's tree says; `Default` is a plain GICv3 board.
struct Synth {
    compatible: &'static [&'static str],
    model: Option<&'static str>,
    /// `/memreserve/` entries.
    memreserve: Vec<(u64, u64)>,
    /// Each `/memory@...` node's `reg` entries (root: 2 address, 2 size cells).
    memory: Vec<Vec<(u64, u64)>>,
    /// `/reserved-memory` children.
    reserved: Vec<Reserved>,
    gic_compatible: &'static str,
    /// The GIC's `reg`: distributor first.
    gic_reg: Vec<(u64, u64)>,
    redistributor_regions: Option<u32>,
    stride: Option<u64>,
    /// `#interrupt-cells` of the GIC (4 with PPI partitions).
    interrupt_cells: u32,
    gic_interrupts: Option<Vec<u32>>,
    /// (type, number) of each timer interrupt.
    timer: Vec<(u32, u32)>,
    timer_frequency: Option<u32>,
    psci: Option<&'static str>,
    cpus: Vec<u64>,
}

impl Default for Synth {
    fn default() -> Self {
        Self {
            compatible: &["vendor,board", "vendor,soc"],
            model: Some("Vendor Board"),
            memreserve: Vec::new(),
            memory: vec![vec![(0x4000_0000, 0x4000_0000)]],
            reserved: Vec::new(),
            gic_compatible: "arm,gic-v3",
            gic_reg: vec![(0x3880_0000, 0x1_0000), (0x3888_0000, 0xc_0000)],
            redistributor_regions: None,
            stride: None,
            interrupt_cells: 3,
            gic_interrupts: Some(vec![1, 9, 4]),
            timer: vec![(1, 13), (1, 14), (1, 11), (1, 10)],
            timer_frequency: None,
            psci: Some("smc"),
            cpus: vec![0, 1, 0x100, 0x101],
        }
    }
}

/// A `/reserved-memory` child: name, `reg` (none: a pool with `size` and `alloc-ranges`),
/// `no-map`.
type Reserved = (&'static str, Option<(u64, u64)>, bool);

const GIC_PHANDLE: u32 = 1;

fn reg_cells(regs: &[(u64, u64)]) -> Vec<u64> {
    regs.iter().flat_map(|&(a, s)| [a, s]).collect()
}

impl Synth {
    fn build(&self) -> Vec<u8> {
        let resv: Vec<FdtReserveEntry> = self
            .memreserve
            .iter()
            .map(|&(a, s)| FdtReserveEntry::new(a, s).unwrap())
            .collect();
        let mut w = FdtWriter::new_with_mem_reserv(&resv).unwrap();
        let root = w.begin_node("").unwrap();
        w.property_string_list(
            "compatible",
            self.compatible.iter().map(|s| s.to_string()).collect(),
        )
        .unwrap();
        if let Some(m) = self.model {
            w.property_string("model", m).unwrap();
        }
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("interrupt-parent", GIC_PHANDLE).unwrap();

        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for &mpidr in &self.cpus {
            let c = w.begin_node(&format!("cpu@{mpidr:x}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_u64("reg", mpidr).unwrap();
            w.end_node(c).unwrap();
        }
        w.end_node(cpus).unwrap();

        for regs in &self.memory {
            let n = w
                .begin_node(&format!("memory@{:x}", regs.first().map_or(0, |r| r.0)))
                .unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u64("reg", &reg_cells(regs)).unwrap();
            w.end_node(n).unwrap();
        }

        if !self.reserved.is_empty() {
            let r = w.begin_node("reserved-memory").unwrap();
            w.property_u32("#address-cells", 2).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            w.property_null("ranges").unwrap();
            for &(name, reg, no_map) in &self.reserved {
                let c = w.begin_node(name).unwrap();
                match reg {
                    Some(reg) => w.property_array_u64("reg", &reg_cells(&[reg])).unwrap(),
                    None => {
                        w.property_string("compatible", "shared-dma-pool").unwrap();
                        w.property_u64("size", 0x400_0000).unwrap();
                        w.property_array_u64("alloc-ranges", &[0, 0x4000_0000])
                            .unwrap();
                        w.property_null("reusable").unwrap();
                    }
                }
                if no_map {
                    w.property_null("no-map").unwrap();
                }
                w.end_node(c).unwrap();
            }
            w.end_node(r).unwrap();
        }

        if let Some(method) = self.psci {
            let n = w.begin_node("psci").unwrap();
            w.property_string("compatible", "arm,psci-1.0").unwrap();
            w.property_string("method", method).unwrap();
            w.end_node(n).unwrap();
        }

        // A bus with 1-cell addresses, as i.MX8M puts its GIC under `soc@0`.
        let soc = w.begin_node("soc@0").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        w.property_array_u32("ranges", &[0, 0, 0, 0x4000_0000])
            .unwrap();
        let gic = w
            .begin_node(&format!("interrupt-controller@{:x}", self.gic_reg[0].0))
            .unwrap();
        w.property_string("compatible", self.gic_compatible)
            .unwrap();
        let reg: Vec<u32> = self
            .gic_reg
            .iter()
            .flat_map(|&(a, s)| [a as u32, s as u32])
            .collect();
        w.property_array_u32("reg", &reg).unwrap();
        w.property_u32("#interrupt-cells", self.interrupt_cells)
            .unwrap();
        w.property_null("interrupt-controller").unwrap();
        if let Some(n) = self.redistributor_regions {
            w.property_u32("#redistributor-regions", n).unwrap();
        }
        if let Some(s) = self.stride {
            w.property_u64("redistributor-stride", s).unwrap();
        }
        if let Some(ints) = &self.gic_interrupts {
            w.property_array_u32("interrupts", ints).unwrap();
        }
        w.property_phandle(GIC_PHANDLE).unwrap();
        w.end_node(gic).unwrap();
        w.end_node(soc).unwrap();

        let t = w.begin_node("timer").unwrap();
        w.property_string("compatible", "arm,armv8-timer").unwrap();
        let ints: Vec<u32> = self
            .timer
            .iter()
            .flat_map(|&(ty, n)| {
                let mut spec = vec![ty, n, 8];
                spec.resize(self.interrupt_cells as usize, 0);
                spec
            })
            .collect();
        w.property_array_u32("interrupts", &ints).unwrap();
        if let Some(f) = self.timer_frequency {
            w.property_u32("clock-frequency", f).unwrap();
        }
        w.end_node(t).unwrap();

        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn discover(&self) -> Result<Platform, PlatformError> {
        let bytes = self.build();
        discover(&Fdt::new(&bytes).expect("a valid tree"))
    }
}

fn ram(start: u64, size: u64) -> RamRange {
    RamRange { start, size }
}

#[test]
fn plain_board_gic_under_a_one_cell_bus_timer_and_cpus() {
    let p = Synth::default().discover().unwrap();
    assert_eq!(p.board.model.as_str(), "Vendor Board");
    assert_eq!(p.board.compatible.as_str(), "vendor,board");
    assert_eq!(p.gicd, 0x3880_0000);
    assert_eq!(p.gicr.as_slice(), &[(0x3888_0000, 0xc_0000)]);
    assert_eq!(p.gicr_stride, None);
    assert_eq!(
        p.intids,
        HostIntids {
            maintenance: 25,
            secure_timer: 29,
            phys_timer: 30,
            virt_timer: 27,
            hyp_timer: 26,
        }
    );
    assert_eq!(p.timer_frequency, None);
    assert_eq!(p.cpus.as_slice(), &[0, 1, 0x100, 0x101]);
    assert_eq!(p.psci, Some(Conduit::Smc));
    assert!(p.quirk.is_none());
    assert_eq!(p.ram.as_slice(), &[ram(0x4000_0000, 0x4000_0000)]);
}

#[test]
fn memory_in_several_nodes_and_banks_zero_sizes_skipped() {
    let p = Synth {
        memory: vec![
            vec![(0x4000_0000, 0xc000_0000), (0x1_0000_0000, 0xc000_0000)],
            vec![(0x8_8000_0000, 0x8000_0000), (0, 0)],
        ],
        ..Synth::default()
    }
    .discover()
    .unwrap();
    assert_eq!(
        p.ram.as_slice(),
        &[
            ram(0x4000_0000, 0xc000_0000),
            ram(0x1_0000_0000, 0xc000_0000),
            ram(0x8_8000_0000, 0x8000_0000)
        ]
    );
}

#[test]
fn memory_left_to_the_boot_loader_is_refused_by_name() {
    for memory in [vec![], vec![vec![(0, 0)]]] {
        let e = Synth {
            memory,
            ..Synth::default()
        }
        .discover()
        .unwrap_err();
        assert!(matches!(e, PlatformError::NoMemory { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("\"Vendor Board\" (vendor,board)"), "{msg}");
        assert!(msg.contains("boot loader"), "{msg}");
    }
}

#[test]
fn reserved_memory_with_and_without_no_map_memreserve_and_dynamic_pools() {
    let p = Synth {
        memreserve: vec![(0x4000_0000, 0x1_0000)],
        reserved: vec![
            ("optee@56000000", Some((0x5600_0000, 0x200_0000)), true),
            ("dsp@92400000", Some((0x9240_0000, 0x200_0000)), false),
            ("linux,cma", None, false),
            ("empty@0", Some((0, 0)), true),
        ],
        ..Synth::default()
    }
    .discover()
    .unwrap();
    assert_eq!(
        p.reserved.as_slice(),
        &[
            (0x4000_0000, 0x1_0000),
            (0x5600_0000, 0x200_0000),
            (0x9240_0000, 0x200_0000)
        ]
    );
    assert_eq!(p.reserved_dynamic, 1);
}

#[test]
fn several_redistributor_regions_and_a_stride() {
    let p = Synth {
        gic_reg: vec![
            (0x0600_0000, 0x1_0000),
            (0x0620_0000, 0x10_0000),
            (0x0640_0000, 0x10_0000),
            (0x0660_0000, 0x8_0000),
            // GICv2-compatible CPU interface frames: not redistributors.
            (0x0c0c_0000, 0x2000),
            (0x0c0d_0000, 0x1000),
        ],
        redistributor_regions: Some(3),
        stride: Some(0x4_0000),
        ..Synth::default()
    }
    .discover()
    .unwrap();
    assert_eq!(
        p.gicr.as_slice(),
        &[
            (0x0620_0000, 0x10_0000),
            (0x0640_0000, 0x10_0000),
            (0x0660_0000, 0x8_0000)
        ]
    );
    assert_eq!(p.gicr_stride, Some(0x4_0000));
    // More regions said than given.
    let e = Synth {
        redistributor_regions: Some(2),
        ..Synth::default()
    }
    .discover()
    .unwrap_err();
    assert!(
        matches!(e, PlatformError::NoRedistributors { regions: 2, .. }),
        "{e:?}"
    );
}

#[test]
fn four_cell_specifiers_with_ppi_partitions_and_other_ppis() {
    let p = Synth {
        interrupt_cells: 4,
        gic_interrupts: Some(vec![1, 9, 4, 0]),
        timer: vec![(1, 13), (1, 14), (1, 12), (1, 15)],
        timer_frequency: Some(8_000_000),
        ..Synth::default()
    }
    .discover()
    .unwrap();
    assert_eq!(p.intids.maintenance, 25);
    assert_eq!(p.intids.virt_timer, 28);
    assert_eq!(p.intids.hyp_timer, 31);
    assert_eq!(p.timer_frequency, Some(8_000_000));
}

#[test]
fn timer_and_maintenance_interrupts_must_be_there() {
    let no_timer = Synth {
        timer: vec![(1, 13), (1, 14), (1, 11)],
        ..Synth::default()
    };
    assert!(matches!(
        no_timer.discover(),
        Err(PlatformError::NoTimer { .. })
    ));
    let spi_timer = Synth {
        timer: vec![(1, 13), (0, 14), (1, 11), (1, 10)],
        ..Synth::default()
    };
    assert!(matches!(
        spi_timer.discover(),
        Err(PlatformError::NoTimer { .. })
    ));
    let no_maint = Synth {
        gic_interrupts: None,
        ..Synth::default()
    };
    assert!(matches!(
        no_maint.discover(),
        Err(PlatformError::NoMaintenanceInterrupt { .. })
    ));
}

#[test]
fn no_psci_is_refused_by_name_unless_a_quirk_knows() {
    let e = Synth {
        psci: None,
        ..Synth::default()
    }
    .discover()
    .unwrap_err();
    assert!(matches!(e, PlatformError::NoPsci { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("\"Vendor Board\"") && msg.contains("PSCI"),
        "{msg}"
    );
    let p = Synth {
        psci: None,
        compatible: &["xlnx-versal-virt"],
        ..Synth::default()
    }
    .discover()
    .unwrap();
    assert_eq!(p.psci, Some(Conduit::Smc));
    assert_eq!(p.quirk.map(|q| q.compatible), Some("xlnx-versal-virt"));
    // A PSCI node with a method wins over any quirk.
    let p = Synth {
        psci: Some("hvc"),
        compatible: &["xlnx-versal-virt"],
        ..Synth::default()
    }
    .discover()
    .unwrap();
    assert_eq!(p.psci, Some(Conduit::Hvc));
    assert!(p.quirk.is_none());
}

#[test]
fn a_gicv2_is_refused_naming_the_board_and_the_gic() {
    for gic in ["arm,gic-400", "arm,cortex-a15-gic", "arm,gic-v2"] {
        let e = Synth {
            gic_compatible: gic,
            ..Synth::default()
        }
        .discover()
        .unwrap_err();
        assert_eq!(
            e,
            PlatformError::GicV2Only {
                board: Board {
                    model: Name::new("Vendor Board"),
                    compatible: Name::new("vendor,board"),
                },
                compatible: gic,
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("\"Vendor Board\" (vendor,board)")
                && msg.contains(gic)
                && msg.contains("needs a GICv3"),
            "{msg}"
        );
    }
    // Without a model the compatible names it.
    let e = Synth {
        gic_compatible: "arm,gic-400",
        model: None,
        ..Synth::default()
    }
    .discover()
    .unwrap_err();
    assert!(
        e.to_string().starts_with("the board \"vendor,board\""),
        "{e}"
    );
}

#[test]
fn too_many_reserved_ranges_is_an_error_not_a_silent_drop() {
    let reserved: Vec<_> = (0..=MAX_RESERVED as u64)
        .map(|n| ("r", Some((0x4000_0000 + n * 0x10_0000, 0x1000)), true))
        .collect();
    let e = Synth {
        reserved,
        ..Synth::default()
    }
    .discover()
    .unwrap_err();
    assert!(
        matches!(
            e,
            PlatformError::TooMany {
                max: MAX_RESERVED,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn names_are_cut_at_a_character_boundary() {
    let long: String = "é".repeat(40);
    let n = Name::new(&long);
    assert!(n.as_str().len() <= Name::CAPACITY);
    assert!(long.starts_with(n.as_str()));
}

/// QEMU's own Versal tree (`testdata/dtb/qemu-versal-virt.dtb`; values from `dtc -O dts`):
/// no `/psci`, so the quirk gives PSCI; RAM in two banks of one node.
#[test]
fn qemu_versal_virt_by_its_quirk() {
    let path = format!(
        "{}/testdata/dtb/qemu-versal-virt.dtb",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    let p = discover(&Fdt::new(&bytes).unwrap()).unwrap();
    assert_eq!(
        p.board.model.as_str(),
        "Xilinx Versal Virtual development board"
    );
    assert_eq!(
        p.ram.as_slice(),
        &[ram(0, 0x8000_0000), ram(0x8_0000_0000, 0x8000_0000)]
    );
    assert_eq!(p.cpus.as_slice(), &[0, 1]);
    assert_eq!(p.gicd, 0xf900_0000);
    assert_eq!(p.gicr.as_slice(), &[(0xf908_0000, 0x8_0000)]);
    assert_eq!(p.psci, Some(Conduit::Smc));
    assert_eq!(p.quirk.map(|q| q.compatible), Some("xlnx-versal-virt"));
    assert_eq!(p.intids.maintenance, 25);
    assert_eq!(p.intids.hyp_timer, 26);
}
