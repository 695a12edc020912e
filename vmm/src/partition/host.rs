//! The machine's devices the VMM drives, with the `virtio-drivers` crate: the core names them
//! (HOST_DEVICE) and maps each one's register page into the VMM's view (device memory).
//!
//! DMA: the devices see host-physical addresses, so buffers handed to them live in the VMM's
//! own RAM, whose host-physical base the core gives (HOST_INFO). Without an SMMU such a device
//! can reach any memory of the machine: the VMM that drives it is a driver domain, trusted
//! with all memory, and a bug here can corrupt anything. The guests' data moves through the
//! device models' scratch buffers; no guest address is ever given to a device.
//!
//! Requests are synchronous: the VMM submits one and polls the device's used ring until it
//! completes, inside the upcall that asked for it (the guest's vCPU waits meanwhile, as on a
//! trapped MMIO write to QEMU).

use super::hvc;
use abi::vmm::{VMM_RAM_BASE, VMM_RAM_SIZE};
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Device IDs (virtio 1.2 §5).
const NET: u64 = 1;
const BLOCK: u64 = 2;
const ENTROPY: u64 = 4;
/// Receive and transmit queue size of the machine's network card.
const NIC_QUEUE: usize = 64;
/// Receive buffer of the network card: a header and a 1514-byte frame, rounded up.
const NIC_BUFFER: usize = 2048;

/// Host-physical address of [`VMM_RAM_BASE`].
static RAM_PA: AtomicU64 = AtomicU64::new(0);

/// The host-physical address of `len` bytes at `vaddr` in the VMM's RAM; 0 (no address a
/// device is ever given) if they are not all in it.
fn dma_addr(vaddr: usize, len: usize) -> PhysAddr {
    let start = vaddr as u64;
    let inside = start >= VMM_RAM_BASE.0
        && start
            .checked_add(len as u64)
            .is_some_and(|end| end <= VMM_RAM_BASE.0 + VMM_RAM_SIZE);
    if !inside {
        return 0;
    }
    start - VMM_RAM_BASE.0 + RAM_PA.load(Ordering::Relaxed)
}

/// DMA for `virtio-drivers`: pages from the VMM's heap, addresses by offset in its RAM.
pub struct DmaHal;

fn pages_layout(pages: usize) -> Option<Layout> {
    Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory of the VMM's RAM with its host
// physical address, owned by the caller until `dma_dealloc`; `share` gives the device the
// host-physical address of the very buffer (the devices are cache-coherent: `dma-coherent` on
// QEMU virt, and every virtio-mmio device of a machine rhyve targets), so nothing needs copying
// back in `unshare`.
unsafe impl Hal for DmaHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(layout) = pages_layout(pages) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: `layout` has a non-zero size (virtio-drivers asks for at least one page).
        let p = unsafe { alloc_zeroed(layout) };
        match NonNull::new(p) {
            Some(v) => (dma_addr(p as usize, layout.size()), v),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let Some(layout) = pages_layout(pages) else {
            return -1;
        };
        // SAFETY: the caller gives back what `dma_alloc` returned for `pages`.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport asks; the VMM's view of its device pages is an identity map.
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let addr = dma_addr(buffer.as_ptr() as *mut u8 as usize, buffer.len());
        if addr == 0 {
            // A buffer outside the VMM's RAM would make the device write wherever its
            // address falls: stop instead.
            panic!("DMA buffer outside the VMM's RAM");
        }
        addr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// A virtio transport of the machine, in the VMM's view.
type Transport = MmioTransport<'static>;

/// The machine's disk.
pub struct HostDisk {
    /// The driver.
    pub blk: VirtIOBlk<DmaHal, Transport>,
    /// Size in sectors.
    pub capacity: u64,
    /// The device refuses writes.
    pub read_only: bool,
}

/// The machine's disk, if it has one the core gave the VMM.
pub static DISK: Mutex<Option<HostDisk>> = Mutex::new(None);

/// The machine's network card, with its receive buffers: one per receive queue entry,
/// allocated once, so their addresses stay what the card was given.
pub struct HostNic {
    net: VirtIONetRaw<DmaHal, Transport, NIC_QUEUE>,
    /// Its interrupt reaches the VMM (as HostIrq); otherwise nothing is received.
    pub irq: bool,
    buffers: Vec<[u8; NIC_BUFFER]>,
    /// The buffer the card holds under each token (a descriptor index).
    posted: [Option<usize>; NIC_QUEUE],
}

impl HostNic {
    fn new(net: VirtIONetRaw<DmaHal, Transport, NIC_QUEUE>, irq: bool) -> Self {
        let mut nic = Self {
            net,
            irq,
            buffers: vec![[0; NIC_BUFFER]; NIC_QUEUE],
            posted: [None; NIC_QUEUE],
        };
        for i in 0..NIC_QUEUE {
            nic.post(i);
        }
        nic
    }

    /// Gives buffer `i` to the card to receive into.
    fn post(&mut self, i: usize) {
        let Some(buf) = self.buffers.get_mut(i) else {
            return;
        };
        // SAFETY: the buffer is the card's until `receive` takes it back by its token; the
        // vector is never resized, so it stays where it is.
        if let Ok(token) = unsafe { self.net.receive_begin(buf) } {
            if let Some(p) = self.posted.get_mut(usize::from(token)) {
                *p = Some(i);
            }
        }
    }

    /// Sends one frame and waits until the card has taken it.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        self.net.send(frame).is_ok()
    }

    /// Acknowledges the card's interrupt.
    pub fn ack_interrupt(&mut self) {
        let _ = self.net.ack_interrupt();
    }

    /// Copies the next received frame into `out`; its length, if there was one (0 for a frame
    /// longer than `out`, which is dropped). The buffer goes back to the card.
    pub fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        let token = self.net.poll_receive()?;
        let i = self.posted.get_mut(usize::from(token))?.take()?;
        let buf = self.buffers.get_mut(i)?;
        // SAFETY: `buf` is the buffer given with `token` (recorded in `posted`).
        let done = unsafe { self.net.receive_complete(token, buf) };
        let n = match done {
            Ok((hdr, len)) => match (buf.get(hdr..hdr + len), out.get_mut(..len)) {
                (Some(frame), Some(dst)) => {
                    dst.copy_from_slice(frame);
                    len
                }
                _ => 0,
            },
            Err(_) => 0,
        };
        self.post(i);
        Some(n)
    }
}

/// The machine's network card, if it has one the core gave the VMM.
pub static NIC: Mutex<Option<HostNic>> = Mutex::new(None);

/// The machine's entropy source, if it has one the core gave the VMM (used when the CPU has
/// no RNDR).
pub static RNG: Mutex<Option<VirtIORng<DmaHal, Transport>>> = Mutex::new(None);

/// One device as HOST_DEVICE describes it: (device ID, frame address, frame size).
fn describe(index: u64) -> Option<(u64, usize, usize, bool)> {
    let r = hvc::host_device(index)?;
    Some((
        r[1],
        usize::try_from(r[2]).ok()?,
        usize::try_from(r[3]).ok()?,
        r[4] == 1,
    ))
}

/// Learns where the VMM's RAM is and brings up the devices the core gave it (CPU 0, at
/// boot, before the first request).
pub fn init() {
    let Some(pa) = hvc::host_info() else {
        return;
    };
    RAM_PA.store(pa, Ordering::Relaxed);
    for index in 0..abi::vmm::MAX_HOST_DEVICES as u64 {
        let Some((id, frame, size, irq)) = describe(index) else {
            break;
        };
        let Some(header) = NonNull::new(frame as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the core mapped this frame (device memory) for the VMM alone and for ever,
        // and nothing else of the VMM touches it: the transport owns it from here.
        let Ok(transport) = (unsafe { Transport::new(header, size) }) else {
            continue;
        };
        if id == ENTROPY {
            if let Ok(rng) = VirtIORng::<DmaHal, _>::new(transport) {
                *RNG.lock() = Some(rng);
            }
        } else if id == NET {
            if let Ok(net) = VirtIONetRaw::<DmaHal, _, NIC_QUEUE>::new(transport) {
                *NIC.lock() = Some(HostNic::new(net, irq));
            }
        } else if id == BLOCK {
            if let Ok(blk) = VirtIOBlk::<DmaHal, _>::new(transport) {
                let capacity = blk.capacity();
                let read_only = blk.readonly();
                *DISK.lock() = Some(HostDisk {
                    blk,
                    capacity,
                    read_only,
                });
            }
        }
    }
}
