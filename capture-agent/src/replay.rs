//! File replay: the agent's main loop over pcap/pcapng files.
//!
//! Each packet goes through the decoder; UDP/SCTP payloads go straight to the SIP stage,
//! TCP segments through the stream reassembler first. Capture time drives every timeout
//! (fragments, idle streams) and the optional pacing, so a replay at `max` speed gives the
//! same result every time.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::ReplaySpeed;
use crate::flow::Timestamp;
use crate::packet::{self, Decoder};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::sender::Batch;
use crate::source::{PcapFile, SourceError};
use crate::tcp::{self, MessageKind, Reassembler};

/// Sweep idle TCP streams whenever capture time has advanced this much.
const SWEEP_EVERY_US: u64 = 1_000_000;

/// Report progress every this many packets.
const PROGRESS_EVERY: u64 = 8192;

/// What happened to one file.
#[derive(Debug)]
pub struct FileReport {
    /// Packets read.
    pub packets: u64,
    /// Bytes of the file consumed.
    pub bytes: u64,
    /// Why reading stopped early, if it did (packets before the problem were processed).
    pub error: Option<SourceError>,
}

/// Decoders and the SIP stage, kept across files so that counters add up.
pub struct Replay<S: FnMut(Batch)> {
    /// Link/IP/transport decoder with its defragmentation state.
    pub decoder: Decoder,
    /// TCP stream reassembler.
    pub tcp: Reassembler,
    /// The SIP stage.
    pub pipeline: Pipeline<S>,
    speed: ReplaySpeed,
    last_sweep_us: u64,
}

impl<S: FnMut(Batch)> Replay<S> {
    /// A replay whose full batches go to `sink`.
    pub fn new(cfg: PipelineConfig, speed: ReplaySpeed, sink: S) -> Self {
        Self {
            decoder: Decoder::default(),
            tcp: Reassembler::new(tcp::Limits::default()),
            pipeline: Pipeline::new(cfg, sink),
            speed,
            last_sweep_us: 0,
        }
    }

    /// Replays one file. `progress` is called now and then with the bytes consumed.
    pub fn file(&mut self, path: &Path, progress: &mut dyn FnMut(u64)) -> Result<FileReport, SourceError> {
        let mut file = PcapFile::open(path)?;
        let mut report = FileReport { packets: 0, bytes: 0, error: None };
        let mut pacer = Pacer::new(self.speed);
        loop {
            let pkt = match file.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    report.error = Some(e);
                    break;
                }
            };
            if pacer.wait_until(pkt.ts) {
                // About to sleep: let the collector see what we have so far.
                self.pipeline.flush();
            }
            let (ts, link) = (pkt.ts, pkt.link_type);
            self.packet(ts, link, pkt.data);
            report.packets += 1;
            if report.packets.is_multiple_of(PROGRESS_EVERY) {
                progress(file.bytes_read());
            }
        }
        report.bytes = file.bytes_read();
        progress(report.bytes);
        Ok(report)
    }

    fn packet(&mut self, ts: Timestamp, link: crate::source::LinkType, data: &[u8]) {
        let Self { decoder, tcp, pipeline, .. } = self;
        decoder.decode(ts, link, data, &mut |seg: packet::Segment<'_>| match seg.tcp {
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
        let now = ts.as_micros();
        if now.saturating_sub(self.last_sweep_us) >= SWEEP_EVERY_US {
            self.last_sweep_us = now;
            let Self { tcp, pipeline, .. } = self;
            tcp.expire(ts, |msg: tcp::Message<'_>| deliver(pipeline, msg));
        }
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

/// Sleeps so that packets leave at their original pace (divided by the speed factor).
struct Pacer {
    factor: Option<f64>,
    origin: Option<(u64, Instant)>,
}

impl Pacer {
    fn new(speed: ReplaySpeed) -> Self {
        let factor = match speed {
            ReplaySpeed::Max => None,
            ReplaySpeed::Factor(f) => Some(f),
        };
        Self { factor, origin: None }
    }

    /// Returns true if it is about to sleep (then sleeps).
    fn wait_until(&mut self, ts: Timestamp) -> bool {
        let Some(factor) = self.factor else { return false };
        let now_us = ts.as_micros();
        let (first_us, start) = *self.origin.get_or_insert((now_us, Instant::now()));
        let due = Duration::from_secs_f64(now_us.saturating_sub(first_us) as f64 / 1e6 / factor);
        let Some(wait) = due.checked_sub(start.elapsed()) else { return false };
        if wait < Duration::from_millis(1) {
            return false;
        }
        thread::sleep(wait);
        true
    }
}
