//! `virtio`: a guest that finds its virtio-mmio devices and attacks them (the cases of
//! `tg::virtio::cases`: descriptor loops, chains outside RAM or at the GIC, huge lengths, bad
//! indirect tables, bad queue sizes and unaligned rings, notifications before DRIVER_OK and
//! to absent queues, a reset in the middle of I/O, features without VERSION_1), then checks
//! that the GIC it aimed buffers at is intact.
//!
//! Before those, the accesses the bus refuses: a slot with no device, and control registers
//! read or written with a width other than 32 bits or unaligned; each gets an injected
//! synchronous external abort (an unaligned one may instead take the CPU's own alignment
//! fault, as the MMU is off and all memory is Device memory).
//!
//! The guest's MMU is off: its rings are Device memory, which the device reads through its own
//! cacheable mapping. QEMU keeps no caches, so that is coherent here; on hardware a driver
//! would map its rings Normal cacheable, as Linux does.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use abi::layout::{VIRTIO_MMIO_BASE, VIRTIO_MMIO_SLOTS, VIRTIO_MMIO_STRIDE};
    use abi::vmm::VirtioKind;
    use tg::esr::{ec, fsc, Expect};
    use tg::rt::access::{read32, read64, read8, write16};
    use tg::rt::exception::trap;
    use tg::rt::gic::{gicd, GICD};
    use tg::rt::{image_extent, Tester, RAM_END};
    use tg::virtio::spec::offset;
    use tg::virtio::{cases, Machine};

    /// The SPI whose priority the guest sets before the run and checks after it.
    const SPI: u64 = 40;
    const PRIORITY: u64 = 0xa0;
    /// GICD_PIDR2.ArchRev of a GICv3.
    const ARCH_REV_SHIFT: u64 = 4;
    const ARCH_REV_MASK: u64 = 0xf;
    const GICV3: u64 = 3;
    /// Where the cases' rings and buffers start above the image.
    const SCRATCH_ALIGN: u64 = 64 << 10;

    /// The register frame of slot `slot`.
    fn frame(slot: u32) -> u64 {
        VIRTIO_MMIO_BASE.0 + VIRTIO_MMIO_STRIDE * u64::from(slot)
    }

    /// The machine as the guest sees it: the virtio slots and its own RAM.
    struct Real {
        scratch: (u64, u64),
    }

    impl Machine for Real {
        fn read32(&mut self, slot: u32, off: u64) -> u32 {
            // SAFETY: a register of a virtio slot this VM has (the cases use only those).
            unsafe { core::ptr::read_volatile((frame(slot) + off) as *const u32) }
        }

        fn write32(&mut self, slot: u32, off: u64, value: u32) {
            // SAFETY: a barrier, then a register of a virtio slot this VM has; the barrier
            // makes the rings the driver wrote visible before the device acts on them.
            unsafe {
                core::arch::asm!("dsb sy", options(nostack));
                core::ptr::write_volatile((frame(slot) + off) as *mut u32, value);
            }
        }

        fn read_config64(&mut self, slot: u32, off: u64) -> u64 {
            // SAFETY: the configuration space of a slot this VM has, 8-byte aligned.
            unsafe { core::ptr::read_volatile((frame(slot) + offset::CONFIG + off) as *const u64) }
        }

        fn write_mem(&mut self, addr: u64, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                // SAFETY: scratch RAM above this program's image (the driver allocates only
                // there): nothing Rust relies on.
                unsafe { core::ptr::write_volatile((addr + i as u64) as *mut u8, *b) };
            }
        }

        fn read_mem(&mut self, addr: u64, buf: &mut [u8]) {
            for (i, b) in buf.iter_mut().enumerate() {
                // SAFETY: as in `write_mem`.
                *b = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
            }
        }

        fn scratch(&self) -> (u64, u64) {
            self.scratch
        }

        fn ram_end(&self) -> u64 {
            RAM_END
        }
    }

    /// An access the bus refuses: an injected abort, or, for an unaligned one, the CPU's own
    /// alignment fault.
    fn refused(t: &mut Tester, case: &str, addr: u64, write: bool, f: impl FnOnce()) {
        let ((), tr) = trap(f);
        let ok = match tr {
            Some(tr) if tr.esr.ec() == ec::DABT_SAME && tr.esr.fsc() == fsc::ALIGNMENT => {
                !addr.is_multiple_of(4)
            }
            got => Expect::injected_dabt(addr, write).check(got).is_ok(),
        };
        match tr {
            Some(tr) => t.check(case, ok, format_args!("{:?} far={:#x}", tr.esr, tr.far)),
            None => t.check(case, false, format_args!("no exception")),
        };
    }

    #[no_mangle]
    fn tg_main() -> ! {
        let mut t = Tester::new("virtio");
        let blk = frame(VirtioKind::Blk.slot());
        let net = frame(VirtioKind::Net.slot());
        // SAFETY: every probe below touches registers of this VM's virtio slots and holes
        // between them; faults are recovered by the armed handler.
        unsafe {
            // The first slot past the VM's devices, and the last slot.
            let absent = [
                ("absent-slot-4", VirtioKind::ALL.len() as u32),
                ("absent-slot-31", VIRTIO_MMIO_SLOTS as u32 - 1),
            ];
            for (case, slot) in absent {
                let a = frame(slot) + offset::MAGIC_VALUE;
                refused(&mut t, case, a, false, || {
                    read32(a);
                });
            }
            refused(&mut t, "ctrl-r8", blk + offset::STATUS, false, || {
                read8(blk + offset::STATUS);
            });
            refused(&mut t, "ctrl-w16", blk + offset::QUEUE_SEL, true, || {
                write16(blk + offset::QUEUE_SEL, 1)
            });
            refused(&mut t, "ctrl-r64", blk + offset::STATUS, false, || {
                read64(blk + offset::STATUS);
            });
            refused(
                &mut t,
                "ctrl-unaligned-r32",
                blk + offset::STATUS + 2,
                false,
                || {
                    read32(blk + offset::STATUS + 2);
                },
            );
            t.expect_value(
                "config-r8",
                || read8(net + offset::CONFIG),
                |v| v == u64::from(cases::CARD_MAC[0]),
                "the card address's first byte",
            );
            tg::rt::access::write8(GICD + gicd::IPRIORITYR + SPI, PRIORITY);
        }

        let (_, image_end) = image_extent();
        let mut real = Real {
            scratch: (image_end.next_multiple_of(SCRATCH_ALIGN), RAM_END),
        };
        cases::run(&mut real, |case, v| {
            match v {
                Ok(d) => t.check(case, true, format_args!("{}", d.as_str())),
                Err(d) => t.check(case, false, format_args!("{}", d.as_str())),
            };
        });

        // The GIC, where buffers and rings were aimed, is as the guest left it.
        // SAFETY: loads of the emulated distributor's registers.
        let (prio, pidr2) = unsafe {
            (
                read8(GICD + gicd::IPRIORITYR + SPI),
                read32(GICD + gicd::PIDR2),
            )
        };
        t.check(
            "gic-intact",
            prio == PRIORITY && (pidr2 >> ARCH_REV_SHIFT) & ARCH_REV_MASK == GICV3,
            format_args!("IPRIORITYR[{SPI}]={prio:#x} PIDR2={pidr2:#x}"),
        );
        t.finish()
    }
}
