//! The SIP stage: what to do with each payload the decoders hand over.
//!
//! A UDP/SCTP datagram or a message cut from a TCP stream is classified by content:
//! HEP found on the wire is relayed as-is (it already carries its original capture
//! metadata); CRLF keep-alives and non-SIP payloads are counted and skipped; SIP is
//! scanned for its Call-ID and method, filtered (discarded methods, duplicate copies)
//! and encoded as HEPv3 into the current batch.
//!
//! Network events (gratuitous ARP, VRRP advertisements: see [`crate::net_event`]) join the
//! same batches, so they reach the collectors by the same path. They skip every SIP
//! filter: method discards and dedup are about SIP messages, and the flow filter
//! (`--filter`) selects SIP traffic by ports and protocols an ARP packet does not have;
//! `--no-net-events` is their switch.

use std::borrow::Cow;

use wire::hep::{self, Hep, PayloadType};
use wire::sip::{self, ScanConfig, StartLine};

use crate::dedup::Dedup;
use crate::filter::Filter;
use crate::flow::{Flow, Timestamp};
use crate::net_event;
use crate::packet::Event;
use crate::sender::Batch;

/// What the SIP stage needs from the settings.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    /// HEP capture id.
    pub node_id: u32,
    /// HEP node name.
    pub node_name: String,
    /// HEP auth key.
    pub auth_key: Option<String>,
    /// Header whose value is the correlation id when present (else the Call-ID).
    pub correlation_header: Option<String>,
    /// Methods (upper case) whose requests and responses are not sent.
    pub discard_methods: Vec<String>,
    /// Drop duplicate copies.
    pub dedup: bool,
    /// Flow filter.
    pub filter: Option<Filter>,
    /// Send gratuitous ARP and VRRP advertisements as HEP (the agent's default; off in
    /// `PipelineConfig::default()`).
    pub net_events: bool,
}

/// Counts of what the SIP stage saw. Every payload lands in exactly one of these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipCounters {
    /// SIP messages encoded as HEP.
    pub sip_messages: u64,
    /// HEP packets found in the capture and relayed unchanged.
    pub hep_relayed: u64,
    /// HEP-looking payloads that did not decode.
    pub bad_hep: u64,
    /// CRLF keep-alives.
    pub keepalives: u64,
    /// Payloads that are not SIP (RTP, HTTP, DNS...).
    pub not_sip: u64,
    /// SIP messages dropped by `--discard-methods`.
    pub discarded: u64,
    /// Duplicate copies dropped by `--dedup`.
    pub duplicates: u64,
    /// Payloads dropped by the flow filter.
    pub filtered: u64,
    /// SIP messages over the 64 KiB HEP limit, sent compressed (chunk 0x10) instead.
    pub compressed: u64,
    /// SIP messages too large for a HEP packet even compressed.
    pub too_large: u64,
    /// Gratuitous ARP and VRRP advertisements encoded as HEP (payload type 0x70).
    pub net_events: u64,
}

/// The SIP stage. Full batches go to `sink`.
pub struct Pipeline<S: FnMut(Batch)> {
    cfg: PipelineConfig,
    scan: ScanConfig,
    dedup: Option<Dedup>,
    batch: Batch,
    /// Reused buffer for compressing oversized messages.
    scratch: Vec<u8>,
    /// Reused buffer for the JSON of network events.
    event_json: String,
    sink: S,
    /// What happened to each payload.
    pub counters: SipCounters,
}

impl<S: FnMut(Batch)> Pipeline<S> {
    /// A pipeline sending full batches to `sink`.
    pub fn new(cfg: PipelineConfig, sink: S) -> Self {
        let scan = ScanConfig { aleg_headers: cfg.correlation_header.iter().map(|h| h.as_bytes().to_vec()).collect() };
        let dedup = cfg.dedup.then(Dedup::default);
        Self {
            cfg,
            scan,
            dedup,
            batch: Batch::with_capacity(),
            scratch: Vec::new(),
            event_json: String::new(),
            sink,
            counters: SipCounters::default(),
        }
    }

    /// A UDP or SCTP payload: one datagram, classified by content.
    pub fn datagram(&mut self, ts: Timestamp, flow: &Flow, payload: &[u8]) {
        if !self.passes_filter(flow) {
            return;
        }
        if looks_like_hep(payload) {
            self.relay_hep(payload);
        } else if sip::is_keepalive(payload) {
            self.counters.keepalives += 1;
        } else {
            // `peek` rejects anything without a SIP start line (counted as not SIP), so
            // the start line is parsed once per datagram.
            self.sip(ts, flow, payload);
        }
    }

    /// A whole SIP message cut from a TCP stream (or a WebSocket frame).
    pub fn stream_sip(&mut self, ts: Timestamp, flow: &Flow, msg: &[u8]) {
        if self.passes_filter(flow) {
            self.sip(ts, flow, msg);
        }
    }

    /// A whole HEP packet cut from a TCP stream.
    pub fn stream_hep(&mut self, flow: &Flow, packet: &[u8]) {
        if self.passes_filter(flow) {
            self.relay_hep(packet);
        }
    }

    /// A gratuitous ARP or VRRP advertisement captured at `ts`, sent as HEP when network
    /// events are on. Other ARP is left to the decoder's counters.
    pub fn net_event(&mut self, ts: Timestamp, event: &Event) {
        if !self.cfg.net_events {
            return;
        }
        let Some(env) = net_event::encode(event, &mut self.event_json) else { return };
        let vlan = match event {
            Event::Arp(a) => a.vlan,
            Event::Vrrp(v) => v.vlan,
        };
        let hep = Hep {
            version: 3,
            ip_proto: env.ip_proto,
            src_ip: env.src,
            dst_ip: env.dst,
            src_port: 0,
            dst_port: 0,
            ts_sec: ts.sec as u32,
            ts_usec: ts.usec,
            payload_type: PayloadType::NetEvent,
            capture_id: Some(self.cfg.node_id),
            auth_key: self.cfg.auth_key.as_deref().map(str::as_bytes),
            vlan,
            node_name: Some(self.cfg.node_name.as_bytes()),
            payload: Cow::Borrowed(self.event_json.as_bytes()),
            ..Hep::default()
        };
        // A few hundred bytes at most: only an absurd node name or auth key can fail.
        if hep::encode_v3(&hep, &mut self.batch.bytes).is_ok() {
            self.batch.end_packet();
            self.counters.net_events += 1;
            self.flush_if_full();
        }
    }

    /// Sends the current batch even if it is not full (end of input, or time to flush).
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            let full = std::mem::replace(&mut self.batch, Batch::with_capacity());
            (self.sink)(full);
        }
    }

    /// Duplicates dropped and dedup entries evicted early.
    pub fn dedup_counts(&self) -> (u64, u64) {
        self.dedup.as_ref().map_or((0, 0), |d| (d.duplicates, d.evicted))
    }

    fn passes_filter(&mut self, flow: &Flow) -> bool {
        let pass = self.cfg.filter.as_ref().is_none_or(|f| f.matches(flow));
        self.counters.filtered += u64::from(!pass);
        pass
    }

    /// v3 is relayed byte for byte (other vendors' chunks included). v1/v2 carry no
    /// length, so they could not be framed on a TCP stream: they go out re-encoded as v3
    /// with every field they had.
    fn relay_hep(&mut self, packet: &[u8]) {
        let Ok(decoded) = hep::decode(packet) else {
            self.counters.bad_hep += 1;
            return;
        };
        if decoded.version == 3 {
            // A datagram may carry padding after the packet: relay only the packet.
            let len = match hep::frame_len(packet) {
                Ok(Some(n)) if n <= packet.len() => n,
                _ => packet.len(),
            };
            self.batch.bytes.extend_from_slice(&packet[..len]);
        } else if hep::encode_v3(&decoded, &mut self.batch.bytes).is_err() {
            self.counters.bad_hep += 1;
            return;
        }
        self.batch.end_packet();
        self.counters.hep_relayed += 1;
        self.flush_if_full();
    }

    fn sip(&mut self, ts: Timestamp, flow: &Flow, msg: &[u8]) {
        let Ok(fields) = sip::peek(msg, &self.scan) else {
            self.counters.not_sip += 1;
            return;
        };
        if self.is_discarded(&fields) {
            self.counters.discarded += 1;
            return;
        }
        if let Some(d) = self.dedup.as_mut() {
            if d.is_duplicate(ts, flow, msg) {
                self.counters.duplicates += 1;
                return;
            }
        }
        let hep = Hep {
            version: 3,
            ip_proto: flow.proto.number(),
            src_ip: flow.src,
            dst_ip: flow.dst,
            src_port: flow.src_port,
            dst_port: flow.dst_port,
            ts_sec: ts.sec as u32,
            ts_usec: ts.usec,
            payload_type: PayloadType::Sip,
            capture_id: Some(self.cfg.node_id),
            auth_key: self.cfg.auth_key.as_deref().map(str::as_bytes),
            correlation_id: fields.aleg_id.or(fields.call_id),
            vlan: flow.vlan,
            node_name: Some(self.cfg.node_name.as_bytes()),
            payload: Cow::Borrowed(msg),
            ..Hep::default()
        };
        let encoded = hep::encode_v3(&hep, &mut self.batch.bytes).or_else(|_| {
            self.counters.compressed += 1;
            hep::encode_v3_compressed(&hep, &mut self.batch.bytes, &mut self.scratch)
        });
        match encoded {
            Ok(_) => {
                self.batch.end_packet();
                self.counters.sip_messages += 1;
                self.flush_if_full();
            }
            Err(_) => self.counters.too_large += 1,
        }
    }

    fn is_discarded(&self, fields: &sip::Peek<'_>) -> bool {
        if self.cfg.discard_methods.is_empty() {
            return false;
        }
        let method = match fields.start {
            StartLine::Request { method, .. } => method,
            StartLine::Response { .. } => match fields.cseq {
                Some(c) => c.method,
                None => return false,
            },
        };
        self.cfg.discard_methods.iter().any(|m| m.as_bytes().eq_ignore_ascii_case(method))
    }

    fn flush_if_full(&mut self) {
        if self.batch.is_full() {
            self.flush();
        }
    }
}

/// HEPv3 by its magic. HEPv1/v2 have none: a payload counts as v1/v2 when its first
/// byte is the version, it decodes, and what it carries is SIP, which random UDP
/// payloads (RTP, DNS) practically never are.
fn looks_like_hep(payload: &[u8]) -> bool {
    if payload.starts_with(b"HEP3") {
        return true;
    }
    matches!(payload.first(), Some(1 | 2))
        && hep::decode(payload).is_ok_and(|h| h.payload_type == PayloadType::Sip && sip::looks_like_sip(&h.payload))
}
