//! Reassembly of SIP messages split over several SCTP DATA chunks.
//!
//! A sender fragments a user message larger than the path MTU into chunks with
//! consecutive TSNs, the first flagged B, the last E. Captured fragments arrive in TSN
//! order in practice (SCTP retransmits whole chunks), so a message is rebuilt per
//! direction by appending consecutive TSNs; anything out of sequence abandons it
//! (counted). Bounded: directions in progress, bytes per message.

use std::collections::HashMap;

use super::transport::SctpData;
use crate::flow::{Flow, Timestamp};

/// Directions with a message in progress.
pub const MAX_PARTIALS: usize = 1024;

/// Largest message rebuilt (a SIP message is far smaller).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// What reassembly dropped, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SctpStats {
    /// Messages rebuilt from several chunks.
    pub reassembled: u64,
    /// Messages abandoned: a missing or out-of-sequence fragment, over the size bound,
    /// or evicted to make room.
    pub abandoned: u64,
}

#[derive(Debug)]
struct Partial {
    next_tsn: u32,
    ts: Timestamp,
    data: Vec<u8>,
}

/// Fragments waiting for the rest of their message, per direction.
#[derive(Debug, Default)]
pub(super) struct SctpReassembly {
    partials: HashMap<Flow, Partial>,
    /// The last message completed, kept so the caller can borrow it.
    done: Vec<u8>,
    /// What happened so far.
    pub stats: SctpStats,
}

impl SctpReassembly {
    /// Takes one chunk's user data. Returns the whole message and its capture time (of
    /// the first fragment) when `piece` completes one.
    pub(super) fn push<'a>(
        &'a mut self,
        ts: Timestamp,
        flow: Flow,
        piece: SctpData<'a>,
    ) -> Option<(Timestamp, &'a [u8])> {
        match (piece.begin, piece.end) {
            (true, true) => Some((ts, piece.data)),
            (true, false) => {
                self.start(ts, flow, piece);
                None
            }
            (false, end) => self.continue_with(flow, piece, end),
        }
    }

    fn start(&mut self, ts: Timestamp, flow: Flow, piece: SctpData<'_>) {
        if self.partials.len() >= MAX_PARTIALS && !self.partials.contains_key(&flow) {
            // Room for the new message: drop the oldest one in progress.
            let oldest = self.partials.iter().min_by_key(|(_, p)| p.ts).map(|(f, _)| *f);
            if let Some(f) = oldest {
                self.partials.remove(&f);
                self.stats.abandoned += 1;
            }
        }
        let partial = Partial { next_tsn: piece.tsn.wrapping_add(1), ts, data: piece.data.to_vec() };
        if self.partials.insert(flow, partial).is_some() {
            self.stats.abandoned += 1;
        }
    }

    fn continue_with<'a>(&'a mut self, flow: Flow, piece: SctpData<'_>, end: bool) -> Option<(Timestamp, &'a [u8])> {
        let partial = self.partials.get_mut(&flow)?;
        if piece.tsn != partial.next_tsn || partial.data.len() + piece.data.len() > MAX_MESSAGE_BYTES {
            self.partials.remove(&flow);
            self.stats.abandoned += 1;
            return None;
        }
        partial.data.extend_from_slice(piece.data);
        partial.next_tsn = piece.tsn.wrapping_add(1);
        if !end {
            return None;
        }
        self.stats.reassembled += 1;
        let done = self.partials.remove(&flow)?;
        self.done = done.data;
        Some((done.ts, &self.done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Proto;

    fn flow() -> Flow {
        Flow {
            src: [192, 0, 2, 1].into(),
            dst: [192, 0, 2, 2].into(),
            src_port: 5060,
            dst_port: 5060,
            proto: Proto::Sctp,
            vlan: None,
        }
    }

    fn piece(tsn: u32, begin: bool, end: bool, data: &[u8]) -> SctpData<'_> {
        SctpData { tsn, begin, end, data }
    }

    #[test]
    fn rebuilds_consecutive_fragments() {
        let mut r = SctpReassembly::default();
        let t = Timestamp::new(1, 0);
        assert_eq!(r.push(t, flow(), piece(7, true, true, b"whole")), Some((t, &b"whole"[..])));
        assert_eq!(r.push(t, flow(), piece(8, true, false, b"INV")), None);
        assert_eq!(r.push(Timestamp::new(2, 0), flow(), piece(9, false, false, b"IT")), None);
        assert_eq!(r.push(Timestamp::new(3, 0), flow(), piece(10, false, true, b"E")), Some((t, &b"INVITE"[..])));
        assert_eq!(r.stats, SctpStats { reassembled: 1, abandoned: 0 });
    }

    #[test]
    fn gaps_and_bounds_abandon() {
        let mut r = SctpReassembly::default();
        let t = Timestamp::new(1, 0);
        r.push(t, flow(), piece(1, true, false, b"a"));
        assert_eq!(r.push(t, flow(), piece(3, false, true, b"c")), None, "TSN 2 missing");
        assert_eq!(r.push(t, flow(), piece(4, false, true, b"d")), None, "no message in progress");
        let big = vec![b'x'; MAX_MESSAGE_BYTES];
        r.push(t, flow(), piece(5, true, false, &big));
        assert_eq!(r.push(t, flow(), piece(6, false, true, b"y")), None, "over the size bound");
        assert_eq!(r.stats.abandoned, 2);
        for port in 0..=MAX_PARTIALS as u16 {
            r.push(t, Flow { src_port: port, ..flow() }, piece(1, true, false, b"p"));
        }
        assert!(r.partials.len() <= MAX_PARTIALS);
    }
}
