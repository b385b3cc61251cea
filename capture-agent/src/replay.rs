//! File replay: the agent's main loop over pcap/pcapng files.
//!
//! Each packet goes through the shared [`Chain`] (decode, TCP reassembly, SIP stage), as
//! in live capture. Capture time drives every timeout (fragments, idle streams) and the
//! optional pacing, so a replay at `max` speed gives the same result every time.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::chain::Chain;
use crate::config::ReplaySpeed;
use crate::flow::Timestamp;
use crate::pipeline::PipelineConfig;
use crate::sender::Batch;
use crate::source::{PcapFile, SourceError};

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

/// The per-packet chain plus the replay pace, kept across files so that counters add up.
pub struct Replay<S: FnMut(Batch)> {
    /// Decoder, TCP reassembler and SIP stage.
    pub chain: Chain<S>,
    speed: ReplaySpeed,
}

impl<S: FnMut(Batch)> Replay<S> {
    /// A replay whose full batches go to `sink`.
    pub fn new(cfg: PipelineConfig, speed: ReplaySpeed, sink: S) -> Self {
        Self { chain: Chain::new(cfg, sink), speed }
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
                self.chain.flush();
            }
            self.chain.packet(pkt.ts, pkt.link_type, pkt.data);
            report.packets += 1;
            if report.packets.is_multiple_of(PROGRESS_EVERY) {
                progress(file.bytes_read());
            }
        }
        report.bytes = file.bytes_read();
        progress(report.bytes);
        Ok(report)
    }

    /// End of input: frames what the streams still hold and sends the last batch.
    pub fn finish(&mut self) {
        self.chain.finish();
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
