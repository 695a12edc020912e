//! Entry points: the primary vCPU's boot stub and the PSCI CPU_ON entry of secondaries.
//!
//! rhyve loads the raw binary at RAM base + 0x80000, which is where linker/test-guest.ld links
//! it, and enters `_start` at EL1h with the MMU off, DAIF masked, x0 = the device tree and
//! x1-x3 = 0 (QEMU's `-kernel` handoff). The stub first keeps x0-x3 as they were ([`entry_regs`]).
//! The build makes a static PIE (the target's rustflags in .cargo/config.toml), so the stub
//! then applies its R_AARCH64_RELATIVE relocations; since it runs where it is linked, each
//! slot simply gets its addend. Then: stack, .bss zeroed, VBAR_EL1, Rust.

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The primary's stack.
const STACK_SIZE: usize = 32 * 1024;
/// Each secondary's stack.
pub const SECONDARY_STACK_SIZE: usize = 16 * 1024;
/// Secondaries a guest can start (vCPUs 1..=this).
pub const MAX_SECONDARIES: usize = 3;

#[repr(C, align(16))]
struct Stack<const N: usize>([u8; N]);

#[no_mangle]
static mut TG_STACK: Stack<STACK_SIZE> = Stack([0; STACK_SIZE]);
static mut SECONDARY_STACKS: [Stack<SECONDARY_STACK_SIZE>; MAX_SECONDARIES] =
    [const { Stack([0; SECONDARY_STACK_SIZE]) }; MAX_SECONDARIES];

/// x0-x3 as the guest was entered with them. In .data, not .bss: the stub writes it before
/// it zeroes .bss.
#[link_section = ".data.tg_entry_regs"]
static mut TG_ENTRY_REGS: [u64; 4] = [0; 4];

global_asm!(
    include_str!("../../../../linker/relocate.S"),
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    msr     daifset, #0xf
    adrp    x4, {entry_regs}
    add     x4, x4, :lo12:{entry_regs}
    stp     x0, x1, [x4]
    stp     x2, x3, [x4, #16]
    mov     x19, x0
    // Linked where it runs: each slot gets its addend (base 0).
    mov     x1, xzr
    rhyve_relocate x1, 9f
    adrp    x2, {stack}
    add     x2, x2, :lo12:{stack}
    add     x2, x2, #{stack_size}
    mov     sp, x2
    adrp    x2, tg_vectors
    add     x2, x2, :lo12:tg_vectors
    msr     vbar_el1, x2
    isb
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      {primary}
9:  wfe
    b       9b

    // PSCI CPU_ON entry: x0 = the context, the top of this CPU's stack.
    .global tg_secondary_entry
tg_secondary_entry:
    msr     daifset, #0xf
    mov     sp, x0
    adrp    x2, tg_vectors
    add     x2, x2, :lo12:tg_vectors
    msr     vbar_el1, x2
    isb
    mov     x29, xzr
    mov     x30, xzr
    bl      {secondary}
8:  wfe
    b       8b
"#,
    entry_regs = sym TG_ENTRY_REGS,
    stack = sym TG_STACK,
    stack_size = const STACK_SIZE,
    primary = sym primary_main,
    secondary = sym secondary_main,
);

extern "C" {
    fn tg_secondary_entry();
}

extern "Rust" {
    /// The guest's test program, defined by each guest binary.
    fn tg_main() -> !;
}

/// The device tree address rhyve passed in x0.
static DTB: AtomicUsize = AtomicUsize::new(0);
/// What each secondary runs, by vCPU index (0 = nothing).
static SECONDARY_FN: [AtomicUsize; MAX_SECONDARIES + 1] =
    [const { AtomicUsize::new(0) }; MAX_SECONDARIES + 1];

extern "C" fn primary_main(dtb: usize) -> ! {
    DTB.store(dtb, Ordering::Relaxed);
    // SAFETY: defined by the guest binary with this signature; called once, here.
    unsafe { tg_main() }
}

extern "C" fn secondary_main() -> ! {
    let index = super::psci::my_index();
    let f = SECONDARY_FN
        .get(index)
        .map(|f| f.load(Ordering::Acquire))
        .unwrap_or(0);
    if f != 0 {
        // SAFETY: only `start_secondary` stores here, and it stores an `fn()`.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(f) };
        f();
    }
    super::psci::cpu_off();
    loop {
        core::hint::spin_loop();
    }
}

/// The device tree address the guest was entered with (x0).
pub fn dtb() -> u64 {
    DTB.load(Ordering::Relaxed) as u64
}

/// x0-x3 as the guest was entered with them.
pub fn entry_regs() -> [u64; 4] {
    // SAFETY: written once by the boot stub before any Rust runs, only read after.
    unsafe { core::ptr::addr_of!(TG_ENTRY_REGS).read() }
}

/// The guest RAM outside this program's image that the tree at `dtb` may span: up to the
/// image if it lies below it, else up to the end of the RAM every test guest has. `None` if
/// `dtb` is in neither part.
pub fn dtb_room(dtb: u64) -> Option<u64> {
    let (image_start, image_end) = super::image_extent();
    if (abi::layout::RAM_BASE.0..image_start).contains(&dtb) {
        Some(image_start - dtb)
    } else if (image_end..super::RAM_END).contains(&dtb) {
        Some(super::RAM_END - dtb)
    } else {
        None
    }
}

/// Hands `f` the command line in the device tree rhyve built (`/chosen/bootargs`), or `None`
/// if there is no readable tree outside the guest's image or no such property. The tree lies
/// in guest RAM the program does not own: a guest that overwrites that RAM reads it first.
pub fn with_bootargs<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    let dtb = dtb();
    let Some(room) = dtb_room(dtb) else {
        return f(None);
    };
    // SAFETY: guest RAM outside this program's image (dtb_room): always readable, and no
    // Rust object lives there, so nothing writes it while the slice exists.
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, room as usize) };
    let tree = fdt::Fdt::new(bytes).ok();
    let args = tree
        .as_ref()
        .and_then(|t| t.find_node("/chosen"))
        .and_then(|chosen| chosen.property("bootargs"))
        .and_then(|p| p.as_str());
    f(args)
}

/// The CPU_ON entry point and context for secondary `index` (1..=MAX_SECONDARIES) running `f`,
/// or `None` for an index out of range.
pub fn secondary_boot(index: usize, f: fn()) -> Option<(u64, u64)> {
    if index == 0 || index > MAX_SECONDARIES {
        return None;
    }
    SECONDARY_FN[index].store(f as usize, Ordering::Release);
    // Only the address is taken; the stack is used by that secondary alone.
    let stacks = core::ptr::addr_of_mut!(SECONDARY_STACKS) as usize;
    let top = stacks + index * SECONDARY_STACK_SIZE;
    Some((tg_secondary_entry as *const () as u64, top as u64))
}
