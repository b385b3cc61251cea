//! Dropping copies of the same packet captured twice.
//!
//! Capturing on a VLAN interface and its parent, or on both ends of a mirrored link,
//! shows the same packet twice within microseconds. A SIP retransmission is different:
//! the UAC resends after T1 = 500 ms at the earliest. So a packet is a duplicate when the
//! same flow carried the same bytes less than [`WINDOW_US`] earlier; anything else,
//! including a real retransmission, is kept.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::flow::{Flow, Timestamp};

/// SIP timer T1: no real retransmission comes sooner.
pub const WINDOW_US: u64 = 500_000;

/// Most packets remembered. At 100 k packets/s a 500 ms window holds 50 k; past the cap
/// the oldest are forgotten early (counted), which can only let a duplicate through.
pub const MAX_ENTRIES: usize = 1 << 20;

/// The duplicate detector. Time is the capture time the caller passes in.
#[derive(Default)]
pub struct Dedup {
    seen: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
    order: VecDeque<(u64, u64)>,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Entries forgotten before their window ended because the table was full.
    pub evicted: u64,
}

impl Dedup {
    /// Returns true if this packet is a copy of one seen less than 500 ms ago.
    pub fn is_duplicate(&mut self, ts: Timestamp, flow: &Flow, payload: &[u8]) -> bool {
        let now = ts.as_micros();
        while let Some(&(t, h)) = self.order.front() {
            if now.saturating_sub(t) < WINDOW_US && self.order.len() < MAX_ENTRIES {
                break;
            }
            if now.saturating_sub(t) < WINDOW_US {
                self.evicted += 1;
            }
            self.order.pop_front();
            self.seen.remove(&h);
        }
        let key = packet_hash(flow, payload);
        if self.seen.contains(&key) {
            self.duplicates += 1;
            return true;
        }
        self.seen.insert(key);
        self.order.push_back((now, key));
        false
    }
}

/// The VLAN is left out on purpose: the copy on the parent interface has no tag.
fn packet_hash(flow: &Flow, payload: &[u8]) -> u64 {
    let mut h = hash_bytes(payload);
    for part in [flow.src_port, flow.dst_port, u16::from(flow.proto.number())] {
        h = mix(h ^ u64::from(part));
    }
    let addr = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    };
    for a in [addr(flow.src), addr(flow.dst)] {
        h = mix(h ^ (a as u64) ^ mix((a >> 64) as u64));
    }
    h
}

/// A fast 64-bit hash, eight bytes at a time. Not DoS-resistant, which is fine for a
/// table bounded by [`MAX_ENTRIES`] whose worst case is a missed duplicate.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h ^ u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix(h ^ u64::from_le_bytes(tail))
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The keys are already hashes: hashing them again would only cost time.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Proto;

    fn flow(vlan: Option<u16>) -> Flow {
        Flow {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            src_port: 5060,
            dst_port: 5060,
            proto: Proto::Udp,
            vlan,
        }
    }

    #[test]
    fn copies_dropped_retransmissions_kept() {
        let mut d = Dedup::default();
        let msg = b"INVITE sip:a@b SIP/2.0\r\n\r\n";
        assert!(!d.is_duplicate(Timestamp::new(10, 0), &flow(Some(100)), msg));
        // Same packet on the parent interface 20 us later: a copy.
        assert!(d.is_duplicate(Timestamp::new(10, 20), &flow(None), msg));
        // Same bytes 500 ms later: a retransmission.
        assert!(!d.is_duplicate(Timestamp::new(10, 500_000), &flow(None), msg));
        // Different bytes at once: a different message.
        assert!(!d.is_duplicate(Timestamp::new(10, 500_001), &flow(None), b"BYE sip:a@b SIP/2.0\r\n\r\n"));
        assert_eq!(d.duplicates, 1);
    }

    #[test]
    fn table_is_bounded() {
        let mut d = Dedup::default();
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            d.is_duplicate(Timestamp::new(10, 0), &flow(None), &i.to_le_bytes());
        }
        assert!(d.order.len() <= MAX_ENTRIES);
        assert_eq!(d.seen.len(), d.order.len());
        assert!(d.evicted >= 10);
    }
}
