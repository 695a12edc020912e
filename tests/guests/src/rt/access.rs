//! Single accesses a case can aim anywhere, each exactly one instruction, so that the
//! exception handler's "ELR + 4" resumes right after it. Every probe starts its destination
//! register at [`SENTINEL`]: a load that faults leaves it there.
//!
//! # Safety (for the module)
//! These functions take raw addresses and may fault; the exception handler recovers only
//! while [`super::exception::trap`] is armed. They never touch Rust-visible memory unless the
//! caller aims them at it, so each is an `unsafe fn` whose caller picks the address.

use core::arch::asm;

/// The value a load probe returns if it did not load.
pub const SENTINEL: u64 = 0x5eb7_1ae1_dead_beef;

macro_rules! load {
    ($(#[$m:meta])* $name:ident, $insn:literal, $reg:literal) => {
        $(#[$m])*
        /// # Safety
        /// `addr` must not be memory Rust relies on (a device, a hole, or scratch RAM).
        #[inline(always)]
        pub unsafe fn $name(addr: u64) -> u64 {
            let mut v = SENTINEL;
            // SAFETY: the caller's address; one load, which may fault (recovered).
            unsafe { asm!(concat!($insn, " {v:", $reg, "}, [{a}]"), a = in(reg) addr, v = inout(reg) v, options(nostack)) };
            v
        }
    };
}

macro_rules! store {
    ($(#[$m:meta])* $name:ident, $insn:literal, $reg:literal) => {
        $(#[$m])*
        /// # Safety
        /// `addr` must not be memory Rust relies on (a device, a hole, or scratch RAM).
        #[inline(always)]
        pub unsafe fn $name(addr: u64, v: u64) {
            // SAFETY: the caller's address; one store, which may fault (recovered).
            unsafe { asm!(concat!($insn, " {v:", $reg, "}, [{a}]"), a = in(reg) addr, v = in(reg) v, options(nostack)) };
        }
    };
}

load!(/// 8-bit load.
    read8, "ldrb", "w");
load!(/// 16-bit load.
    read16, "ldrh", "w");
load!(/// 32-bit load.
    read32, "ldr", "w");
load!(/// 64-bit load.
    read64, "ldr", "x");
load!(/// Sign-extending 8-bit load to 64 bits.
    read8_sx, "ldrsb", "x");
store!(/// 8-bit store.
    write8, "strb", "w");
store!(/// 16-bit store.
    write16, "strh", "w");
store!(/// 32-bit store.
    write32, "str", "w");
store!(/// 64-bit store.
    write64, "str", "x");

/// LDP of two 64-bit registers (no syndrome: ISV = 0).
/// # Safety
/// As [`read64`].
pub unsafe fn ldp(addr: u64) -> u64 {
    let mut a = SENTINEL;
    // SAFETY: as `read64`.
    unsafe {
        asm!("ldp {a}, {b}, [{p}]", p = in(reg) addr, a = inout(reg) a, b = out(reg) _, options(nostack))
    };
    a
}

/// STP of two 64-bit registers (ISV = 0).
/// # Safety
/// As [`write64`].
pub unsafe fn stp(addr: u64, v: u64) {
    // SAFETY: as `write64`.
    unsafe { asm!("stp {v}, {v}, [{p}]", p = in(reg) addr, v = in(reg) v, options(nostack)) };
}

/// 32-bit load with post-index writeback (ISV = 0); returns (value, base after).
/// # Safety
/// As [`read32`].
pub unsafe fn read32_post(addr: u64) -> (u64, u64) {
    let mut v = SENTINEL;
    let mut p = addr;
    // SAFETY: as `read32`.
    unsafe { asm!("ldr {v:w}, [{p}], #4", p = inout(reg) p, v = inout(reg) v, options(nostack)) };
    (v, p)
}

/// 64-bit store with pre-index writeback (ISV = 0); returns the base after.
/// # Safety
/// As [`write64`].
pub unsafe fn write64_pre(addr: u64, v: u64) -> u64 {
    let mut p = addr - 8;
    // SAFETY: as `write64`.
    unsafe { asm!("str {v}, [{p}, #8]!", p = inout(reg) p, v = in(reg) v, options(nostack)) };
    p
}

/// LDXR (32-bit) (ISV = 0).
/// # Safety
/// As [`read32`].
pub unsafe fn ldxr32(addr: u64) -> u64 {
    let mut v = SENTINEL;
    // SAFETY: as `read32`; the exclusive monitor is cleared right after.
    unsafe {
        asm!("ldxr {v:w}, [{a}]", "clrex", a = in(reg) addr, v = inout(reg) v, options(nostack))
    };
    v
}

/// STXR (32-bit) (ISV = 0); returns the status register (SENTINEL if it faulted).
/// # Safety
/// As [`write32`].
pub unsafe fn stxr32(addr: u64, v: u64) -> u64 {
    let mut s = SENTINEL;
    // SAFETY: as `write32`.
    unsafe {
        asm!("stxr {s:w}, {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v, s = inout(reg) s, options(nostack))
    };
    s
}

/// Branches to `addr` (an instruction fetch there). The handler of the expected instruction
/// abort resumes at x30, right after the branch.
/// # Safety
/// `addr` must hold no code (a hole or a device): if it executed, anything could happen.
pub unsafe fn fetch(addr: u64) {
    // SAFETY: the caller promises nothing runs there; the abort returns through x30. All
    // caller-saved registers are declared clobbered, as for a call.
    unsafe { asm!("blr {a}", a = in(reg) addr, clobber_abi("C")) };
}
