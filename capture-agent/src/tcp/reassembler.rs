//! The flow table: one [`Stream`] per direction, bounded, with expiry and eviction.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::stream::{Ctx, Stream};
use super::{flags, Counters, Limits, Message, Segment, SeqNumber};
use crate::flow::{Flow, Timestamp};
use crate::hash::MixBuildHasher;

/// TCP reassembly and message framing for every direction of every connection seen.
///
/// Feed it every TCP segment in capture order with [`Reassembler::push`]; whole messages
/// come out through the callback, each stamped with its flow and the capture time of its
/// first byte. Call [`Reassembler::expire`] now and then with the current capture time
/// to drop idle state and give up on holes, and [`Reassembler::finish`] at the end of
/// the input.
///
/// ```
/// use capture_agent::flow::{Flow, Proto, Timestamp};
/// use capture_agent::tcp::{flags, Limits, Reassembler, Segment};
///
/// let flow = Flow {
///     src: [192, 0, 2, 1].into(),
///     dst: [192, 0, 2, 2].into(),
///     src_port: 40000,
///     dst_port: 5060,
///     proto: Proto::Tcp,
///     vlan: None,
/// };
/// let msg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n";
/// let mut tcp = Reassembler::new(Limits::default());
/// let mut seen = Vec::new();
/// let ts = Timestamp::new(1, 0);
/// tcp.push(&Segment { ts, flow, seq: 99, flags: flags::SYN, payload: b"" }, |_| {});
/// tcp.push(&Segment { ts, flow, seq: 100, flags: flags::ACK, payload: &msg[..10] }, |m| seen.push(m.bytes.to_vec()));
/// tcp.push(&Segment { ts, flow, seq: 110, flags: flags::ACK, payload: &msg[10..] }, |m| seen.push(m.bytes.to_vec()));
/// assert_eq!(seen, [msg.to_vec()]);
/// assert_eq!(tcp.counters().sip_messages, 1);
/// ```
#[derive(Debug)]
pub struct Reassembler {
    flows: HashMap<Flow, Stream, MixBuildHasher>,
    limits: Limits,
    counters: Counters,
    /// Sum of `Stream::buffered` over all flows, kept up to date segment by segment.
    buffered: usize,
}

impl Reassembler {
    /// An empty table with the given bounds.
    pub fn new(limits: Limits) -> Self {
        Self { flows: HashMap::default(), limits, counters: Counters::default(), buffered: 0 }
    }

    /// What happened so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Directions currently tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Bytes currently buffered over all directions (payload bytes, not allocations).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Takes one segment; calls `emit` for every message it completes (possibly several,
    /// possibly none).
    ///
    /// Pure ACKs (no payload, no SYN/FIN/RST) return at once without a table lookup.
    pub fn push(&mut self, seg: &Segment<'_>, mut emit: impl FnMut(Message<'_>)) {
        let emit: &mut dyn FnMut(Message<'_>) = &mut emit;
        let has = |flag: u8| seg.flags & flag != 0;
        if has(flags::RST) {
            // The connection is gone in both directions.
            self.close(seg.flow, emit);
            self.close(reverse(seg.flow), emit);
            return;
        }
        let mut seq = SeqNumber(seg.seq);
        if has(flags::SYN) {
            self.on_syn(seg, emit);
            seq = seq + 1;
        } else if seg.payload.is_empty() && !has(flags::FIN) {
            return;
        }
        if self.flows.len() >= self.limits.max_flows && !self.flows.contains_key(&seg.flow) {
            self.make_room(emit);
        }
        let stream = match self.flows.entry(seg.flow) {
            Entry::Occupied(e) => e.into_mut(),
            // A FIN for a direction we do not track has nothing to flush.
            Entry::Vacant(_) if seg.payload.is_empty() => return,
            Entry::Vacant(e) => {
                self.counters.midstream_starts += 1;
                e.insert(Stream::midstream(seq, seg.ts))
            }
        };
        let before = stream.buffered();
        let budget = budget(&self.limits, self.buffered - before);
        let last_ts = stream.last_emitted;
        let mut ctx = Ctx { flow: seg.flow, limits: &self.limits, budget, counters: &mut self.counters, emit, last_ts };
        stream.on_segment(seg.ts, seq, seg.payload, &mut ctx);
        stream.last_emitted = ctx.last_ts;
        stream.closing |= has(flags::FIN);
        let done = stream.is_closed();
        self.buffered = self.buffered - before + stream.buffered();
        if done {
            self.close(seg.flow, emit);
        }
    }

    /// Housekeeping at capture time `now` (a walk over the whole table: call it every
    /// second or so of capture time, not per packet): drops directions idle for longer than
    /// [`Limits::idle_timeout`] and gives up on holes older than [`Limits::gap_timeout`]
    /// (which may complete messages, passed to `emit`).
    pub fn expire(&mut self, now: Timestamp, mut emit: impl FnMut(Message<'_>)) {
        let emit: &mut dyn FnMut(Message<'_>) = &mut emit;
        let idle_timeout = u64::try_from(self.limits.idle_timeout.as_micros()).unwrap_or(u64::MAX);
        let (limits, counters, total) = (&self.limits, &mut self.counters, &mut self.buffered);
        self.flows.retain(|&flow, stream| {
            let before = stream.buffered();
            let budget = budget(limits, *total - before);
            let last_ts = stream.last_emitted;
            let mut ctx = Ctx { flow, limits, budget, counters: &mut *counters, emit: &mut *emit, last_ts };
            let expired = now.as_micros().saturating_sub(stream.last_seen.as_micros()) >= idle_timeout;
            if !expired {
                stream.on_time(now, &mut ctx);
            }
            let keep = !expired && !stream.is_closed();
            if !keep {
                stream.flush(&mut ctx);
                ctx.counters.flows_expired += u64::from(expired);
            }
            stream.last_emitted = ctx.last_ts;
            *total = *total - before + if keep { stream.buffered() } else { 0 };
            keep
        });
    }

    /// End of input: frames what waiting segments still allow, counts unfinished messages
    /// as truncated and forgets every flow.
    pub fn finish(&mut self, mut emit: impl FnMut(Message<'_>)) {
        for (flow, mut stream) in self.flows.drain() {
            let mut ctx = Ctx {
                flow,
                limits: &self.limits,
                budget: self.limits.max_flow_bytes,
                counters: &mut self.counters,
                emit: &mut emit,
                last_ts: stream.last_emitted,
            };
            stream.flush(&mut ctx);
        }
        self.buffered = 0;
    }

    /// A SYN starts a direction afresh, unless it repeats the one already seen.
    fn on_syn(&mut self, seg: &Segment<'_>, emit: &mut dyn FnMut(Message<'_>)) {
        let isn = SeqNumber(seg.seq);
        if let Some(stream) = self.flows.get(&seg.flow) {
            if stream.isn() == Some(isn) {
                return;
            }
            self.close(seg.flow, emit);
        }
        if self.flows.len() >= self.limits.max_flows {
            self.make_room(emit);
        }
        self.flows.insert(seg.flow, Stream::after_syn(isn, seg.ts));
    }

    /// Drops a direction after flushing it (FIN, RST, or replaced by a new SYN).
    fn close(&mut self, flow: Flow, emit: &mut dyn FnMut(Message<'_>)) {
        let Some(mut stream) = self.flows.remove(&flow) else {
            return;
        };
        self.buffered -= stream.buffered();
        let limits = &self.limits;
        let last_ts = stream.last_emitted;
        let mut ctx = Ctx { flow, limits, budget: limits.max_flow_bytes, counters: &mut self.counters, emit, last_ts };
        stream.flush(&mut ctx);
    }

    /// The table is full: evict the least recently active sixteenth of it, so the cost
    /// of the scan is spread over many new flows.
    fn make_room(&mut self, emit: &mut dyn FnMut(Message<'_>)) {
        let quota = (self.flows.len() / 16).max(1);
        let mut ages: Vec<u64> = self.flows.values().map(|s| s.last_seen.as_micros()).collect();
        if ages.is_empty() {
            return;
        }
        let cutoff = *ages.select_nth_unstable(quota - 1).1;
        let (limits, counters, total) = (&self.limits, &mut self.counters, &mut self.buffered);
        let mut evicted = 0;
        self.flows.retain(|&flow, stream| {
            if evicted == quota || stream.last_seen.as_micros() > cutoff {
                return true;
            }
            evicted += 1;
            *total -= stream.buffered();
            let budget = limits.max_flow_bytes;
            let last_ts = stream.last_emitted;
            let mut ctx = Ctx { flow, limits, budget, counters: &mut *counters, emit: &mut *emit, last_ts };
            stream.flush(&mut ctx);
            false
        });
        self.counters.flows_evicted += evicted as u64;
    }
}

/// The other direction of a connection.
fn reverse(flow: Flow) -> Flow {
    Flow { src: flow.dst, dst: flow.src, src_port: flow.dst_port, dst_port: flow.src_port, ..flow }
}

/// Bytes one direction may hold when the others hold `others`.
fn budget(limits: &Limits, others: usize) -> usize {
    limits.max_flow_bytes.min(limits.max_total_bytes.saturating_sub(others))
}
