//! A learning Ethernet switch between the network cards of the machine's guests (and the
//! machine's own card, as one more port), so guests can talk to each other and to the outside.
//!
//! The switch decides, the VMM carries: [`Switch::forward`] learns the source address of a
//! frame on its ingress port and says where the frame goes — the port its destination was
//! learned on, or every other port (flooding) for group addresses and unknown destinations. The
//! address table is bounded; when full, the entry used longest ago is replaced. Nothing here
//! allocates after construction.

use super::net::MacAddr;
use alloc::vec::Vec;

/// Bytes of an Ethernet header: destination, source, EtherType.
const ETH_HEADER: usize = 14;

/// A port number of the switch.
pub type PortId = usize;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Nowhere: a runt, a frame from a port that does not exist, or one whose destination
    /// sits on the port it came from.
    Drop,
    /// To one port.
    Port(PortId),
    /// To every port but the ingress one.
    Flood {
        /// The port the frame came in on.
        except: PortId,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: MacAddr,
    port: PortId,
    /// The switch's clock when the entry was last used or refreshed.
    stamp: u64,
}

/// Counters of the switch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwitchStats {
    /// Frames sent to a single learned port.
    pub unicast: u64,
    /// Frames flooded.
    pub flooded: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Table entries replaced because the table was full.
    pub evicted: u64,
}

/// A learning switch with a fixed number of ports and a bounded address table.
#[derive(Debug)]
pub struct Switch {
    ports: usize,
    table: Vec<Entry>,
    capacity: usize,
    clock: u64,
    stats: SwitchStats,
}

impl Switch {
    /// A switch of `ports` ports that remembers up to `capacity` addresses.
    pub fn new(ports: usize, capacity: usize) -> Self {
        Self {
            ports,
            table: Vec::with_capacity(capacity),
            capacity,
            clock: 0,
            stats: SwitchStats::default(),
        }
    }

    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.ports
    }

    /// The counters.
    pub fn stats(&self) -> SwitchStats {
        self.stats
    }

    /// The port `mac` was learned on.
    pub fn lookup(&self, mac: MacAddr) -> Option<PortId> {
        self.table.iter().find(|e| e.mac == mac).map(|e| e.port)
    }

    /// Learns the source of `frame` (from `ingress`) and says where the frame goes.
    pub fn forward(&mut self, ingress: PortId, frame: &[u8]) -> Forward {
        let decision = self.decide(ingress, frame);
        match decision {
            Forward::Drop => self.stats.dropped += 1,
            Forward::Port(_) => self.stats.unicast += 1,
            Forward::Flood { .. } => self.stats.flooded += 1,
        }
        decision
    }

    /// Calls `deliver` for each port `frame` goes to.
    pub fn forward_each(&mut self, ingress: PortId, frame: &[u8], mut deliver: impl FnMut(PortId)) {
        match self.forward(ingress, frame) {
            Forward::Drop => {}
            Forward::Port(p) => deliver(p),
            Forward::Flood { except } => (0..self.ports).filter(|&p| p != except).for_each(deliver),
        }
    }

    fn decide(&mut self, ingress: PortId, frame: &[u8]) -> Forward {
        if ingress >= self.ports || frame.len() < ETH_HEADER {
            return Forward::Drop;
        }
        let (Some(dst), Some(src)) = (mac_at(frame, 0), mac_at(frame, 6)) else {
            return Forward::Drop;
        };
        self.clock += 1;
        // A group address is never a source; learning it would misdirect its traffic.
        if !src.is_multicast() {
            self.learn(src, ingress);
        }
        if dst.is_multicast() {
            return Forward::Flood { except: ingress };
        }
        let clock = self.clock;
        match self.table.iter_mut().find(|e| e.mac == dst) {
            Some(e) if e.port == ingress => Forward::Drop,
            Some(e) => {
                e.stamp = clock;
                Forward::Port(e.port)
            }
            None => Forward::Flood { except: ingress },
        }
    }

    fn learn(&mut self, mac: MacAddr, port: PortId) {
        let clock = self.clock;
        if let Some(e) = self.table.iter_mut().find(|e| e.mac == mac) {
            // A station that moved is followed to its new port.
            e.port = port;
            e.stamp = clock;
            return;
        }
        let entry = Entry {
            mac,
            port,
            stamp: clock,
        };
        if self.table.len() < self.capacity {
            self.table.push(entry);
        } else if let Some(oldest) = self.table.iter_mut().min_by_key(|e| e.stamp) {
            *oldest = entry;
            self.stats.evicted += 1;
        }
    }
}

fn mac_at(frame: &[u8], at: usize) -> Option<MacAddr> {
    let b: [u8; 6] = frame.get(at..at + 6)?.try_into().ok()?;
    Some(MacAddr(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xb]);
    const C: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xc]);

    fn frame(dst: MacAddr, src: MacAddr) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&dst.0);
        f[6..12].copy_from_slice(&src.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    }

    #[test]
    fn learns_then_forwards_unicast() {
        let mut s = Switch::new(3, 16);
        // B is unknown: flooded; A is learned on port 0.
        assert_eq!(s.forward(0, &frame(B, A)), Forward::Flood { except: 0 });
        assert_eq!(s.lookup(A), Some(0));
        // B answers from port 1: A is known, so only port 0 gets it.
        assert_eq!(s.forward(1, &frame(A, B)), Forward::Port(0));
        assert_eq!(s.forward(0, &frame(B, A)), Forward::Port(1));
        let mut got = Vec::new();
        s.forward_each(2, &frame(A, C), |p| got.push(p));
        assert_eq!(got, [0]);
    }

    #[test]
    fn floods_broadcast_and_multicast_to_all_but_ingress() {
        let mut s = Switch::new(4, 16);
        s.forward(1, &frame(C, B));
        let mut got = Vec::new();
        s.forward_each(1, &frame(MacAddr::BROADCAST, B), |p| got.push(p));
        assert_eq!(got, [0, 2, 3]);
        let multicast = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert_eq!(
            s.forward(2, &frame(multicast, A)),
            Forward::Flood { except: 2 }
        );
        // A multicast source is not learned.
        s.forward(3, &frame(A, multicast));
        assert_eq!(s.lookup(multicast), None);
    }

    #[test]
    fn drops_runts_unknown_ports_and_hairpins() {
        let mut s = Switch::new(2, 16);
        assert_eq!(s.forward(0, &[0u8; 13]), Forward::Drop);
        assert_eq!(s.forward(7, &frame(A, B)), Forward::Drop);
        s.forward(0, &frame(C, A));
        s.forward(0, &frame(C, B));
        // A and B are both on port 0: a frame between them stays there.
        assert_eq!(s.forward(0, &frame(A, B)), Forward::Drop);
        assert_eq!(s.stats().dropped, 3);
    }

    #[test]
    fn table_is_bounded_and_evicts_the_least_recently_used() {
        let mut s = Switch::new(2, 2);
        s.forward(0, &frame(MacAddr::BROADCAST, A));
        s.forward(1, &frame(MacAddr::BROADCAST, B));
        // A speaks again and stays fresh; B is the oldest when C arrives.
        s.forward(0, &frame(MacAddr::BROADCAST, A));
        s.forward(0, &frame(MacAddr::BROADCAST, C));
        assert_eq!(s.lookup(A), Some(0));
        assert_eq!(s.lookup(C), Some(0));
        assert_eq!(s.lookup(B), None);
        assert_eq!(s.stats().evicted, 1);
        assert!(s.table.len() <= 2);
        // A station that moves is followed.
        s.forward(1, &frame(MacAddr::BROADCAST, A));
        assert_eq!(s.lookup(A), Some(1));
    }
}
