//! The EL1 vector table: synchronous exceptions a case expects are recorded and skipped; an
//! IRQ goes to the GIC helper when a case waits for one; anything else ends the run as FAIL.
//!
//! A case arms [`trap`]; the handler stores ESR_EL1, FAR_EL1 and ELR_EL1 and returns past the
//! faulting instruction (ELR + 4). An instruction abort has no instruction to skip, so it
//! returns to x30: fetch probes branch with `blr` (see [`super::access::fetch`]).

use core::arch::global_asm;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};

use crate::esr::{Syndrome, Trap};

/// Saved registers, as the vector stub lays them out.
#[repr(C)]
pub struct Frame {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL1: where the handler returns.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
    _pad: u64,
}

const FRAME_SIZE: usize = core::mem::size_of::<Frame>();
const _: () = assert!(FRAME_SIZE == 272);

global_asm!(
    r#"
    .macro TG_VENTRY kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       tg_vector_common
    .endm

    .text
    .balign 0x800
    .global tg_vectors
tg_vectors:
    TG_VENTRY 0
    TG_VENTRY 1
    TG_VENTRY 2
    TG_VENTRY 3
    TG_VENTRY 4
    TG_VENTRY 5
    TG_VENTRY 6
    TG_VENTRY 7
    TG_VENTRY 8
    TG_VENTRY 9
    TG_VENTRY 10
    TG_VENTRY 11
    TG_VENTRY 12
    TG_VENTRY 13
    TG_VENTRY 14
    TG_VENTRY 15

tg_vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el1
    stp     x30, x1, [sp, #240]
    mrs     x1, spsr_el1
    str     x1, [sp, #256]
    mov     x1, sp
    bl      {handler}
    ldp     x30, x1, [sp, #240]
    msr     elr_el1, x1
    ldr     x1, [sp, #256]
    msr     spsr_el1, x1
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame}
    eret
"#,
    frame = const FRAME_SIZE,
    handler = sym tg_exception,
);

/// Vector index (offset / 0x80) of a synchronous exception from EL1 with SP_EL1.
const SYNC_SPX: u64 = 4;
/// IRQ from EL1 with SP_EL1.
const IRQ_SPX: u64 = 5;
const NAMES: [&str; 4] = ["sync", "irq", "fiq", "serror"];

static EXPECTING: AtomicBool = AtomicBool::new(false);
static TAKEN: AtomicBool = AtomicBool::new(false);
static ESR: AtomicU64 = AtomicU64::new(0);
static FAR: AtomicU64 = AtomicU64::new(0);
static ELR: AtomicU64 = AtomicU64::new(0);

/// Runs `f` (one probing access) with a synchronous exception allowed; returns `f`'s result
/// and the exception, if one was taken. At most one exception is recorded: a second one in the
/// same window is unexpected and ends the run.
pub fn trap<R>(f: impl FnOnce() -> R) -> (R, Option<Trap>) {
    TAKEN.store(false, Ordering::Relaxed);
    EXPECTING.store(true, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    let r = f();
    compiler_fence(Ordering::SeqCst);
    EXPECTING.store(false, Ordering::Relaxed);
    let t = TAKEN.load(Ordering::Relaxed).then(|| Trap {
        esr: Syndrome(ESR.load(Ordering::Relaxed)),
        far: FAR.load(Ordering::Relaxed),
        elr: ELR.load(Ordering::Relaxed),
    });
    (r, t)
}

extern "C" fn tg_exception(kind: u64, frame: &mut Frame) {
    let esr = crate::read_sysreg!("esr_el1");
    let far = crate::read_sysreg!("far_el1");
    if kind == SYNC_SPX && EXPECTING.swap(false, Ordering::Relaxed) {
        ESR.store(esr, Ordering::Relaxed);
        FAR.store(far, Ordering::Relaxed);
        ELR.store(frame.elr, Ordering::Relaxed);
        TAKEN.store(true, Ordering::Relaxed);
        let s = Syndrome(esr);
        frame.elr = if matches!(s.ec(), 0x20 | 0x21) {
            // Nothing to skip: go back to the probe's caller.
            frame.x[30]
        } else {
            frame.elr + 4
        };
        return;
    }
    if kind == IRQ_SPX && super::gic::handle_irq() {
        return;
    }
    let source = match kind / 4 {
        0 => "EL1t",
        1 => "EL1h",
        2 => "EL0/AArch64",
        _ => "EL0/AArch32",
    };
    super::tester::fatal(format_args!(
        "unexpected {} from {source}: {:?} far={far:#x} elr={:#x} spsr={:#x} x30={:#x}",
        NAMES[(kind % 4) as usize],
        Syndrome(esr),
        frame.elr,
        frame.spsr,
        frame.x[30]
    ))
}
