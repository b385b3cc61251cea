//! What a replay read, sent and dropped, printed at exit.
//!
//! Every packet and message ends up in exactly one count, so an operator can tell where
//! anything went; only non-zero counts are printed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chain::Chain;
use crate::live::InterfaceReport;
use crate::packet::{self, DropReason, Ignored};
use crate::pipeline::SipCounters;
use crate::replay::FileReport;
use crate::sender::{Batch, SenderReport};
use crate::source::SourceError;
use crate::tcp;

/// The end-of-run report.
#[derive(Default)]
pub struct Summary {
    files: Vec<(PathBuf, FileReport)>,
    unreadable: Vec<(PathBuf, String)>,
    packets: packet::Counters,
    defrag: packet::DefragStats,
    sctp: packet::SctpStats,
    tcp: tcp::Counters,
    sip: SipCounters,
    dedup_evicted: u64,
    interfaces: Vec<InterfaceReport>,
    /// One report per collector.
    pub senders: Vec<SenderReport>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// Records a file that was read (possibly only up to an error).
    pub fn add_file(&mut self, path: &Path, report: FileReport) {
        self.files.push((path.to_path_buf(), report));
    }

    /// Records a file that could not be read at all.
    pub fn add_unreadable(&mut self, path: &Path, error: SourceError) {
        self.unreadable.push((path.to_path_buf(), error.to_string()));
    }

    /// Copies the decoders' and the SIP stage's counters.
    pub fn take_counters<S: FnMut(Batch)>(&mut self, chain: &Chain<S>) {
        self.packets = chain.decoder.counters().clone();
        self.defrag = chain.decoder.defrag_stats();
        self.sctp = chain.decoder.sctp_stats();
        self.tcp = chain.tcp.counters().clone();
        self.sip = chain.pipeline.counters;
        self.dedup_evicted = chain.pipeline.dedup_counts().1;
    }

    /// Records what each live capture read and what the kernel dropped.
    pub fn set_interfaces(&mut self, reports: Vec<InterfaceReport>) {
        self.interfaces = reports;
    }

    /// True when a live capture stopped on an error rather than on request.
    pub fn capture_failed(&self) -> bool {
        self.interfaces.iter().any(|r| r.error.is_some())
    }

    /// True when every file was readable and every message read reached every collector.
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty()
            && self.sip.too_large == 0
            && self.senders.iter().all(|s| s.packets_lost == 0 && s.packets_too_large == 0)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        if self.interfaces.is_empty() {
            let packets: u64 = self.files.iter().map(|(_, r)| r.packets).sum();
            let bytes: u64 = self.files.iter().map(|(_, r)| r.bytes).sum();
            writeln!(
                f,
                "capture-agent: {} file(s), {packets} packets ({:.1} MB) in {secs:.2} s ({:.0} packets/s)",
                self.files.len() + self.unreadable.len(),
                bytes as f64 / 1e6,
                packets as f64 / secs
            )?;
        } else {
            let packets: u64 = self.interfaces.iter().map(|r| r.packets).sum();
            let bytes: u64 = self.interfaces.iter().map(|r| r.bytes).sum();
            writeln!(
                f,
                "capture-agent: live capture on {} interface(s), {packets} packets ({:.1} MB) in {secs:.2} s",
                self.interfaces.len(),
                bytes as f64 / 1e6,
            )?;
        }
        for r in &self.interfaces {
            write!(f, "  capture  {}: packets={}", r.name, r.packets)?;
            match r.kernel {
                // Counted since the capture opened: received passed the kernel filter;
                // dropped found the capture buffer full; if_dropped were lost by the
                // interface or its driver before the capture saw them.
                Some(k) => write!(
                    f,
                    " kernel_received={} kernel_dropped={} if_dropped={}",
                    k.received, k.dropped, k.if_dropped
                )?,
                None => write!(f, " kernel_drops=unknown")?,
            }
            if let Some(e) = &r.error {
                write!(f, " (stopped on error: {e})")?;
            }
            writeln!(f)?;
        }
        for (path, report) in &self.files {
            if let Some(e) = &report.error {
                writeln!(
                    f,
                    "  warning: {}: {e} (the {} packets before it were processed)",
                    path.display(),
                    report.packets
                )?;
            }
        }
        for (path, e) in &self.unreadable {
            writeln!(f, "  error: {}: {e}", path.display())?;
        }
        let s = &self.sip;
        line(
            f,
            "sent",
            &[("sip_messages", s.sip_messages), ("hep_relayed", s.hep_relayed), ("net_events", s.net_events)],
            true,
        )?;
        line(f, "note", &[("sent_compressed_over_64k", s.compressed)], false)?;
        line(
            f,
            "skipped",
            &[
                ("keepalives", s.keepalives + self.tcp.keepalives),
                ("not_sip", s.not_sip),
                ("non_sip_streams", self.tcp.non_sip_streams),
                ("discarded_methods", s.discarded),
                ("duplicates", s.duplicates),
                ("filtered", s.filtered),
            ],
            false,
        )?;
        let ignored: Vec<_> = Ignored::ALL.iter().map(|r| (r.name(), self.packets.ignored(*r))).collect();
        line(f, "ignored", &ignored, false)?;
        let mut dropped: Vec<_> = DropReason::ALL.iter().map(|r| (r.name(), self.packets.dropped(*r))).collect();
        dropped.extend([
            ("bad_hep", s.bad_hep),
            ("sip_too_large_for_hep", s.too_large),
            ("fragments_timed_out", self.defrag.timed_out),
            ("fragments_evicted", self.defrag.evicted),
            ("sctp_messages_abandoned", self.sctp.abandoned),
            ("tcp_gaps_skipped", self.tcp.gaps_skipped),
            ("tcp_junk_bytes", self.tcp.junk_bytes),
            ("tcp_bytes_dropped", self.tcp.bytes_dropped),
            ("tcp_truncated_messages", self.tcp.truncated_messages),
            ("tcp_flows_evicted", self.tcp.flows_evicted),
            ("dedup_evicted", self.dedup_evicted),
        ]);
        line(f, "dropped", &dropped, false)?;
        line(
            f,
            "decoded",
            &[
                ("udp", self.packets.udp),
                ("tcp_segments", self.packets.tcp),
                ("sctp", self.packets.sctp),
                ("ip_datagrams_reassembled", self.defrag.completed),
                ("sctp_messages_reassembled", self.sctp.reassembled),
                ("tcp_out_of_order", self.tcp.out_of_order_segments),
                ("tcp_retransmissions", self.tcp.retransmissions),
                ("websocket_sip", self.tcp.websocket_messages),
                // Every ARP and VRRP frame; only gratuitous ARP and advertisements are sent.
                ("arp_vrrp", self.packets.events),
                ("snaplen_truncated", self.packets.truncated),
            ],
            false,
        )?;
        for r in &self.senders {
            write!(f, "  to {}: {} HEP packets ({:.1} MB)", r.server, r.packets_sent, r.bytes_sent as f64 / 1e6)?;
            if r.packets_lost > 0 {
                write!(f, ", {} LOST", r.packets_lost)?;
            }
            if r.packets_too_large > 0 {
                write!(f, ", {} too large for UDP", r.packets_too_large)?;
            }
            if r.reconnects > 0 {
                write!(f, ", {} reconnects", r.reconnects)?;
            }
            if let Some(e) = &r.last_error {
                write!(f, " (last error: {e})")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// One labelled line of `name value` pairs; zero values are left out unless `all`.
fn line(f: &mut fmt::Formatter<'_>, label: &str, items: &[(&str, u64)], all: bool) -> fmt::Result {
    let shown: Vec<String> = items.iter().filter(|(_, v)| all || *v > 0).map(|(n, v)| format!("{n}={v}")).collect();
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(f, "  {label:<8} {}", shown.join(" "))
}
