//! Entry points: the arm64 Image header and the PE/COFF header that make the image both a
//! kernel and an EFI application, self-relocation, and the jump into Rust.
//!
//! The image is linked at 0 as a static PIE. The first instructions run with the MMU off at
//! EL2 wherever the loader put us (QEMU `-kernel`, U-Boot `booti`), apply the
//! `R_AARCH64_RELATIVE` relocations against the real load address, clear .bss, and call Rust.
//! Entered at another exception level, they do the same (none of it depends on the level)
//! and call a Rust entry that only finds the console to say so.
//! Secondary CPUs enter at `secondary_entry` (through PSCI CPU_ON) with the address of their
//! [`super::cpu::BootArgs`] in x0, once the primary has relocated the image and built the page
//! tables.
//!
//! Started by UEFI as an EFI application, the image enters at `efi_entry` (MMU on, boot
//! services up): it relocates itself there, `runtime::efi` loads the boot bundle and leaves
//! boot services, and [`leave_firmware`] turns the MMU off and goes on as `primary_entry`
//! does, with the bundle's location in a `hypervisor::efi::Handoff`.
//!
//! The headers' layout (offsets from the image's first byte):
//!
//! | offset | what |
//! |---|---|
//! | 0x00 | code0 `ccmp` (bytes "MZ...": the DOS signature); arm64 Image header to 0x40 |
//! | 0x04 | code1 `b primary_entry` |
//! | 0x38 | "ARM\x64" |
//! | 0x3c | the PE header's offset (0x40): the Image header's res5, DOS's e_lfanew |
//! | 0x40 | "PE\0\0", COFF header, PE32+ optional header, two section headers |
//! | 0x1000 | `.text` section (code, efi_entry its entry point) |
//! | `__pe_text_end` | `.data` section: read-only data, relocations, data, then .bss |

use core::arch::global_asm;
use core::ffi::c_void;
use uefi_raw::table::system::SystemTable;
use uefi_raw::Status;

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
/// SCTLR_EL2's MMU, data cache and instruction cache enables, cleared to leave UEFI's world.
const MMU_AND_CACHES: u64 = aarch64_cpu::registers::SCTLR_EL2::M::Enable.value
    | aarch64_cpu::registers::SCTLR_EL2::C::Cacheable.value
    | aarch64_cpu::registers::SCTLR_EL2::I::Cacheable.value;

/// The PE/COFF header's values (Microsoft "PE Format").
mod pe {
    /// IMAGE_FILE_MACHINE_ARM64.
    pub const MACHINE_ARM64: u16 = 0xaa64;
    /// IMAGE_FILE_EXECUTABLE_IMAGE.
    const EXECUTABLE_IMAGE: u16 = 0x0002;
    /// IMAGE_FILE_LINE_NUMS_STRIPPED.
    const LINE_NUMS_STRIPPED: u16 = 0x0004;
    /// IMAGE_FILE_DEBUG_STRIPPED.
    const DEBUG_STRIPPED: u16 = 0x0200;
    /// The COFF characteristics: an executable; not IMAGE_FILE_RELOCS_STRIPPED, so UEFI may
    /// load it at any address (it has no base relocations to apply: the image relocates
    /// itself).
    pub const CHARACTERISTICS: u16 = EXECUTABLE_IMAGE | LINE_NUMS_STRIPPED | DEBUG_STRIPPED;
    /// The optional header's magic for PE32+.
    pub const MAGIC_PE32PLUS: u16 = 0x20b;
    /// Sections start on page boundaries (the linker script aligns them).
    pub const SECTION_ALIGNMENT: u32 = 4096;
    /// Raw data is in units of 512 bytes (the linker script pads the last section's).
    pub const FILE_ALIGNMENT: u32 = 512;
    /// IMAGE_SUBSYSTEM_EFI_APPLICATION.
    pub const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
    /// IMAGE_DLLCHARACTERISTICS_NX_COMPAT: no section is both writable and executable.
    pub const DLL_NX_COMPAT: u16 = 0x0100;
    /// IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ.
    pub const TEXT_FLAGS: u32 = 0x0000_0020 | 0x2000_0000 | 0x4000_0000;
    /// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_WRITE.
    pub const DATA_FLAGS: u32 = 0x0000_0040 | 0x4000_0000 | 0x8000_0000;
}

/// Size of the primary CPU's boot stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    include_str!("../../../../linker/relocate.S"),
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    // code0: an instruction that only sets flags, whose first two bytes are "MZ", the DOS
    // signature UEFI looks for (Linux's arm64 head does the same).
    ccmp    x18, #0, #0xd, pl
    b       primary_entry          // code1
    .quad   0                      // text_offset: any 2 MiB-aligned base
    .quad   __image_size           // image_size, .bss included
    .quad   {flags}
    .quad   0, 0, 0                // res2..res4
    .long   {magic}
    .long   .Lpe_header - _head    // res5: the PE header's offset (PE/COFF's e_lfanew at 0x3c)

    // PE/COFF (Microsoft PE format, "Optional Header (Image Only)", "Section Table"): the same
    // bytes are an EFI application, with file offsets equal to addresses from _head, so the
    // flat image needs no reshuffling. No base relocations: UEFI loads it anywhere and the
    // entry applies its own ELF relocations, as the Image entry does.
    .balign 8
.Lpe_header:
    .ascii  "PE\0\0"
    .short  {pe_machine}           // Machine
    .short  2                      // NumberOfSections
    .long   0                      // TimeDateStamp
    .long   0                      // PointerToSymbolTable
    .long   0                      // NumberOfSymbols
    .short  .Lpe_sections - .Lpe_optional // SizeOfOptionalHeader
    .short  {pe_characteristics}   // Characteristics
.Lpe_optional:
    .short  {pe32plus}             // Magic: PE32+
    .byte   0, 0                   // Major/MinorLinkerVersion
    .long   __pe_text_size         // SizeOfCode
    .long   __pe_data_file_size    // SizeOfInitializedData
    .long   __pe_bss_size          // SizeOfUninitializedData
    .long   __pe_entry             // AddressOfEntryPoint: efi_entry
    .long   __pe_header_size       // BaseOfCode
    .quad   0                      // ImageBase
    .long   {pe_section_align}     // SectionAlignment
    .long   {pe_file_align}        // FileAlignment
    .short  0, 0                   // Major/MinorOperatingSystemVersion
    .short  0, 0                   // Major/MinorImageVersion
    .short  0, 0                   // Major/MinorSubsystemVersion
    .long   0                      // Win32VersionValue
    .long   __image_size           // SizeOfImage, .bss included
    .long   __pe_header_size       // SizeOfHeaders
    .long   0                      // CheckSum
    .short  {pe_subsystem}         // Subsystem: EFI application
    .short  {pe_dll_characteristics} // DllCharacteristics
    .quad   0, 0, 0, 0             // SizeOfStack/HeapReserve/Commit
    .long   0                      // LoaderFlags
    .long   6                      // NumberOfRvaAndSizes
    .quad   0, 0, 0, 0, 0, 0       // Export, Import, Resource, Exception, Certificate, BaseRelocation
.Lpe_sections:
    .ascii  ".text\0\0\0"          // Name
    .long   __pe_text_size         // VirtualSize
    .long   __pe_header_size       // VirtualAddress
    .long   __pe_text_size         // SizeOfRawData
    .long   __pe_header_size       // PointerToRawData
    .long   0, 0                   // PointerToRelocations, PointerToLinenumbers
    .short  0, 0                   // NumberOfRelocations, NumberOfLinenumbers
    .long   {pe_text_flags}        // Characteristics
    .ascii  ".data\0\0\0"          // read-only data, relocations, data and .bss
    .long   __pe_data_size
    .long   __pe_data_offset
    .long   __pe_data_file_size
    .long   __pe_data_offset
    .long   0, 0
    .short  0, 0
    .long   {pe_data_flags}

    .text
    .global primary_entry
primary_entry:
    mov     x20, xzr               // no UEFI handoff
.Lprimary:
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
    mrs     x3, CurrentEL
    cmp     x3, #{el2}
    b.ne    4f
    mov     x2, x20
    bl      {rust_primary}
4:  lsr     x1, x3, #2             // the exception level
    bl      {rust_wrong_el}
3:  wfe
    b       3b

    // The UEFI entry's way in, after it left boot services and turned the MMU off: as
    // primary_entry, x0 = the device tree, x1 = its `Handoff`.
primary_entry_efi:
    mov     x20, x1
    b       .Lprimary

    // UEFI's entry point (AddressOfEntryPoint): x0 = ImageHandle, x1 = SystemTable, x30 =
    // where to return a status to; EL2 or EL1, MMU on with an identity map, the firmware's
    // stack. Relocates the image in place (the MMU-off entry does it again, to the same
    // values) so Rust may run, and calls efi_main, which returns only on failure.
    .global efi_entry
efi_entry:
    stp     x29, x30, [sp, #-32]!
    stp     x19, x20, [sp, #16]
    mov     x29, sp
    mov     x19, x0
    mov     x20, x1
    adr     x7, _head
    rhyve_relocate x7, 7f
    mov     x0, x19
    mov     x1, x20
    adr     x2, _head
    bl      {rust_efi}
8:  ldp     x19, x20, [sp, #16]
    ldp     x29, x30, [sp], #32
    ret
7:  mov     x0, #1                 // EFI_LOAD_ERROR: a relocation the image cannot apply
    orr     x0, x0, #(1 << 63)
    b       8b

    // x0 = the device tree, x1 = the Handoff; boot services are gone and the image, tree,
    // bundle and handoff are cleaned to the point of coherency. Turns the MMU and caches off
    // (the state the boot protocol enters with) and goes on as a loader's entry.
    .global efi_leave
efi_leave:
    msr     daifset, #0xf
    mrs     x2, sctlr_el2
    mov     x3, #{mmu_caches}
    bic     x2, x2, x3
    dsb     sy
    msr     sctlr_el2, x2
    isb
    ic      iallu
    dsb     nsh
    isb
    b       primary_entry_efi

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
    pe_machine = const pe::MACHINE_ARM64,
    pe_characteristics = const pe::CHARACTERISTICS,
    pe32plus = const pe::MAGIC_PE32PLUS,
    pe_section_align = const pe::SECTION_ALIGNMENT,
    pe_file_align = const pe::FILE_ALIGNMENT,
    pe_subsystem = const pe::SUBSYSTEM_EFI_APPLICATION,
    pe_dll_characteristics = const pe::DLL_NX_COMPAT,
    pe_text_flags = const pe::TEXT_FLAGS,
    pe_data_flags = const pe::DATA_FLAGS,
    el2 = const CURRENT_EL_EL2,
    mmu_caches = const MMU_AND_CACHES,
    stack = sym BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    rust_primary = sym primary_main,
    rust_wrong_el = sym primary_wrong_el,
    rust_efi = sym efi_main,
    rust_secondary = sym secondary_main,
);

extern "C" {
    /// The image's Rust entry on the primary CPU (the runtime's): the device tree's address,
    /// the image's load base, and the address of the UEFI entry's `efi::Handoff` (0 when
    /// a loader entered the image as a kernel).
    fn primary_main(dtb: usize, image_base: usize, efi: usize) -> !;
    /// The image's Rust entry on the primary CPU entered at exception level `el`, not EL2:
    /// it says so on the console, if it finds one, and halts.
    fn primary_wrong_el(dtb: usize, el: u64) -> !;
    /// The image's Rust entry as an EFI application, with the relocated image's base.
    fn efi_main(image: *mut c_void, system_table: *mut SystemTable, image_base: usize) -> Status;
    /// The image's Rust entry on a secondary CPU, with its `BootArgs`.
    fn secondary_main(args: &super::cpu::BootArgs) -> !;
    /// Where secondary CPUs start (PSCI CPU_ON entry point).
    pub fn secondary_entry();
    /// Turns the MMU and caches off and enters as `primary_entry` (see [`leave_firmware`]).
    fn efi_leave(dtb: usize, handoff: usize) -> !;
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

/// The exception level this CPU runs at (CurrentEL.EL).
pub fn current_el() -> u64 {
    use aarch64_cpu::registers::{CurrentEL, Readable};
    CurrentEL.read(CurrentEL::EL)
}

/// Leaves UEFI's world for the core's: masks interrupts, turns SCTLR_EL2's MMU and caches
/// off, and enters the image as a loader would, x0 = `dtb`, with `handoff` (a
/// `hypervisor::efi::Handoff`) for the core.
///
/// # Safety
/// Boot services must have been exited; the image, the tree, the handoff and everything it
/// names must have been cleaned and invalidated to the point of coherency (nothing may be
/// written through the caches after that), and the MMU must map this code one to one.
pub unsafe fn leave_firmware(dtb: usize, handoff: usize) -> ! {
    // SAFETY: per the caller; `efi_leave` runs on the identity map until the MMU is off,
    // then from the same physical addresses.
    unsafe { efi_leave(dtb, handoff) }
}
