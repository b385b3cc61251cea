//! Counters the collector exports at `/metrics` (Prometheus text format).
//!
//! Hand-rolled atomics: a dozen counters do not justify a metrics registry and its
//! dependency tree. Names follow `collector_<noun>_<unit>_total`; drop reasons are a
//! fixed set ([`DropReason`]) so label cardinality stays bounded.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a received packet did not reach ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not a HEP packet, or a HEP packet that does not decode.
    Decode,
    /// Missing or wrong HEP auth key.
    Auth,
    /// The batch queue was full (UDP only: TCP waits instead).
    QueueFull,
    /// ClickHouse rejected the batch as bad data (never retried).
    InsertRejected,
    /// Retries ran out while shutting down.
    Shutdown,
    /// A SIP keep-alive (CRLF) payload: nothing to store.
    Keepalive,
}

impl DropReason {
    /// Every reason, in export order.
    pub const ALL: [DropReason; 6] =
        [Self::Decode, Self::Auth, Self::QueueFull, Self::InsertRejected, Self::Shutdown, Self::Keepalive];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Auth => "auth",
            Self::QueueFull => "queue_full",
            Self::InsertRejected => "insert_rejected",
            Self::Shutdown => "shutdown",
            Self::Keepalive => "keepalive",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// All counters. Shared as `Arc<Metrics>`; every update is a relaxed atomic add.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HEP packets received over UDP.
    pub received_udp: AtomicU64,
    /// HEP packets received over TCP.
    pub received_tcp: AtomicU64,
    /// SIP payloads whose start line did not scan (stored anyway, with the raw bytes).
    pub sip_unparsed: AtomicU64,
    /// Rows ClickHouse acknowledged.
    pub stored: AtomicU64,
    /// Batches ClickHouse acknowledged.
    pub batches: AtomicU64,
    /// Failed insert attempts (each retry counts once).
    pub insert_errors: AtomicU64,
    /// TCP connections accepted.
    pub tcp_connections: AtomicU64,
    /// TCP connections closed because of a framing error.
    pub tcp_frame_errors: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Metrics {
    /// Adds `n` to the drop counter for `reason`.
    pub fn drop_n(&self, reason: DropReason, n: u64) {
        self.dropped[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Current drop count for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    /// Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "collector_hep_received_packets_total",
            "HEP packets received.",
            &[("transport=\"udp\"", load(&self.received_udp)), ("transport=\"tcp\"", load(&self.received_tcp))],
        );
        let dropped: Vec<(String, u64)> =
            DropReason::ALL.iter().map(|r| (format!("reason=\"{}\"", r.label()), self.dropped(*r))).collect();
        let dropped_refs: Vec<(&str, u64)> = dropped.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(&mut out, "collector_dropped_packets_total", "Packets not stored, by reason.", &dropped_refs);
        let single = [
            (
                "collector_sip_unparsed_messages_total",
                "SIP payloads with no valid start line (stored raw).",
                &self.sip_unparsed,
            ),
            ("collector_stored_rows_total", "Rows acknowledged by ClickHouse.", &self.stored),
            ("collector_insert_batches_total", "Batches acknowledged by ClickHouse.", &self.batches),
            ("collector_insert_errors_total", "Failed insert attempts.", &self.insert_errors),
            ("collector_tcp_connections_total", "HEP TCP connections accepted.", &self.tcp_connections),
            (
                "collector_tcp_frame_errors_total",
                "HEP TCP connections closed on a framing error.",
                &self.tcp_frame_errors,
            ),
        ];
        for (name, help, c) in single {
            counter(&mut out, name, help, &[("", load(c))]);
        }
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, series: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in series {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_and_plain_counters() {
        let m = Metrics::default();
        m.drop_n(DropReason::Auth, 3);
        m.stored.fetch_add(7, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("collector_dropped_packets_total{reason=\"auth\"} 3\n"), "{text}");
        assert!(text.contains("collector_stored_rows_total 7\n"), "{text}");
        assert!(text.contains("# TYPE collector_hep_received_packets_total counter\n"));
    }
}
