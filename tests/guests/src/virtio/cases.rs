//! The attacks on the virtio devices, each with the answer the spec (and rhyve's models) give:
//! DEVICE_NEEDS_RESET with a configuration-change interrupt for a broken ring (§2.1.2), a
//! queue that will not become ready for a bad configuration, FEATURES_OK refused for a bad
//! feature set (§3.1.1), an error status in a blk request (§5.2.6), a buffer left alone or a
//! notification ignored where the device must not act (§3.1.2). After each, a reset brings the
//! device back and the guest goes on to the next.
//!
//! The VM (xtask's `hostile-virtio`) has the four devices at their fixed slots, a disk that is
//! a [`SLICE_SECTORS`]-sector slice of the machine's disk starting with [`DISK_MARKER`], and
//! the card address [`CARD_MAC`].

use abi::layout::GICD_BASE;
use abi::vmm::VirtioKind;

use super::spec::{self, blk, desc_flags, device_id, feature, interrupt, offset, status};
use super::{Detail, Driver, Machine, Verdict, Vq};
use crate::{ensure, pass};

/// Sectors of the VM's disk (xtask's `hostile-virtio` gives it a 1 MiB slice).
pub const SLICE_SECTORS: u64 = 2048;
/// What the scenario writes at the start of the slice, before the guest runs.
pub const DISK_MARKER: &[u8] = b"rhyve-hostile-virtio-slice";
/// What the guest writes in sector 1 of its disk; the scenario looks for it in the image.
pub const WRITE_MARKER: &[u8] = b"rhyve-hostile-virtio-wrote-this";
/// The sectors of its disk the guest fills, then zeroes with WRITE_ZEROES; the scenario finds
/// them zero in the image.
pub const ZEROED_SECTORS: (u64, u32) = (8, 3);
/// What the guest writes in those sectors and one on each side before zeroing them.
pub const ZEROES_FILL: u8 = 0x5a;
/// The card address the VM's description gives.
pub const CARD_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x76, 0x69, 0x6f];
/// What hvc0 carries: this, then `token=` and the entropy the guest got.
pub const HVC0_LINE: &str = "RHYVE-VIRTIO-HVC0";
/// What the guest tries to write through port 1 without negotiating MULTIPORT; it must never
/// reach the console.
pub const PORT1_LEAK: &str = "RHYVE-VIRTIO-PORT1-LEAK";

/// An address outside guest RAM where an emulated device lives: the GIC distributor.
const GIC: u64 = GICD_BASE.0;
/// The status byte before the device writes it.
const UNSET: u8 = 0xff;
/// Entries of the queues the cases lay out.
const QSIZE: u16 = 16;

const CONSOLE: u32 = VirtioKind::Console.slot();
const BLK: u32 = VirtioKind::Blk.slot();
const NET: u32 = VirtioKind::Net.slot();
const RNG: u32 = VirtioKind::Rng.slot();

/// A case: its name (the `<case>` of its line) and what it does.
type Case<M> = (&'static str, fn(&mut Driver<'_, M>) -> Verdict);

/// Runs every case in order, reporting each.
pub fn run<M: Machine>(m: &mut M, mut report: impl FnMut(&'static str, &Verdict)) {
    let cases: [Case<M>; 71] = [
        ("discover", discover),
        ("reserved-register", reserved_register),
        ("features-without-version1", features_without_version1),
        ("features-unoffered", features_unoffered),
        ("features-beyond-64", features_beyond_64),
        ("features-frozen-after-ok", features_frozen_after_ok),
        ("status-write-abuse", status_write_abuse),
        ("queue-size-0", |d| queue_size(d, 0)),
        ("queue-size-not-power-of-2", |d| queue_size(d, 100)),
        ("queue-size-over-max", |d| queue_size(d, 512)),
        ("queue-size-above-16-bits", |d| queue_size(d, 0x1_0010)),
        ("queue-desc-unaligned", |d| queue_misplaced(d, 8, 0, 0)),
        ("queue-avail-unaligned", |d| queue_misplaced(d, 0, 1, 0)),
        ("queue-used-unaligned", |d| queue_misplaced(d, 0, 0, 2)),
        ("queue-desc-outside-ram", queue_desc_outside_ram),
        ("queue-used-at-gic", queue_used_at_gic),
        ("queue-desc-wraps", queue_desc_wraps),
        ("queue-absent", queue_absent),
        ("queue-frozen-while-ready", queue_frozen_while_ready),
        ("notify-before-driver-ok", notify_before_driver_ok),
        ("notify-absent-queue", notify_absent_queue),
        ("blk-capacity-is-slice", blk_capacity),
        ("blk-read-slice", blk_read_slice),
        ("blk-write-read", blk_write_read),
        ("blk-read-past-slice", |d| {
            blk_error(d, blk::IN, SLICE_SECTORS, 512, blk::S_IOERR)
        }),
        ("blk-sector-huge", |d| {
            blk_error(d, blk::IN, u64::MAX, 512, blk::S_IOERR)
        }),
        ("blk-write-past-slice", |d| {
            blk_error(d, blk::OUT, SLICE_SECTORS, 512, blk::S_IOERR)
        }),
        ("blk-write-straddles-slice-end", blk_write_straddles_end),
        ("blk-len-not-sectors", |d| {
            blk_error(d, blk::OUT, 2, 100, blk::S_IOERR)
        }),
        ("blk-unknown-type", |d| {
            blk_error(d, 0x99, 0, 0, blk::S_UNSUPP)
        }),
        ("blk-discard-unnegotiated", blk_discard_unnegotiated),
        ("blk-discard", blk_discard),
        ("blk-write-zeroes", blk_write_zeroes),
        ("blk-write-zeroes-bad-flags", blk_write_zeroes_bad_flags),
        ("blk-get-id", blk_get_id),
        ("interrupt-ack", interrupt_ack),
        ("blk-no-status", blk_no_status),
        ("blk-short-header", blk_short_header),
        ("desc-readable-after-writable", desc_readable_after_writable),
        ("desc-loop", |d| desc_loop(d, &[1, 0])),
        ("desc-self-loop", |d| desc_loop(d, &[0])),
        ("desc-next-out-of-range", |d| desc_loop(d, &[999])),
        ("avail-head-out-of-range", avail_head_out_of_range),
        ("avail-idx-jump", avail_idx_jump),
        ("buf-outside-ram", |d| {
            blk_bad_buffer(d, Place::RamEnd(0), 512)
        }),
        ("buf-straddles-ram-end", |d| {
            blk_bad_buffer(d, Place::RamEnd(256), 512)
        }),
        ("buf-at-gic", |d| blk_bad_buffer(d, Place::At(GIC), 512)),
        ("buf-wraps", |d| {
            blk_bad_buffer(d, Place::At(0xffff_ffff_ffff_ff00), 0x200)
        }),
        ("buf-huge-len", |d| {
            blk_bad_buffer(d, Place::Scratch, u32::MAX)
        }),
        ("indirect-ok", indirect_ok),
        ("indirect-not-negotiated", |d| {
            indirect_bad(d, Indirect::NotNegotiated)
        }),
        ("indirect-loop", |d| indirect_bad(d, Indirect::Loop)),
        ("indirect-nested", |d| indirect_bad(d, Indirect::Nested)),
        ("indirect-with-next", |d| {
            indirect_bad(d, Indirect::WithNext)
        }),
        ("indirect-outside-ram", |d| {
            indirect_bad(d, Indirect::OutsideRam)
        }),
        ("indirect-at-gic", |d| indirect_bad(d, Indirect::AtGic)),
        ("indirect-len-not-16", |d| {
            indirect_bad(d, Indirect::Len(40))
        }),
        ("indirect-len-0", |d| indirect_bad(d, Indirect::Len(0))),
        ("indirect-too-big", |d| {
            indirect_bad(d, Indirect::Len(16 * 1025))
        }),
        ("indirect-next-out-of-range", |d| {
            indirect_bad(d, Indirect::NextOutOfRange)
        }),
        ("reset-mid-io", reset_mid_io),
        ("net-config-mac", net_config_mac),
        ("net-tx-ok", |d| net_tx(d, 60, true)),
        ("net-tx-short", |d| net_tx(d, 0, false)),
        ("net-tx-oversize", |d| net_tx(d, 4000, false)),
        ("net-ctrl-bad-commands", net_ctrl_bad_commands),
        ("net-ctrl-no-ack", net_ctrl_no_ack),
        ("rng-random", rng_random),
        ("rng-readable-only", rng_readable_only),
        ("console-hvc0", console_hvc0),
        ("console-port1-without-multiport", console_without_multiport),
    ];
    let mut d = Driver::new(m);
    for (name, case) in cases {
        d.free_all();
        let v = case(&mut d);
        report(name, &v);
    }
}

// ---- discovery and the frame -------------------------------------------------------------------

fn discover<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let want = [
        (CONSOLE, device_id::CONSOLE),
        (BLK, device_id::BLOCK),
        (NET, device_id::NET),
        (RNG, device_id::ENTROPY),
    ];
    for (slot, id) in want {
        let magic = d.reg(slot, offset::MAGIC_VALUE);
        let version = d.reg(slot, offset::VERSION);
        let got = d.reg(slot, offset::DEVICE_ID);
        let vendor = d.reg(slot, offset::VENDOR_ID);
        ensure!(
            magic == spec::MAGIC && version == spec::VERSION && got == id && vendor != 0,
            "slot {slot}: magic={magic:#x} version={version} device={got} vendor={vendor:#x}, expected device {id}"
        );
        let f = d.device_features(slot);
        ensure!(
            f & feature::VERSION_1 != 0,
            "slot {slot} does not offer VERSION_1 ({f:#x})"
        );
    }
    pass!("console, blk, net, rng at slots 0-3, virtio-mmio version 2, VERSION_1 offered")
}

fn reserved_register<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.reset(BLK)?;
    d.set_reg(BLK, offset::STATUS, status::ACKNOWLEDGE);
    d.set_reg(BLK, offset::RESERVED, u32::MAX);
    let v = d.reg(BLK, offset::RESERVED);
    let s = d.status(BLK);
    ensure!(v == 0, "the reserved register reads {v:#x}");
    ensure!(
        s == status::ACKNOWLEDGE,
        "Status {s:#x} after a write to a hole"
    );
    // Reads of the write-only registers are zero too.
    let sel = d.reg(BLK, offset::QUEUE_SEL);
    ensure!(sel == 0, "QueueSel reads {sel:#x}");
    d.reset(BLK)?;
    pass!("reads 0, the write changes nothing")
}

// ---- feature negotiation (§3.1.1, §6.1) -------------------------------------------------------

/// A request that reads sector 0: laid out in `q` from descriptor 0, published, and notified.
/// Returns the status byte's address.
fn read_sector0<M: Machine>(d: &mut Driver<'_, M>, q: &mut Vq) -> u64 {
    let data = d.alloc(512, 16, 0);
    let (head, st) = blk_chain(d, q, 0, blk::IN, 0, &[(data, 512, true)]);
    d.submit(q, head);
    st
}

fn features_without_version1<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let offered = d.device_features(BLK);
    let kept = d.negotiate(BLK, offered & !feature::VERSION_1)?;
    ensure!(!kept, "FEATURES_OK accepted without VERSION_1");
    // DRIVER_OK without FEATURES_OK does not stick; the device uses no buffer.
    let s = d.status(BLK);
    d.set_reg(
        BLK,
        offset::STATUS,
        s | status::FEATURES_OK | status::DRIVER_OK,
    );
    let s = d.status(BLK);
    ensure!(
        s & (status::FEATURES_OK | status::DRIVER_OK) == 0,
        "Status {s:#x}: FEATURES_OK or DRIVER_OK stuck"
    );
    let mut q = d.layout(BLK, 0, QSIZE);
    d.enable(&q);
    let st = read_sector0(d, &mut q);
    let used = d.used_idx(&q);
    let byte = d.peek8(st);
    ensure!(
        used == 0 && byte == UNSET,
        "the device served a request (used {used}, status {byte:#x})"
    );
    d.reset(BLK)?;
    pass!("FEATURES_OK refused, DRIVER_OK refused, no buffer used")
}

fn features_unoffered<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let offered = d.device_features(BLK);
    ensure!(
        offered & feature::BLK_BARRIER == 0,
        "the disk offers BARRIER ({offered:#x})"
    );
    let kept = d.negotiate(BLK, offered | feature::BLK_BARRIER)?;
    ensure!(!kept, "FEATURES_OK accepted with an unoffered feature");
    d.reset(BLK)?;
    pass!("FEATURES_OK refused for {:#x}", feature::BLK_BARRIER)
}

fn features_beyond_64<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.reset(BLK)?;
    d.set_reg(BLK, offset::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    d.set_driver_features(BLK, feature::VERSION_1);
    // Feature word 2 (bits 64..95): no device has any.
    d.set_reg(BLK, offset::DRIVER_FEATURES_SEL, 2);
    d.set_reg(BLK, offset::DRIVER_FEATURES, 1);
    d.set_reg(
        BLK,
        offset::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    let s = d.status(BLK);
    ensure!(
        s & status::FEATURES_OK == 0,
        "FEATURES_OK accepted with bit 64"
    );
    d.reset(BLK)?;
    pass!("FEATURES_OK refused")
}

fn features_frozen_after_ok<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    // Features are fixed once FEATURES_OK is set (§2.2): dropping VERSION_1 now changes
    // nothing, and the device works.
    d.set_driver_features(BLK, 0);
    let mut q = d.queue(BLK, 0, QSIZE)?;
    d.driver_ok(BLK)?;
    let st = read_sector0(d, &mut q);
    let byte = d.peek8(st);
    ensure!(byte == blk::S_OK, "request status {byte:#x}");
    d.reset(BLK)?;
    pass!("the late DriverFeatures write is ignored; requests work")
}

fn status_write_abuse<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.live(BLK, 0, [0], QSIZE)?;
    let before = d.status(BLK);
    // A driver cannot clear a bit but by reset, nor set DEVICE_NEEDS_RESET.
    d.set_reg(BLK, offset::STATUS, status::ACKNOWLEDGE);
    d.set_reg(BLK, offset::STATUS, before | status::DEVICE_NEEDS_RESET);
    let after = d.status(BLK);
    ensure!(after == before, "Status {before:#x} became {after:#x}");
    d.reset(BLK)?;
    pass!("Status stays {before:#x}")
}

// ---- queue configuration (§2.7, §4.2.3.2) -----------------------------------------------------

fn queue_size<M: Machine>(d: &mut Driver<'_, M>, num: u32) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    d.set_reg(BLK, offset::QUEUE_SEL, 0);
    let max = d.reg(BLK, offset::QUEUE_NUM_MAX);
    ensure!(max.is_power_of_two() && max < 512, "QueueNumMax {max}");
    let q = d.layout(BLK, 0, QSIZE);
    let q = Vq {
        size: num as u16,
        ..q
    };
    if num > u32::from(u16::MAX) {
        // No 16-bit size can say it: write it raw, then the rest of the queue by hand.
        return queue_refused_raw(d, &q, num);
    }
    let v = d.expect_queue_refused(&q)?;
    pass!("QueueNum {num} (max {max}): {}", v.as_str())
}

/// As [`Driver::expect_queue_refused`], with QueueNum written as `num`.
fn queue_refused_raw<M: Machine>(d: &mut Driver<'_, M>, q: &Vq, num: u32) -> Verdict {
    let s = q.slot;
    d.set_reg(s, offset::QUEUE_SEL, u32::from(q.index));
    d.set_reg(s, offset::QUEUE_NUM, num);
    d.set_reg(s, offset::QUEUE_DESC_LOW, q.desc as u32);
    d.set_reg(s, offset::QUEUE_DRIVER_LOW, q.avail as u32);
    d.set_reg(s, offset::QUEUE_DEVICE_LOW, q.used as u32);
    d.set_reg(s, offset::QUEUE_READY, 1);
    let ready = d.reg(s, offset::QUEUE_READY);
    let st = d.status(s);
    ensure!(ready == 0, "QueueReady reads {ready}");
    ensure!(
        st & status::DEVICE_NEEDS_RESET != 0,
        "Status {st:#x}: no DEVICE_NEEDS_RESET"
    );
    d.reset(s)?;
    pass!("QueueNum {num:#x}: QueueReady=0 Status={st:#x} (NEEDS_RESET)")
}

fn queue_misplaced<M: Machine>(d: &mut Driver<'_, M>, desc: u64, avail: u64, used: u64) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    let q = d.layout(BLK, 0, QSIZE);
    let q = Vq {
        desc: q.desc + desc,
        avail: q.avail + avail,
        used: q.used + used,
        ..q
    };
    d.expect_queue_refused(&q)
}

fn queue_desc_outside_ram<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    let q = d.layout(BLK, 0, QSIZE);
    // Aligned, starting in RAM, its 256 bytes running past the end.
    let desc = d.m.ram_end() - 64;
    d.expect_queue_refused(&Vq { desc, ..q })
}

fn queue_used_at_gic<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    let q = d.layout(BLK, 0, QSIZE);
    d.expect_queue_refused(&Vq { used: GIC, ..q })
}

fn queue_desc_wraps<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    let q = d.layout(BLK, 0, QSIZE);
    d.expect_queue_refused(&Vq {
        desc: 0xffff_ffff_ffff_fff0,
        ..q
    })
}

fn queue_absent<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    for sel in [1, u32::MAX] {
        d.set_reg(BLK, offset::QUEUE_SEL, sel);
        let max = d.reg(BLK, offset::QUEUE_NUM_MAX);
        d.set_reg(BLK, offset::QUEUE_NUM, 16);
        d.set_reg(BLK, offset::QUEUE_READY, 1);
        let ready = d.reg(BLK, offset::QUEUE_READY);
        ensure!(
            max == 0 && ready == 0,
            "queue {sel:#x}: QueueNumMax={max} QueueReady={ready}"
        );
    }
    let s = d.status(BLK);
    ensure!(
        s & status::DEVICE_NEEDS_RESET == 0,
        "Status {s:#x}: an absent queue broke the device"
    );
    d.reset(BLK)?;
    pass!("QueueNumMax=0, QueueReady stays 0, the device is fine")
}

fn queue_frozen_while_ready<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    d.set_reg(BLK, offset::QUEUE_SEL, 0);
    d.set_reg(BLK, offset::QUEUE_NUM, 3);
    d.set_reg(BLK, offset::QUEUE_DESC_LOW, GIC as u32);
    d.set_reg(BLK, offset::QUEUE_DEVICE_LOW, 2);
    let st = read_sector0(d, &mut q);
    let byte = d.peek8(st);
    let used = d.used_idx(&q);
    ensure!(
        byte == blk::S_OK && used == 1,
        "after writes to a ready queue: status {byte:#x}, used {used}"
    );
    d.reset(BLK)?;
    pass!("the writes are ignored; the queue works as laid out")
}

// ---- notifications (§3.1.2, §4.2.2) -----------------------------------------------------------

fn notify_before_driver_ok<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    d.negotiate_ok(BLK, feature::VERSION_1)?;
    let mut q = d.queue(BLK, 0, QSIZE)?;
    let st = read_sector0(d, &mut q);
    let (used, byte) = (d.used_idx(&q), d.peek8(st));
    ensure!(
        used == 0 && byte == UNSET,
        "served before DRIVER_OK: used {used}, status {byte:#x}"
    );
    d.driver_ok(BLK)?;
    d.notify(BLK, 0);
    let (used, byte) = (d.used_idx(&q), d.peek8(st));
    ensure!(
        used == 1 && byte == blk::S_OK,
        "after DRIVER_OK: used {used}, status {byte:#x}"
    );
    d.reset(BLK)?;
    pass!("ignored before DRIVER_OK, served after")
}

fn notify_absent_queue<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    for index in [1, 7, 0xffff, 0x1_0000, u32::MAX] {
        d.notify(BLK, index);
    }
    let s = d.status(BLK);
    ensure!(
        s & status::DEVICE_NEEDS_RESET == 0,
        "Status {s:#x} after notifying absent queues"
    );
    let st = read_sector0(d, &mut q);
    let byte = d.peek8(st);
    ensure!(byte == blk::S_OK, "then a request got {byte:#x}");
    d.reset(BLK)?;
    pass!("ignored; the device still serves")
}

// ---- virtio-blk requests (§5.2.6) -------------------------------------------------------------

/// Writes a blk request in `q`'s table from descriptor `first`: the header (readable), `data`,
/// then a status byte (writable, [`UNSET`]). Returns the head and the status byte's address.
fn blk_chain<M: Machine>(
    d: &mut Driver<'_, M>,
    q: &Vq,
    first: u16,
    kind: u32,
    sector: u64,
    data: &[(u64, u32, bool)],
) -> (u16, u64) {
    let mut header = [0u8; blk::HEADER_BYTES as usize];
    header[..4].copy_from_slice(&kind.to_le_bytes());
    header[8..].copy_from_slice(&sector.to_le_bytes());
    let h = d.buffer(&header);
    let st = d.alloc(1, 1, UNSET);
    let mut bufs = [(0u64, 0u32, false); 6];
    bufs[0] = (h, blk::HEADER_BYTES, false);
    for (b, x) in bufs[1..].iter_mut().zip(data) {
        *b = *x;
    }
    let n = 1 + data.len().min(4);
    bufs[n] = (st, 1, true);
    (d.chain(q, first, &bufs[..=n]), st)
}

/// Serves one request on `q`, which must complete: returns the status byte and the used
/// length.
fn blk_do<M: Machine>(
    d: &mut Driver<'_, M>,
    q: &mut Vq,
    kind: u32,
    sector: u64,
    data: &[(u64, u32, bool)],
) -> Result<(u8, u32), Detail> {
    let before = d.used_idx(q);
    let (head, st) = blk_chain(d, q, 0, kind, sector, data);
    d.submit(q, head);
    let after = d.used_idx(q);
    let s = d.status(q.slot);
    ensure!(
        after == before.wrapping_add(1),
        "request type {kind} not completed: used {before} -> {after}, Status {s:#x}"
    );
    let (id, len) = d.used_elem(q, before);
    ensure!(
        id == u32::from(head),
        "used element names descriptor {id}, the head was {head}"
    );
    Ok((d.peek8(st), len))
}

fn blk_capacity<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let c = d.m.read_config64(BLK, blk::CONFIG_CAPACITY);
    ensure!(
        c == SLICE_SECTORS,
        "capacity {c} sectors, the slice has {SLICE_SECTORS}"
    );
    pass!("{c} sectors")
}

fn blk_read_slice<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    let data = d.alloc(512, 16, 0xa5);
    let (st, len) = blk_do(d, &mut q, blk::IN, 0, &[(data, 512, true)])?;
    let mut got = [0u8; DISK_MARKER.len()];
    d.m.read_mem(data, &mut got);
    ensure!(
        st == blk::S_OK && len == 513,
        "status {st:#x}, used length {len}"
    );
    ensure!(
        got == DISK_MARKER,
        "sector 0 starts {:?}, not the slice's marker",
        core::str::from_utf8(&got).unwrap_or("(not UTF-8)")
    );
    d.reset(BLK)?;
    pass!("sector 0 of the disk is the slice's first")
}

fn blk_write_read<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    let mut sector = [0u8; 512];
    sector[..WRITE_MARKER.len()].copy_from_slice(WRITE_MARKER);
    let out = d.buffer(&sector);
    let (st, _) = blk_do(d, &mut q, blk::OUT, 1, &[(out, 512, false)])?;
    ensure!(st == blk::S_OK, "write status {st:#x}");
    let back = d.alloc(512, 16, 0);
    let (st, _) = blk_do(d, &mut q, blk::IN, 1, &[(back, 512, true)])?;
    let mut got = [0u8; WRITE_MARKER.len()];
    d.m.read_mem(back, &mut got);
    ensure!(
        st == blk::S_OK && got == WRITE_MARKER,
        "read back status {st:#x}, data differs"
    );
    d.reset(BLK)?;
    pass!("sector 1 written and read back")
}

/// A request the device must answer with the error status `want`, and stay live.
fn blk_error<M: Machine>(
    d: &mut Driver<'_, M>,
    kind: u32,
    sector: u64,
    len: u32,
    want: u8,
) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    let writable = kind != blk::OUT;
    let data = d.alloc(u64::from(len.max(1)), 16, 0x3c);
    let bufs = [(data, len, writable)];
    let (st, used_len) = blk_do(d, &mut q, kind, sector, if len == 0 { &[] } else { &bufs })?;
    let s = d.status(BLK);
    ensure!(
        st == want,
        "status {st:#x}, expected {want:#x} (used length {used_len})"
    );
    ensure!(
        s & status::DEVICE_NEEDS_RESET == 0,
        "Status {s:#x}: an error status must not break the device"
    );
    d.reset(BLK)?;
    pass!("status {st:#x}, device live")
}

fn blk_write_straddles_end<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    let last = SLICE_SECTORS - 1;
    let before = d.alloc(512, 16, 0);
    let (st, _) = blk_do(d, &mut q, blk::IN, last, &[(before, 512, true)])?;
    ensure!(st == blk::S_OK, "reading the last sector: {st:#x}");
    let out = d.alloc(1024, 16, 0xee);
    let (st, _) = blk_do(d, &mut q, blk::OUT, last, &[(out, 1024, false)])?;
    ensure!(st == blk::S_IOERR, "status {st:#x}, expected IOERR");
    let after = d.alloc(512, 16, 0x11);
    let (st, _) = blk_do(d, &mut q, blk::IN, last, &[(after, 512, true)])?;
    ensure!(st == blk::S_OK, "reading the last sector again: {st:#x}");
    let mut a = [0u8; 512];
    let mut b = [0u8; 512];
    d.m.read_mem(before, &mut a);
    d.m.read_mem(after, &mut b);
    ensure!(
        a == b,
        "the last sector changed: the refused write wrote half of itself"
    );
    d.reset(BLK)?;
    pass!("IOERR, the slice's last sector unchanged")
}

/// A DISCARD / WRITE_ZEROES segment: `sector`, `count` sectors, `flags`.
fn segment(sector: u64, count: u32, flags: u32) -> [u8; blk::SEGMENT_BYTES as usize] {
    let mut seg = [0u8; blk::SEGMENT_BYTES as usize];
    seg[..8].copy_from_slice(&sector.to_le_bytes());
    seg[8..12].copy_from_slice(&count.to_le_bytes());
    seg[12..].copy_from_slice(&flags.to_le_bytes());
    seg
}

/// Sends `seg` as a request of type `kind`; returns its status byte.
fn blk_segment<M: Machine>(
    d: &mut Driver<'_, M>,
    q: &mut Vq,
    kind: u32,
    seg: &[u8; blk::SEGMENT_BYTES as usize],
) -> Result<u8, Detail> {
    let s = d.buffer(seg);
    let (st, _) = blk_do(d, q, kind, 0, &[(s, blk::SEGMENT_BYTES, false)])?;
    Ok(st)
}

fn blk_discard_unnegotiated<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    // Offered, but the driver did not accept DISCARD: UNSUPP.
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    let st = blk_segment(d, &mut q, blk::DISCARD, &segment(0, 1, 0))?;
    ensure!(st == blk::S_UNSUPP, "status {st:#x}, expected UNSUPP");
    d.reset(BLK)?;
    pass!("UNSUPP")
}

fn blk_discard<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let offered = d.device_features(BLK);
    ensure!(
        offered & feature::BLK_DISCARD != 0,
        "the writable slice does not offer DISCARD ({offered:#x})"
    );
    let [mut q] = d.live(BLK, feature::BLK_DISCARD, [0], QSIZE)?;
    let st = blk_segment(d, &mut q, blk::DISCARD, &segment(16, 16, 0))?;
    ensure!(st == blk::S_OK, "DISCARD in the slice: status {st:#x}");
    let past = blk_segment(d, &mut q, blk::DISCARD, &segment(SLICE_SECTORS - 1, 2, 0))?;
    ensure!(
        past == blk::S_IOERR,
        "DISCARD past the slice's end: status {past:#x}, expected IOERR"
    );
    // §5.2.6.2: `unmap` is a WRITE_ZEROES flag only.
    let unmap = blk_segment(d, &mut q, blk::DISCARD, &segment(16, 1, 1))?;
    ensure!(
        unmap == blk::S_UNSUPP,
        "DISCARD with unmap: status {unmap:#x}, expected UNSUPP"
    );
    d.reset(BLK)?;
    pass!("OK in the slice, IOERR past it, UNSUPP with unmap")
}

fn blk_write_zeroes<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, feature::BLK_WRITE_ZEROES, [0], QSIZE)?;
    let (first, count) = ZEROED_SECTORS;
    // The sectors and one on each side filled, so WRITE_ZEROES keeping to its range shows.
    let len = (count + 2) * blk::SECTOR;
    let out = d.alloc(u64::from(len), 16, ZEROES_FILL);
    let (st, _) = blk_do(d, &mut q, blk::OUT, first - 1, &[(out, len, false)])?;
    ensure!(st == blk::S_OK, "filling the sectors: status {st:#x}");
    let st = blk_segment(d, &mut q, blk::WRITE_ZEROES, &segment(first, count, 1))?;
    ensure!(st == blk::S_OK, "WRITE_ZEROES: status {st:#x}");
    let back = d.alloc(u64::from(len), 16, 0xff);
    let (st, _) = blk_do(d, &mut q, blk::IN, first - 1, &[(back, len, true)])?;
    ensure!(st == blk::S_OK, "reading back: status {st:#x}");
    let mut got = [0u8; 512];
    for i in 0..u64::from(count) + 2 {
        d.m.read_mem(back + i * u64::from(blk::SECTOR), &mut got);
        let zero = got.iter().all(|&b| b == 0);
        let filled = got.iter().all(|&b| b == ZEROES_FILL);
        let inside = (1..=u64::from(count)).contains(&i);
        ensure!(
            if inside { zero } else { filled },
            "sector {} reads {} after WRITE_ZEROES of {first}..{}",
            first - 1 + i,
            if zero { "zeroes" } else { "other data" },
            first + u64::from(count)
        );
    }
    d.reset(BLK)?;
    pass!(
        "sectors {first}..{} zero, their neighbours not",
        first + u64::from(count)
    )
}

fn blk_write_zeroes_bad_flags<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let offered = d.device_features(BLK);
    ensure!(
        offered & feature::BLK_WRITE_ZEROES != 0,
        "the writable slice does not offer WRITE_ZEROES ({offered:#x})"
    );
    let [mut q] = d.live(BLK, feature::BLK_WRITE_ZEROES, [0], QSIZE)?;
    // Reserved flag bits set (only bit 0, unmap, is defined).
    let st = blk_segment(d, &mut q, blk::WRITE_ZEROES, &segment(3, 1, 0xfffe))?;
    ensure!(st == blk::S_UNSUPP, "status {st:#x}, expected UNSUPP");
    d.reset(BLK)?;
    pass!("UNSUPP")
}

fn blk_get_id<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    let id = d.alloc(20, 16, 0);
    let (st, _) = blk_do(d, &mut q, blk::GET_ID, 0, &[(id, 20, true)])?;
    let mut got = [0u8; 20];
    d.m.read_mem(id, &mut got);
    ensure!(
        st == blk::S_OK && got.starts_with(b"rhyve-"),
        "status {st:#x}, id {got:x?}"
    );
    d.reset(BLK)?;
    let n = got.iter().position(|b| *b == 0).unwrap_or(got.len());
    pass!(
        "id {}",
        core::str::from_utf8(&got[..n]).unwrap_or("(not UTF-8)")
    )
}

fn interrupt_ack<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    read_sector0(d, &mut q);
    let isr = d.isr(BLK);
    ensure!(
        isr & interrupt::USED_BUFFER != 0,
        "InterruptStatus {isr:#x} after a completed request"
    );
    d.set_reg(BLK, offset::INTERRUPT_ACK, interrupt::USED_BUFFER);
    let after = d.isr(BLK);
    ensure!(after == 0, "InterruptStatus {after:#x} after the ACK");
    d.reset(BLK)?;
    pass!("used-buffer interrupt raised, acknowledged")
}

/// Publishes the chain from `head` on a live disk's queue and expects DEVICE_NEEDS_RESET.
fn broken_chain<M: Machine>(
    d: &mut Driver<'_, M>,
    features: u64,
    build: impl FnOnce(&mut Driver<'_, M>, &Vq) -> u16,
) -> Verdict {
    let [mut q] = d.live(BLK, features, [0], QSIZE)?;
    let head = build(d, &q);
    d.submit(&mut q, head);
    d.expect_needs_reset(&q, 0)
}

fn blk_no_status<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    broken_chain(d, 0, |d, q| {
        let h = d.alloc(16, 16, 0);
        d.chain(q, 0, &[(h, blk::HEADER_BYTES, false)])
    })
}

fn blk_short_header<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    broken_chain(d, 0, |d, q| {
        let h = d.alloc(8, 16, 0);
        let st = d.alloc(1, 1, UNSET);
        d.chain(q, 0, &[(h, 8, false), (st, 1, true)])
    })
}

fn desc_readable_after_writable<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    broken_chain(d, 0, |d, q| {
        let data = d.alloc(512, 16, 0);
        let extra = d.alloc(16, 16, 0);
        let (head, _) = blk_chain(
            d,
            q,
            0,
            blk::IN,
            0,
            &[(data, 512, true), (extra, 16, false)],
        );
        head
    })
}

/// A chain of readable descriptors from 0 whose `next` fields are `nexts` (the last one too):
/// a loop, or an index past the table.
fn desc_loop<M: Machine>(d: &mut Driver<'_, M>, nexts: &[u16]) -> Verdict {
    broken_chain(d, 0, |d, q| {
        let h = d.alloc(16, 16, 0);
        for (i, &next) in nexts.iter().enumerate() {
            d.put_desc(q.desc, i as u16, h, 16, desc_flags::NEXT, next);
        }
        0
    })
}

fn avail_head_out_of_range<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    d.submit(&mut q, QSIZE);
    d.expect_needs_reset(&q, 0)
}

fn avail_idx_jump<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [q] = d.live(BLK, 0, [0], QSIZE)?;
    let data = d.alloc(512, 16, 0);
    blk_chain(d, &q, 0, blk::IN, 0, &[(data, 512, true)]);
    // More published than the ring holds.
    d.poke16(q.avail + 2, QSIZE + 1);
    d.notify(BLK, 0);
    d.expect_needs_reset(&q, 0)
}

/// Where a bad buffer goes.
#[derive(Clone, Copy)]
enum Place {
    /// This far below the end of RAM.
    RamEnd(u64),
    /// At this address.
    At(u64),
    /// In scratch RAM.
    Scratch,
}

/// A read request whose data buffer is `len` bytes at `place`: never in guest RAM as a whole.
fn blk_bad_buffer<M: Machine>(d: &mut Driver<'_, M>, place: Place, len: u32) -> Verdict {
    broken_chain(d, 0, |d, q| {
        let addr = match place {
            Place::RamEnd(below) => d.m.ram_end() - below,
            Place::At(a) => a,
            Place::Scratch => d.alloc(16, 16, 0),
        };
        blk_chain(d, q, 0, blk::IN, 0, &[(addr, len, true)]).0
    })
}

// ---- indirect descriptors (§2.7.5.3) ----------------------------------------------------------

/// A well-formed indirect table of a read of sector 0: (table, its length, data, status).
fn indirect_table<M: Machine>(d: &mut Driver<'_, M>) -> (u64, u32, u64, u64) {
    let mut header = [0u8; blk::HEADER_BYTES as usize];
    header[..4].copy_from_slice(&blk::IN.to_le_bytes());
    let h = d.buffer(&header);
    let data = d.alloc(512, 16, 0);
    let st = d.alloc(1, 1, UNSET);
    let table = d.alloc(3 * 16, 16, 0);
    d.put_desc(table, 0, h, blk::HEADER_BYTES, desc_flags::NEXT, 1);
    d.put_desc(table, 1, data, 512, desc_flags::WRITE | desc_flags::NEXT, 2);
    d.put_desc(table, 2, st, 1, desc_flags::WRITE, 0);
    (table, 3 * 16, data, st)
}

fn indirect_ok<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, feature::RING_INDIRECT_DESC, [0], QSIZE)?;
    let (table, len, data, st) = indirect_table(d);
    d.put_desc(q.desc, 0, table, len, desc_flags::INDIRECT, 0);
    d.submit(&mut q, 0);
    let (used, byte) = (d.used_idx(&q), d.peek8(st));
    let mut got = [0u8; DISK_MARKER.len()];
    d.m.read_mem(data, &mut got);
    ensure!(
        used == 1 && byte == blk::S_OK && got == DISK_MARKER,
        "used {used}, status {byte:#x}"
    );
    d.reset(BLK)?;
    pass!("a read through an indirect table works")
}

/// What is wrong with an indirect descriptor.
#[derive(Clone, Copy)]
enum Indirect {
    NotNegotiated,
    Loop,
    Nested,
    WithNext,
    OutsideRam,
    AtGic,
    Len(u32),
    NextOutOfRange,
}

fn indirect_bad<M: Machine>(d: &mut Driver<'_, M>, how: Indirect) -> Verdict {
    let features = match how {
        Indirect::NotNegotiated => 0,
        _ => feature::RING_INDIRECT_DESC,
    };
    broken_chain(d, features, |d, q| {
        let (table, len, _, _) = indirect_table(d);
        let mut flags = desc_flags::INDIRECT;
        let (mut at, mut n) = (table, len);
        match how {
            Indirect::NotNegotiated => {}
            Indirect::Loop => {
                d.put_desc(table, 2, table, 16, desc_flags::WRITE | desc_flags::NEXT, 1);
            }
            Indirect::Nested => d.put_desc(table, 1, table, len, desc_flags::INDIRECT, 0),
            Indirect::WithNext => flags |= desc_flags::NEXT,
            Indirect::OutsideRam => at = d.m.ram_end() - 16,
            Indirect::AtGic => at = GIC,
            Indirect::Len(l) => n = l,
            Indirect::NextOutOfRange => {
                d.put_desc(table, 0, table, 16, desc_flags::NEXT, 7);
            }
        }
        d.put_desc(q.desc, 0, at, n, flags, 1);
        0
    })
}

// ---- a reset in the middle of I/O (§2.4, §4.2.3.1) --------------------------------------------

fn reset_mid_io<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(BLK, 0, [0], QSIZE)?;
    read_sector0(d, &mut q);
    // A second request published, not yet notified, and an interrupt pending: then a reset.
    let data = d.alloc(512, 16, 0);
    let (head, st) = blk_chain(d, &q, 4, blk::IN, 0, &[(data, 512, true)]);
    d.publish(&mut q, head);
    let isr = d.isr(BLK);
    ensure!(isr != 0, "no interrupt pending before the reset");
    d.set_reg(BLK, offset::STATUS, 0);
    d.set_reg(BLK, offset::QUEUE_SEL, 0);
    let (s, isr, ready) = (d.status(BLK), d.isr(BLK), d.reg(BLK, offset::QUEUE_READY));
    ensure!(
        s == 0 && isr == 0 && ready == 0,
        "after the reset: Status {s:#x} InterruptStatus {isr:#x} QueueReady {ready}"
    );
    // The reset device uses nothing, even when notified.
    d.notify(BLK, 0);
    let (used, byte) = (d.used_idx(&q), d.peek8(st));
    ensure!(
        used == 1 && byte == UNSET,
        "the reset device used the pending request (used {used}, status {byte:#x})"
    );
    // Set up again from scratch, on new rings: it works.
    let [mut q2] = d.live(BLK, 0, [0], QSIZE)?;
    let st2 = read_sector0(d, &mut q2);
    let byte = d.peek8(st2);
    ensure!(
        byte == blk::S_OK,
        "after re-initialisation: status {byte:#x}"
    );
    d.reset(BLK)?;
    pass!("Status, InterruptStatus, QueueReady cleared; the pending request untouched")
}

// ---- virtio-net (§5.1) ------------------------------------------------------------------------

fn net_config_mac<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let f = d.device_features(NET);
    ensure!(f & feature::NET_MAC != 0, "no VIRTIO_NET_F_MAC ({f:#x})");
    let c = d.m.read_config64(NET, 0).to_le_bytes();
    ensure!(
        c[..6] == CARD_MAC,
        "the card's address is {:02x?}, its description says {CARD_MAC:02x?}",
        &c[..6]
    );
    pass!("{:02x?} as described", &c[..6])
}

/// Transmits a chain of `len` bytes after the header (or only 4 bytes when `len` is 0): the
/// device must use it whether it sent it or dropped it, and stay live.
fn net_tx<M: Machine>(d: &mut Driver<'_, M>, len: u32, well_formed: bool) -> Verdict {
    let [mut q] = d.live(NET, feature::NET_MAC, [spec::net::TX], QSIZE)?;
    let header = d.alloc(u64::from(spec::net::HEADER_BYTES), 16, 0);
    let head = if len == 0 {
        d.chain(&q, 0, &[(header, 4, false)])
    } else {
        // A broadcast frame from the card's address.
        let frame = d.alloc(u64::from(len), 16, 0x42);
        d.m.write_mem(frame, &[0xff; 6]);
        d.m.write_mem(frame + 6, &CARD_MAC);
        d.chain(
            &q,
            0,
            &[
                (header, spec::net::HEADER_BYTES, false),
                (frame, len, false),
            ],
        )
    };
    d.submit(&mut q, head);
    let used = d.used_idx(&q);
    let s = d.status(NET);
    ensure!(
        used == 1 && s & status::DEVICE_NEEDS_RESET == 0,
        "used {used}, Status {s:#x}"
    );
    d.reset(NET)?;
    if well_formed {
        pass!("sent and used")
    } else {
        pass!("dropped, used, device live")
    }
}

/// A live card with MQ and its control queue (at 2 × `max_virtqueue_pairs`).
fn net_ctrl<M: Machine>(d: &mut Driver<'_, M>) -> Result<Vq, Detail> {
    let max = d.m.read_config64(NET, spec::net::CONFIG_MAX_PAIRS) as u16;
    ensure!(max >= 1, "max_virtqueue_pairs {max}");
    let features = feature::NET_MAC | feature::NET_CTRL_VQ | feature::NET_MQ;
    let [q] = d.live(NET, features, [2 * max], QSIZE)?;
    Ok(q)
}

fn net_ctrl_bad_commands<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let mut q = net_ctrl(d)?;
    let max = d.m.read_config64(NET, spec::net::CONFIG_MAX_PAIRS) as u16;
    let set = |n: u16| {
        let [a, b] = n.to_le_bytes();
        [
            spec::net::CTRL_CLASS_MQ,
            spec::net::CTRL_MQ_VQ_PAIRS_SET,
            a,
            b,
        ]
    };
    let commands: [&[u8]; 5] = [
        &set(0),
        &set(max + 1),
        &set(u16::MAX),
        &[0xff, 0xff, 1, 0],
        &set(1)[..3],
    ];
    for (i, cmd) in commands.into_iter().enumerate() {
        let c = d.buffer(cmd);
        let ack = d.alloc(1, 1, UNSET);
        let first = 2 * i as u16;
        let head = d.chain(&q, first, &[(c, cmd.len() as u32, false), (ack, 1, true)]);
        d.submit(&mut q, head);
        let (used, got) = (d.used_idx(&q), d.peek8(ack));
        ensure!(
            used == i as u16 + 1 && got == spec::net::CTRL_ERR,
            "command {cmd:02x?}: used {used}, ack {got:#x}, expected VIRTIO_NET_ERR"
        );
    }
    // A good one is still accepted.
    let c = d.buffer(&set(max));
    let ack = d.alloc(1, 1, UNSET);
    let head = d.chain(&q, 10, &[(c, 4, false), (ack, 1, true)]);
    d.submit(&mut q, head);
    let got = d.peek8(ack);
    ensure!(got == spec::net::CTRL_OK, "{max} pairs: ack {got:#x}");
    d.reset(NET)?;
    pass!(
        "0, {}, 0xffff pairs, an unknown class, a short command: VIRTIO_NET_ERR; {max} pairs: OK",
        max + 1
    )
}

fn net_ctrl_no_ack<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let mut q = net_ctrl(d)?;
    let c = d.buffer(&[
        spec::net::CTRL_CLASS_MQ,
        spec::net::CTRL_MQ_VQ_PAIRS_SET,
        2,
        0,
    ]);
    let head = d.chain(&q, 0, &[(c, 4, false)]);
    d.submit(&mut q, head);
    d.expect_needs_reset(&q, 0)
}

// ---- virtio-rng (§5.4) ------------------------------------------------------------------------

fn rng_random<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(RNG, 0, [0], QSIZE)?;
    let mut got = [[0u8; 32]; 2];
    for (i, g) in got.iter_mut().enumerate() {
        let b = d.alloc(32, 16, 0);
        let head = d.chain(&q, i as u16, &[(b, 32, true)]);
        d.submit(&mut q, head);
        let used = d.used_idx(&q);
        let (_, len) = d.used_elem(&q, i as u16);
        ensure!(
            used == i as u16 + 1 && (1..=32).contains(&len),
            "request {i}: used {used}, length {len}"
        );
        d.m.read_mem(b, &mut g[..len as usize]);
    }
    ensure!(got[0] != got[1], "two requests gave the same bytes");
    ensure!(got[0] != [0; 32], "all zero");
    d.token = Some(u32::from_le_bytes([
        got[0][0], got[0][1], got[0][2], got[0][3],
    ]));
    d.reset(RNG)?;
    pass!("two requests, different bytes")
}

fn rng_readable_only<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut q] = d.live(RNG, 0, [0], QSIZE)?;
    let b = d.alloc(32, 16, 0x5a);
    let head = d.chain(&q, 0, &[(b, 32, false)]);
    d.submit(&mut q, head);
    let used = d.used_idx(&q);
    let (_, len) = d.used_elem(&q, 0);
    let mut got = [0u8; 32];
    d.m.read_mem(b, &mut got);
    ensure!(
        used == 1 && len == 0 && got == [0x5a; 32],
        "used {used}, length {len}, buffer changed: {}",
        got != [0x5a; 32]
    );
    d.reset(RNG)?;
    pass!("used with length 0, the read-only buffer untouched")
}

// ---- virtio-console (§5.3) --------------------------------------------------------------------

/// Writes `text` to the transmit queue `q` and notifies it; returns the used index after.
fn console_write<M: Machine>(d: &mut Driver<'_, M>, q: &mut Vq, text: &[u8]) -> u16 {
    let b = d.buffer(text);
    let head = d.chain(q, 0, &[(b, text.len() as u32, false)]);
    d.submit(q, head);
    d.used_idx(q)
}

fn console_hvc0<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let token = d.token.unwrap_or(0);
    let [mut q] = d.live(CONSOLE, 0, [spec::console::TX0], QSIZE)?;
    let line = Detail::new(format_args!("{HVC0_LINE} token={token:08x}\n"));
    let used = console_write(d, &mut q, line.as_str().as_bytes());
    ensure!(used == 1, "used {used}");
    d.reset(CONSOLE)?;
    pass!("token={token:08x}")
}

/// Port 1 and the control queue without MULTIPORT: nothing is used, nothing printed.
fn console_without_multiport<M: Machine>(d: &mut Driver<'_, M>) -> Verdict {
    let [mut tx1, mut ctl] = d.live(
        CONSOLE,
        0,
        [spec::console::TX1, spec::console::CONTROL_TX],
        QSIZE,
    )?;
    let leak = Detail::new(format_args!("{PORT1_LEAK}\n"));
    let used = console_write(d, &mut tx1, leak.as_str().as_bytes());
    // DEVICE_READY (id 0, event 0, value 1).
    let used_ctl = console_write(d, &mut ctl, &[0, 0, 0, 0, 0, 0, 1, 0]);
    let s = d.status(CONSOLE);
    ensure!(
        used == 0 && used_ctl == 0 && s & status::DEVICE_NEEDS_RESET == 0,
        "used port 1 {used}, control {used_ctl}, Status {s:#x}"
    );
    d.reset(CONSOLE)?;
    pass!("port 1 and control queues not used")
}
