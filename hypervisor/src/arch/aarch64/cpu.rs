//! The physical CPU: identity, barriers, cache maintenance, and what a secondary CPU needs to
//! start.

use crate::arch::regs::{read_sysreg, CTR, MPIDR};
use core::arch::asm;
use tock_registers::LocalRegisterCopy;

/// What a secondary CPU reads, with its MMU off, before it can run Rust: its stack and the
/// primary's translation setup. `secondary_entry` reads the first five fields by offset.
#[repr(C)]
#[derive(Debug, Default)]
pub struct BootArgs {
    /// Top of this CPU's stack.
    pub stack_top: u64,
    /// TTBR0_EL2 (the shared identity map).
    pub ttbr0: u64,
    /// TCR_EL2.
    pub tcr: u64,
    /// MAIR_EL2.
    pub mair: u64,
    /// SCTLR_EL2 to turn the MMU and caches on with.
    pub sctlr: u64,
    /// This CPU's index in the machine's CPU list.
    pub cpu_index: u64,
}

/// This CPU's MPIDR_EL1.
pub fn mpidr() -> u64 {
    read_sysreg!("mpidr_el1")
}

/// The affinity fields of an MPIDR value (Aff3..Aff0; other bits cleared).
pub fn affinity(mpidr: u64) -> u64 {
    let m = LocalRegisterCopy::<u64, MPIDR::Register>::new(mpidr);
    (MPIDR::AFF0.val(m.read(MPIDR::AFF0))
        + MPIDR::AFF1.val(m.read(MPIDR::AFF1))
        + MPIDR::AFF2.val(m.read(MPIDR::AFF2))
        + MPIDR::AFF3.val(m.read(MPIDR::AFF3)))
    .value
}

/// Aff3 of an affinity value.
pub fn aff3(aff: u64) -> u64 {
    LocalRegisterCopy::<u64, MPIDR::Register>::new(aff).read(MPIDR::AFF3)
}

/// Aff2.Aff1.Aff0 of an affinity value, as one 24-bit number.
pub fn aff2_0(aff: u64) -> u64 {
    let m = LocalRegisterCopy::<u64, MPIDR::Register>::new(aff);
    (MPIDR::AFF0.val(m.read(MPIDR::AFF0))
        + MPIDR::AFF1.val(m.read(MPIDR::AFF1))
        + MPIDR::AFF2.val(m.read(MPIDR::AFF2)))
    .value
}

/// Waits for an interrupt (the CPU sleeps; QEMU gives the host CPU away).
pub fn wfi() {
    // SAFETY: WFI only suspends execution until an interrupt or event.
    unsafe { asm!("dsb sy", "wfi", options(nostack)) };
}

/// Full system data synchronisation barrier.
pub fn dsb_sy() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// Instruction synchronisation barrier.
pub fn isb() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { asm!("isb", options(nostack)) };
}

fn dcache_line() -> usize {
    let ctr = LocalRegisterCopy::<u64, CTR::Register>::new(read_sysreg!("ctr_el0"));
    4 << ctr.read(CTR::DMINLINE)
}

/// Cleans the data cache to the point of coherency over `[start, start + len)`, so that an
/// observer with caches off (a guest before its MMU is on, a CPU still starting) sees memory
/// we wrote with caches on.
pub fn clean_dcache_range(start: usize, len: usize) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: DC CVAC on a mapped address only writes back a cache line; memory contents
        // are unchanged.
        unsafe { asm!("dc cvac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    dsb_sy();
}

/// Cleans and invalidates the data cache to the point of coherency over `[start, start +
/// len)`: memory holds what was written through the caches, and no line of the range is left
/// to be written back later over what is then written with the caches off (leaving UEFI's
/// world, whose MMU and caches were on).
pub fn clean_invalidate_dcache_range(start: usize, len: usize) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: DC CIVAC on a mapped address writes a line back and drops it; memory then
        // holds the same contents the cache did.
        unsafe { asm!("dc civac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    dsb_sy();
}

/// Invalidates all instruction caches to the point of unification (after writing code for a
/// guest).
pub fn invalidate_icache() {
    // SAFETY: invalidating the instruction cache only discards cached instructions.
    unsafe { asm!("ic iallu", "dsb nsh", "isb", options(nostack)) };
}
