//! virtio-blk from the guest's side: every request type against a [`MemDisk`], the error
//! statuses of §5.2.6.2, and partitions of one shared disk.

use super::driver::*;
use crate::virtio::blk::{feature, request, status, BlockBackend, LbaRange, MemDisk, VirtioBlk};
use crate::virtio::mmio::offset;
use crate::virtio::{feature as common, MmioTransport};
use alloc::rc::Rc;
use core::cell::RefCell;
use std::vec::Vec;

type Blk<B> = MmioTransport<VirtioBlk<B>>;

const SECTORS: usize = 64;

fn up<B: BlockBackend + 'static>(backend: B) -> (Guest, Blk<B>) {
    let mut g = Guest::new();
    let mut t = MmioTransport::new(VirtioBlk::new(backend));
    let features = g.device_features(&mut t);
    g.init(&mut t, features, &[16]);
    (g, t)
}

fn header(kind: u32, sector: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&kind.to_le_bytes());
    h[8..].copy_from_slice(&sector.to_le_bytes());
    h
}

/// What one request came back with.
struct Done {
    status: u8,
    used_len: u32,
    data: Vec<u8>,
}

/// Sends one request: `out` after the header, `in_len` bytes of device-writable data, then the
/// status byte; optionally through an indirect table.
fn request<B: BlockBackend + 'static>(
    g: &mut Guest,
    t: &mut Blk<B>,
    kind: u32,
    sector: u64,
    out: &[u8],
    in_len: usize,
    indirect: bool,
) -> Done {
    let h = g.buffer(&header(kind, sector));
    let mut bufs: Vec<Buf> = std::vec![(h, 16, false)];
    if !out.is_empty() {
        bufs.push((g.buffer(out), out.len() as u32, false));
    }
    let data = g.blank(in_len, 0xee);
    if in_len > 0 {
        bufs.push((data, in_len as u32, true));
    }
    let st = g.blank(1, 0xff);
    bufs.push((st, 1, true));
    let head = if indirect {
        g.push_indirect(0, &bufs)
    } else {
        g.push_chain(0, &bufs)
    };
    g.notify(t, 0);
    let used = g.used(0);
    assert_eq!(used.len(), 1, "one used element");
    assert_eq!(used[0].0, u32::from(head));
    assert_eq!(g.ack(t) & 1, 1, "used-buffer interrupt");
    assert!(!t.irq_level());
    Done {
        status: g.peek(st, 1)[0],
        used_len: used[0].1,
        data: g.peek(data, in_len),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn segment(sector: u64, count: u32, flags: u32) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&sector.to_le_bytes());
    s[8..12].copy_from_slice(&count.to_le_bytes());
    s[12..].copy_from_slice(&flags.to_le_bytes());
    s
}

#[test]
fn offers_the_features_and_config_of_a_writable_disk() {
    let mut g = Guest::new();
    let mut t = MmioTransport::new(VirtioBlk::new(MemDisk::new(SECTORS, false)));
    let f = g.device_features(&mut t);
    assert_eq!(Guest::read_reg(&mut t, offset::DEVICE_ID), 2);
    for bit in [
        feature::FLUSH,
        feature::DISCARD,
        feature::WRITE_ZEROES,
        common::VERSION_1,
    ] {
        assert_ne!(f & bit, 0, "feature {bit:#x}");
    }
    assert_eq!(f & feature::RO, 0);
    // capacity (le64 at 0) as two 32-bit reads, blk_size at 20.
    let cap = t.read(0x100, 4) | t.read(0x104, 4) << 32;
    assert_eq!(cap, SECTORS as u64);
    assert_eq!(t.read(0x100, 8), SECTORS as u64);
    assert_eq!(t.read(0x100 + 20, 4), 512);
    // Past the end of the config space: zeroes.
    assert_eq!(t.read(0x1f8, 8), 0);
}

#[test]
fn write_then_read_round_trip() {
    for indirect in [false, true] {
        let (mut g, mut t) = up(MemDisk::new(SECTORS, false));
        let data = pattern(1024, 7);
        let w = request(&mut g, &mut t, request::OUT, 3, &data, 0, indirect);
        assert_eq!((w.status, w.used_len), (status::OK, 1));
        assert_eq!(
            &t.device().backend().as_bytes()[3 * 512..5 * 512],
            &data[..]
        );
        let r = request(&mut g, &mut t, request::IN, 3, &[], 1024, indirect);
        assert_eq!(r.status, status::OK);
        assert_eq!(r.used_len, 1025, "data plus status byte");
        assert_eq!(r.data, data);
    }
}

#[test]
fn large_read_crosses_the_scratch_buffer() {
    let mut disk = MemDisk::new(512, false);
    let data = pattern(200 * 1024, 3);
    disk.write(10, &data).unwrap();
    let (mut g, mut t) = up(disk);
    let r = request(&mut g, &mut t, request::IN, 10, &[], data.len(), false);
    assert_eq!(r.status, status::OK);
    assert_eq!(r.data, data);
}

#[test]
fn flush_reaches_the_backend() {
    let (mut g, mut t) = up(MemDisk::new(SECTORS, false));
    let r = request(&mut g, &mut t, request::FLUSH, 0, &[], 0, false);
    assert_eq!((r.status, r.used_len), (status::OK, 1));
    assert_eq!(t.device().backend().flushes, 1);
}

#[test]
fn get_id_returns_twenty_bytes() {
    let (mut g, mut t) = up(MemDisk::new(SECTORS, false).with_id(b"disk-serial-0001"));
    let r = request(&mut g, &mut t, request::GET_ID, 0, &[], 20, false);
    assert_eq!((r.status, r.used_len), (status::OK, 21));
    assert_eq!(&r.data[..16], b"disk-serial-0001");
    assert_eq!(&r.data[16..], &[0; 4]);
}

#[test]
fn discard_and_write_zeroes() {
    let mut disk = MemDisk::new(SECTORS, false);
    disk.write(0, &pattern(SECTORS * 512, 1)).unwrap();
    let (mut g, mut t) = up(disk);
    let r = request(
        &mut g,
        &mut t,
        request::DISCARD,
        0,
        &segment(2, 2, 0),
        0,
        false,
    );
    assert_eq!(r.status, status::OK);
    let r = request(
        &mut g,
        &mut t,
        request::WRITE_ZEROES,
        0,
        &segment(8, 1, 1),
        0,
        false,
    );
    assert_eq!(r.status, status::OK, "WRITE_ZEROES may carry unmap");
    let bytes = t.device().backend().as_bytes();
    assert!(bytes[2 * 512..4 * 512].iter().all(|&b| b == 0));
    assert!(bytes[8 * 512..9 * 512].iter().all(|&b| b == 0));
    assert_eq!(
        &bytes[4 * 512..8 * 512],
        &pattern(SECTORS * 512, 1)[4 * 512..8 * 512]
    );

    // §5.2.6.2: unmap on DISCARD, and unknown flags, are UNSUPP.
    let r = request(
        &mut g,
        &mut t,
        request::DISCARD,
        0,
        &segment(0, 1, 1),
        0,
        false,
    );
    assert_eq!(r.status, status::UNSUPP);
    let r = request(
        &mut g,
        &mut t,
        request::WRITE_ZEROES,
        0,
        &segment(0, 1, 2),
        0,
        false,
    );
    assert_eq!(r.status, status::UNSUPP);
    // Out of range, and a segment count other than max_discard_seg (1): IOERR.
    let r = request(
        &mut g,
        &mut t,
        request::DISCARD,
        0,
        &segment(63, 2, 0),
        0,
        false,
    );
    assert_eq!(r.status, status::IOERR);
    let two = [segment(0, 1, 0), segment(4, 1, 0)].concat();
    let r = request(&mut g, &mut t, request::DISCARD, 0, &two, 0, false);
    assert_eq!(r.status, status::IOERR);
}

#[test]
fn write_zeroes_is_bounded_by_its_config_maximum() {
    const BIG: usize = 40 * 1024;
    let mut disk = MemDisk::new(BIG, false);
    disk.write(0, &pattern(BIG * 512, 5)).unwrap();
    let (mut g, mut t) = up(disk);
    // max_write_zeroes_sectors (le32 at 48 of the config space).
    let most = t.read(0x100 + 48, 4) as u32;
    assert!(most > 0 && (most as usize) < BIG, "max {most}");
    let r = request(
        &mut g,
        &mut t,
        request::WRITE_ZEROES,
        0,
        &segment(0, most + 1, 0),
        0,
        false,
    );
    assert_eq!(r.status, status::IOERR, "one sector over the maximum");
    assert_eq!(
        t.device().backend().as_bytes(),
        &pattern(BIG * 512, 5)[..],
        "a refused WRITE_ZEROES writes nothing"
    );
    let r = request(
        &mut g,
        &mut t,
        request::WRITE_ZEROES,
        0,
        &segment(1, most, 0),
        0,
        false,
    );
    assert_eq!(r.status, status::OK, "exactly the maximum");
    let bytes = t.device().backend().as_bytes();
    let end = (1 + most as usize) * 512;
    assert!(bytes[512..end].iter().all(|&b| b == 0));
    assert_eq!(&bytes[..512], &pattern(BIG * 512, 5)[..512]);
    assert_eq!(&bytes[end..], &pattern(BIG * 512, 5)[end..]);
}

#[test]
fn read_only_disk_refuses_writes_with_ioerr() {
    let mut disk = MemDisk::from_bytes(pattern(SECTORS * 512, 9), true);
    let before = disk.as_bytes().to_vec();
    assert!(disk.write(0, &[0; 512]).is_err());
    let (mut g, mut t) = up(disk);
    let f = g.device_features(&mut t);
    assert_ne!(f & feature::RO, 0, "VIRTIO_BLK_F_RO offered");
    assert_eq!(f & (feature::DISCARD | feature::WRITE_ZEROES), 0);
    let r = request(&mut g, &mut t, request::OUT, 0, &[0u8; 512], 0, false);
    assert_eq!((r.status, r.used_len), (status::IOERR, 1));
    assert_eq!(
        t.device().backend().as_bytes(),
        &before[..],
        "no data written"
    );
    // Not negotiated, so UNSUPP rather than IOERR.
    let r = request(
        &mut g,
        &mut t,
        request::WRITE_ZEROES,
        0,
        &segment(0, 1, 0),
        0,
        false,
    );
    assert_eq!(r.status, status::UNSUPP);
    // Reads and flushes still work.
    let r = request(&mut g, &mut t, request::IN, 1, &[], 512, false);
    assert_eq!((r.status, &r.data[..]), (status::OK, &before[512..1024]));
    let r = request(&mut g, &mut t, request::FLUSH, 0, &[], 0, false);
    assert_eq!(r.status, status::OK);
}

#[test]
fn out_of_range_sectors_get_ioerr() {
    let (mut g, mut t) = up(MemDisk::new(SECTORS, false));
    for sector in [SECTORS as u64 - 1, SECTORS as u64, u64::MAX] {
        let r = request(&mut g, &mut t, request::IN, sector, &[], 1024, false);
        assert_eq!(r.status, status::IOERR, "read at {sector}");
        assert_eq!(r.used_len, 1025);
        let r = request(&mut g, &mut t, request::OUT, sector, &[1u8; 1024], 0, false);
        assert_eq!(r.status, status::IOERR, "write at {sector}");
    }
    // Data that is not whole sectors.
    let r = request(&mut g, &mut t, request::OUT, 0, &[1u8; 100], 0, false);
    assert_eq!(r.status, status::IOERR);
    assert!(t.device().backend().as_bytes().iter().all(|&b| b == 0));
    assert_eq!(t.device().stats().ioerr, 7);
}

#[test]
fn unknown_request_type_is_unsupp() {
    let (mut g, mut t) = up(MemDisk::new(SECTORS, false));
    for kind in [2, 3, 10, 14, 99, u32::MAX] {
        let r = request(&mut g, &mut t, kind, 0, &[], 512, false);
        assert_eq!(r.status, status::UNSUPP, "type {kind}");
    }
}

#[test]
fn partitions_of_one_disk_stay_inside_their_ranges() {
    let host = Rc::new(RefCell::new(MemDisk::new(100, false)));
    let p1 = LbaRange::new(host.clone(), 10, 20, false).unwrap();
    let p2 = LbaRange::new(host.clone(), 30, 20, true).unwrap();
    assert!(
        LbaRange::new(host.clone(), 90, 20, false).is_none(),
        "past the host disk"
    );
    let (mut g1, mut t1) = up(p1);
    let (mut g2, mut t2) = up(p2);
    assert_eq!(t1.read(0x100, 8), 20);

    let data = pattern(512, 5);
    let r = request(&mut g1, &mut t1, request::OUT, 19, &data, 0, false);
    assert_eq!(r.status, status::OK);
    assert_eq!(&host.borrow().as_bytes()[29 * 512..30 * 512], &data[..]);
    // One sector past the partition's end is the neighbour's first: refused.
    let r = request(
        &mut g1,
        &mut t1,
        request::OUT,
        19,
        &pattern(1024, 1),
        0,
        false,
    );
    assert_eq!(r.status, status::IOERR);
    assert!(host.borrow().as_bytes()[30 * 512..31 * 512]
        .iter()
        .all(|&b| b == 0));
    // The read-only partition refuses writes but reads the host disk.
    let r = request(&mut g2, &mut t2, request::OUT, 0, &data, 0, false);
    assert_eq!(r.status, status::IOERR);
    host.borrow_mut().write(30, &data).unwrap();
    let r = request(&mut g2, &mut t2, request::IN, 0, &[], 512, false);
    assert_eq!((r.status, r.data), (status::OK, data));
}

#[test]
fn event_idx_suppresses_interrupts_until_used_event() {
    let (mut g, mut t) = up(MemDisk::new(SECTORS, false));
    let negotiated = t.negotiated_features();
    assert_ne!(negotiated & common::RING_EVENT_IDX, 0);
    let dq = g.queues[0].clone().unwrap();
    let used_event = dq.avail + 4 + 2 * u64::from(dq.size);
    // Ask for an interrupt only after the third used buffer (used_event = 2).
    g.auto_used_event = false;
    g.poke(used_event, &2u16.to_le_bytes());
    let mut interrupts = Vec::new();
    for _ in 0..3 {
        let h = g.buffer(&header(request::FLUSH, 0));
        let st = g.blank(1, 0xff);
        g.push_chain(0, &[(h, 16, false), (st, 1, true)]);
        g.notify(&mut t, 0);
        interrupts.push(t.irq_level());
        g.ack(&mut t);
    }
    assert_eq!(interrupts, [false, false, true]);
    // The device asks to be notified of the next buffer: avail_event = next available index.
    let avail_event = g.peek_u16(dq.used + 4 + 8 * u64::from(dq.size));
    assert_eq!(avail_event, 3);
}
