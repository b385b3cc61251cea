//! Bounded IPv4/IPv6 fragment reassembly.
//!
//! Datagrams in flight are keyed by addresses, fragment id, protocol and VLAN, and every
//! resource is capped ([`DefragConfig`]): the number of datagrams, the size of one, the
//! bytes held in total, the holes per datagram, and the time a datagram may wait. When
//! a cap is hit the oldest datagram is evicted, and everything is counted
//! ([`DefragStats`]). Time is the capture time the caller passes in.
//!
//! Fragments may arrive in any order. Where fragments overlap, the bytes received first
//! are kept ("first wins"); exact or contained duplicates (a capture seeing a packet
//! twice) are harmless. Fragments that disagree about the datagram's end discard it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use super::DropReason;

/// Limits of the reassembly state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragConfig {
    /// Datagrams being reassembled at once; the oldest is evicted beyond this.
    pub max_datagrams: usize,
    /// Largest reassembled payload (the IPv4/IPv6 length fields cap it at 65535).
    pub max_datagram_bytes: usize,
    /// Bytes held by all datagrams in flight together.
    pub max_total_bytes: usize,
    /// A datagram still incomplete this long (capture time) after its first fragment is
    /// discarded.
    pub timeout: Duration,
}

impl Default for DefragConfig {
    fn default() -> Self {
        Self {
            max_datagrams: 4096,
            max_datagram_bytes: 65_535,
            max_total_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What reassembly did, cumulatively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Datagrams completed and decoded.
    pub completed: u64,
    /// Datagrams discarded because they were incomplete after the timeout.
    pub timed_out: u64,
    /// Datagrams discarded to make room (datagram or byte cap reached).
    pub evicted: u64,
    /// Fragments entirely contained in data already received.
    pub duplicates: u64,
    /// Fragments that partly overlapped data already received (first bytes kept).
    pub overlaps: u64,
    /// Datagrams discarded because fragments disagreed on the end or left too many holes.
    pub conflicts: u64,
    /// Fragments rejected for exceeding `max_datagram_bytes` (their datagram discarded),
    /// or for not fitting in `max_total_bytes` even after evicting everything else.
    pub too_big: u64,
}

/// Identifies the datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FragKey {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    /// IPv4 identification (16 bits) or IPv6 fragment id (32 bits).
    pub(super) id: u32,
    /// IPv4 protocol. Always 0 for IPv6, where only the offset-0 fragment's next
    /// header counts (RFC 8200 §4.5) and later fragments may say otherwise.
    pub(super) proto: u8,
    pub(super) vlan: Option<u16>,
}

/// One fragment's place in its datagram.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fragment<'a> {
    /// Offset of `data` in the reassembled payload, in bytes.
    pub(super) offset: usize,
    /// More fragments follow (not the last one).
    pub(super) more: bool,
    /// The upper protocol, as the offset-0 fragment states it.
    pub(super) proto: u8,
    pub(super) data: &'a [u8],
}

/// A complete datagram, handed to the caller (who owns the buffer from now on).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Reassembled {
    pub(super) proto: u8,
    pub(super) data: Vec<u8>,
}

/// More disjoint pieces than this in one datagram is an attack, not a network.
const MAX_HOLES: usize = 64;

/// A datagram being reassembled.
#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    have: Vec<(usize, usize)>,
    /// Payload length, once the last fragment was seen.
    total: Option<usize>,
    proto: Option<u8>,
    created_us: u64,
    /// Tells this datagram from an older one with the same key in `order`.
    generation: u64,
}

/// The reassembly table.
#[derive(Debug)]
pub(super) struct Defrag {
    cfg: DefragConfig,
    pending: HashMap<FragKey, Pending>,
    /// Keys in creation order, for timeouts and oldest-first eviction. Entries whose
    /// datagram already completed stay until they reach the front (or a compaction).
    order: VecDeque<(FragKey, u64)>,
    /// Capacity of all pending buffers.
    bytes: usize,
    next_generation: u64,
    pub(super) stats: DefragStats,
}

impl Defrag {
    pub(super) fn new(cfg: DefragConfig) -> Self {
        Self {
            cfg,
            pending: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            next_generation: 0,
            stats: DefragStats::default(),
        }
    }

    /// Datagrams in flight.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes held by datagrams in flight.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a fragment. Returns the datagram when this fragment completed it.
    pub(super) fn insert(
        &mut self,
        now_us: u64,
        key: FragKey,
        frag: Fragment<'_>,
    ) -> Result<Option<Reassembled>, DropReason> {
        let end = frag.offset + frag.data.len();
        if end > self.cfg.max_datagram_bytes {
            self.stats.too_big += 1;
            self.discard(&key);
            return Err(DropReason::FragmentTooBig);
        }
        if frag.data.is_empty() {
            return Err(DropReason::FragmentMalformed);
        }
        if !self.make_room(&key, end) {
            self.stats.too_big += 1;
            return Err(DropReason::FragmentTooBig);
        }
        self.ensure_entry(now_us, key);
        let Some(p) = self.pending.get_mut(&key) else {
            return Err(DropReason::FragmentMalformed); // unreachable: just inserted
        };
        if !fits(p, &frag, end) || p.have.len() >= MAX_HOLES {
            self.stats.conflicts += 1;
            self.discard(&key);
            return Err(DropReason::FragmentConflict);
        }
        let before = p.data.capacity();
        let overlap = store(p, &frag, end);
        let complete = p.total.is_some_and(|t| p.have == [(0, t)]);
        self.bytes = self.bytes + p.data.capacity() - before;
        match overlap {
            Overlap::None => {}
            Overlap::Partial => self.stats.overlaps += 1,
            Overlap::Duplicate => self.stats.duplicates += 1,
        }
        Ok(if complete { self.take(&key) } else { None })
    }

    /// Discards datagrams whose first fragment is older than the timeout.
    pub(super) fn expire(&mut self, now_us: u64) {
        let timeout = self.cfg.timeout.as_micros() as u64;
        while let Some(&(key, generation)) = self.order.front() {
            match self.pending.get(&key) {
                Some(p) if p.generation == generation => {
                    if p.created_us.saturating_add(timeout) > now_us {
                        return;
                    }
                    self.stats.timed_out += 1;
                    self.discard(&key);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Evicts oldest datagrams until a new one fits in the datagram count and this
    /// fragment fits in the byte budget. A buffer grows to at most the larger of `end`
    /// and the known total, so that bounds the growth. Returns false if it cannot fit
    /// even in an empty table.
    fn make_room(&mut self, key: &FragKey, end: usize) -> bool {
        let is_new = !self.pending.contains_key(key);
        let growth = self
            .pending
            .get(key)
            .and_then(|p| p.total)
            .unwrap_or(0)
            .max(end);
        while (is_new && self.pending.len() >= self.cfg.max_datagrams)
            || self.bytes + growth > self.cfg.max_total_bytes
        {
            let Some((old, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .pending
                .get(&old)
                .is_some_and(|p| p.generation == generation)
            {
                self.stats.evicted += 1;
                self.discard(&old);
            }
        }
        self.bytes + growth <= self.cfg.max_total_bytes
    }

    /// Creates the datagram's entry if this is its first fragment.
    fn ensure_entry(&mut self, now_us: u64, key: FragKey) {
        if self.pending.contains_key(&key) {
            return;
        }
        self.compact_order();
        let generation = self.next_generation;
        self.next_generation += 1;
        self.order.push_back((key, generation));
        let p = Pending {
            data: Vec::new(),
            have: Vec::new(),
            total: None,
            proto: None,
            created_us: now_us,
            generation,
        };
        self.pending.insert(key, p);
    }

    /// Drops stale `order` entries once they outnumber live datagrams, so the queue
    /// stays bounded even while one old datagram holds the front.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.cfg.max_datagrams + 64 {
            let pending = &self.pending;
            self.order
                .retain(|(k, g)| pending.get(k).is_some_and(|p| p.generation == *g));
        }
    }

    fn take(&mut self, key: &FragKey) -> Option<Reassembled> {
        let p = self.pending.remove(key)?;
        self.bytes -= p.data.capacity();
        self.stats.completed += 1;
        Some(Reassembled {
            proto: p.proto.unwrap_or_default(),
            data: p.data,
        })
    }

    fn discard(&mut self, key: &FragKey) {
        if let Some(p) = self.pending.remove(key) {
            self.bytes -= p.data.capacity();
        }
    }
}

/// Checks a fragment against what is known of the datagram's end, and records the end
/// if this is the last fragment.
fn fits(p: &mut Pending, frag: &Fragment<'_>, end: usize) -> bool {
    if frag.more {
        return p.total.is_none_or(|t| end <= t);
    }
    let received_end = p.have.last().map_or(0, |&(_, e)| e);
    if p.total.is_some_and(|t| t != end) || received_end > end {
        return false;
    }
    p.total = Some(end);
    true
}

/// How a fragment related to the data already received.
enum Overlap {
    None,
    Partial,
    Duplicate,
}

/// Copies the parts of the fragment not yet received and records its range.
fn store(p: &mut Pending, frag: &Fragment<'_>, end: usize) -> Overlap {
    if frag.offset == 0 {
        p.proto = Some(frag.proto);
    }
    if p.data.len() < end {
        // Reserve the whole datagram once its size is known, instead of growing in steps.
        let want = p.total.unwrap_or(end);
        p.data.reserve_exact(want.saturating_sub(p.data.len()));
        p.data.resize(end, 0);
    }
    let mut cursor = frag.offset;
    let mut copied = 0;
    for &(start, stop) in &p.have {
        if stop <= cursor {
            continue;
        }
        if start >= end {
            break;
        }
        if start > cursor {
            copy(&mut p.data, frag, cursor, start);
            copied += start - cursor;
        }
        cursor = cursor.max(stop);
        if cursor >= end {
            break;
        }
    }
    if cursor < end {
        copy(&mut p.data, frag, cursor, end);
        copied += end - cursor;
    }
    add_range(&mut p.have, frag.offset, end);
    match copied {
        0 => Overlap::Duplicate,
        n if n < end - frag.offset => Overlap::Partial,
        _ => Overlap::None,
    }
}

/// Copies datagram bytes `from..to` (absolute offsets) out of the fragment.
fn copy(data: &mut [u8], frag: &Fragment<'_>, from: usize, to: usize) {
    data[from..to].copy_from_slice(&frag.data[from - frag.offset..to - frag.offset]);
}

/// Inserts a range and merges touching or overlapping ones.
fn add_range(have: &mut Vec<(usize, usize)>, start: usize, end: usize) {
    let at = have.partition_point(|&(s, _)| s < start);
    have.insert(at, (start, end));
    let mut merged: usize = 0;
    for i in 1..have.len() {
        if have[i].0 <= have[merged].1 {
            have[merged].1 = have[merged].1.max(have[i].1);
        } else {
            merged += 1;
            have[merged] = have[i];
        }
    }
    have.truncate(merged + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u32) -> FragKey {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        FragKey {
            src: a,
            dst: a,
            id,
            proto: 17,
            vlan: None,
        }
    }

    fn frag(offset: usize, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            offset,
            more,
            proto: 17,
            data,
        }
    }

    /// Splits 0..n bytes into 8-byte fragments.
    fn pieces(payload: &[u8]) -> Vec<Fragment<'_>> {
        let chunks: Vec<_> = payload.chunks(8).collect();
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| frag(i * 8, i != last, c))
            .collect()
    }

    #[test]
    fn any_order_reassembles() {
        let payload: Vec<u8> = (0..60).collect();
        let mut orders: Vec<Vec<usize>> = vec![(0..8).collect(), (0..8).rev().collect()];
        orders.push(vec![3, 7, 0, 5, 1, 6, 2, 4]);
        for order in orders {
            let mut d = Defrag::new(DefragConfig::default());
            let frags = pieces(&payload);
            let mut done = None;
            for (n, &i) in order.iter().enumerate() {
                let got = d.insert(0, key(1), frags[i]).unwrap();
                assert_eq!(got.is_some(), n == order.len() - 1, "{order:?}");
                done = done.or(got);
            }
            let done = done.unwrap();
            assert_eq!((done.proto, &done.data[..]), (17, &payload[..]));
            assert_eq!((d.len(), d.bytes()), (0, 0));
        }
    }

    #[test]
    fn duplicates_and_overlaps_keep_first_bytes() {
        let mut d = Defrag::new(DefragConfig::default());
        assert!(d
            .insert(0, key(1), frag(0, true, b"AAAAAAAA"))
            .unwrap()
            .is_none());
        assert!(d
            .insert(0, key(1), frag(0, true, b"AAAAAAAA"))
            .unwrap()
            .is_none());
        assert!(d
            .insert(0, key(1), frag(4, true, b"xxxxBBBB"))
            .unwrap()
            .is_none());
        let done = d
            .insert(0, key(1), frag(12, false, b"CC"))
            .unwrap()
            .unwrap();
        assert_eq!(&done.data, b"AAAAAAAABBBBCC");
        assert_eq!(
            (d.stats.duplicates, d.stats.overlaps, d.stats.completed),
            (1, 1, 1)
        );
    }

    #[test]
    fn conflicting_ends_discard_the_datagram() {
        let mut d = Defrag::new(DefragConfig::default());
        d.insert(0, key(1), frag(16, false, b"end")).unwrap();
        assert_eq!(
            d.insert(0, key(1), frag(16, true, b"more than end")),
            Err(DropReason::FragmentConflict)
        );
        assert_eq!(d.len(), 0);
        d.insert(0, key(2), frag(0, true, b"0123456789abcdef"))
            .unwrap();
        assert_eq!(
            d.insert(0, key(2), frag(8, false, b"x")),
            Err(DropReason::FragmentConflict)
        );
        assert_eq!(d.stats.conflicts, 2);
    }

    #[test]
    fn caps_evict_oldest_and_count() {
        let cfg = DefragConfig {
            max_datagrams: 2,
            max_total_bytes: 100,
            ..DefragConfig::default()
        };
        let mut d = Defrag::new(cfg);
        for id in 0..3 {
            d.insert(0, key(id), frag(0, true, b"12345678")).unwrap();
        }
        assert_eq!((d.len(), d.stats.evicted), (2, 1));
        // A fragment ending at 96 needs nearly the whole byte budget: the others go.
        d.insert(0, key(9), frag(88, true, b"12345678")).unwrap();
        assert_eq!((d.len(), d.stats.evicted), (1, 3));
        assert!(d.bytes() <= 100);
        assert_eq!(
            d.insert(0, key(9), frag(65_530, true, b"12345678")),
            Err(DropReason::FragmentTooBig)
        );
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn timeout_sweeps_by_capture_time() {
        let mut d = Defrag::new(DefragConfig::default());
        d.insert(1_000_000, key(1), frag(0, true, b"12345678"))
            .unwrap();
        d.insert(20_000_000, key(2), frag(0, true, b"12345678"))
            .unwrap();
        d.expire(30_999_999);
        assert_eq!(d.len(), 2);
        d.expire(31_000_000);
        assert_eq!((d.len(), d.stats.timed_out), (1, 1));
        d.expire(u64::MAX);
        assert_eq!((d.len(), d.stats.timed_out, d.bytes()), (0, 2, 0));
    }

    #[test]
    fn order_queue_stays_bounded() {
        let cfg = DefragConfig {
            max_datagrams: 4,
            ..DefragConfig::default()
        };
        let mut d = Defrag::new(cfg);
        d.insert(0, key(u32::MAX), frag(0, true, b"12345678"))
            .unwrap();
        for id in 0..1000 {
            d.insert(0, key(id), frag(8, false, b"x")).unwrap();
            assert!(d
                .insert(0, key(id), frag(0, true, b"12345678"))
                .unwrap()
                .is_some());
        }
        assert!(d.order.len() <= 2 * 4 + 64 + 1);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn too_many_holes() {
        let mut d = Defrag::new(DefragConfig::default());
        let byte = [1u8];
        let mut result = Ok(None);
        for i in 0..=MAX_HOLES {
            result = d.insert(0, key(1), frag(i * 16, true, &byte));
        }
        assert_eq!(result, Err(DropReason::FragmentConflict));
    }
}
