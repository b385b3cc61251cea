//! HEP listeners. Both decode on the receiving task and hand rows to the batcher queue:
//! UDP with `try_send` (a full queue drops and counts: a datagram cannot wait), TCP with
//! `send().await` (a full queue stops reading, and TCP flow control slows the agent).

pub mod tcp;
pub mod udp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::batch::QueueTx;
use crate::decode::{is_unparsed_sip, Decoder, MessageRow};
use crate::metrics::{DropReason, Metrics};

/// Seconds between two log lines about dropped packets of one kind.
const DROP_LOG_INTERVAL_SECS: u64 = 10;

/// Shared by every listener task.
pub struct Ingest {
    decoder: Decoder,
    tx: QueueTx,
    metrics: Arc<Metrics>,
    auth_log: RateLimit,
    decode_log: RateLimit,
    queue_log: RateLimit,
}

impl Ingest {
    /// Listeners feeding `tx`.
    pub fn new(decoder: Decoder, tx: QueueTx, metrics: Arc<Metrics>) -> Self {
        Self {
            decoder,
            tx,
            metrics,
            auth_log: RateLimit::default(),
            decode_log: RateLimit::default(),
            queue_log: RateLimit::default(),
        }
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Decodes one packet; drops are counted and logged at most every 10 s per kind.
    pub fn decode(&self, packet: &[u8], peer: std::net::SocketAddr) -> Option<MessageRow> {
        let now_us = now_us();
        match self.decoder.decode(packet, now_us) {
            Ok(row) => {
                if is_unparsed_sip(&row) {
                    self.metrics.sip_unparsed.fetch_add(1, Ordering::Relaxed);
                }
                Some(row)
            }
            Err(reason) => {
                self.metrics.drop_n(reason, 1);
                let log = match reason {
                    DropReason::Auth => &self.auth_log,
                    DropReason::Decode => &self.decode_log,
                    _ => return None,
                };
                if let Some(suppressed) = log.allow(now_us / 1_000_000) {
                    tracing::warn!(%peer, reason = reason.label(), suppressed, "HEP packet dropped");
                }
                None
            }
        }
    }

    /// Queues a row without waiting (UDP): a full queue drops and counts it.
    pub fn offer(&self, row: MessageRow) {
        if !self.tx.try_send(row) {
            self.metrics.drop_n(DropReason::QueueFull, 1);
            if let Some(suppressed) = self.queue_log.allow(now_us() / 1_000_000) {
                tracing::warn!(suppressed, "batch queue full: UDP packets dropped (ClickHouse slow or down?)");
            }
        }
    }

    /// Queues rows, waiting for room (TCP). `Err` when the batcher is gone.
    pub async fn push(&self, rows: Vec<MessageRow>) -> Result<(), ()> {
        self.tx.send(rows).await
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Allows one event per interval and counts the ones it suppressed in between.
#[derive(Debug, Default)]
struct RateLimit {
    last_secs: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// `Some(suppressed since the last allowed event)` when this one may be logged.
    fn allow(&self, now_secs: u64) -> Option<u64> {
        let last = self.last_secs.load(Ordering::Relaxed);
        let due = last == 0 || now_secs >= last + DROP_LOG_INTERVAL_SECS;
        if due && self.last_secs.compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Shared handle type for listener tasks.
pub type SharedIngest = Arc<Ingest>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_one_per_interval() {
        let r = RateLimit::default();
        assert_eq!(r.allow(100), Some(0));
        assert_eq!(r.allow(101), None);
        assert_eq!(r.allow(105), None);
        assert_eq!(r.allow(110), Some(2));
    }
}
