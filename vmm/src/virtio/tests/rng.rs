//! virtio-rng from the guest's side, with a test-only entropy source.

use super::driver::*;
use crate::virtio::rng::{EntropyError, EntropySource, VirtioRng, MAX_BYTES_PER_REQUEST};
use crate::virtio::MmioTransport;

/// A xorshift generator: test data only, never a source of real entropy.
pub struct TestEntropy {
    state: u64,
    /// When set, every fill fails.
    pub failing: bool,
}

impl TestEntropy {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            failing: false,
        }
    }
}

impl EntropySource for TestEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        if self.failing {
            return Err(EntropyError::NotReady);
        }
        for b in buf {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        Ok(())
    }
}

pub type Rng = MmioTransport<VirtioRng<TestEntropy>>;

pub fn rng() -> Rng {
    MmioTransport::new(VirtioRng::new(TestEntropy::new(0x5eed)))
}

#[test]
fn fills_buffers_and_reports_the_length() {
    let mut g = Guest::new();
    let mut t = rng();
    let f = g.device_features(&mut t);
    g.init(&mut t, f, &[8]);
    let small = g.blank(16, 0);
    let big = g.blank(4096, 0);
    g.push_chain(0, &[(small, 16, true)]);
    g.push_chain(0, &[(big, 4096, true)]);
    let before = g.mem.clone();
    g.notify(&mut t, 0);
    let used = g.used(0);
    assert_eq!(used, [(0, 16), (1, MAX_BYTES_PER_REQUEST as u32)]);
    assert!(t.irq_level());
    // The bytes are not constant, and nothing past the used length was written.
    let bytes = g.peek(big, 4096);
    assert!(bytes[..MAX_BYTES_PER_REQUEST]
        .windows(2)
        .any(|w| w[0] != w[1]));
    assert!(bytes[MAX_BYTES_PER_REQUEST..].iter().all(|&b| b == 0));
    assert_only_changed(
        &before,
        &g.mem,
        &[
            (small, 16),
            (big, MAX_BYTES_PER_REQUEST as u64),
            used_ring_range(&g, 0),
        ],
    );
}

#[test]
fn a_failing_source_keeps_the_buffer_for_later() {
    let mut g = Guest::new();
    let mut t = rng();
    let f = g.device_features(&mut t);
    g.init(&mut t, f, &[8]);
    t.device_mut().source_mut().failing = true;
    let buf = g.blank(32, 0);
    g.push_chain(0, &[(buf, 32, true)]);
    g.notify(&mut t, 0);
    assert!(g.used(0).is_empty(), "no bytes, no used buffer");
    assert!(!t.irq_level());
    assert_eq!(Guest::status(&mut t) & NEEDS_RESET, 0);
    t.device_mut().source_mut().failing = false;
    t.poll(&mut g.mem);
    assert_eq!(g.used(0), [(0, 32)]);
    assert!(t.irq_level());
}

#[test]
fn readable_only_buffers_come_back_empty() {
    let mut g = Guest::new();
    let mut t = rng();
    let f = g.device_features(&mut t);
    g.init(&mut t, f, &[8]);
    let buf = g.blank(32, 0x11);
    g.push_chain(0, &[(buf, 32, false)]);
    g.notify(&mut t, 0);
    assert_eq!(g.used(0), [(0, 0)]);
    assert_eq!(g.peek(buf, 32), [0x11; 32]);
}
