//! `virtio_net`: virtio-net behind the virtio-mmio transport, under the harness of
//! [`crate::virtio`] (its invariants hold here too), with a backend that refuses frames when
//! the input says, frames of any length arriving from the host, and the link going up and
//! down.
//!
//! Invariants of the device, besides the transport's:
//! - transmit buffers come back with length 0, at most one frame sent for each, no frame
//!   longer than `MAX_FRAME`; `tx_frames` counts the frames the backend took and `tx_frames +
//!   tx_dropped` the transmit buffers used;
//! - `inject_rx` takes a frame exactly when fewer than `RX_SLOTS` wait and it is at most
//!   `MAX_FRAME` long; frames reach the guest in order, each in one buffer as a header of
//!   zeroes with `num_buffers` = 1 followed by the frame, the used length exactly that; a frame
//!   is dropped only at the head of the line, at most one per step, and counted;
//! - the configuration space holds the MAC and the link status; a link change bumps
//!   ConfigGeneration (and raises a configuration-change interrupt after DRIVER_OK) at the
//!   transport's next look.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use vmm::virtio::net::{
    feature, MacAddr, NetBackend, NetError, NetStats, VirtioNet, HEADER_BYTES, MAX_FRAME, RX_SLOTS,
};

use crate::virtio::{Buf, Completion, Model};

const RX_QUEUE: usize = 0;
const TX_QUEUE: usize = 1;
/// Offset of `num_buffers` in `struct virtio_net_hdr` (§5.1.6).
const NUM_BUFFERS: usize = 10;

/// A frame the backend was handed, and whether it took it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub frame: Vec<u8>,
    pub taken: bool,
}

pub struct Sink {
    log: Rc<RefCell<Vec<Sent>>>,
    busy: bool,
}

impl NetBackend for Sink {
    fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        assert!(
            frame.len() <= MAX_FRAME,
            "a {}-byte frame sent",
            frame.len()
        );
        self.log.borrow_mut().push(Sent {
            frame: frame.to_vec(),
            taken: !self.busy,
        });
        if self.busy {
            Err(NetError::Busy)
        } else {
            Ok(())
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Event {
    /// A frame of `len` bytes (modulo 1600) arrives for the guest.
    Frame {
        len: u16,
        fill: u8,
    },
    Link(bool),
    Busy(bool),
}

/// A transmit buffer's content: a header, then a frame of `len` bytes.
#[derive(Arbitrary, Debug, Clone)]
pub struct Payload {
    len: u16,
    fill: u8,
}

/// A well-formed buffer: a frame to send (header and frame apart or together), or room for
/// one to arrive (a full-sized one, or `len` bytes).
#[derive(Arbitrary, Debug, Clone)]
pub enum Request {
    Tx { len: u16, fill: u8, split: bool },
    Rx { len: Option<u16> },
}

pub struct Net {
    mac: MacAddr,
    link_up: bool,
    config_changed: bool,
    /// Frames waiting for the guest.
    rx: VecDeque<Vec<u8>>,
    /// What the counters must say.
    stats: NetStats,
    tx_used: u64,
}

type Dev = VirtioNet<Sink>;

impl Model for Net {
    type Dev = Dev;
    type Host = Sent;
    type Event = Event;
    type Payload = Payload;
    type Request = Request;
    const DEVICE_ID: u32 = 1;

    fn new(u: &mut Unstructured, log: Rc<RefCell<Vec<Sent>>>) -> arbitrary::Result<(Self, Dev)> {
        let mac = MacAddr(u.arbitrary()?);
        let model = Self {
            mac,
            link_up: true,
            config_changed: false,
            rx: VecDeque::new(),
            stats: NetStats::default(),
            tx_used: 0,
        };
        Ok((model, VirtioNet::new(Sink { log, busy: false }, mac)))
    }

    fn features(&self) -> u64 {
        feature::MAC | feature::STATUS
    }

    /// §5.1.4: `mac[6]; le16 status; le16 max_virtqueue_pairs`.
    fn config(&self) -> Vec<u8> {
        let mut c = self.mac.0.to_vec();
        c.extend_from_slice(&u16::from(self.link_up).to_le_bytes());
        c.extend_from_slice(&1u16.to_le_bytes());
        c
    }

    fn payload(&self, p: &Payload) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES];
        b.extend((0..p.len % 64).map(|i| p.fill ^ i as u8));
        b
    }

    fn request(&self, r: &Request) -> (usize, Vec<Buf>) {
        match *r {
            Request::Tx { len, fill, split } => {
                let frame: Vec<u8> = (0..len % 1600).map(|i| fill ^ i as u8).collect();
                let header = vec![0u8; HEADER_BYTES];
                let bufs = if split {
                    vec![Buf::readable(header), Buf::readable(frame)]
                } else {
                    vec![Buf::readable([header, frame].concat())]
                };
                (TX_QUEUE, bufs)
            }
            Request::Rx { len } => {
                let len = len.map_or((HEADER_BYTES + MAX_FRAME) as u32, |l| u32::from(l % 2048));
                (RX_QUEUE, vec![Buf::writable(len)])
            }
        }
    }

    fn event(&mut self, dev: &mut Dev, e: Event) {
        match e {
            Event::Frame { len, fill } => {
                let frame: Vec<u8> = (0..len % 1600)
                    .map(|i| fill.wrapping_add(i as u8))
                    .collect();
                let fits = self.rx.len() < RX_SLOTS && frame.len() <= MAX_FRAME;
                assert_eq!(
                    dev.inject_rx(&frame),
                    fits,
                    "inject_rx with {} waiting",
                    self.rx.len()
                );
                if fits {
                    self.rx.push_back(frame);
                } else {
                    self.stats.rx_dropped += 1;
                }
            }
            Event::Link(up) => {
                dev.set_link_up(up);
                if up != self.link_up {
                    self.link_up = up;
                    self.config_changed = true;
                }
            }
            Event::Busy(busy) => dev.backend_mut().busy = busy,
        }
    }

    fn take_config_changed(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    fn completion(&mut self, _dev: &Dev, c: &Completion, sent: &[Sent]) {
        match c.queue {
            TX_QUEUE => {
                assert_eq!(c.len, 0, "transmit buffer used length");
                assert!(c.data.is_empty(), "the device wrote into a transmit buffer");
                assert!(sent.len() <= 1, "one buffer, several frames: {sent:?}");
                self.tx_used += 1;
                self.stats.tx_frames += sent.iter().filter(|s| s.taken).count() as u64;
            }
            RX_QUEUE => {
                assert!(sent.is_empty(), "receiving sent {sent:?}");
                let frame = self
                    .rx
                    .pop_front()
                    .expect("a frame delivered that never arrived");
                let mut expected = vec![0u8; HEADER_BYTES];
                expected[NUM_BUFFERS..NUM_BUFFERS + 2].copy_from_slice(&1u16.to_le_bytes());
                expected.extend_from_slice(&frame);
                let differ = c.data.iter().zip(&expected).position(|(a, b)| a != b);
                assert!(
                    c.data == expected,
                    "received {} bytes for a {}-byte frame and header, first difference at {differ:?}",
                    c.data.len(),
                    expected.len()
                );
                assert_eq!(c.len as usize, expected.len(), "receive buffer used length");
                self.stats.rx_frames += 1;
            }
            q => panic!("a used buffer on queue {q}"),
        }
    }

    fn check(&mut self, dev: &Dev, sent: &[Sent], failed: bool) {
        // A frame is sent only for a buffer that is then used.
        assert!(
            failed || sent.is_empty(),
            "frames sent without a used buffer: {sent:?}"
        );
        let pending = dev.rx_pending();
        match self.rx.len().checked_sub(pending) {
            Some(0) => {}
            Some(1) => {
                // The frame at the head of the line did not fit the guest's buffer.
                self.rx.pop_front();
                self.stats.rx_dropped += 1;
            }
            _ => panic!("{pending} frames waiting, {} expected", self.rx.len()),
        }
        let s = dev.stats();
        assert_eq!(s.rx_frames, self.stats.rx_frames, "rx_frames");
        assert_eq!(s.rx_dropped, self.stats.rx_dropped, "rx_dropped");
        assert_eq!(s.tx_frames, self.stats.tx_frames, "tx_frames");
        assert_eq!(
            s.tx_frames + s.tx_dropped,
            self.tx_used,
            "transmit buffers used"
        );
    }
}

pub fn run(data: &[u8]) {
    crate::virtio::run::<Net>(data);
}
