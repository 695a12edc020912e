//! What happens when the hypervisor itself goes wrong: a panic or an exception taken at EL2.
//! Both print `rhyve: PANIC` with what is known and halt the CPU; they never return into a
//! guest. And what happens when the machine is not one rhyve can run on ([`stop`]): it says
//! why, then halts.

use super::console::force_write_fmt;
use crate::arch::{cpu, trap};

/// Called from the EL2 vectors for an exception taken at EL2.
#[no_mangle]
pub extern "C" fn hyp_exception(kind: u64, sp: u64) -> ! {
    let s = trap::syndrome();
    let elr = trap::return_address();
    force_write_fmt(format_args!(
        "\nrhyve: PANIC: exception at EL2 (vector {kind}) on CPU mpidr {:#x}: ESR_EL2 {:#x} ELR_EL2 {elr:#x} FAR_EL2 {:#x} SP {sp:#x}\n",
        cpu::mpidr(),
        s.esr,
        s.far
    ));
    halt()
}

/// Says why the hypervisor cannot go on, on the console if there is one, and halts: for
/// what goes wrong before PSCI, and so powering off, is known.
pub fn stop(why: core::fmt::Arguments<'_>) -> ! {
    log::error!("{why}; halting");
    halt()
}

/// Stops this CPU for good.
pub fn halt() -> ! {
    loop {
        cpu::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    force_write_fmt(format_args!(
        "\nrhyve: PANIC on CPU mpidr {:#x}: {info}\n",
        cpu::mpidr()
    ));
    halt()
}
