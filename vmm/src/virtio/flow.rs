//! Which receive queue of a multiqueue network card a frame goes to: a hash of its flow, so
//! that every frame of one TCP or UDP connection takes the same queue (and stays in order)
//! while different connections spread over the queues (virtio 1.2 §5.1.6.5.5 leaves the choice
//! to the device when RSS is not negotiated).

/// EtherType of IPv4 (IEEE 802.3; RFC 894).
const ETHERTYPE_IPV4: u16 = 0x0800;
/// Offsets in an Ethernet II frame: the EtherType, and the payload after it.
const ETHERTYPE_AT: usize = 12;
const PAYLOAD_AT: usize = 14;
/// Offsets in an IPv4 header (RFC 791): version/IHL, protocol, source and destination.
const IHL_AT: usize = 0;
const PROTOCOL_AT: usize = 9;
const ADDRESSES_AT: usize = 12;
const ADDRESSES_LEN: usize = 8;
/// The IHL field (32-bit words) and its unit.
const IHL_MASK: u8 = 0x0f;
const IHL_UNIT: usize = 4;
/// Protocols whose first four bytes are the source and destination ports.
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const PORTS_LEN: usize = 4;

/// FNV-1a (32-bit): small, and good enough to spread flows.
const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The flow hash of `frame`: over the IPv4 addresses, the protocol, and for TCP and UDP the
/// ports. Anything else (ARP, IPv6, a truncated header) hashes to 0, so it takes the first
/// queue. Never reads past the frame.
pub fn hash(frame: &[u8]) -> u32 {
    let ethertype = frame
        .get(ETHERTYPE_AT..PAYLOAD_AT)
        .map(|b| u16::from_be_bytes([b[0], b[1]]));
    if ethertype != Some(ETHERTYPE_IPV4) {
        return 0;
    }
    let Some(ip) = frame.get(PAYLOAD_AT..) else {
        return 0;
    };
    let (Some(ihl), Some(&proto), Some(addrs)) = (
        ip.get(IHL_AT).map(|b| usize::from(b & IHL_MASK) * IHL_UNIT),
        ip.get(PROTOCOL_AT),
        ip.get(ADDRESSES_AT..ADDRESSES_AT + ADDRESSES_LEN),
    ) else {
        return 0;
    };
    let h = fnv(fnv(FNV_OFFSET, addrs), &[proto]);
    match (proto, ip.get(ihl..ihl + PORTS_LEN)) {
        (IPPROTO_TCP | IPPROTO_UDP, Some(ports)) => fnv(h, ports),
        _ => h,
    }
}

/// The receive pair (0..`pairs`) for `frame`.
pub fn pair(frame: &[u8], pairs: u16) -> u16 {
    (hash(frame) % u32::from(pairs.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// An Ethernet + IPv4 + TCP/UDP header with the given addresses and ports.
    fn frame(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = std::vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = proto;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn one_flow_one_queue_and_flows_spread() {
        let a = frame(IPPROTO_TCP, [10, 0, 2, 2], [10, 0, 2, 15], 80, 40000);
        let mut later = a.clone();
        later.extend_from_slice(b"payload changes nothing");
        assert_eq!(hash(&a), hash(&later));
        assert_ne!(hash(&a), 0);
        // Connections differing only in a port spread over 4 queues.
        let mut used = [false; 4];
        for port in 40000..40064 {
            let f = frame(IPPROTO_TCP, [10, 0, 2, 2], [10, 0, 2, 15], 80, port);
            used[usize::from(pair(&f, 4))] = true;
        }
        assert_eq!(used, [true; 4]);
        // UDP ports count; another protocol's bytes there do not.
        let u1 = frame(IPPROTO_UDP, [1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
        let u2 = frame(IPPROTO_UDP, [1, 2, 3, 4], [5, 6, 7, 8], 1, 3);
        assert_ne!(hash(&u1), hash(&u2));
        let i1 = frame(1, [1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
        let i2 = frame(1, [1, 2, 3, 4], [5, 6, 7, 8], 1, 3);
        assert_eq!(hash(&i1), hash(&i2));
    }

    #[test]
    fn anything_else_takes_the_first_queue_and_nothing_overreads() {
        let arp = [0u8; 60];
        assert_eq!(pair(&arp, 4), 0);
        let f = frame(IPPROTO_TCP, [1, 1, 1, 1], [2, 2, 2, 2], 3, 4);
        for len in 0..f.len() {
            let _ = hash(&f[..len]);
        }
        assert_eq!(hash(&f[..14]), 0, "no IP header");
        // An IHL pointing past the frame: addresses only.
        let mut g = f.clone();
        g[14] = 0x4f;
        assert_eq!(hash(&g), fnv(fnv(FNV_OFFSET, &g[26..34]), &[IPPROTO_TCP]));
        assert_eq!(pair(&f, 0), 0, "no pairs: the first");
        assert_eq!(pair(&f, 1), 0);
    }
}
