//! Pseudo-random MMIO sweeps: each device survives arbitrary register writes and reads, and
//! arbitrary rings in RAM full of garbage, without panicking.

use super::driver::*;
use super::rng::TestEntropy;
use crate::virtio::blk::{MemDisk, VirtioBlk};
use crate::virtio::console::{ConsoleBackend, VirtioConsole};
use crate::virtio::mmio::offset;
use crate::virtio::net::{MacAddr, NetBackend, NetError, VirtioNet, MAX_QUEUE_PAIRS};
use crate::virtio::rng::VirtioRng;
use crate::virtio::{feature, MmioTransport, VirtioDevice};
use abi::GuestPhysAddr;
use vmboot::memory::GuestMemory;

struct Null;

impl ConsoleBackend for Null {
    fn output(&mut self, _: &[u8]) {}
}

impl NetBackend for Null {
    fn send(&mut self, _: &[u8]) -> Result<(), NetError> {
        Ok(())
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Offsets worth hitting often: the real registers.
const HOT: [u64; 18] = [
    offset::DEVICE_FEATURES_SEL,
    offset::DRIVER_FEATURES,
    offset::DRIVER_FEATURES_SEL,
    offset::QUEUE_SEL,
    offset::QUEUE_NUM,
    offset::QUEUE_READY,
    offset::QUEUE_NOTIFY,
    offset::QUEUE_NOTIFY,
    offset::QUEUE_NOTIFY,
    offset::INTERRUPT_ACK,
    offset::STATUS,
    offset::QUEUE_DESC_LOW,
    offset::QUEUE_DESC_HIGH,
    offset::QUEUE_DRIVER_LOW,
    offset::QUEUE_DRIVER_HIGH,
    offset::QUEUE_DEVICE_LOW,
    offset::QUEUE_DEVICE_HIGH,
    0x100,
];

fn sweep<D: VirtioDevice + 'static>(mut t: MmioTransport<D>, seed: u64) {
    let mut r = XorShift(seed);
    let mut g = Guest::new();
    // Garbage everywhere in RAM: any ring the guest points at holds random descriptors.
    let mut junk = std::vec![0u8; RAM_SIZE];
    for b in junk.iter_mut() {
        *b = r.next() as u8;
    }
    g.mem.write(GuestPhysAddr(RAM_BASE), &junk).unwrap();
    let ram_addr = |x: u64| RAM_BASE + (x % RAM_SIZE as u64);
    let mut live_notifies = 0u32;
    for round in 0..20_000u32 {
        let x = if round % 500 == 0 { 8 } else { r.next() % 8 };
        match x {
            // A proper bring-up now and then, so notifications reach the rings.
            8 => {
                let f = g.device_features(&mut t) | feature::VERSION_1;
                if g.negotiate(&mut t, f) {
                    let sizes: std::vec::Vec<u16> = t
                        .device()
                        .queue_max_sizes()
                        .iter()
                        .map(|&m| m.min(1 << (r.next() % 9)))
                        .collect();
                    for (i, &s) in sizes.iter().enumerate() {
                        let base = ram_addr(r.next()) & !0xfff;
                        // Fresh rings start zeroed, as a driver's would; scribbles come later.
                        let _ = g.mem.write(GuestPhysAddr(base), &[0; 0x1000]);
                        g.setup_queue_at(&mut t, i as u16, s, base, base + 0x400, base + 0x800);
                    }
                    let all = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;
                    g.write_reg(&mut t, offset::STATUS, all);
                }
            }
            0..=3 => {
                let off = HOT[(r.next() % HOT.len() as u64) as usize];
                let v = match r.next() % 4 {
                    0 => r.next() % 8,
                    1 => ram_addr(r.next()),
                    _ => r.next(),
                };
                t.write(off, 4, v, &mut g.mem);
            }
            4 => {
                let off = r.next() % 0x240;
                let size = [1, 2, 4, 8, 3, 0][(r.next() % 6) as usize];
                t.write(off, size, r.next(), &mut g.mem);
            }
            5 => {
                let off = r.next() % 0x240;
                let size = [1, 2, 4, 8, 16][(r.next() % 5) as usize];
                let _ = t.read(off, size);
            }
            6 => {
                // Scribble on a random ring slot.
                let at = ram_addr(r.next()) & !7;
                let _ = g.mem.write(GuestPhysAddr(at), &r.next().to_le_bytes());
            }
            _ => t.poll(&mut g.mem),
        }
        let _ = t.irq_level();
        let s = Guest::status(&mut t);
        if s & DRIVER_OK != 0 && s & NEEDS_RESET == 0 {
            live_notifies += 1;
        }
    }
    // The sweep must have reached a live device, or it tested only the registers.
    assert!(live_notifies > 0, "the device never went live");
}

#[test]
fn blk_survives_a_random_sweep() {
    sweep(
        MmioTransport::new(VirtioBlk::new(MemDisk::new(256, false))),
        1,
    );
    sweep(MmioTransport::new(VirtioBlk::new(MemDisk::new(8, true))), 2);
}

#[test]
fn rng_survives_a_random_sweep() {
    sweep(MmioTransport::new(VirtioRng::new(TestEntropy::new(3))), 3);
}

#[test]
fn console_survives_a_random_sweep() {
    let mut c = VirtioConsole::new(Null, Null, "p1");
    c.push_input(0, b"input for port 0");
    c.push_input(1, b"input for port 1");
    sweep(MmioTransport::new(c), 4);
}

#[test]
fn net_survives_a_random_sweep() {
    let mut n = VirtioNet::with_queue_pairs(Null, MacAddr::default_for(0, 0), MAX_QUEUE_PAIRS);
    for i in 0..100u8 {
        n.inject_rx(&[i; 60]);
    }
    sweep(MmioTransport::new(n), 5);
}
