//! `vmmfault`: the guest's UART model fails under it, and the guest sees an abort, not a
//! hang. Run with the hypervisor's own command line `rhyve.vmm_fault=pl011-write:41`: the VMM
//! partition's UART model panics on the 41st write.
//!
//! Expected: 40 writes complete; the 41st (the one the model dies on) and every later UART
//! access get a synchronous external abort injected; the core's own devices (the GIC) still
//! answer. The UART cannot carry the result after that, so the guest reports through PSCI:
//! SYSTEM_OFF when every check held, SYSTEM_RESET when one did not.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use abi::layout::{GICD_BASE, PL011_BASE};
    use tg::esr::Expect;
    use tg::rt::access::{read32, write32};
    use tg::rt::exception::trap;
    use tg::rt::gic::gicd;
    use tg::rt::psci::{fid, hvc, system_off};

    /// Writes the model survives (the fault is planned on the next one).
    const GOOD_WRITES: u32 = 40;
    /// UARTDR and UARTFR (PL011 TRM 3.3).
    const UARTDR: u64 = PL011_BASE.0;
    const UARTFR: u64 = PL011_BASE.0 + 0x18;
    /// GICD_PIDR2.ArchRev of a GICv3.
    const ARCH_REV_SHIFT: u64 = 4;
    const ARCH_REV_MASK: u64 = 0xf;
    const GICV3: u64 = 3;

    #[no_mangle]
    fn tg_main() -> ! {
        let mut ok = true;
        for _ in 0..GOOD_WRITES {
            // SAFETY: a store to the emulated UART's data register.
            let ((), t) = trap(|| unsafe { write32(UARTDR, u64::from(b'.')) });
            ok &= t.is_none();
        }
        // SAFETY: as above; this write kills the model.
        let ((), t) = trap(|| unsafe { write32(UARTDR, u64::from(b'!')) });
        ok &= Expect::injected_dabt(UARTDR, true).check(t).is_ok();
        // SAFETY: a load from the (now failed) UART's flag register.
        let (_, t) = trap(|| unsafe { read32(UARTFR) });
        ok &= Expect::injected_dabt(UARTFR, false).check(t).is_ok();
        // SAFETY: a load from the emulated distributor, which the core itself serves.
        let (pidr2, t) = trap(|| unsafe { read32(GICD_BASE.0 + gicd::PIDR2) });
        ok &= t.is_none() && (pidr2 >> ARCH_REV_SHIFT) & ARCH_REV_MASK == GICV3;
        if ok {
            system_off()
        }
        hvc(u64::from(fid::SYSTEM_RESET), 0, 0, 0);
        system_off()
    }
}
