// Shared by the boot stubs of the EL2 core, the VMM partition and the test guests, which are
// all static PIEs that relocate themselves before any Rust runs (MMU off, no stack needed).
//
// rhyve_relocate base, fail: applies every R_AARCH64_RELATIVE relocation (ELF for the Arm
// 64-bit Architecture, 5.7.12: the slot at base + r_offset gets base + r_addend), then zeroes
// .bss (16-byte aligned by the linker scripts). `base` is a register holding the load base;
// any other relocation type is a build problem and branches to `fail`. Clobbers x2-x6.
.macro rhyve_relocate base, fail
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
.Lrhyve_rela\@:
    cmp     x2, x3
    b.hs    .Lrhyve_bss\@
    ldp     x4, x5, [x2], #16      // r_offset, r_info
    ldr     x6, [x2], #8           // r_addend
    cmp     w5, #1027              // R_AARCH64_RELATIVE
    b.ne    \fail
    add     x6, x6, \base
    str     x6, [\base, x4]
    b       .Lrhyve_rela\@
.Lrhyve_bss\@:
    adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
.Lrhyve_bss_loop\@:
    cmp     x2, x3
    b.hs    .Lrhyve_done\@
    stp     xzr, xzr, [x2], #16
    b       .Lrhyve_bss_loop\@
.Lrhyve_done\@:
.endm
