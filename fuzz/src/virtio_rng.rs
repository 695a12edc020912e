//! `virtio_rng`: virtio-rng behind the virtio-mmio transport, under the harness of
//! [`crate::virtio`] (its invariants hold here too), over a source that is not ready or fails
//! when the input says.
//!
//! Invariants of the device, besides the transport's: a used buffer holds exactly the bytes
//! the source gave for it (never bytes it did not get), at most `MAX_BYTES_PER_REQUEST` of
//! them, the used length exactly that; a buffer the source could not fill is not used, and
//! the device stops at the first refusal, trying again at the next notification or poll.

use std::cell::RefCell;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use vmm::virtio::rng::{EntropyError, EntropySource, VirtioRng, MAX_BYTES_PER_REQUEST};

use crate::virtio::{Buf, Completion, Model};

/// What the source was asked for.
#[derive(Debug, Clone)]
pub enum Fill {
    Gave(Vec<u8>),
    Refused,
}

pub struct Source {
    log: Rc<RefCell<Vec<Fill>>>,
    state: u64,
    fail: Option<EntropyError>,
}

impl EntropySource for Source {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        assert!(!buf.is_empty(), "an empty fill");
        if let Some(e) = self.fail {
            self.log.borrow_mut().push(Fill::Refused);
            return Err(e);
        }
        for b in buf.iter_mut() {
            // xorshift64: distinct bytes per request, so a stale copy shows.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.log.borrow_mut().push(Fill::Gave(buf.to_vec()));
        Ok(())
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Event {
    Works,
    NotReady,
    Fails,
}

/// The device ignores what the driver puts in a buffer.
#[derive(Arbitrary, Debug, Clone)]
pub struct Payload;

/// Room for random bytes: `len` (modulo 512) in `split` buffers, maybe after a readable one
/// the device must skip.
#[derive(Arbitrary, Debug, Clone)]
pub struct Request {
    len: u16,
    split: u8,
    readable_first: bool,
}

pub struct Rng;

type Dev = VirtioRng<Source>;

impl Model for Rng {
    type Dev = Dev;
    type Host = Fill;
    type Event = Event;
    type Payload = Payload;
    type Request = Request;
    const DEVICE_ID: u32 = 4;

    fn new(u: &mut Unstructured, log: Rc<RefCell<Vec<Fill>>>) -> arbitrary::Result<(Self, Dev)> {
        let state = u.arbitrary::<u64>()? | 1;
        let source = Source {
            log,
            state,
            fail: None,
        };
        Ok((Rng, VirtioRng::new(source)))
    }

    fn features(&self) -> u64 {
        0
    }

    /// §5.4.4: none.
    fn config(&self) -> Vec<u8> {
        Vec::new()
    }

    fn payload(&self, _: &Payload) -> Vec<u8> {
        Vec::new()
    }

    fn request(&self, r: &Request) -> (usize, Vec<Buf>) {
        let mut bufs = Vec::new();
        if r.readable_first {
            bufs.push(Buf::readable(vec![0xee; 8]));
        }
        let mut left = u32::from(r.len % 512);
        let parts = u32::from(r.split % 3) + 1;
        for i in 0..parts {
            let n = if i + 1 == parts { left } else { left / 2 };
            left -= n;
            bufs.push(Buf::writable(n));
        }
        (0, bufs)
    }

    fn event(&mut self, dev: &mut Dev, e: Event) {
        dev.source_mut().fail = match e {
            Event::Works => None,
            Event::NotReady => Some(EntropyError::NotReady),
            Event::Fails => Some(EntropyError::Failed),
        };
    }

    fn completion(&mut self, _dev: &Dev, c: &Completion, fills: &[Fill]) {
        assert_eq!(c.queue, 0, "a used buffer on queue {}", c.queue);
        assert_eq!(c.len as usize, c.data.len(), "used length");
        assert!(
            c.data.len() <= MAX_BYTES_PER_REQUEST,
            "{} bytes",
            c.data.len()
        );
        // The host log is checked step by step: these are this step's calls since the last
        // used buffer. A refusal ends the step's work, so none may come before a used one.
        match fills {
            [] => assert!(
                c.data.is_empty(),
                "bytes the source never gave: {:?}",
                c.data
            ),
            // The device draws what the chain offers when it takes it; if its own writes
            // then shortened the chain, the guest gets a prefix and the rest is scrubbed.
            [Fill::Gave(b)] => {
                assert!(
                    &c.data == b || (c.chain_rewritten && b.starts_with(&c.data)),
                    "the guest got {:?}, the source gave {b:?}",
                    c.data
                )
            }
            _ => panic!("one used buffer after {fills:?}"),
        }
    }

    fn check(&mut self, _dev: &Dev, fills: &[Fill], failed: bool) {
        if !failed {
            assert!(
                matches!(fills, [] | [Fill::Refused]),
                "after the last used buffer: {fills:?}"
            );
        }
    }
}

pub fn run(data: &[u8]) {
    crate::virtio::run::<Rng>(data);
}
