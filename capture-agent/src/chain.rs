//! The per-packet chain shared by file replay and live capture: decode, then TCP
//! reassembly for segments, then the SIP stage; ARP and VRRP events go to the SIP
//! stage's network-event path.
//!
//! [`Chain::packet`] is the one entry point: a captured frame, its link type and its
//! capture time in; HEP packets out to the pipeline's sink when a batch fills. Capture
//! time (never the wall clock) drives the idle-stream sweep, so a replay gives the same
//! result every time and a live capture ages state by the kernel's timestamps.

use crate::flow::Timestamp;
use crate::packet::{self, Decoder, Outcome};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::sender::Batch;
use crate::source::LinkType;
use crate::tcp::{self, MessageKind, Reassembler};

/// Sweep idle TCP streams whenever capture time has advanced this much.
const SWEEP_EVERY_US: u64 = 1_000_000;

/// Decoder, TCP reassembler and SIP stage, with their counters.
pub struct Chain<S: FnMut(Batch)> {
    /// Link/IP/transport decoder with its defragmentation state.
    pub decoder: Decoder,
    /// TCP stream reassembler.
    pub tcp: Reassembler,
    /// The SIP stage.
    pub pipeline: Pipeline<S>,
    last_sweep_us: u64,
}

impl<S: FnMut(Batch)> Chain<S> {
    /// A chain whose full batches go to `sink`.
    pub fn new(cfg: PipelineConfig, sink: S) -> Self {
        Self {
            decoder: Decoder::default(),
            tcp: Reassembler::new(tcp::Limits::default()),
            pipeline: Pipeline::new(cfg, sink),
            last_sweep_us: 0,
        }
    }

    /// One captured frame: UDP/SCTP payloads go straight to the SIP stage, TCP segments
    /// through the stream reassembler first, ARP/VRRP events to the network-event path.
    pub fn packet(&mut self, ts: Timestamp, link: LinkType, data: &[u8]) {
        let Self { decoder, tcp, pipeline, .. } = self;
        let outcome = decoder.decode(ts, link, data, &mut |seg: packet::Segment<'_>| match seg.tcp {
            None => pipeline.datagram(seg.ts, &seg.flow, seg.payload),
            Some(info) => {
                let seg = tcp::Segment {
                    ts: seg.ts,
                    flow: seg.flow,
                    seq: info.seq,
                    flags: info.flags.0,
                    payload: seg.payload,
                };
                tcp.push(&seg, |msg: tcp::Message<'_>| deliver(pipeline, msg));
            }
        });
        if let Outcome::Event(event) = &outcome {
            pipeline.net_event(ts, event);
        }
        let now = ts.as_micros();
        if now.saturating_sub(self.last_sweep_us) >= SWEEP_EVERY_US {
            self.last_sweep_us = now;
            let Self { tcp, pipeline, .. } = self;
            tcp.expire(ts, |msg: tcp::Message<'_>| deliver(pipeline, msg));
        }
    }

    /// Sends the current batch even if it is not full.
    pub fn flush(&mut self) {
        self.pipeline.flush();
    }

    /// End of input: frames what the streams still hold and sends the last batch.
    pub fn finish(&mut self) {
        let Self { tcp, pipeline, .. } = self;
        tcp.finish(|msg: tcp::Message<'_>| deliver(pipeline, msg));
        self.pipeline.flush();
    }
}

fn deliver<S: FnMut(Batch)>(pipeline: &mut Pipeline<S>, msg: tcp::Message<'_>) {
    match msg.kind {
        MessageKind::Sip | MessageKind::WebSocketSip => pipeline.stream_sip(msg.ts, &msg.flow, msg.bytes),
        MessageKind::Hep => pipeline.stream_hep(&msg.flow, msg.bytes),
    }
}
