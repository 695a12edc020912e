//! PSCI 1.1 / SMCCC 1.1 calls over `hvc` (and `smc`, which rhyve traps and answers the same).

use abi::VcpuId;

/// Function IDs (PSCI 1.1, DEN0022; SMCCC 1.1, DEN0028).
pub mod fid {
    /// PSCI_VERSION.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON, SMC64.
    pub const CPU_ON_64: u32 = 0xc400_0003;
    /// AFFINITY_INFO, SMC64.
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    /// MIGRATE_INFO_TYPE.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const PSCI_FEATURES: u32 = 0x8400_000a;
    /// SMCCC_VERSION.
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    /// SMCCC_ARCH_FEATURES.
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
}

/// PSCI return codes, as the 64-bit x0 a caller sees.
pub mod ret {
    /// SUCCESS.
    pub const SUCCESS: u64 = 0;
    /// NOT_SUPPORTED.
    pub const NOT_SUPPORTED: u64 = -1i64 as u64;
    /// INVALID_PARAMETERS.
    pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
    /// ALREADY_ON.
    pub const ALREADY_ON: u64 = -4i64 as u64;
    /// INVALID_ADDRESS.
    pub const INVALID_ADDRESS: u64 = -9i64 as u64;
}

/// An HVC call with function ID `x0` and arguments `x1..x3`; returns x0.
pub fn hvc(x0: u64, x1: u64, x2: u64, x3: u64) -> u64 {
    let r;
    // SAFETY: an SMCCC call: the hypervisor may change x0..x17 (declared), nothing else.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") x0 => r,
            inout("x1") x1 => _, inout("x2") x2 => _, inout("x3") x3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
            out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
            out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        )
    };
    r
}

/// The same call over SMC.
pub fn smc(x0: u64, x1: u64, x2: u64, x3: u64) -> u64 {
    let r;
    // SAFETY: as `hvc`.
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") x0 => r,
            inout("x1") x1 => _, inout("x2") x2 => _, inout("x3") x3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
            out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
            out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        )
    };
    r
}

/// This vCPU's index, from MPIDR_EL1.
pub fn my_index() -> usize {
    let mpidr = crate::read_sysreg!("mpidr_el1");
    VcpuId::from_mpidr_affinity(mpidr, usize::from(u16::MAX))
        .map(|v| usize::from(v.0))
        .unwrap_or(usize::MAX)
}

/// The MPIDR affinity of vCPU `index`.
pub fn mpidr_of(index: u16) -> u64 {
    VcpuId(index).mpidr_affinity()
}

/// CPU_ON of `target` at `entry` with `context`; returns x0.
pub fn cpu_on(target: u64, entry: u64, context: u64) -> u64 {
    hvc(u64::from(fid::CPU_ON_64), target, entry, context)
}

/// Starts vCPU `index` running `f` (then CPU_OFF); returns CPU_ON's x0.
pub fn start_secondary(index: u16, f: fn()) -> u64 {
    match super::boot::secondary_boot(usize::from(index), f) {
        Some((entry, stack)) => cpu_on(mpidr_of(index), entry, stack),
        None => ret::INVALID_PARAMETERS,
    }
}

/// AFFINITY_INFO of `target` at `lowest_level`: 0 ON, 1 OFF, 2 ON_PENDING, or an error.
pub fn affinity_info(target: u64, lowest_level: u64) -> u64 {
    hvc(u64::from(fid::AFFINITY_INFO_64), target, lowest_level, 0)
}

/// Waits (up to `ms` of virtual time) until AFFINITY_INFO of vCPU `index` says `state`.
pub fn wait_affinity(index: u16, state: u64, ms: u64) -> u64 {
    let deadline = super::ticks_per_ms() * ms;
    let start = crate::read_sysreg!("cntvct_el0");
    loop {
        let s = affinity_info(mpidr_of(index), 0);
        if s == state || crate::read_sysreg!("cntvct_el0").wrapping_sub(start) > deadline {
            return s;
        }
        super::delay_ticks(super::ticks_per_ms());
    }
}

/// CPU_OFF: does not return on success.
pub fn cpu_off() {
    hvc(u64::from(fid::CPU_OFF), 0, 0, 0);
}

/// SYSTEM_OFF: ends the VM.
pub fn system_off() -> ! {
    hvc(u64::from(fid::SYSTEM_OFF), 0, 0, 0);
    loop {
        // SAFETY: waiting for the end; no memory effects.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}
