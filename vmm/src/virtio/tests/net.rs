//! virtio-net from the guest's side: transmit to the backend, receive with the header, the
//! MAC and link status in the configuration, and two guests joined by the switch.

use super::driver::*;
use crate::virtio::feature::VERSION_1;
use crate::virtio::mmio::offset;
use crate::virtio::net::{
    ctrl, feature, MacAddr, NetBackend, NetError, VirtioNet, HEADER_BYTES, MAX_FRAME,
    MAX_QUEUE_PAIRS, RX_SLOTS,
};
use crate::virtio::switch::Switch;
use crate::virtio::MmioTransport;
use crate::virtio::VirtioDevice;
use std::vec::Vec;

#[derive(Default)]
struct Wire(Vec<Vec<u8>>);

impl NetBackend for Wire {
    fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.0.push(frame.to_vec());
        Ok(())
    }
}

type Net = MmioTransport<VirtioNet<Wire>>;

const RX: usize = 0;
const TX: u16 = 1;

fn up(mac: MacAddr) -> (Guest, Net) {
    let mut g = Guest::new();
    let mut t = MmioTransport::new(VirtioNet::new(Wire::default(), mac));
    let f = g.device_features(&mut t);
    assert_ne!(f & feature::MAC, 0);
    g.init(&mut t, f, &[32, 32]);
    (g, t)
}

fn eth(dst: MacAddr, src: MacAddr, payload: &[u8]) -> Vec<u8> {
    [&dst.0[..], &src.0[..], &[0x08, 0x00], payload].concat()
}

fn transmit(g: &mut Guest, t: &mut Net, frame: &[u8]) {
    // The header in its own descriptor, as Linux does without VIRTIO_F_ANY_LAYOUT tricks.
    let h = g.blank(HEADER_BYTES, 0);
    let f = g.buffer(frame);
    g.push_chain(
        usize::from(TX),
        &[
            (h, HEADER_BYTES as u32, false),
            (f, frame.len() as u32, false),
        ],
    );
    g.notify(t, TX);
}

fn post_rx(g: &mut Guest, t: &mut Net, len: usize) -> u64 {
    let b = g.blank(len, 0xcc);
    g.push_chain(RX, &[(b, len as u32, true)]);
    g.notify(t, RX as u16);
    b
}

/// A description's `mac` reaches the card: parsed, carried by the core's VmStart through
/// the registers, and read by the guest from the configuration space. Without one the card
/// has the VM's default.
#[test]
fn the_described_mac_is_the_card_s_address() {
    use abi::vmm::{DeviceSet, DiskSlice, FaultPlan, Request};
    use abi::{GuestPhysAddr, VmId};
    let text = "[[vm]]\nname = \"a\"\nmemory = \"16M\"\nkernel = \"k\"\n\
                devices = [\"virtio-net\"]\nmac = \"52:54:00:ab:cd:ef\"\n\
                [[vm]]\nname = \"b\"\nmemory = \"16M\"\nkernel = \"k\"\n\
                devices = [\"virtio-net\"]\n";
    let vms = vmboot::config::parse(text);
    for (id, (vm, want)) in vms
        .iter()
        .zip([
            [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef],
            [0x02, 0x72, 0x68, 0, 1, 0],
        ])
        .enumerate()
    {
        let vm = vm.as_ref().expect("a valid description");
        let start = Request::VmStart {
            vm: VmId(id as u16),
            ram_base: GuestPhysAddr(0x4000_0000),
            ram_size: vm.mem_size,
            fault: FaultPlan::default(),
            devices: DeviceSet::VIRTIO_NET,
            disk: DiskSlice::WHOLE,
            mac: vm.mac,
        };
        let Some(Request::VmStart { vm, mac, .. }) = Request::from_regs(start.to_regs()) else {
            panic!("VmStart did not survive its registers");
        };
        let (_, mut t) = up(MacAddr::for_vm(vm.0, mac));
        let got: Vec<u8> = (0..6).map(|i| t.read(0x100 + i, 1) as u8).collect();
        assert_eq!(got, want, "VM {id}");
    }
}

#[test]
fn config_has_the_mac_and_link_status() {
    let mac = MacAddr::default_for(3, 1);
    assert_eq!(mac.0, [0x02, 0x72, 0x68, 0, 3, 1]);
    assert!(!mac.is_multicast());
    let (mut g, mut t) = up(mac);
    let got: Vec<u8> = (0..6).map(|i| t.read(0x100 + i, 1) as u8).collect();
    assert_eq!(got, mac.0);
    assert_eq!(t.read(0x106, 2), 1, "LINK_UP");
    // The driver cannot change the MAC.
    t.write(0x100, 1, 0xff, &mut g.mem);
    assert_eq!(t.read(0x100, 1), 2);
    // A link change is a configuration change.
    let generation = Guest::read_reg(&mut t, offset::CONFIG_GENERATION);
    t.device_mut().set_link_up(false);
    t.poll(&mut g.mem);
    assert_eq!(t.read(0x106, 2), 0);
    assert_eq!(g.ack(&mut t) & 2, 2, "configuration-change interrupt");
    assert_ne!(
        Guest::read_reg(&mut t, offset::CONFIG_GENERATION),
        generation
    );
}

#[test]
fn transmit_strips_the_header() {
    let (mut g, mut t) = up(MacAddr::default_for(1, 0));
    let frame = eth(MacAddr::BROADCAST, MacAddr::default_for(1, 0), b"ping");
    transmit(&mut g, &mut t, &frame);
    assert_eq!(g.used(usize::from(TX)), [(0, 0)]);
    assert_eq!(t.device().backend().0, [frame]);
    // A header split across descriptors and a too-short chain.
    let whole = [
        std::vec![0u8; HEADER_BYTES],
        eth(MacAddr::BROADCAST, MacAddr::BROADCAST, b"x"),
    ]
    .concat();
    let a = g.buffer(&whole[..5]);
    let b = g.buffer(&whole[5..]);
    g.push_chain(1, &[(a, 5, false), (b, (whole.len() - 5) as u32, false)]);
    let c = g.buffer(&[0; 4]);
    g.push_chain(1, &[(c, 4, false)]);
    g.notify(&mut t, TX);
    assert_eq!(g.used(usize::from(TX)).len(), 2);
    assert_eq!(t.device().backend().0.len(), 2);
    assert_eq!(t.device().backend().0[1], whole[HEADER_BYTES..]);
    assert_eq!(t.device().stats().tx_dropped, 1);
}

#[test]
fn injected_frames_arrive_with_a_header() {
    let (mut g, mut t) = up(MacAddr::default_for(1, 0));
    let frame = eth(
        MacAddr::default_for(1, 0),
        MacAddr::default_for(2, 0),
        b"pong",
    );
    assert!(t.device_mut().inject_rx(&frame));
    t.poll(&mut g.mem);
    assert_eq!(t.device().rx_pending(), 1, "waits for a buffer");
    let buf = post_rx(&mut g, &mut t, 1526);
    let used = g.used(RX);
    assert_eq!(used, [(0, (HEADER_BYTES + frame.len()) as u32)]);
    let got = g.peek(buf, HEADER_BYTES + frame.len());
    // num_buffers = 1, everything else zero (§5.1.6.4).
    assert_eq!(&got[..HEADER_BYTES], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(&got[HEADER_BYTES..], &frame[..]);
    assert_eq!(g.peek(buf + (HEADER_BYTES + frame.len()) as u64, 1), [0xcc]);
    assert!(t.irq_level());
}

#[test]
fn rx_ring_is_bounded_and_drops_count() {
    let (mut g, mut t) = up(MacAddr::default_for(1, 0));
    let frame = eth(MacAddr::BROADCAST, MacAddr::default_for(2, 0), b"flood");
    for _ in 0..RX_SLOTS {
        assert!(t.device_mut().inject_rx(&frame));
    }
    assert!(!t.device_mut().inject_rx(&frame), "a full ring drops");
    assert!(!t.device_mut().inject_rx(&[0; MAX_FRAME + 1]), "too long");
    assert_eq!(t.device().stats().rx_dropped, 2);
    // A buffer too small for a frame: the frame is dropped, the buffer kept for the next.
    post_rx(&mut g, &mut t, 8);
    assert!(g.used(RX).is_empty());
    assert_eq!(t.device().rx_pending(), RX_SLOTS - 1);
    assert_eq!(t.device().stats().rx_dropped, 3);
    assert_eq!(Guest::status(&mut t) & NEEDS_RESET, 0);
}

#[test]
fn two_guests_talk_through_the_switch() {
    let (a_mac, b_mac) = (MacAddr::default_for(1, 0), MacAddr::default_for(2, 0));
    let (mut ga, mut a) = up(a_mac);
    let (mut gb, mut b) = up(b_mac);
    let mut sw = Switch::new(3, 64);
    // What the VMM does after a notify: move the backends' frames through the switch.
    let mut pump = |a: &mut Net, b: &mut Net, port: usize, uplink: &mut Vec<Vec<u8>>| {
        let from = if port == 0 { &mut *a } else { &mut *b };
        let frames = core::mem::take(&mut from.device_mut().backend_mut().0);
        for f in frames {
            let mut targets = Vec::new();
            sw.forward_each(port, &f, |p| targets.push(p));
            for p in targets {
                match p {
                    0 => assert!(a.device_mut().inject_rx(&f)),
                    1 => assert!(b.device_mut().inject_rx(&f)),
                    _ => uplink.push(f.clone()),
                }
            }
        }
    };
    let mut uplink = Vec::new();
    // A broadcasts (ARP-like): B and the uplink get it.
    transmit(&mut ga, &mut a, &eth(MacAddr::BROADCAST, a_mac, b"who has"));
    pump(&mut a, &mut b, 0, &mut uplink);
    let rb = post_rx(&mut gb, &mut b, 1526);
    b.poll(&mut gb.mem);
    assert_eq!(gb.used(RX).len(), 1);
    assert_eq!(gb.peek(rb + HEADER_BYTES as u64 + 6, 6), a_mac.0);
    assert_eq!(uplink.len(), 1);
    // B answers A by unicast: only A gets it, the uplink does not.
    transmit(&mut gb, &mut b, &eth(a_mac, b_mac, b"is at"));
    pump(&mut a, &mut b, 1, &mut uplink);
    let ra = post_rx(&mut ga, &mut a, 1526);
    a.poll(&mut ga.mem);
    assert_eq!(ga.used(RX).len(), 1);
    assert_eq!(ga.peek(ra + HEADER_BYTES as u64 + 14, 5), b"is at");
    assert_eq!(uplink.len(), 1);
    assert_eq!(sw.lookup(a_mac), Some(0));
    assert_eq!(sw.lookup(b_mac), Some(1));
}

// ---- multiqueue (VIRTIO_NET_F_MQ) -------------------------------------------------------------

const CTRL_MQ: u16 = 2 * MAX_QUEUE_PAIRS;

/// A card of [`MAX_QUEUE_PAIRS`] pairs.
fn mq_card() -> Net {
    MmioTransport::new(VirtioNet::with_queue_pairs(
        Wire::default(),
        MacAddr::default_for(1, 0),
        MAX_QUEUE_PAIRS,
    ))
}

/// A card with every pair and the control queue set up, everything negotiated.
fn up_mq() -> (Guest, Net) {
    let mut g = Guest::new();
    let mut t = mq_card();
    let f = g.device_features(&mut t);
    assert_eq!(
        f & (feature::MQ | feature::CTRL_VQ),
        feature::MQ | feature::CTRL_VQ
    );
    g.init(&mut t, f, &[32; 2 * MAX_QUEUE_PAIRS as usize + 1]);
    (g, t)
}

/// Sends `cmd` on control queue `q`; returns the ack byte, or `None` if the chain was not
/// used.
fn control(g: &mut Guest, t: &mut Net, q: u16, cmd: &[u8]) -> Option<u8> {
    let c = g.buffer(cmd);
    let ack = g.blank(1, 0xee);
    g.push_chain(
        usize::from(q),
        &[(c, cmd.len() as u32, false), (ack, 1, true)],
    );
    g.notify(t, q);
    let used = g.used(usize::from(q));
    (used.len() == 1).then(|| {
        assert_eq!(used[0].1, 1, "used length: the ack");
        g.peek(ack, 1)[0]
    })
}

fn pairs_set(n: u16) -> [u8; 4] {
    let [a, b] = n.to_le_bytes();
    [ctrl::CLASS_MQ, ctrl::MQ_VQ_PAIRS_SET, a, b]
}

#[test]
fn the_control_queue_enables_queue_pairs() {
    let (mut g, mut t) = up_mq();
    assert_eq!(
        t.read(0x108, 2),
        u64::from(MAX_QUEUE_PAIRS),
        "max_virtqueue_pairs"
    );
    assert_eq!(t.device().queue_pairs(), 1, "one pair after a reset");
    assert_eq!(
        control(&mut g, &mut t, CTRL_MQ, &pairs_set(2)),
        Some(ctrl::OK)
    );
    assert_eq!(t.device().queue_pairs(), 2);
    for bad in [
        &pairs_set(0)[..],
        &pairs_set(MAX_QUEUE_PAIRS + 1),
        &pairs_set(2)[..3],
        &[ctrl::CLASS_MQ, ctrl::MQ_VQ_PAIRS_SET, 1, 0, 0],
        &[0, 0, 1, 0],
        &[ctrl::CLASS_MQ, 7, 1, 0],
    ] {
        assert_eq!(
            control(&mut g, &mut t, CTRL_MQ, bad),
            Some(ctrl::ERR),
            "{bad:?}"
        );
        assert_eq!(t.device().queue_pairs(), 2, "{bad:?} changed the pairs");
    }
    // A reset goes back to one pair.
    g.write_reg(&mut t, offset::STATUS, 0);
    assert_eq!(t.device().queue_pairs(), 1);
}

#[test]
fn received_flows_spread_over_the_enabled_pairs_only() {
    let (mut g, mut t) = up_mq();
    assert_eq!(
        control(&mut g, &mut t, CTRL_MQ, &pairs_set(2)),
        Some(ctrl::OK)
    );
    // Frames of 16 UDP flows, three each, interleaved.
    let flow = |port: u16| {
        let mut ip = std::vec![0u8; 28];
        ip[0] = 0x45;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 3, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 3, 2]);
        ip[20..22].copy_from_slice(&port.to_be_bytes());
        // eth() gives the IPv4 EtherType.
        eth(MacAddr::default_for(1, 0), MacAddr::default_for(2, 0), &ip)
    };
    let mut bufs: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for q in 0..MAX_QUEUE_PAIRS as usize {
        for _ in 0..32 {
            let b = g.blank(1526, 0);
            g.push_chain(2 * q, &[(b, 1526, true)]);
            bufs.insert(b, 2 * q);
        }
    }
    for _ in 0..3 {
        for port in 0..16 {
            assert!(t.device_mut().inject_rx(&flow(port)));
        }
    }
    t.poll(&mut g.mem);
    assert_eq!(t.device().rx_pending(), 0);
    let mut queue_of_flow = std::collections::HashMap::new();
    let mut per_queue = [0usize; MAX_QUEUE_PAIRS as usize];
    for (q, count) in per_queue.iter_mut().enumerate() {
        let used = g.used(2 * q);
        *count = used.len();
        let dq = g.queues[2 * q].clone().unwrap();
        for (id, _) in used {
            // The buffer of that descriptor, and the frame's port in it.
            let addr =
                u64::from_le_bytes(g.peek(dq.desc + 16 * u64::from(id), 8).try_into().unwrap());
            assert_eq!(bufs[&addr], 2 * q);
            let port = u16::from_be_bytes(
                g.peek(addr + HEADER_BYTES as u64 + 34, 2)
                    .try_into()
                    .unwrap(),
            );
            let first = *queue_of_flow.entry(port).or_insert(q);
            assert_eq!(first, q, "flow {port} on two queues");
        }
    }
    assert_eq!(per_queue.iter().sum::<usize>(), 48);
    assert!(per_queue[0] > 0 && per_queue[1] > 0, "{per_queue:?}");
    assert_eq!(per_queue[2..], [0, 0], "pairs not enabled get nothing");
}

#[test]
fn every_pair_transmits() {
    let (mut g, mut t) = up_mq();
    assert_eq!(
        control(&mut g, &mut t, CTRL_MQ, &pairs_set(MAX_QUEUE_PAIRS)),
        Some(ctrl::OK)
    );
    for pair in 0..MAX_QUEUE_PAIRS {
        let frame = eth(
            MacAddr::BROADCAST,
            MacAddr::default_for(1, 0),
            &[pair as u8; 20],
        );
        let h = g.blank(HEADER_BYTES, 0);
        let f = g.buffer(&frame);
        let q = 2 * pair + 1;
        g.push_chain(
            usize::from(q),
            &[
                (h, HEADER_BYTES as u32, false),
                (f, frame.len() as u32, false),
            ],
        );
        g.notify(&mut t, q);
        assert_eq!(g.used(usize::from(q)).len(), 1);
        assert_eq!(t.device().backend().0.last(), Some(&frame));
    }
    assert_eq!(t.device().backend().0.len(), usize::from(MAX_QUEUE_PAIRS));
}

#[test]
fn without_mq_queue_2_is_the_control_queue_and_refuses_pairs() {
    let mut g = Guest::new();
    let mut t = mq_card();
    g.init(
        &mut t,
        feature::MAC | feature::CTRL_VQ | VERSION_1,
        &[32, 32, 32],
    );
    assert_eq!(control(&mut g, &mut t, 2, &pairs_set(2)), Some(ctrl::ERR));
    assert_eq!(t.device().queue_pairs(), 1);
    // Without CTRL_VQ there is no control queue: the chain is not used.
    let mut g = Guest::new();
    let mut t = mq_card();
    g.init(&mut t, feature::MAC | VERSION_1, &[32, 32, 32]);
    assert_eq!(control(&mut g, &mut t, 2, &pairs_set(1)), None);
}

#[test]
fn a_one_pair_card_offers_no_control_queue() {
    let mut g = Guest::new();
    let mut t = MmioTransport::new(VirtioNet::new(Wire::default(), MacAddr::default_for(1, 0)));
    let f = g.device_features(&mut t);
    assert_eq!(f & (feature::MQ | feature::CTRL_VQ), 0);
    assert_eq!(t.read(0x108, 2), 1, "max_virtqueue_pairs");
    g.write_reg(&mut t, offset::QUEUE_SEL, 2);
    assert_eq!(
        Guest::read_reg(&mut t, offset::QUEUE_NUM_MAX),
        0,
        "two queues only"
    );
    // A card asked for more pairs than there can be gets the most.
    let t = MmioTransport::new(VirtioNet::with_queue_pairs(
        Wire::default(),
        MacAddr::BROADCAST,
        99,
    ));
    assert_eq!(
        t.device().queue_max_sizes().len(),
        2 * usize::from(MAX_QUEUE_PAIRS) + 1
    );
}

#[test]
fn a_control_chain_with_no_room_for_the_ack_needs_a_reset() {
    let (mut g, mut t) = up_mq();
    let c = g.buffer(&pairs_set(2));
    g.push_chain(usize::from(CTRL_MQ), &[(c, 4, false)]);
    g.notify(&mut t, CTRL_MQ);
    assert_ne!(Guest::status(&mut t) & NEEDS_RESET, 0);
    assert_eq!(t.device().queue_pairs(), 1);
}
