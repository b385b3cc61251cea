//! Dropping copies of the same packet captured twice.
//!
//! Capturing on a VLAN interface and its parent, or on both ends of a mirrored link,
//! shows the same packet twice within microseconds. A SIP retransmission is different:
//! the UAC resends after T1 = 500 ms at the earliest. So a packet is a duplicate when the
//! same flow carried the same bytes less than [`WINDOW_US`] earlier; anything else,
//! including a real retransmission, is kept.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

use crate::flow::{Flow, Timestamp};
use crate::hash::MixBuildHasher;

/// SIP timer T1: no real retransmission comes sooner.
pub const WINDOW_US: u64 = 500_000;

/// Most packets remembered. At 100 k packets/s a 500 ms window holds 50 k; past the cap
/// the oldest are forgotten early (counted), which can only let a duplicate through.
pub const MAX_ENTRIES: usize = 1 << 20;

/// The duplicate detector. Time is the capture time the caller passes in.
#[derive(Default)]
pub struct Dedup {
    seen: HashSet<u64, MixBuildHasher>,
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
    let mut h = MixBuildHasher.build_hasher();
    (flow.src, flow.dst, flow.src_port, flow.dst_port, flow.proto).hash(&mut h);
    h.write(payload);
    h.finish()
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
