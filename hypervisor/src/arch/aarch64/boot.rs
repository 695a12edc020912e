//! Entry points: the arm64 Image header, self-relocation, and the jump into Rust.
//!
//! The image is linked at 0 as a static PIE. The first instructions run with the MMU off at
//! EL2 wherever the loader put us (QEMU `-kernel`, U-Boot `booti`), apply the
//! `R_AARCH64_RELATIVE` relocations against the real load address, clear .bss, and call Rust.
//! Entered at another exception level, they do the same (none of it depends on the level)
//! and call a Rust entry that only finds the console to say so.
//! Secondary CPUs enter at `secondary_entry` (through PSCI CPU_ON) with the address of their
//! [`super::cpu::BootArgs`] in x0, once the primary has relocated the image and built the page
//! tables.

use core::arch::global_asm;

/// arm64 Image header flags (Linux booting.rst): bit 0 clear, little-endian.
const IMAGE_FLAG_LITTLE_ENDIAN: u64 = 0;
/// Bits 1-2, the kernel's page size: 1 is 4 KiB.
const IMAGE_FLAG_PAGE_SIZE_4K: u64 = 1 << 1;
/// Bit 3: the image may be placed anywhere in physical memory.
const IMAGE_FLAG_PLACE_ANYWHERE: u64 = 1 << 3;
/// The flags the header declares.
const IMAGE_FLAGS: u64 =
    IMAGE_FLAG_LITTLE_ENDIAN | IMAGE_FLAG_PAGE_SIZE_4K | IMAGE_FLAG_PLACE_ANYWHERE;
/// arm64 Image magic, "ARM\x64".
const IMAGE_MAGIC: u32 = 0x644d_5241;
/// CurrentEL value at EL2.
const CURRENT_EL_EL2: u32 = 2 << 2;
/// Size of the primary CPU's boot stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    include_str!("../../../../linker/relocate.S"),
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    b       primary_entry          // code0
    .long   0                      // code1
    .quad   0                      // text_offset: any 2 MiB-aligned base
    .quad   __image_size           // image_size, .bss included
    .quad   {flags}
    .quad   0, 0, 0                // res2..res4
    .long   {magic}
    .long   0                      // res5: no PE header

    .text
    .global primary_entry
primary_entry:
    msr     daifset, #0xf
    mov     x19, x0                // the device tree
    adr     x1, _head
    rhyve_relocate x1, 3f

    adrp    x2, {stack}
    add     x2, x2, :lo12:{stack}
    add     x2, x2, #{stack_size}
    mov     sp, x2
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    adr     x1, _head
    mrs     x2, CurrentEL
    cmp     x2, #{el2}
    b.ne    4f
    bl      {rust_primary}
4:  lsr     x1, x2, #2             // the exception level
    bl      {rust_wrong_el}
3:  wfe
    b       3b

    // x0 = BootArgs (physical; the MMU is off). BootArgs: stack_top, ttbr0, tcr, mair, sctlr.
    .global secondary_entry
secondary_entry:
    msr     daifset, #0xf
    ldr     x1, [x0, #0]
    mov     sp, x1
    ldp     x1, x2, [x0, #8]       // ttbr0, tcr
    ldp     x3, x4, [x0, #24]      // mair, sctlr
    msr     mair_el2, x3
    msr     tcr_el2, x2
    msr     ttbr0_el2, x1
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x4
    isb
    mov     x29, xzr
    mov     x30, xzr
    bl      {rust_secondary}
6:  wfe
    b       6b
"#,
    flags = const IMAGE_FLAGS,
    magic = const IMAGE_MAGIC,
    el2 = const CURRENT_EL_EL2,
    stack = sym BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    rust_primary = sym primary_main,
    rust_wrong_el = sym primary_wrong_el,
    rust_secondary = sym secondary_main,
);

extern "C" {
    /// The image's Rust entry on the primary CPU (the runtime's): the device tree's address
    /// and the image's load base.
    fn primary_main(dtb: usize, image_base: usize) -> !;
    /// The image's Rust entry on the primary CPU entered at exception level `el`, not EL2:
    /// it says so on the console, if it finds one, and halts.
    fn primary_wrong_el(dtb: usize, el: u64) -> !;
    /// The image's Rust entry on a secondary CPU, with its `BootArgs`.
    fn secondary_main(args: &super::cpu::BootArgs) -> !;
    /// Where secondary CPUs start (PSCI CPU_ON entry point).
    pub fn secondary_entry();
    /// First byte of the image.
    static _head: u8;
}

/// The primary CPU's boot stack.
#[repr(C, align(16))]
pub struct Stack(pub [u8; BOOT_STACK_SIZE]);

/// The primary CPU's boot stack (in .bss, zeroed before use).
#[no_mangle]
pub static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

/// Physical address of `secondary_entry`, for PSCI CPU_ON.
pub fn secondary_entry_addr() -> usize {
    secondary_entry as *const () as usize
}
