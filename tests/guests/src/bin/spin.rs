//! `spin`: a vCPU that never gives its CPU back. It masks every interrupt (PSTATE.DAIF), says
//! so in one line, then spins for ever on registers alone: no WFI, no HVC, no device access,
//! nothing that traps. Only the hypervisor's own timer can take the CPU from it, so another
//! VM placed on the same CPU runs only if rhyve preempts this one (the `hostile-time`
//! scenario).
//!
//! Prints `RHYVE-SPIN start daif=<DAIF>`; it never prints anything after that and never ends.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use tg::rt::console::line;
    use tock_registers::{register_bitfields, LocalRegisterCopy};

    register_bitfields! {u64,
        /// PSTATE.DAIF as the DAIF register shows it (Arm ARM C5.2.2).
        DAIF [
            /// Debug exceptions masked.
            D OFFSET(9) NUMBITS(1) [],
            /// SError interrupts masked.
            A OFFSET(8) NUMBITS(1) [],
            /// IRQs masked.
            I OFFSET(7) NUMBITS(1) [],
            /// FIQs masked.
            F OFFSET(6) NUMBITS(1) []
        ]
    }

    fn mask_everything() -> LocalRegisterCopy<u64, DAIF::Register> {
        let all = (DAIF::D::SET + DAIF::A::SET + DAIF::I::SET + DAIF::F::SET).value;
        let now: u64;
        // SAFETY: changes only this CPU's interrupt masks; no memory is touched.
        unsafe {
            core::arch::asm!(
                "msr daif, {all}",
                "isb",
                "mrs {now}, daif",
                all = in(reg) all,
                now = out(reg) now,
                options(nomem, nostack),
            )
        };
        LocalRegisterCopy::new(now)
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let daif = mask_everything();
        let masked = daif.is_set(DAIF::I) && daif.is_set(DAIF::F);
        line(format_args!(
            "RHYVE-SPIN start daif={:#x} irq-masked={masked}",
            daif.get()
        ));
        // Work the optimizer cannot drop, and that never leaves the CPU's registers.
        let mut spins: u64 = 0;
        loop {
            spins = core::hint::black_box(spins.wrapping_add(1));
        }
    }
}
