//! `handoff`: the state a raw program finds at entry, as QEMU virt's `-kernel` leaves it. The
//! same binary must pass under rhyve and straight under QEMU (the `handoff` scenario runs it
//! both ways), so each check is one a bare-metal program written for QEMU makes.
//!
//! Cases: x0 holds a device tree (magic 0xd00dfeed) inside the RAM the tree describes and
//! above this program's image, x1-x3 are 0, the initrd the tree's `/chosen` names (if any)
//! overlaps neither the image nor the tree, the program runs at EL1 with the MMU off. Then one
//! `RHYVE-HANDOFF` line with what it found (x0, its own entry address, the tree's size, the
//! initrd's range) for the scenario to compare with the placement rules, and PSCI SYSTEM_OFF.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use tg::read_sysreg;
    use tg::rt::access::read32;
    use tg::rt::boot::entry_regs;
    use tg::rt::console::line;
    use tg::rt::exception::trap;
    use tg::rt::{image_extent, Tester};
    use tock_registers::{register_bitfields, LocalRegisterCopy};

    /// The tree's magic as a little-endian load of its big-endian bytes reads it.
    const FDT_MAGIC_LE: u64 = 0xedfe_0dd0;

    register_bitfields! {u64,
        /// CurrentEL (Arm ARM D23.2.31).
        CURRENT_EL [
            EL OFFSET(2) NUMBITS(2) []
        ],
        /// SCTLR_EL1 (Arm ARM D23.2.118): only the stage-1 MMU enable is checked.
        SCTLR_EL1 [
            M OFFSET(0) NUMBITS(1) []
        ]
    }

    /// A `/chosen` address property: one or two big-endian cells (QEMU writes one, rhyve two).
    fn cells(v: &[u8]) -> Option<u64> {
        match v.len() {
            4 => Some(u64::from(u32::from_be_bytes(v.try_into().ok()?))),
            8 => Some(u64::from_be_bytes(v.try_into().ok()?)),
            _ => None,
        }
    }

    /// Whether `[a, a_end)` and `[b, b_end)` share a byte.
    fn overlap(a: u64, a_end: u64, b: u64, b_end: u64) -> bool {
        a < b_end && b < a_end
    }

    /// Where `_start` runs: PC-relative, so the address it was entered at, not a link-time one.
    fn entry_pc() -> u64 {
        let pc: u64;
        // SAFETY: computes an address; touches no memory.
        unsafe { core::arch::asm!("adr {}, _start", out(reg) pc, options(nomem, nostack)) };
        pc
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let [x0, x1, x2, x3] = entry_regs();
        let (img_start, img_end) = image_extent();
        let mut t = Tester::new("handoff");

        // SAFETY: a load from wherever x0 points; a fault is caught and reported.
        let (magic, fault) = trap(|| unsafe { read32(x0) });
        let tree_ok = fault.is_none() && magic == FDT_MAGIC_LE;
        t.check(
            "dtb-magic",
            tree_ok,
            format_args!("x0={x0:#x} reads {magic:#x} fault={}", fault.is_some()),
        );
        // SAFETY: x0 holds a tree header (checked above); the crate reads `totalsize` bytes of
        // guest RAM this program never writes.
        let tree = tree_ok
            .then(|| unsafe { fdt::Fdt::from_ptr(x0 as *const u8) }.ok())
            .flatten();
        let size = tree.as_ref().map_or(0, |f| f.total_size() as u64);
        t.check(
            "dtb-above-image",
            tree.is_some() && x0 >= img_end,
            format_args!(
                "tree [{x0:#x}, {:#x}) image [{img_start:#x}, {img_end:#x})",
                x0 + size
            ),
        );
        let ram = tree
            .as_ref()
            .and_then(|f| f.memory().regions().next())
            .map(|r| (r.starting_address as u64, r.size.unwrap_or(0) as u64));
        let (ram_start, ram_size) = ram.unwrap_or((0, 0));
        t.check(
            "dtb-in-ram",
            ram_size != 0 && x0 >= ram_start && x0 + size <= ram_start + ram_size,
            format_args!("RAM [{ram_start:#x}, {:#x})", ram_start + ram_size),
        );

        let chosen = tree.as_ref().and_then(|f| f.find_node("/chosen"));
        let prop = |name| chosen.as_ref()?.property(name).and_then(|p| cells(p.value));
        let initrd = prop("linux,initrd-start").zip(prop("linux,initrd-end"));
        let initrd_ok = match initrd {
            None => true,
            Some((start, end)) => {
                start < end
                    && !overlap(start, end, img_start, img_end)
                    && !overlap(start, end, x0, x0 + size)
                    && start >= ram_start
                    && end <= ram_start + ram_size
            }
        };
        let (initrd_start, initrd_end) = initrd.unwrap_or((0, 0));
        t.check(
            "initrd-clear",
            initrd_ok,
            format_args!("initrd [{initrd_start:#x}, {initrd_end:#x})"),
        );

        t.check(
            "x1-x3-zero",
            x1 == 0 && x2 == 0 && x3 == 0,
            format_args!("x1={x1:#x} x2={x2:#x} x3={x3:#x}"),
        );
        let el: LocalRegisterCopy<u64, CURRENT_EL::Register> =
            LocalRegisterCopy::new(read_sysreg!("CurrentEL"));
        t.check(
            "el1",
            el.read(CURRENT_EL::EL) == 1,
            format_args!("CurrentEL.EL={}", el.read(CURRENT_EL::EL)),
        );
        // The boot stub leaves SCTLR_EL1 as it found it.
        let sctlr: LocalRegisterCopy<u64, SCTLR_EL1::Register> =
            LocalRegisterCopy::new(read_sysreg!("sctlr_el1"));
        t.check(
            "mmu-off",
            !sctlr.is_set(SCTLR_EL1::M),
            format_args!("sctlr_el1={:#x}", sctlr.get()),
        );

        line(format_args!(
            "RHYVE-HANDOFF x0={x0:#x} entry={:#x} dtb-size={size:#x} initrd={initrd_start:#x}-{initrd_end:#x} ram={ram_size:#x}",
            entry_pc()
        ));
        t.finish()
    }
}
