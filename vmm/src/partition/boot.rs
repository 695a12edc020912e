//! The VMM partition's entry: the core starts each VMM vCPU here at EL1h, MMU off, DAIF
//! masked, x0 = its index. The image is a static PIE linked at 0 (by linker/hypervisor.ld,
//! shared with the core); CPU 0 applies its relocations and clears .bss, then every CPU takes
//! its own stack.

use core::arch::global_asm;

/// ELF relocation type for "base + addend".
const R_AARCH64_RELATIVE: u32 = 1027;
/// Most VMM vCPUs (one per physical CPU).
pub const MAX_CPUS: u64 = 8;
/// Stack of each VMM vCPU.
pub const STACK_SIZE: u64 = 64 * 1024;

#[repr(C, align(16))]
struct Stacks([u8; (MAX_CPUS * STACK_SIZE) as usize]);

static mut STACKS: Stacks = Stacks([0; (MAX_CPUS * STACK_SIZE) as usize]);

global_asm!(
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
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
1:  cmp     x2, x3
    b.hs    2f
    ldp     x4, x5, [x2], #16
    ldr     x6, [x2], #8
    cmp     w5, #{relative}
    b.ne    9f
    add     x6, x6, x1
    str     x6, [x1, x4]
    b       1b
2:  adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
3:  cmp     x2, x3
    b.hs    5f
    stp     xzr, xzr, [x2], #16
    b       3b

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
    relative = const R_AARCH64_RELATIVE,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    panic_lo = const abi::vmm::call::PANIC & 0xffff,
    panic_hi = const abi::vmm::call::PANIC >> 16,
);
