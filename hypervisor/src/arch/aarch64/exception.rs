//! EL2 exception vectors and the world switch into and out of a guest.
//!
//! `enter_guest` saves the host's callee-saved registers on the EL2 stack, loads the guest's
//! general registers, ELR and SPSR, and `eret`s. Any exception from the guest lands on the
//! same stack (SP_EL2 is unchanged while the guest runs), stores the guest's registers back
//! into the context whose address `enter_guest` left at the top of that stack, and returns
//! from `enter_guest` with the kind of exception. Only general registers, PC and PSTATE move:
//! each vCPU is pinned to its CPU, and the core never touches FP/SIMD or EL1 system
//! registers on the exit path, so those stay live in the CPU.
//!
//! Exceptions taken from EL2 itself are hypervisor bugs: they are reported and halt the CPU.

use core::arch::global_asm;

/// A guest's general-purpose registers, PC and PSTATE, as the world switch moves them.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct GuestRegs {
    /// x0..x30.
    pub x: [u64; 31],
    /// Where the guest resumes (ELR_EL2).
    pub elr: u64,
    /// The guest's PSTATE (SPSR_EL2).
    pub spsr: u64,
}

const OFF_ELR: usize = 31 * 8;
const _: () = assert!(core::mem::offset_of!(GuestRegs, elr) == OFF_ELR);
const _: () = assert!(core::mem::offset_of!(GuestRegs, spsr) == OFF_ELR + 8);

/// Why the guest stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// A synchronous exception (trap, abort, HVC/SMC): ESR_EL2 says which.
    Sync,
    /// A physical IRQ.
    Irq,
    /// A physical FIQ.
    Fiq,
    /// An SError.
    SError,
}

const KIND_SYNC: u64 = 0;
const KIND_IRQ: u64 = 1;
const KIND_FIQ: u64 = 2;
const KIND_SERROR: u64 = 3;
/// Host frame: the context pointer (+ padding) and x19..x30.
const HOST_FRAME: usize = 16 + 12 * 8;

global_asm!(
    r#"
.macro guest_vector kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\kind
    b       guest_exit_common
.endm

.macro hyp_vector kind
    .balign 0x80
    mov     x0, #\kind
    mov     x1, sp
    b       {hyp_fault}
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global el2_vectors
el2_vectors:
    hyp_vector 0        // current EL, SP_EL0
    hyp_vector 1
    hyp_vector 2
    hyp_vector 3
    hyp_vector 4        // current EL, SP_ELx
    hyp_vector 5
    hyp_vector 6
    hyp_vector 7
    guest_vector {sync}     // lower EL, AArch64
    guest_vector {irq}
    guest_vector {fiq}
    guest_vector {serror}
    hyp_vector 12       // lower EL, AArch32: HCR_EL2.RW=1 makes these impossible
    hyp_vector 13
    hyp_vector 14
    hyp_vector 15

    .text
guest_exit_common:
    // x0 = kind, [sp] = guest x0/x1, [sp + 16] = &GuestRegs
    ldr     x1, [sp, #16]
    stp     x2, x3, [x1, #16]
    stp     x4, x5, [x1, #32]
    stp     x6, x7, [x1, #48]
    stp     x8, x9, [x1, #64]
    stp     x10, x11, [x1, #80]
    stp     x12, x13, [x1, #96]
    stp     x14, x15, [x1, #112]
    stp     x16, x17, [x1, #128]
    stp     x18, x19, [x1, #144]
    stp     x20, x21, [x1, #160]
    stp     x22, x23, [x1, #176]
    stp     x24, x25, [x1, #192]
    stp     x26, x27, [x1, #208]
    stp     x28, x29, [x1, #224]
    str     x30, [x1, #240]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x1]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x1, #{elr}]
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp, #96]
    add     sp, sp, #{frame}
    ret

    .global enter_guest
enter_guest:
    sub     sp, sp, #{frame}
    str     x0, [sp]
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    stp     x29, x30, [sp, #96]
    ldp     x1, x2, [x0, #{elr}]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0]
    eret
    dsb     nsh
    isb
"#,
    sync = const KIND_SYNC,
    irq = const KIND_IRQ,
    fiq = const KIND_FIQ,
    serror = const KIND_SERROR,
    elr = const OFF_ELR,
    frame = const HOST_FRAME,
    hyp_fault = sym hyp_exception,
);

extern "C" {
    /// The image's report of an exception taken at EL2 itself (the runtime's); never returns.
    fn hyp_exception(kind: u64, sp: u64) -> !;
    fn enter_guest(ctx: *mut GuestRegs) -> u64;
    static el2_vectors: u8;
}

/// Points VBAR_EL2 at the vectors above.
pub fn install_vectors() {
    let base = core::ptr::addr_of!(el2_vectors) as u64;
    crate::arch::regs::write_sysreg!("vbar_el2", base);
    super::cpu::isb();
}

/// Runs the guest whose registers are `ctx` until its next exception.
///
/// The caller must have loaded this vCPU's EL1 and stage-2 state into the CPU.
pub fn run(ctx: &mut GuestRegs) -> ExitKind {
    // SAFETY: `ctx` is a valid, exclusively borrowed context; `enter_guest` only reads and
    // writes it and returns on the next exception with the host's callee-saved registers
    // restored.
    let kind = unsafe { enter_guest(ctx) };
    match kind {
        KIND_SYNC => ExitKind::Sync,
        KIND_IRQ => ExitKind::Irq,
        KIND_FIQ => ExitKind::Fiq,
        _ => ExitKind::SError,
    }
}
