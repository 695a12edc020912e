//! The VMM partition's runtime: boot, calls to the core, and the request loop.

mod boot;
mod console;
mod devices;
mod disk;
mod entropy;
mod guest_mem;
mod host;
mod hvc;
mod mmu;
mod net;
mod vars;

use abi::vmm::{Request, Response};
use buddy_system_allocator::LockedHeap;

/// The partition's heap (in .bss: the VMM's RAM is its own, 16 MiB).
const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct HeapSpace([u8; HEAP_SIZE]);

static mut HEAP_SPACE: HeapSpace = HeapSpace([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Entered from the boot stub on every CPU, with this VMM vCPU's index.
#[no_mangle]
extern "C" fn vmm_main(cpu: u64) -> ! {
    if cpu == 0 {
        // SAFETY: CPU 0's VMM vCPU runs first and alone (the core waits for its first WAIT
        // before starting any other); nothing else touches the tables or the heap space.
        unsafe {
            mmu::build_tables();
            mmu::enable();
            HEAP.lock()
                .init(core::ptr::addr_of_mut!(HEAP_SPACE) as usize, HEAP_SIZE);
        }
        // The core and this VMM are built together; a mismatch means a stale image.
        let core = hvc::version();
        if core != Some(abi::vmm::VERSION) {
            panic!(
                "the core speaks ABI {core:?}, this VMM {}",
                abi::vmm::VERSION
            );
        }
        devices::init();
        host::init();
    } else {
        // SAFETY: CPU 0 built the tables before this CPU could be started.
        unsafe { mmu::enable() };
    }
    serve()
}

/// Answers requests for ever.
fn serve() -> ! {
    let mut response = Response::ok(0);
    loop {
        let regs = hvc::wait(response);
        response = match Request::from_regs(regs) {
            Some(req) => devices::handle(req),
            None => Response::error(),
        };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // The message first: the core shows the first 48 bytes.
    match info.location() {
        Some(l) => hvc::panic(format_args!(
            "{} ({}:{})",
            info.message(),
            l.file(),
            l.line()
        )),
        None => hvc::panic(format_args!("{}", info.message())),
    }
}
