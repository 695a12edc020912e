//! `virtio_console`: virtio-console (two ports, MULTIPORT) behind the virtio-mmio transport,
//! under the harness of [`crate::virtio`] (its invariants hold here too), with input arriving
//! for any port and a port name of any length.
//!
//! Invariants of the device, besides the transport's:
//! - `push_input` takes as much as fits in the port's bounded queue (nothing for a port that
//!   does not exist) and counts the rest as dropped;
//! - the guest receives each port's input in order, on that port's receive queue only (port 1
//!   only with MULTIPORT), the used length exactly the bytes written;
//! - a transmit buffer comes back with length 0 and its bytes go to its own port's backend,
//!   port 1's only with MULTIPORT; control buffers come back with length 0 from the driver,
//!   and only with MULTIPORT;
//! - control messages to the driver are well formed: DEVICE_ADD, CONSOLE_PORT for port 0,
//!   PORT_NAME with port 1's name (cut to `MAX_NAME`), PORT_OPEN with value 1, for ports that
//!   exist; the used length is what was written.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use vmm::virtio::console::{
    event, feature, ConsoleBackend, VirtioConsole, INPUT_CAPACITY, MAX_NAME, NR_PORTS,
};

use crate::virtio::{Buf, Completion, Model};

/// Names port 1 may have: none, a usual one, exactly `MAX_NAME` bytes, and too long.
const NAMES: [&str; 4] = [
    "",
    "org.rhyve.agent",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-and-then-some",
];

/// Bytes a port's backend got.
#[derive(Debug, Clone)]
pub struct Output {
    pub port: usize,
    pub bytes: Vec<u8>,
}

pub struct Sink {
    port: usize,
    log: Rc<RefCell<Vec<Output>>>,
}

impl ConsoleBackend for Sink {
    fn output(&mut self, bytes: &[u8]) {
        assert!(!bytes.is_empty(), "empty output to port {}", self.port);
        self.log.borrow_mut().push(Output {
            port: self.port,
            bytes: bytes.to_vec(),
        });
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Event {
    /// Input for `port` (modulo 3: port 2 does not exist).
    Input { port: u8, bytes: Vec<u8> },
    /// A paste of `len` bytes.
    Burst { port: u8, len: u16, byte: u8 },
}

/// A control message: `le32 id; le16 event; le16 value`, mostly with small fields.
#[derive(Arbitrary, Debug, Clone)]
pub struct Payload {
    id: u8,
    event: u8,
    value: u8,
}

/// A well-formed buffer: output for a port, room for input, a control message for the
/// device, room for one from it.
#[derive(Arbitrary, Debug, Clone)]
pub enum Request {
    Tx { port1: bool, bytes: Vec<u8> },
    Rx { port1: bool, len: u8 },
    Control(Payload),
    ControlRx { len: Option<u8> },
}

pub struct Console {
    name: &'static str,
    multiport: bool,
    input: [VecDeque<u8>; NR_PORTS],
    dropped: u64,
}

type Dev = VirtioConsole<Sink>;

/// Queue indices (§5.3.2).
const RX0: usize = 0;
const TX0: usize = 1;
const CONTROL_RX: usize = 2;
const CONTROL_TX: usize = 3;
const RX1: usize = 4;
const TX1: usize = 5;

impl Console {
    fn push(&mut self, dev: &mut Dev, port: u8, bytes: &[u8]) {
        let port = usize::from(port % 3);
        let n = dev.push_input(port, bytes);
        let expected = match self.input.get_mut(port) {
            Some(q) => {
                let n = bytes.len().min(INPUT_CAPACITY - q.len());
                q.extend(&bytes[..n]);
                self.dropped += (bytes.len() - n) as u64;
                n
            }
            None => 0,
        };
        assert_eq!(
            n,
            expected,
            "push_input of {} bytes to port {port}",
            bytes.len()
        );
        assert_eq!(dev.input_dropped, self.dropped, "input_dropped");
    }

    fn check_control(&self, data: &[u8]) {
        if data.len() < 8 {
            // Cut short by a small buffer: nothing to recognise.
            return;
        }
        let id = u32::from_le_bytes(data[0..4].try_into().unwrap());
        let ev = u16::from_le_bytes(data[4..6].try_into().unwrap());
        let value = u16::from_le_bytes(data[6..8].try_into().unwrap());
        let rest = &data[8..];
        let ports = NR_PORTS as u32;
        let ok = match ev {
            event::DEVICE_ADD => id < ports && value == 0,
            event::CONSOLE_PORT => id == 0 && value == 1,
            event::PORT_OPEN => id < ports && value == 1,
            event::PORT_NAME => {
                let name = &self.name.as_bytes()[..self.name.len().min(MAX_NAME)];
                id == 1 && value == 0 && rest.len() <= name.len() && rest == &name[..rest.len()]
            }
            _ => false,
        };
        assert!(
            ok,
            "control message id {id} event {ev} value {value} + {rest:?}"
        );
        if ev != event::PORT_NAME {
            assert!(rest.is_empty(), "control message with a tail {rest:?}");
        }
    }
}

impl Model for Console {
    type Dev = Dev;
    type Host = Output;
    type Event = Event;
    type Payload = Payload;
    type Request = Request;
    const DEVICE_ID: u32 = 3;

    fn new(u: &mut Unstructured, log: Rc<RefCell<Vec<Output>>>) -> arbitrary::Result<(Self, Dev)> {
        let name = NAMES[usize::from(u.arbitrary::<u8>()?) % NAMES.len()];
        let port = |port| Sink {
            port,
            log: log.clone(),
        };
        let model = Self {
            name,
            multiport: false,
            input: Default::default(),
            dropped: 0,
        };
        Ok((model, VirtioConsole::new(port(0), port(1), name)))
    }

    fn features(&self) -> u64 {
        feature::MULTIPORT
    }

    /// §5.3.4: `le16 cols; le16 rows; le32 max_nr_ports; le32 emerg_wr`.
    fn config(&self) -> Vec<u8> {
        let mut c = vec![0u8; 12];
        c[4..8].copy_from_slice(&(NR_PORTS as u32).to_le_bytes());
        c
    }

    fn payload(&self, p: &Payload) -> Vec<u8> {
        let id = if p.id == u8::MAX {
            u32::MAX
        } else {
            u32::from(p.id % 3)
        };
        let mut b = id.to_le_bytes().to_vec();
        b.extend_from_slice(&u16::from(p.event % 8).to_le_bytes());
        b.extend_from_slice(&u16::from(p.value % 3).to_le_bytes());
        b
    }

    fn request(&self, r: &Request) -> (usize, Vec<Buf>) {
        match r {
            Request::Tx { port1, bytes } => {
                let q = if *port1 { TX1 } else { TX0 };
                (q, vec![Buf::readable(bytes.clone())])
            }
            Request::Rx { port1, len } => {
                let q = if *port1 { RX1 } else { RX0 };
                (q, vec![Buf::writable(u32::from(*len))])
            }
            Request::Control(p) => (CONTROL_TX, vec![Buf::readable(self.payload(p))]),
            Request::ControlRx { len } => {
                let len = len.map_or(8 + MAX_NAME as u32, u32::from);
                (CONTROL_RX, vec![Buf::writable(len)])
            }
        }
    }

    fn event(&mut self, dev: &mut Dev, e: Event) {
        match e {
            Event::Input { port, bytes } => self.push(dev, port, &bytes),
            Event::Burst { port, len, byte } => {
                let bytes: Vec<u8> = (0..len).map(|i| byte.wrapping_add(i as u8)).collect();
                self.push(dev, port, &bytes);
            }
        }
    }

    fn activate(&mut self, features: u64) {
        self.multiport = features & feature::MULTIPORT != 0;
    }

    fn reset(&mut self) {
        // Input waiting on the host side is kept.
        self.multiport = false;
    }

    fn completion(&mut self, _dev: &Dev, c: &Completion, out: &[Output]) {
        let q = c.queue;
        if matches!(q, CONTROL_RX | CONTROL_TX | RX1 | TX1) {
            assert!(self.multiport, "queue {q} used without MULTIPORT");
        }
        match q {
            TX0 | TX1 => {
                let port = usize::from(q == TX1);
                assert_eq!(c.len, 0, "transmit buffer used length");
                assert!(c.data.is_empty(), "the device wrote into a transmit buffer");
                assert!(
                    out.iter().all(|o| o.port == port),
                    "queue {q} wrote to another port: {out:?}"
                );
            }
            CONTROL_TX => {
                assert_eq!(c.len, 0, "control buffer used length");
                assert!(
                    c.data.is_empty() && out.is_empty(),
                    "control message had effects"
                );
            }
            RX0 | RX1 => {
                let port = usize::from(q == RX1);
                assert!(out.is_empty(), "receiving wrote output {out:?}");
                assert_eq!(c.len as usize, c.data.len(), "receive buffer used length");
                let input = &mut self.input[port];
                assert!(c.data.len() <= input.len(), "more input received than sent");
                let sent: Vec<u8> = input.drain(..c.data.len()).collect();
                assert!(
                    sent == c.data,
                    "port {port} received {:?}, sent {sent:?}",
                    c.data
                );
            }
            CONTROL_RX => {
                assert!(out.is_empty(), "a control message wrote output {out:?}");
                assert_eq!(c.len as usize, c.data.len(), "control buffer used length");
                self.check_control(&c.data);
            }
            _ => panic!("a used buffer on queue {q}"),
        }
    }

    /// Output after the last used buffer belongs to a transmit buffer the device gave up on
    /// part way; it still went to a port that may be used.
    fn check(&mut self, _dev: &Dev, out: &[Output], failed: bool) {
        assert!(
            failed || out.is_empty(),
            "output for no used buffer: {out:?}"
        );
        for o in out {
            assert!(
                o.port == 0 || self.multiport,
                "port {} without MULTIPORT",
                o.port
            );
        }
    }
}

pub fn run(data: &[u8]) {
    crate::virtio::run::<Console>(data);
}
