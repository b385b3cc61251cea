//! One direction of a TCP connection: sequence tracking, the out-of-order queue and the
//! buffer for an unfinished message.
//!
//! Bytes reach the framer strictly in sequence order. When nothing is buffered and a
//! segment is the next one expected (the common case), messages are framed straight from
//! its payload and passed on borrowed; only an unfinished tail is copied. Segments ahead
//! of a hole wait in a small sorted queue until the hole fills or is given up on.

use super::framer::{Framer, Step};
use super::{Counters, Limits, Message, MessageKind, SeqNumber};
use crate::flow::{Flow, Timestamp};

/// A segment this far behind the next expected byte is not a retransmission but a new
/// sequence space (the 5-tuple was reused and we missed the SYN): start over there.
const MAX_REWIND: i32 = 1 << 24;

/// A message buffer that grew past this is freed when it empties, so one large message
/// does not pin its memory for the life of the connection.
const SHRINK_ABOVE: usize = 64 * 1024;

/// What processing one segment may use, besides the stream itself.
pub(crate) struct Ctx<'a> {
    /// Direction, stamped on every message.
    pub(crate) flow: Flow,
    /// Bounds.
    pub(crate) limits: &'a Limits,
    /// Bytes this direction may hold: the per-flow bound, or less when the total budget
    /// is nearly used up by other flows.
    pub(crate) budget: usize,
    /// Counters to update.
    pub(crate) counters: &'a mut Counters,
    /// Where whole messages go.
    pub(crate) emit: &'a mut dyn FnMut(Message<'_>),
    /// Time stamped on this direction's previous message (copied in from, and back to,
    /// [`Stream::last_emitted`]).
    pub(crate) last_ts: Option<Timestamp>,
}

impl Ctx<'_> {
    fn emit(&mut self, ts: Timestamp, kind: MessageKind, bytes: &[u8]) {
        match kind {
            MessageKind::Sip => self.counters.sip_messages += 1,
            MessageKind::Hep => self.counters.hep_messages += 1,
            MessageKind::WebSocketSip => self.counters.websocket_messages += 1,
        }
        // Stream order is sending order. Messages framed from one segment share its
        // capture time, and a message completed by a segment captured late (reordered in
        // the network) would carry a time before its predecessor's: nudge each to at least
        // 1 us after the previous one, so time order everywhere downstream is stream order.
        let ts = match self.last_ts {
            Some(last) if ts <= last => Timestamp::from_micros(last.as_micros() + 1),
            _ => ts,
        };
        self.last_ts = Some(ts);
        (self.emit)(Message { ts, flow: self.flow, kind, bytes });
    }
}

/// A segment that arrived ahead of a hole.
#[derive(Debug)]
struct Pending {
    seq: SeqNumber,
    ts: Timestamp,
    data: Vec<u8>,
}

/// Reassembly state of one direction.
#[derive(Debug)]
pub(crate) struct Stream {
    /// Initial sequence number when the SYN was seen; tells a repeated SYN from a new
    /// connection on the same addresses.
    isn: Option<SeqNumber>,
    /// Time given to the last message emitted (see [`Ctx::emit`]).
    pub(crate) last_emitted: Option<Timestamp>,
    /// Sequence number of the next byte the framer expects.
    next_seq: SeqNumber,
    /// The unfinished message (or undecided first bytes), in stream order, ending just
    /// before `next_seq`.
    buf: Vec<u8>,
    /// Capture time of the segment that began `buf`.
    buf_ts: Timestamp,
    /// Total length `buf` must reach before framing is worth retrying (0: unknown), so a
    /// large message arriving in many segments is not rescanned for each one.
    need: usize,
    /// Bytes still to discard of a message too large to buffer.
    skip: usize,
    /// Segments ahead of a hole, sorted by distance from `next_seq`.
    pending: Vec<Pending>,
    /// Payload bytes in `pending`.
    pending_bytes: usize,
    /// Capture time of the first fragment of a WebSocket message being joined.
    start_ts: Option<Timestamp>,
    framer: Framer,
    /// Latest capture time seen on this direction.
    pub(crate) last_seen: Timestamp,
    /// FIN seen: drop the state once no hole is left to wait for.
    pub(crate) closing: bool,
}

/// Why [`run`] stopped.
enum Stop {
    /// The bytes end inside a message; total length needed from the stop point if known.
    NeedMore(Option<usize>),
    /// Framing reached the `cross_at` offset.
    Crossed,
    /// The stream is not ours.
    NotOurs,
}

impl Stream {
    /// A direction whose SYN (initial sequence number `isn`) was seen.
    pub(crate) fn after_syn(isn: SeqNumber, ts: Timestamp) -> Self {
        let mut s = Self::new(isn + 1, Framer::new(true), ts);
        s.isn = Some(isn);
        s
    }

    /// A direction first seen mid-connection, at sequence number `seq`.
    pub(crate) fn midstream(seq: SeqNumber, ts: Timestamp) -> Self {
        Self::new(seq, Framer::new(false), ts)
    }

    fn new(next_seq: SeqNumber, framer: Framer, ts: Timestamp) -> Self {
        Self {
            isn: None,
            last_emitted: None,
            next_seq,
            buf: Vec::new(),
            buf_ts: ts,
            need: 0,
            skip: 0,
            pending: Vec::new(),
            pending_bytes: 0,
            start_ts: None,
            framer,
            last_seen: ts,
            closing: false,
        }
    }

    /// Initial sequence number, when the SYN was seen.
    pub(crate) fn isn(&self) -> Option<SeqNumber> {
        self.isn
    }

    /// Bytes held: unfinished message, waiting segments, joined WebSocket fragments.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() + self.pending_bytes + self.framer.buffered()
    }

    /// True while segments wait for a hole before them.
    pub(crate) fn has_gap(&self) -> bool {
        !self.pending.is_empty()
    }

    /// FIN seen and no hole left to wait for: the state can go.
    pub(crate) fn is_closed(&self) -> bool {
        self.closing && !self.has_gap()
    }

    /// Takes one segment's payload starting at sequence number `seq`.
    pub(crate) fn on_segment(&mut self, ts: Timestamp, seq: SeqNumber, payload: &[u8], ctx: &mut Ctx<'_>) {
        self.last_seen = self.last_seen.max(ts);
        if !payload.is_empty() {
            self.place(ts, seq, payload, ctx);
        }
        self.on_time(ts, ctx);
    }

    /// Gives up on holes that stayed open longer than the gap timeout at capture time `now`.
    pub(crate) fn on_time(&mut self, now: Timestamp, ctx: &mut Ctx<'_>) {
        let timeout = u64::try_from(ctx.limits.gap_timeout.as_micros()).unwrap_or(u64::MAX);
        while let Some(first) = self.pending.first() {
            if now.as_micros().saturating_sub(first.ts.as_micros()) < timeout {
                break;
            }
            self.skip_gap(ctx);
        }
    }

    /// End of the stream: frames whatever the holes were hiding, then counts an
    /// unfinished message as truncated.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx<'_>) {
        while self.has_gap() {
            self.skip_gap(ctx);
        }
        self.drop_partial(ctx);
    }

    /// Puts a segment where it belongs: framed now, queued, or dropped as a repeat.
    fn place(&mut self, ts: Timestamp, seq: SeqNumber, payload: &[u8], ctx: &mut Ctx<'_>) {
        loop {
            if self.framer.is_ignored() {
                return;
            }
            let rel = seq - self.next_seq;
            if rel < -MAX_REWIND {
                self.restart_at(seq, ctx);
                continue;
            }
            if rel > 0 {
                if self.queue(ts, seq, payload, ctx) {
                    return;
                }
                // No room to wait: give up on the oldest hole (or this one) and retry.
                if self.has_gap() {
                    self.skip_gap(ctx);
                } else {
                    self.restart_at(seq, ctx);
                }
                continue;
            }
            let behind = rel.unsigned_abs() as usize;
            if behind > 0 {
                ctx.counters.retransmissions += 1;
                if behind >= payload.len() {
                    return;
                }
            }
            self.deliver(ts, &payload[behind..], ctx);
            self.drain_pending(ctx);
            return;
        }
    }

    /// Holds a segment that is ahead of a hole. False when the bounds leave no room.
    fn queue(&mut self, ts: Timestamp, seq: SeqNumber, payload: &[u8], ctx: &mut Ctx<'_>) -> bool {
        if self.pending.iter().any(|p| p.seq == seq && p.data.len() >= payload.len()) {
            ctx.counters.retransmissions += 1;
            return true;
        }
        if self.pending.len() >= ctx.limits.max_out_of_order_segments || self.buffered() + payload.len() > ctx.budget {
            return false;
        }
        let next = self.next_seq;
        let rel = seq - next;
        let at = self.pending.partition_point(|p| p.seq - next <= rel);
        self.pending.insert(at, Pending { seq, ts, data: payload.to_vec() });
        self.pending_bytes += payload.len();
        ctx.counters.out_of_order_segments += 1;
        true
    }

    /// Frames every waiting segment that the stream has now reached.
    fn drain_pending(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(first) = self.pending.first() {
            let rel = first.seq - self.next_seq;
            if rel > 0 {
                break;
            }
            let p = self.pending.remove(0);
            self.pending_bytes -= p.data.len();
            let behind = rel.unsigned_abs() as usize;
            if behind > 0 {
                ctx.counters.retransmissions += 1;
                if behind >= p.data.len() {
                    continue;
                }
            }
            self.deliver(p.ts, &p.data[behind..], ctx);
        }
    }

    /// Gives up on the hole before the first waiting segment and frames from there.
    fn skip_gap(&mut self, ctx: &mut Ctx<'_>) {
        let Some(first) = self.pending.first() else {
            return;
        };
        ctx.counters.gaps_skipped += 1;
        self.next_seq = first.seq;
        self.drop_partial(ctx);
        self.drain_pending(ctx);
    }

    /// Jumps to a new sequence space at `seq`, dropping everything held.
    fn restart_at(&mut self, seq: SeqNumber, ctx: &mut Ctx<'_>) {
        ctx.counters.gaps_skipped += 1;
        ctx.counters.bytes_dropped += self.pending_bytes as u64;
        self.pending.clear();
        self.pending_bytes = 0;
        self.next_seq = seq;
        self.drop_partial(ctx);
    }

    /// Drops the unfinished message, if any, and forgets the message boundary: bytes
    /// before the next ones were lost (or the stream ends).
    fn drop_partial(&mut self, ctx: &mut Ctx<'_>) {
        if !self.buf.is_empty() {
            ctx.counters.truncated_messages += 1;
        }
        if self.framer.lose_sync() {
            ctx.counters.truncated_messages += 1;
        }
        self.clear_buf();
        self.skip = 0;
        self.start_ts = None;
    }

    /// Frames in-order bytes that begin at `next_seq`.
    fn deliver(&mut self, ts: Timestamp, data: &[u8], ctx: &mut Ctx<'_>) {
        self.next_seq = self.next_seq + data.len();
        if self.framer.is_ignored() {
            return;
        }
        let data = self.discard_oversize(data, ctx);
        if data.is_empty() {
            return;
        }
        let rest = if self.buf.is_empty() {
            data
        } else {
            match self.extend_buffered(ts, data, ctx) {
                Some(rest) => rest,
                None => return,
            }
        };
        self.frame_direct(ts, rest, ctx);
    }

    /// Drops the part of `data` that belongs to a message too large to buffer.
    fn discard_oversize<'d>(&mut self, data: &'d [u8], ctx: &mut Ctx<'_>) -> &'d [u8] {
        let n = self.skip.min(data.len());
        self.skip -= n;
        ctx.counters.bytes_dropped += n as u64;
        &data[n..]
    }

    /// Appends `data` to the unfinished message and frames until the framing position
    /// passes into `data`. Returns the rest of `data`, to frame without copying, or
    /// `None` when everything is consumed or buffered.
    fn extend_buffered<'d>(&mut self, ts: Timestamp, data: &'d [u8], ctx: &mut Ctx<'_>) -> Option<&'d [u8]> {
        let old = self.buf.len();
        self.buf.extend_from_slice(data);
        if self.buf.len() < self.need {
            self.enforce_budget(ctx);
            return None;
        }
        let buf_ts = self.buf_ts;
        let ts_at = |at: usize| if at < old { buf_ts } else { ts };
        let (consumed, stop) = run(&mut self.framer, &mut self.start_ts, &self.buf, old, ts_at, ctx);
        match stop {
            Stop::Crossed => {
                self.clear_buf();
                Some(&data[consumed - old..])
            }
            Stop::NeedMore(need) => {
                self.buf.drain(..consumed);
                self.need = need.unwrap_or(0);
                self.enforce_budget(ctx);
                None
            }
            Stop::NotOurs => {
                self.ignore(ctx);
                None
            }
        }
    }

    /// The fast path: frames `data` in place, buffering only an unfinished tail.
    fn frame_direct(&mut self, ts: Timestamp, data: &[u8], ctx: &mut Ctx<'_>) {
        let (consumed, stop) = run(&mut self.framer, &mut self.start_ts, data, usize::MAX, |_| ts, ctx);
        match stop {
            Stop::NeedMore(need) => {
                let tail = &data[consumed..];
                self.need = need.unwrap_or(0);
                if tail.len() > self.room(ctx) {
                    self.overflow(tail.len(), ctx);
                } else if !tail.is_empty() {
                    self.buf.extend_from_slice(tail);
                    self.buf_ts = ts;
                }
            }
            Stop::NotOurs => self.ignore(ctx),
            Stop::Crossed => {}
        }
    }

    /// Bytes the unfinished-message buffer may hold.
    fn room(&self, ctx: &Ctx<'_>) -> usize {
        ctx.budget.saturating_sub(self.pending_bytes + self.framer.buffered())
    }

    fn enforce_budget(&mut self, ctx: &mut Ctx<'_>) {
        if self.buf.len() > self.room(ctx) {
            let held = self.buf.len();
            self.clear_buf_keep_need();
            self.overflow(held, ctx);
        }
    }

    /// The unfinished message (`held` bytes, no longer buffered) does not fit: drop it
    /// and, when its length is known, discard the rest of it as it arrives.
    fn overflow(&mut self, held: usize, ctx: &mut Ctx<'_>) {
        ctx.counters.bytes_dropped += held as u64;
        ctx.counters.truncated_messages += 1;
        if self.need > held {
            self.skip = self.need - held;
        } else {
            self.framer.lose_sync();
        }
        self.need = 0;
        self.start_ts = None;
    }

    /// The stream is not SIP, HEP or WebSocket: free everything and ignore it from now on.
    fn ignore(&mut self, ctx: &mut Ctx<'_>) {
        ctx.counters.non_sip_streams += 1;
        self.framer = Framer::Ignored;
        self.buf = Vec::new();
        self.pending = Vec::new();
        self.pending_bytes = 0;
        self.need = 0;
        self.skip = 0;
    }

    fn clear_buf(&mut self) {
        self.clear_buf_keep_need();
        self.need = 0;
    }

    fn clear_buf_keep_need(&mut self) {
        if self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// Frames `data` from its start until it runs out, the stream turns out not to be ours,
/// or the framing position reaches `cross_at`. `ts_at` gives the capture time of the
/// byte at an offset. Returns the bytes consumed and why it stopped.
fn run(
    framer: &mut Framer,
    start_ts: &mut Option<Timestamp>,
    data: &[u8],
    cross_at: usize,
    ts_at: impl Fn(usize) -> Timestamp,
    ctx: &mut Ctx<'_>,
) -> (usize, Stop) {
    let mut pos = 0;
    loop {
        if pos >= cross_at {
            return (pos, Stop::Crossed);
        }
        if pos >= data.len() {
            return (pos, Stop::NeedMore(None));
        }
        match framer.step(&data[pos..], ctx.counters) {
            Step::Message { kind, bytes, consumed, continued } => {
                let first_byte_ts = start_ts.take().filter(|_| continued).unwrap_or_else(|| ts_at(pos));
                ctx.emit(first_byte_ts, kind, bytes);
                pos += consumed;
            }
            Step::MessageStart(consumed) => {
                *start_ts = Some(ts_at(pos));
                pos += consumed;
            }
            Step::Skip(n) if n > 0 => pos += n,
            // The framer never skips nothing; stopping here keeps a bug from spinning.
            Step::Skip(_) => return (pos, Stop::NeedMore(None)),
            Step::NeedMore(need) => return (pos, Stop::NeedMore(need)),
            Step::NotOurs => return (pos, Stop::NotOurs),
        }
    }
}
