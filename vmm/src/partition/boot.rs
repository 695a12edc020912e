//! The VMM partition's entry: the core starts each VMM vCPU here at EL1h, MMU off, DAIF
//! masked, x0 = its index. The image is a static PIE linked at 0 (by linker/hypervisor.ld,
//! shared with the core); CPU 0 applies its relocations and clears .bss, then every CPU takes
//! its own stack.

use core::arch::global_asm;

/// Most VMM vCPUs (one per physical CPU).
pub const MAX_CPUS: u64 = 8;
/// Stack of each VMM vCPU.
pub const STACK_SIZE: u64 = 64 * 1024;

#[repr(C, align(16))]
struct Stacks([u8; (MAX_CPUS * STACK_SIZE) as usize]);

static mut STACKS: Stacks = Stacks([0; (MAX_CPUS * STACK_SIZE) as usize]);

global_asm!(
    include_str!("../../../linker/relocate.S"),
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    msr     daifset, #0xf
    mov     x19, x0
    cmp     x19, #{max_cpus}
    b.hs    9f
    cbnz    x19, 5f

    adr     x1, _head
    rhyve_relocate x1, 9f

5:  adrp    x1, {stacks}
    add     x1, x1, :lo12:{stacks}
    mov     x2, #{stack_size}
    madd    x1, x19, x2, x2
    adrp    x3, {stacks}
    add     x3, x3, :lo12:{stacks}
    add     x1, x1, x3
    mov     sp, x1
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      vmm_main
9:  mov     x0, #{panic_lo}
    movk    x0, #{panic_hi}, lsl #16
    mov     x1, xzr
    hvc     #0
    b       9b
"#,
    max_cpus = const MAX_CPUS,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    panic_lo = const abi::vmm::call::PANIC & 0xffff,
    panic_hi = const abi::vmm::call::PANIC >> 16,
);
