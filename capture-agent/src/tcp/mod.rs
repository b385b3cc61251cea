//! TCP stream reassembly and framing of the messages carried in a stream.
//!
//! The packet layer hands every TCP segment to a [`Reassembler`] as a [`Segment`]. The
//! reassembler keeps one state per direction ([`Flow`]), puts the bytes back in sequence
//! order and cuts them into whole messages, which it passes to a callback as
//! [`Message`]s:
//! - plain SIP, framed by `Content-Length` ([`wire::sip::frame`]), with RFC 5626 CRLF
//!   keep-alives skipped;
//! - HEPv3 (an agent or proxy mirroring to us over TCP), framed by the HEP length field;
//! - SIP over WebSocket (RFC 7118): the HTTP upgrade is skipped, frames are unmasked,
//!   one data frame (or fragmented message) is one SIP message.
//!
//! A stream's kind is decided from its first bytes, never from the port. Streams that are
//! clearly something else (HTTP, TLS, ...) are marked ignored and cost one table lookup
//! per segment from then on.
//!
//! In order, the common case, messages are framed straight from the segment payload and
//! borrowed from it: only the unfinished tail of a segment is copied. Out-of-order
//! segments wait (bounded) for the hole before them; holes that never fill (the capture
//! lost a segment) are skipped after [`Limits::gap_timeout`] or when the wait would
//! exceed the memory bounds, and framing resynchronises on the next message start.
//!
//! Every bound (flows, bytes per flow, total bytes, waiting segments, idle time) is in
//! [`Limits`]; everything dropped or skipped is counted in [`Counters`]. Time is the
//! capture time the caller passes in: nothing here reads a clock.

mod framer;

mod reassembler;
mod seq;
mod stream;
mod websocket;

use std::time::Duration;

use crate::flow::{Flow, Timestamp};

pub use reassembler::Reassembler;
pub use seq::SeqNumber;

/// TCP header flag bits, as in byte 13 of the TCP header.
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers: the first segment of a direction.
    pub const SYN: u8 = 0x02;
    /// Reset: the connection is gone.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement field is valid.
    pub const ACK: u8 = 0x10;
}

/// One TCP segment, already decoded by the packet layer.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Capture time of the packet.
    pub ts: Timestamp,
    /// Direction the segment travels (sender to receiver).
    pub flow: Flow,
    /// Sequence number of the first payload byte (of the SYN itself when SYN is set).
    pub seq: u32,
    /// TCP flags ([`flags`]).
    pub flags: u8,
    /// TCP payload.
    pub payload: &'a [u8],
}

/// What a [`Message`] carries, decided per stream from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// One SIP message (start line, headers, body).
    Sip,
    /// One whole HEPv3 packet, including its `HEP3` header.
    Hep,
    /// One SIP message carried in a WebSocket message (unmasked, fragments joined).
    WebSocketSip,
}

/// One whole message cut from a stream.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Capture time of the segment holding the message's first byte (what Wireshark and
    /// heplify report for a reassembled message). When the start of a message waited in
    /// the buffer, this is the time of the segment that began the buffered bytes.
    pub ts: Timestamp,
    /// Direction the message travelled.
    pub flow: Flow,
    /// How the stream is framed.
    pub kind: MessageKind,
    /// The message. Borrowed from the segment payload when the message lies in one
    /// segment and was not masked; otherwise from a per-flow buffer. Valid only during
    /// the callback.
    pub bytes: &'a [u8],
}

/// Bounds on reassembly state. Every one is enforced; what goes over is dropped and
/// counted in [`Counters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Directions tracked at once. When full, the least recently active ones are evicted
    /// (a sixteenth of the table at a time, so eviction costs O(1) amortised).
    pub max_flows: usize,
    /// Bytes buffered per direction (unfinished message plus out-of-order segments). Above
    /// the largest SIP message we expect to see.
    pub max_flow_bytes: usize,
    /// Bytes buffered over all directions.
    pub max_total_bytes: usize,
    /// Out-of-order segments held per direction while waiting for a hole to fill.
    pub max_out_of_order_segments: usize,
    /// How long (capture time) a hole may stay open before it is skipped.
    pub gap_timeout: Duration,
    /// A direction with no segment for this long (capture time) is dropped by
    /// [`Reassembler::expire`].
    pub idle_timeout: Duration,
}

/// Default for [`Limits::max_flows`].
pub const DEFAULT_MAX_FLOWS: usize = 65_536;
/// Default for [`Limits::max_flow_bytes`]: 256 KiB, well above real SIP messages.
pub const DEFAULT_MAX_FLOW_BYTES: usize = 256 * 1024;
/// Default for [`Limits::max_total_bytes`]: 64 MiB.
pub const DEFAULT_MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// Default for [`Limits::max_out_of_order_segments`].
pub const DEFAULT_MAX_OUT_OF_ORDER_SEGMENTS: usize = 64;
/// Default for [`Limits::gap_timeout`]: a segment the capture lost is never
/// retransmitted, so waiting longer than a few RTTs only delays messages.
pub const DEFAULT_GAP_TIMEOUT: Duration = Duration::from_secs(1);
/// Default for [`Limits::idle_timeout`]: SIP over TCP connections idle for minutes
/// between keep-alives; dropping their state loses at most an unfinished message.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_flows: DEFAULT_MAX_FLOWS,
            max_flow_bytes: DEFAULT_MAX_FLOW_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_out_of_order_segments: DEFAULT_MAX_OUT_OF_ORDER_SEGMENTS,
            gap_timeout: DEFAULT_GAP_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What the reassembler did, for metrics. All counts since creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// SIP messages emitted ([`MessageKind::Sip`]).
    pub sip_messages: u64,
    /// HEP packets emitted ([`MessageKind::Hep`]).
    pub hep_messages: u64,
    /// SIP messages emitted from WebSocket frames ([`MessageKind::WebSocketSip`]).
    pub websocket_messages: u64,
    /// CRLF keep-alives skipped (a `\r\n\r\n` ping or `\r\n` pong each count once).
    pub keepalives: u64,
    /// WebSocket ping, pong and close frames skipped.
    pub websocket_control_frames: u64,
    /// Bytes skipped to find the next message start: junk between messages, the middle
    /// of a message when the capture started late or after a hole, unusable frames.
    pub junk_bytes: u64,
    /// Directions first seen without their SYN (capture started mid-connection).
    pub midstream_starts: u64,
    /// Holes in a stream given up on (never filled within the time or memory bounds).
    pub gaps_skipped: u64,
    /// Segments that arrived ahead of a hole and were held.
    pub out_of_order_segments: u64,
    /// Segments that repeated bytes already seen (wholly or in part).
    pub retransmissions: u64,
    /// Directions evicted because the table was full.
    pub flows_evicted: u64,
    /// Directions dropped by [`Reassembler::expire`] after the idle timeout.
    pub flows_expired: u64,
    /// Bytes dropped to stay within the memory bounds (oversized messages, full buffers).
    pub bytes_dropped: u64,
    /// Unfinished messages lost: at close, eviction, expiry, end of input, a skipped
    /// hole, or because they outgrew the buffer bounds.
    pub truncated_messages: u64,
    /// Directions recognised as neither SIP, HEP nor SIP over WebSocket (HTTP, TLS, ...).
    pub non_sip_streams: u64,
}
