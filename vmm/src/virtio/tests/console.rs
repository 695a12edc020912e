//! virtio-console from the guest's side: the multiport handshake of §5.3.6.2 as Linux runs it,
//! output on both ports, input delivery.

use super::driver::*;
use crate::virtio::console::{event, feature, ConsoleBackend, VirtioConsole, INPUT_CAPACITY};
use crate::virtio::mmio::offset;
use crate::virtio::{feature as common, MmioTransport};
use std::vec::Vec;

#[derive(Default)]
struct Sink(Vec<u8>);

impl ConsoleBackend for Sink {
    fn output(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

type Console = MmioTransport<VirtioConsole<Sink>>;

const CONTROL_RX: usize = 2;
const CONTROL_TX: u16 = 3;

fn console() -> Console {
    MmioTransport::new(VirtioConsole::new(
        Sink::default(),
        Sink::default(),
        "org.rhyve.port1",
    ))
}

fn control(id: u32, ev: u16, value: u16) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&id.to_le_bytes());
    m[4..6].copy_from_slice(&ev.to_le_bytes());
    m[6..].copy_from_slice(&value.to_le_bytes());
    m
}

/// Posts a 128-byte receive buffer on `q`; returns its address.
fn post_rx(g: &mut Guest, q: usize) -> u64 {
    let b = g.blank(128, 0);
    g.push_chain(q, &[(b, 128, true)]);
    b
}

fn send_control(g: &mut Guest, t: &mut Console, msg: [u8; 8]) {
    let b = g.buffer(&msg);
    g.push_chain(usize::from(CONTROL_TX), &[(b, 8, false)]);
    g.notify(t, CONTROL_TX);
}

/// The control messages the device delivered, as (id, event, value, trailing bytes).
fn received_controls(g: &mut Guest, bufs: &[u64]) -> Vec<(u32, u16, u16, Vec<u8>)> {
    g.used(CONTROL_RX)
        .into_iter()
        .map(|(id, len)| {
            let b = g.peek(bufs[id as usize], len as usize);
            (
                u32::from_le_bytes(b[..4].try_into().unwrap()),
                u16::from_le_bytes(b[4..6].try_into().unwrap()),
                u16::from_le_bytes(b[6..8].try_into().unwrap()),
                b[8..].to_vec(),
            )
        })
        .collect()
}

/// A multiport console brought up with the handshake; returns the control rx buffers by head.
fn handshake(g: &mut Guest, t: &mut Console) -> Vec<(u32, u16, u16, Vec<u8>)> {
    let f = g.device_features(t);
    assert_ne!(f & feature::MULTIPORT, 0);
    assert_eq!(t.read(0x104, 4), 2, "max_nr_ports");
    g.init(t, common::VERSION_1 | feature::MULTIPORT, &[16; 6]);
    // Linux fills the control receive queue, then says DEVICE_READY.
    let bufs: Vec<u64> = (0..16).map(|_| post_rx(g, CONTROL_RX)).collect();
    g.notify(t, CONTROL_RX as u16);
    send_control(g, t, control(0, event::DEVICE_READY, 1));
    let mut got = received_controls(g, &bufs);
    for port in 0..2 {
        send_control(g, t, control(port, event::PORT_READY, 1));
    }
    got.extend(received_controls(g, &bufs));
    got
}

#[test]
fn multiport_handshake_adds_names_and_opens_both_ports() {
    let mut g = Guest::new();
    let mut t = console();
    let got = handshake(&mut g, &mut t);
    let e = |id, ev, v| (id, ev, v, Vec::new());
    assert_eq!(
        got,
        [
            e(0, event::DEVICE_ADD, 0),
            e(1, event::DEVICE_ADD, 0),
            e(0, event::CONSOLE_PORT, 1),
            e(0, event::PORT_OPEN, 1),
            (1, event::PORT_NAME, 0, b"org.rhyve.port1".to_vec()),
            e(1, event::PORT_OPEN, 1),
        ]
    );
    assert!(t.device().is_ready(0) && t.device().is_ready(1));
    send_control(&mut g, &mut t, control(1, event::PORT_OPEN, 1));
    assert!(t.device().is_open(1));
    send_control(&mut g, &mut t, control(1, event::PORT_OPEN, 0));
    assert!(!t.device().is_open(1));
}

#[test]
fn output_reaches_each_ports_backend() {
    let mut g = Guest::new();
    let mut t = console();
    handshake(&mut g, &mut t);
    let a = g.buffer(b"hello ");
    let b = g.buffer(b"hvc0\n");
    g.push_chain(1, &[(a, 6, false), (b, 5, false)]);
    g.notify(&mut t, 1);
    let c = g.buffer(b"second port");
    g.push_chain(5, &[(c, 11, false)]);
    g.notify(&mut t, 5);
    assert_eq!(g.used(1), [(0, 0)]);
    assert_eq!(g.used(5), [(0, 0)]);
    assert_eq!(t.device().backend(0).unwrap().0, b"hello hvc0\n");
    assert_eq!(t.device().backend(1).unwrap().0, b"second port");
}

#[test]
fn input_is_delivered_as_buffers_arrive_and_bounded() {
    let mut g = Guest::new();
    let mut t = console();
    handshake(&mut g, &mut t);
    assert_eq!(t.device_mut().push_input(1, b"typed"), 5);
    t.poll(&mut g.mem);
    assert!(g.used(4).is_empty(), "no buffer yet");
    let b = post_rx(&mut g, 4);
    g.notify(&mut t, 4);
    assert_eq!(g.used(4), [(0, 5)]);
    assert_eq!(g.peek(b, 5), b"typed");
    assert!(t.irq_level());
    // Input beyond the bound is refused and counted.
    let big = std::vec![b'x'; INPUT_CAPACITY + 10];
    assert_eq!(t.device_mut().push_input(0, &big), INPUT_CAPACITY);
    assert_eq!(t.device().input_dropped, 10);
    assert_eq!(t.device_mut().push_input(7, b"x"), 0, "no port 7");
}

/// Found by the virtio_console fuzzer: a receive chain that loops back on itself was used,
/// because receiving stops walking a chain when the input runs out, before the loop shows.
/// The device wrote three input bytes into one 1-byte buffer and said 3 bytes were used. A
/// looping chain is refused whole: the device needs a reset and the input waits.
#[test]
fn a_looping_receive_chain_is_refused_even_when_the_input_ends_first() {
    let mut g = Guest::new();
    let mut t = console();
    g.init(&mut t, common::VERSION_1, &[16, 16]);
    assert_eq!(t.device_mut().push_input(0, b"abc"), 3);
    // Descriptor 0: one writable byte, then descriptor 0 again.
    let b = g.blank(1, 0xee);
    g.write_desc(0, 0, b, 1, F_WRITE | F_NEXT, 0);
    g.publish(0, 0);
    let before = g.mem.clone();
    g.notify(&mut t, 0);
    assert_ne!(Guest::status(&mut t) & NEEDS_RESET, 0, "the loop was used");
    assert!(g.used(0).is_empty(), "a used buffer for a looping chain");
    let used = used_ring_range(&g, 0);
    assert_only_changed(&before, &g.mem, &[(used.0 + used.1, 2)]);
    // After a reset the input is still there for a proper buffer.
    g.write_reg(&mut t, offset::STATUS, 0);
    g.init(&mut t, common::VERSION_1, &[16, 16]);
    let rx = post_rx(&mut g, 0);
    g.notify(&mut t, 0);
    assert_eq!(g.used(0), [(0, 3)]);
    assert_eq!(g.peek(rx, 3), b"abc");
}

#[test]
fn without_multiport_port_0_still_works() {
    let mut g = Guest::new();
    let mut t = console();
    g.init(&mut t, common::VERSION_1, &[16, 16]);
    let a = g.buffer(b"early");
    g.push_chain(1, &[(a, 5, false)]);
    g.notify(&mut t, 1);
    assert_eq!(t.device().backend(0).unwrap().0, b"early");
    // Control and port-1 queues are not the driver's: notifying them does nothing.
    g.notify(&mut t, 3);
    g.notify(&mut t, 5);
    assert_eq!(Guest::status(&mut t) & NEEDS_RESET, 0);
}

#[test]
fn port_output_splits_into_lines() {
    use crate::virtio::console::LineSplitter;
    let mut s = LineSplitter::<4>::default();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    s.push(b"ab\r\ncd", |l| lines.push(l.to_vec()));
    assert_eq!(
        lines,
        [b"ab".to_vec()],
        "a line ends at its newline, CR dropped"
    );
    s.push(b"e\n\n", |l| lines.push(l.to_vec()));
    assert_eq!(lines[1..], [b"cde".to_vec(), Vec::new()]);
    s.push(b"123456\n", |l| lines.push(l.to_vec()));
    assert_eq!(
        lines[3..],
        [b"1234".to_vec(), b"56".to_vec()],
        "a long line is cut, never dropped"
    );
}
