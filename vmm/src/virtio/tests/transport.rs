//! The virtio-mmio transport and the split virtqueue against a hostile guest: every case
//! asserts the Status the guest reads, the interrupt it gets, and that guest RAM outside what
//! the device may write is untouched.

use super::driver::*;
use super::rng::rng;
use crate::virtio::blk::{request, status, MemDisk, VirtioBlk};
use crate::virtio::mmio::offset;
use crate::virtio::{feature, MmioTransport};
use std::vec::Vec;

type Blk = MmioTransport<VirtioBlk<MemDisk>>;

const RING: u64 = feature::VERSION_1 | feature::RING_INDIRECT_DESC | feature::RING_EVENT_IDX;
const QSIZE: u16 = 16;

fn blk() -> Blk {
    MmioTransport::new(VirtioBlk::new(MemDisk::new(64, false)))
}

fn blk_up() -> (Guest, Blk) {
    let mut g = Guest::new();
    let mut t = blk();
    g.init(&mut t, RING, &[QSIZE]);
    (g, t)
}

/// A valid FLUSH request; returns (header, status) addresses.
fn flush_bufs(g: &mut Guest) -> [Buf; 2] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&request::FLUSH.to_le_bytes());
    let h = g.buffer(&h);
    let st = g.blank(1, 0xff);
    [(h, 16, false), (st, 1, true)]
}

/// Asserts a working device: a FLUSH completes with OK.
fn assert_works(g: &mut Guest, t: &mut Blk) {
    let bufs = flush_bufs(g);
    g.push_chain(0, &bufs);
    g.notify(t, 0);
    assert_eq!(g.used(0).len(), 1);
    assert_eq!(g.peek(bufs[1].0, 1)[0], status::OK);
}

/// Runs `setup` (which writes descriptors and publishes them) on a live block device, then
/// notifies and asserts the spec's answer to a broken ring: DEVICE_NEEDS_RESET, a
/// configuration-change interrupt, no used buffer, RAM untouched. Then the device ignores
/// further notifications until a reset, after which it works again.
fn assert_needs_reset(name: &str, setup: impl FnOnce(&mut Guest)) {
    let (mut g, mut t) = blk_up();
    setup(&mut g);
    let before = g.mem.clone();
    g.notify(&mut t, 0);
    let s = Guest::status(&mut t);
    assert_ne!(s & NEEDS_RESET, 0, "{name}: DEVICE_NEEDS_RESET not set");
    assert_ne!(s & DRIVER_OK, 0, "{name}: the driver's bits stay");
    assert_eq!(
        Guest::read_reg(&mut t, offset::INTERRUPT_STATUS) & 2,
        2,
        "{name}: no configuration-change interrupt"
    );
    assert!(t.irq_level());
    assert!(g.used(0).is_empty(), "{name}: a used buffer was returned");
    // The device may only have written avail_event in the used ring.
    let used = used_ring_range(&g, 0);
    assert_only_changed(&before, &g.mem, &[(used.0 + used.1, 2)]);
    // A good request now is ignored: the device waits for a reset.
    let bufs = flush_bufs(&mut g);
    g.push_chain(0, &bufs);
    g.notify(&mut t, 0);
    assert!(g.used(0).is_empty(), "{name}: worked before a reset");
    // Status = 0 then the init sequence brings it back.
    g.write_reg(&mut t, offset::STATUS, 0);
    assert_eq!(Guest::status(&mut t), 0);
    assert!(!t.irq_level(), "{name}: reset keeps an interrupt");
    g.init(&mut t, RING, &[QSIZE]);
    assert_works(&mut g, &mut t);
}

#[test]
fn identifies_as_a_version_2_virtio_mmio_device() {
    let mut t = rng();
    assert_eq!(Guest::read_reg(&mut t, offset::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(Guest::read_reg(&mut t, offset::VERSION), 2);
    assert_eq!(Guest::read_reg(&mut t, offset::DEVICE_ID), 4);
    assert_eq!(Guest::read_reg(&mut t, offset::SHM_LEN_LOW), u32::MAX);
    assert_eq!(Guest::read_reg(&mut t, offset::SHM_LEN_HIGH), u32::MAX);
    let mut g = Guest::new();
    assert_ne!(g.device_features(&mut t) & feature::VERSION_1, 0);
    g.write_reg(&mut t, offset::QUEUE_SEL, 1);
    assert_eq!(
        Guest::read_reg(&mut t, offset::QUEUE_NUM_MAX),
        0,
        "no queue 1"
    );
    g.write_reg(&mut t, offset::QUEUE_SEL, 0);
    assert_eq!(Guest::read_reg(&mut t, offset::QUEUE_NUM_MAX), 64);
}

#[test]
fn control_registers_take_aligned_32_bit_accesses_only() {
    let mut g = Guest::new();
    let mut t = rng();
    assert_eq!(t.read(offset::MAGIC_VALUE, 2), 0);
    assert_eq!(t.read(offset::MAGIC_VALUE, 8), 0);
    assert_eq!(t.read(offset::MAGIC_VALUE + 1, 4), 0);
    t.write(offset::STATUS, 1, 1, &mut g.mem);
    assert_eq!(Guest::status(&mut t), 0);
    t.write(offset::STATUS, 4, 1, &mut g.mem);
    assert_eq!(Guest::status(&mut t), 1);
    // Unknown offsets read as zero.
    for off in [0x018, 0x0c0, 0x0f8, 0x200, u64::MAX - 3] {
        assert_eq!(t.read(off, 4), 0, "{off:#x}");
    }
}

#[test]
fn the_bus_carries_exactly_the_accesses_the_spec_allows() {
    use crate::virtio::mmio::access_valid;
    assert!(access_valid(offset::MAGIC_VALUE, 4));
    assert!(access_valid(offset::CONFIG_GENERATION, 4));
    for (off, size) in [(0, 1), (0, 2), (0, 8), (2, 4), (0x0fe, 2), (0x0fc, 8)] {
        assert!(!access_valid(off, size), "{off:#x}/{size}");
    }
    for size in [1, 2, 4, 8] {
        assert!(access_valid(0x100, size), "config {size}");
    }
    assert!(access_valid(0x1f8, 8));
    assert!(!access_valid(0x1fc, 8), "past the frame");
    assert!(!access_valid(0x100, 3));
    assert!(!access_valid(u64::MAX, 1));
}

#[test]
fn unoffered_features_keep_features_ok_clear() {
    let mut g = Guest::new();
    let mut t = blk();
    // Bit 0 (VIRTIO_BLK_F_BARRIER, legacy) is not offered.
    assert!(!g.negotiate(&mut t, RING | 1));
    assert_eq!(Guest::status(&mut t), ACKNOWLEDGE | DRIVER);
    // DRIVER_OK cannot be set without FEATURES_OK either.
    g.write_reg(&mut t, offset::STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    assert_eq!(Guest::status(&mut t) & DRIVER_OK, 0);
    // VIRTIO_F_VERSION_1 is required (§6.1).
    assert!(!g.negotiate(&mut t, feature::RING_INDIRECT_DESC));
    // Bits beyond the 64 the device has.
    g.write_reg(&mut t, offset::STATUS, 0);
    g.write_reg(&mut t, offset::STATUS, ACKNOWLEDGE | DRIVER);
    g.write_reg(&mut t, offset::DRIVER_FEATURES_SEL, 1);
    g.write_reg(&mut t, offset::DRIVER_FEATURES, 1);
    g.write_reg(&mut t, offset::DRIVER_FEATURES_SEL, 3);
    g.write_reg(&mut t, offset::DRIVER_FEATURES, 1);
    g.write_reg(&mut t, offset::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    assert_eq!(Guest::status(&mut t) & FEATURES_OK, 0);
    // A valid subset is accepted, and features are frozen after FEATURES_OK.
    assert!(g.negotiate(&mut t, feature::VERSION_1));
    g.write_reg(&mut t, offset::DRIVER_FEATURES_SEL, 0);
    g.write_reg(&mut t, offset::DRIVER_FEATURES, u32::MAX);
    assert_eq!(t.negotiated_features(), feature::VERSION_1);
}

#[test]
fn notify_before_driver_ok_is_ignored() {
    let mut g = Guest::new();
    let mut t = blk();
    assert!(g.negotiate(&mut t, RING));
    g.setup_queue(&mut t, 0, QSIZE);
    let bufs = flush_bufs(&mut g);
    g.push_chain(0, &bufs);
    let before = g.mem.clone();
    g.notify(&mut t, 0);
    assert!(g.used(0).is_empty());
    assert!(!t.irq_level());
    assert_eq!(t.device().backend().flushes, 0);
    assert_only_changed(&before, &g.mem, &[]);
    assert_eq!(
        Guest::status(&mut t) & NEEDS_RESET,
        0,
        "ignored, not an error"
    );
    // Once DRIVER_OK is set, the next notification is served.
    g.write_reg(
        &mut t,
        offset::STATUS,
        ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
    );
    g.notify(&mut t, 0);
    assert_eq!(g.used(0).len(), 1);
    assert_eq!(g.peek(bufs[1].0, 1)[0], status::OK);
}

#[test]
fn bad_queue_sizes_are_refused() {
    for size in [0u16, 3, 100, 512, u16::MAX] {
        let mut g = Guest::new();
        let mut t = blk();
        assert!(g.negotiate(&mut t, RING));
        g.setup_queue(&mut t, 0, size.clamp(1, 256));
        // Rewrite the size on a fresh, unready queue: reset, then size alone.
        g.write_reg(&mut t, offset::STATUS, 0);
        assert!(g.negotiate(&mut t, RING));
        let q = g.queues[0].clone().unwrap();
        g.setup_queue_at(&mut t, 0, size, q.desc, q.avail, q.used);
        assert_eq!(
            Guest::read_reg(&mut t, offset::QUEUE_READY),
            0,
            "size {size} accepted"
        );
        assert_ne!(Guest::status(&mut t) & NEEDS_RESET, 0, "size {size}");
        // Before DRIVER_OK there is no interrupt to give.
        assert!(!t.irq_level());
    }
    // QueueNum above 0xffff is not truncated into a valid size.
    let mut g = Guest::new();
    let mut t = blk();
    assert!(g.negotiate(&mut t, RING));
    g.setup_queue(&mut t, 0, 16);
    g.write_reg(&mut t, offset::STATUS, 0);
    assert!(g.negotiate(&mut t, RING));
    g.write_reg(&mut t, offset::QUEUE_NUM, 0x1_0010);
    g.write_reg(&mut t, offset::QUEUE_READY, 1);
    assert_eq!(Guest::read_reg(&mut t, offset::QUEUE_READY), 0);
}

#[test]
fn unaligned_or_outside_rings_are_refused() {
    type Layout = fn(u64) -> (u64, u64, u64);
    let cases: [(&str, Layout); 6] = [
        ("desc", |b| (b + 0x8, b + 0x400, b + 0x800)),
        ("avail", |b| (b, b + 0x401, b + 0x800)),
        ("used", |b| (b, b + 0x400, b + 0x802)),
        ("below RAM", |b| (0x1000, b + 0x400, b + 0x800)),
        ("past RAM", |b| {
            (b, b + 0x400, RAM_BASE + RAM_SIZE as u64 - 0x40)
        }),
        ("wrapping", |b| {
            ((u64::MAX - 0xff) & !0xf, b + 0x400, b + 0x800)
        }),
    ];
    for (name, layout) in cases {
        let mut g = Guest::new();
        let mut t = blk();
        assert!(g.negotiate(&mut t, RING));
        let base = g.alloc(0x1000, 0x1000);
        let (d, a, u) = layout(base);
        g.setup_queue_at(&mut t, 0, QSIZE, d, a, u);
        assert_eq!(Guest::read_reg(&mut t, offset::QUEUE_READY), 0, "{name}");
        assert_ne!(Guest::status(&mut t) & NEEDS_RESET, 0, "{name}");
    }
}

#[test]
fn queue_configuration_is_frozen_while_ready() {
    let (mut g, mut t) = blk_up();
    g.write_reg(&mut t, offset::QUEUE_SEL, 0);
    g.write_reg(&mut t, offset::QUEUE_NUM, 4);
    g.write_reg(&mut t, offset::QUEUE_DESC_LOW, 0);
    assert_works(&mut g, &mut t);
}

#[test]
fn descriptor_loops_need_reset() {
    assert_needs_reset("two-descriptor loop", |g| {
        let [(h, _, _), (st, _, _)] = flush_bufs(g);
        g.write_desc(0, 0, h, 16, F_NEXT, 1);
        g.write_desc(0, 1, st, 1, F_WRITE | F_NEXT, 0);
        g.publish(0, 0);
    });
    assert_needs_reset("self loop", |g| {
        let [(h, _, _), _] = flush_bufs(g);
        g.write_desc(0, 5, h, 16, F_NEXT, 5);
        g.publish(0, 5);
    });
    assert_needs_reset("chain through the whole table and around", |g| {
        let [(h, _, _), _] = flush_bufs(g);
        for i in 0..QSIZE {
            g.write_desc(0, i, h, 16, F_NEXT, (i + 1) % QSIZE);
        }
        g.publish(0, 0);
    });
    assert_needs_reset("loop inside an indirect table", |g| {
        let [(h, _, _), (st, _, _)] = flush_bufs(g);
        let table = g.alloc(32, 16);
        write_desc_at(&mut g.mem, table, h, 16, F_NEXT, 1);
        write_desc_at(&mut g.mem, table + 16, st, 1, F_WRITE | F_NEXT, 0);
        g.write_desc(0, 0, table, 32, F_INDIRECT, 0);
        g.publish(0, 0);
    });
}

#[test]
fn buffers_outside_ram_need_reset() {
    let end = RAM_BASE + RAM_SIZE as u64;
    for (name, addr, len) in [
        ("below RAM", 0x1000, 16),
        ("across the end", end - 8, 16),
        ("past the end", end, 1),
        ("wrapping", u64::MAX - 4, 16),
        ("len u32::MAX", RAM_BASE + 0x1000, u32::MAX),
    ] {
        assert_needs_reset(name, |g| {
            let [_, (st, _, _)] = flush_bufs(g);
            g.write_desc(0, 0, addr, len, F_NEXT, 1);
            g.write_desc(0, 1, st, 1, F_WRITE, 0);
            g.publish(0, 0);
        });
    }
    assert_needs_reset("writable status outside RAM", |g| {
        let [(h, _, _), _] = flush_bufs(g);
        g.write_desc(0, 0, h, 16, F_NEXT, 1);
        g.write_desc(0, 1, end + 0x1000, 1, F_WRITE, 0);
        g.publish(0, 0);
    });
}

#[test]
fn broken_ring_indices_need_reset() {
    assert_needs_reset("head beyond the queue", |g| g.publish(0, QSIZE + 3));
    assert_needs_reset("next beyond the queue", |g| {
        let [(h, _, _), _] = flush_bufs(g);
        g.write_desc(0, 0, h, 16, F_NEXT, 999);
        g.publish(0, 0);
    });
    assert_needs_reset("available index jumps past the queue size", |g| {
        let avail = g.queues[0].as_ref().unwrap().avail;
        g.poke(avail + 2, &(QSIZE + 1).to_le_bytes());
    });
    assert_needs_reset("readable after writable", |g| {
        let [(h, _, _), (st, _, _)] = flush_bufs(g);
        g.write_desc(0, 0, st, 1, F_WRITE | F_NEXT, 1);
        g.write_desc(0, 1, h, 16, 0, 0);
        g.publish(0, 0);
    });
}

#[test]
fn bad_indirect_tables_need_reset() {
    let table_with = |g: &mut Guest, entries: u32, flags: u16, len: u32| {
        let [(h, _, _), (st, _, _)] = flush_bufs(g);
        let table = g.alloc(16 * u64::from(entries.max(2)), 16);
        write_desc_at(&mut g.mem, table, h, 16, F_NEXT, 1);
        write_desc_at(&mut g.mem, table + 16, st, 1, F_WRITE, 0);
        g.write_desc(0, 0, table, len, flags, 0);
        g.publish(0, 0);
    };
    assert_needs_reset("indirect with NEXT", |g| {
        table_with(g, 2, F_INDIRECT | F_NEXT, 32)
    });
    assert_needs_reset("indirect length 0", |g| table_with(g, 2, F_INDIRECT, 0));
    assert_needs_reset("indirect length not a multiple of 16", |g| {
        table_with(g, 2, F_INDIRECT, 24)
    });
    assert_needs_reset("indirect table longer than allowed", |g| {
        table_with(g, 1025, F_INDIRECT, 16 * 1025)
    });
    assert_needs_reset("indirect table outside RAM", |g| {
        g.write_desc(0, 0, RAM_BASE + RAM_SIZE as u64 - 16, 32, F_INDIRECT, 0);
        g.publish(0, 0);
    });
    assert_needs_reset("nested indirect", |g| {
        let inner = g.alloc(32, 16);
        let outer = g.alloc(16, 16);
        write_desc_at(&mut g.mem, outer, inner, 32, F_INDIRECT, 0);
        g.write_desc(0, 0, outer, 16, F_INDIRECT, 0);
        g.publish(0, 0);
    });
    // Indirect descriptors without the feature negotiated.
    let mut g = Guest::new();
    let mut t = blk();
    g.init(&mut t, feature::VERSION_1, &[QSIZE]);
    let bufs = flush_bufs(&mut g);
    g.push_indirect(0, &bufs);
    g.notify(&mut t, 0);
    assert_ne!(Guest::status(&mut t) & NEEDS_RESET, 0);
}

#[test]
fn blk_requests_without_header_or_status_need_reset() {
    assert_needs_reset("no status byte", |g| {
        let [(h, _, _), _] = flush_bufs(g);
        g.write_desc(0, 0, h, 16, 0, 0);
        g.publish(0, 0);
    });
    assert_needs_reset("short header", |g| {
        let [(h, _, _), (st, _, _)] = flush_bufs(g);
        g.write_desc(0, 0, h, 8, F_NEXT, 1);
        g.write_desc(0, 1, st, 1, F_WRITE, 0);
        g.publish(0, 0);
    });
}

#[test]
fn reset_in_the_middle_of_io_then_reinit_works() {
    let (mut g, mut t) = blk_up();
    let write = |g: &mut Guest, sector: u64, byte: u8| -> [Buf; 3] {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&request::OUT.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        let h = g.buffer(&h);
        let d = g.blank(512, byte);
        let st = g.blank(1, 0xff);
        [(h, 16, false), (d, 512, false), (st, 1, true)]
    };
    let first = write(&mut g, 0, 0xaa);
    g.push_chain(0, &first);
    g.notify(&mut t, 0);
    assert_eq!(g.peek(first[2].0, 1)[0], status::OK);
    assert!(t.irq_level());
    // A second request is published but the device is reset before it is notified.
    let second = write(&mut g, 1, 0xbb);
    g.push_chain(0, &second);
    g.write_reg(&mut t, offset::STATUS, 0);
    assert_eq!(Guest::status(&mut t), 0);
    assert!(!t.irq_level(), "reset clears InterruptStatus");
    g.write_reg(&mut t, offset::QUEUE_SEL, 0);
    assert_eq!(
        Guest::read_reg(&mut t, offset::QUEUE_READY),
        0,
        "reset clears QueueReady"
    );
    // Notifying the dead queue does nothing.
    g.notify(&mut t, 0);
    assert_eq!(g.peek(second[2].0, 1)[0], 0xff);
    assert!(t.device().backend().as_bytes()[512..1024]
        .iter()
        .all(|&b| b == 0));
    // Re-initialized on fresh rings, the device serves requests and kept the first write.
    g.init(&mut t, RING, &[QSIZE]);
    assert_works(&mut g, &mut t);
    assert_eq!(t.device().backend().as_bytes()[..512], [0xaa; 512]);
}

#[test]
fn many_requests_wrap_the_rings() {
    let (mut g, mut t) = blk_up();
    let mut seen = Vec::new();
    for _ in 0..3 * QSIZE + 1 {
        let bufs = flush_bufs(&mut g);
        g.push_chain(0, &bufs);
        g.notify(&mut t, 0);
        let used = g.used(0);
        assert_eq!(used.len(), 1);
        seen.push(g.peek(bufs[1].0, 1)[0]);
    }
    assert!(seen.iter().all(|&s| s == status::OK));
    assert_eq!(t.device().backend().flushes, 3 * u64::from(QSIZE) + 1);
}
