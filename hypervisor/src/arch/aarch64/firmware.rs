//! Calls into the machine's firmware (PSCI, SMCCC) through the conduit its device tree names.

use core::arch::asm;

pub use crate::platform::Conduit;

/// PSCI CPU_ON, SMC64.
pub const PSCI_CPU_ON_64: u32 = 0xc400_0003;
/// PSCI SYSTEM_OFF.
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
/// SMCCC_ARCH_FEATURES.
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
/// SMCCC_VERSION.
pub const SMCCC_VERSION: u32 = 0x8000_0000;

/// Makes an SMCCC call with up to three arguments; returns x0.
pub fn call(conduit: Conduit, fid: u32, a1: u64, a2: u64, a3: u64) -> u64 {
    let mut x0 = fid as u64;
    match conduit {
        // SAFETY: an SMCCC call preserves x18-x30 and sp; x0-x17 are declared clobbered.
        Conduit::Smc => unsafe {
            asm!("smc #0",
                inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
        // SAFETY: as above.
        Conduit::Hvc => unsafe {
            asm!("hvc #0",
                inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _, options(nostack))
        },
    }
    x0
}
