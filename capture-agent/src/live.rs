//! Live capture through libpcap.
//!
//! # How it runs
//!
//! One capture thread per interface reads frames from libpcap in immediate mode (each
//! frame is handed over as soon as the kernel has it, rather than when a buffer block
//! fills) with `pcap_dispatch`, which returns whenever it has read what the kernel holds.
//! It copies frames into small chunks and passes them over one bounded channel to the
//! calling thread, which runs the single shared [`Chain`] (decode, TCP reassembly, SIP
//! stage) exactly as a file replay does.
//!
//! Why one chain rather than one per thread: `--dedup` exists for copies of the same
//! packet seen on two interfaces (a VLAN and its parent), and both directions of a TCP
//! stream or all fragments of a datagram may arrive on different interfaces; only one
//! shared state sees them all. Copying a frame into a chunk costs far less than decoding
//! it, and the chunking keeps channel operations to one per up to [`CHUNK_PACKETS`]
//! frames. When the chain falls behind, the channel fills, the capture threads wait and
//! the kernel buffer absorbs the burst; what it cannot hold the kernel drops and counts
//! (reported as `kernel_dropped`), so no loss is silent.
//!
//! # Latency
//!
//! A capture thread hands a chunk over when it is full, when it spans 10 ms of capture
//! time, or as soon as it has read everything the kernel holds. The chain flushes its HEP
//! batch whenever no chunk is waiting, and at least every [`FLUSH_INTERVAL`] under
//! steady load, so a message reaches the sender within about 100 ms. The sender drops
//! (and counts) batches when a collector's queue is full: the kernel cannot be paused.
//!
//! # Stopping
//!
//! When the stop flag is set (SIGINT/SIGTERM), the chain's thread, which looks at it at
//! least every 50 ms, wakes each capture thread with `pcap_breakloop` (a thread blocked on
//! a quiet interface would not wake otherwise). Each thread switches its capture to
//! non-blocking and reads what the kernel still holds (for at most [`STOP_DRAIN`]), so
//! frames that arrived before the signal are not lost, then reads the kernel's counters
//! (`pcap_stats`) and ends. The caller then flushes the chain and the senders.
//!
//! # Privileges
//!
//! Opening a capture needs CAP_NET_RAW (packet socket), and CAP_NET_ADMIN for
//! promiscuous mode and some buffer settings; root is not needed (see
//! `capture-agent.service`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use pcap::{Active, BreakLoop, Capture};

use crate::chain::Chain;
use crate::config::LiveOptions;
use crate::flow::Timestamp;
use crate::sender::Batch;
use crate::source::LinkType;

/// libpcap read timeout. In immediate mode Linux delivers each frame at once anyway, and
/// libpcap keeps waiting past the timeout on a quiet link, so this is only a bound for
/// platforms that honour it; stopping relies on `pcap_breakloop`.
pub const POLL_TIMEOUT_MS: i32 = 50;

/// How often the chain's thread looks at the stop flag while no frame arrives.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Most frames one `pcap_dispatch` call reads, so a busy capture still returns now and
/// then to look at the stop flag.
const DISPATCH_MAX: usize = 1024;

/// Longest time HEP packets wait in a partly filled batch under steady traffic.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// After a stop request, longest time spent reading what the kernel still holds.
pub const STOP_DRAIN: Duration = Duration::from_millis(500);

/// Frames per chunk handed from a capture thread to the chain.
pub const CHUNK_PACKETS: usize = 64;

/// Bytes per chunk (a chunk is handed over once it holds this much).
const CHUNK_BYTES: usize = 256 * 1024;

/// Capture time one chunk may span before it is handed over.
const CHUNK_SPAN_US: u64 = 10_000;

/// Chunks queued between the capture threads and the chain.
const QUEUE_CHUNKS: usize = 256;

/// The kernel's counters for one capture (`pcap_stats`), since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelStats {
    /// Frames that passed the kernel filter.
    pub received: u64,
    /// Frames dropped because the capture buffer was full.
    pub dropped: u64,
    /// Frames dropped by the interface or its driver (not known on every interface).
    pub if_dropped: u64,
}

/// What one interface's capture did.
#[derive(Debug, Clone, Default)]
pub struct InterfaceReport {
    /// The interface, as given.
    pub name: String,
    /// Frames read from libpcap.
    pub packets: u64,
    /// Captured bytes of those frames.
    pub bytes: u64,
    /// The kernel's counters at the end, if libpcap could read them.
    pub kernel: Option<KernelStats>,
    /// Why the capture stopped before it was asked to, if it did.
    pub error: Option<String>,
}

/// An opened (activated, filtered) capture on one interface.
pub struct LiveCapture {
    name: String,
    link: LinkType,
    filter: String,
    cap: Capture<Active>,
}

impl LiveCapture {
    /// Opens `iface` with the given options and installs the kernel filter, which never
    /// lets through the agent's own HEP traffic to `collectors` (see [`own_traffic_bpf`]).
    pub fn open(iface: &str, opts: &LiveOptions, collectors: &[SocketAddr]) -> Result<Self, String> {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let cap = Capture::from_device(iface)
            .and_then(|c| {
                c.snaplen(clamp(opts.snaplen))
                    .promisc(opts.promiscuous)
                    .immediate_mode(true)
                    .timeout(POLL_TIMEOUT_MS)
                    .buffer_size(clamp(opts.buffer_size))
                    .open()
            })
            .map_err(|e| open_error(iface, &e))?;
        let link = LinkType::from(cap.get_datalink().0 as u32);
        let filter = with_exclusions(opts.kernel_filter(link == LinkType::Ethernet), collectors);
        let mut capture = Self { name: iface.to_string(), link, cap, filter };
        if !capture.filter.is_empty() {
            capture
                .cap
                .filter(&capture.filter, true)
                .map_err(|e| format!("bad --capture-filter {:?} on {iface}: {e}", capture.filter))?;
        }
        Ok(capture)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel filter installed (empty: none).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The link type libpcap reports (`any` gives Linux cooked capture).
    pub fn link_type(&self) -> LinkType {
        self.link
    }
}

/// BPF for the agent's own output: anything to or from a collector's HEP port, and every
/// non-first fragment to or from a collector (a fragmented HEP datagram would otherwise
/// be reassembled and relayed). Capturing it would feed each HEP packet back in as a new
/// one: on `any`, or on the interface towards the collector, an endless loop.
pub fn own_traffic_bpf(collectors: &[SocketAddr]) -> Option<String> {
    let clauses: Vec<String> = collectors
        .iter()
        .map(|a| format!("(host {} and (port {} or (ip and ip[6:2] & 0x1fff != 0)))", a.ip(), a.port()))
        .collect();
    (!clauses.is_empty()).then(|| clauses.join(" or "))
}

fn with_exclusions(filter: String, collectors: &[SocketAddr]) -> String {
    match (own_traffic_bpf(collectors), filter.is_empty()) {
        (None, _) => filter,
        (Some(own), true) => format!("not ({own})"),
        // First: a `vlan` in the filter shifts the offsets of everything after it.
        (Some(own), false) => format!("not ({own}) and ({filter})"),
    }
}

fn open_error(iface: &str, e: &pcap::Error) -> String {
    let text = e.to_string();
    let hint = if text.contains("ermitted") || text.contains("ermission") {
        " (live capture needs CAP_NET_RAW and CAP_NET_ADMIN: run as root or see capture-agent.service)"
    } else {
        ""
    };
    format!("cannot capture on {iface}: {text}{hint}")
}

/// Frames copied out of libpcap's buffer, back to back.
struct Chunk {
    link: LinkType,
    bytes: Vec<u8>,
    /// Capture time and end offset in `bytes` of each frame.
    frames: Vec<(Timestamp, usize)>,
}

impl Chunk {
    fn new(link: LinkType) -> Self {
        Self { link, bytes: Vec::with_capacity(16 * 1024), frames: Vec::with_capacity(CHUNK_PACKETS) }
    }

    fn push(&mut self, ts: Timestamp, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.frames.push((ts, self.bytes.len()));
    }

    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Full, or old enough (in capture time) to hand over.
    fn is_ready(&self, now: Timestamp) -> bool {
        let first = self.frames.first().map_or(now, |(ts, _)| *ts);
        self.frames.len() >= CHUNK_PACKETS
            || self.bytes.len() >= CHUNK_BYTES
            || now.as_micros().saturating_sub(first.as_micros()) >= CHUNK_SPAN_US
    }

    fn frames(&self) -> impl Iterator<Item = (Timestamp, &[u8])> {
        let starts = std::iter::once(0).chain(self.frames.iter().map(|(_, end)| *end));
        starts.zip(&self.frames).map(|(start, (ts, end))| (*ts, &self.bytes[start..*end]))
    }
}

/// Captures on every interface until `stop` is set (or every capture failed), running
/// each frame through `chain`. Returns one report per capture, in the order given. The
/// caller then calls [`Chain::finish`] and flushes its senders.
pub fn run<S: FnMut(Batch)>(
    captures: Vec<LiveCapture>,
    chain: &mut Chain<S>,
    stop: &AtomicBool,
) -> Vec<InterfaceReport> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(QUEUE_CHUNKS);
    thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut breakers = Vec::new();
        for mut capture in captures {
            let name = capture.name.clone();
            breakers.push(capture.cap.breakloop_handle());
            let tx = tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn_scoped(scope, move || capture_loop(capture, &tx, stop));
            handles.push((name, spawned));
        }
        drop(tx);
        pump(&rx, chain, stop, &breakers);
        handles
            .into_iter()
            .map(|(name, spawned)| {
                let failed =
                    |why: String| InterfaceReport { name: name.clone(), error: Some(why), ..Default::default() };
                match spawned {
                    Ok(handle) => handle.join().unwrap_or_else(|_| failed("capture thread panicked".into())),
                    Err(e) => failed(format!("cannot start capture thread: {e}")),
                }
            })
            .collect()
    })
}

/// The chain's side: runs chunks through the chain until every capture thread is done.
/// It also turns the stop flag into `pcap_breakloop` calls: a capture thread blocked on
/// a quiet interface would otherwise never look at the flag (libpcap on Linux keeps
/// polling past its read timeout until a frame arrives).
fn pump<S: FnMut(Batch)>(rx: &Receiver<Chunk>, chain: &mut Chain<S>, stop: &AtomicBool, breakers: &[BreakLoop]) {
    let mut last_flush = Instant::now();
    let mut broken = false;
    loop {
        if !broken && stop.load(Ordering::Relaxed) {
            breakers.iter().for_each(BreakLoop::breakloop);
            broken = true;
        }
        let chunk = match rx.try_recv() {
            Ok(chunk) => chunk,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Nothing waiting: send what we hold now rather than let it age.
                chain.flush();
                last_flush = Instant::now();
                match rx.recv_timeout(STOP_CHECK) {
                    Ok(chunk) => chunk,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        for (ts, frame) in chunk.frames() {
            chain.packet(ts, chunk.link, frame);
        }
        if last_flush.elapsed() >= FLUSH_INTERVAL {
            chain.flush();
            last_flush = Instant::now();
        }
    }
}

/// A capture thread's chunk under construction and where it goes.
struct Collector<'a> {
    chunk: Chunk,
    tx: &'a SyncSender<Chunk>,
    packets: u64,
    bytes: u64,
    /// The chain has gone away (it only does when the agent is ending).
    closed: bool,
}

impl Collector<'_> {
    fn frame(&mut self, frame: &pcap::Packet<'_>) {
        let tv = frame.header.ts;
        let ts = Timestamp::new(tv.tv_sec.max(0) as u64, tv.tv_usec.clamp(0, 999_999) as u32);
        self.packets += 1;
        self.bytes += frame.data.len() as u64;
        self.chunk.push(ts, frame.data);
        if self.chunk.is_ready(ts) {
            self.hand_over();
        }
    }

    /// Sends the chunk (if any) to the chain and starts a new one.
    fn hand_over(&mut self) {
        if self.chunk.is_empty() || self.closed {
            return;
        }
        let link = self.chunk.link;
        let full = std::mem::replace(&mut self.chunk, Chunk::new(link));
        self.closed = self.tx.send(full).is_err();
    }
}

/// One capture thread: reads frames into chunks until stopped, drains what the kernel
/// still holds, then reads the kernel's counters.
///
/// `pcap_dispatch` returns once it has read what the ring holds (at most
/// [`DISPATCH_MAX`] frames), so a partial chunk is handed over as soon as the thread has
/// caught up with the link: nothing waits for more traffic to push it out.
fn capture_loop(capture: LiveCapture, tx: &SyncSender<Chunk>, stop: &AtomicBool) -> InterfaceReport {
    let LiveCapture { name, link, mut cap, .. } = capture;
    let mut report = InterfaceReport { name, ..Default::default() };
    let mut out = Collector { chunk: Chunk::new(link), tx, packets: 0, bytes: 0, closed: false };
    while !stop.load(Ordering::Relaxed) && !out.closed {
        match cap.dispatch(Some(DISPATCH_MAX), |frame| out.frame(&frame)) {
            Ok(_) => out.hand_over(),
            // pcap_breakloop: the stop flag is set.
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        }
    }
    if report.error.is_none() {
        // Frames that arrived before the stop request: read them without blocking.
        match cap.setnonblock() {
            Ok(nonblocking) => {
                cap = nonblocking;
                let deadline = Instant::now() + STOP_DRAIN;
                let mut errors = 0;
                while Instant::now() < deadline && !out.closed {
                    match cap.dispatch(Some(DISPATCH_MAX), |frame| out.frame(&frame)) {
                        Ok(0) => break,
                        Ok(_) => out.hand_over(),
                        // The first one may be the pending breakloop.
                        Err(_) if errors == 0 => errors += 1,
                        Err(_) => break,
                    }
                }
            }
            Err(e) => {
                report.error = Some(format!("cannot drain the capture at stop: {e}"));
                out.hand_over();
                report.packets = out.packets;
                report.bytes = out.bytes;
                return report;
            }
        }
    }
    out.hand_over();
    report.packets = out.packets;
    report.bytes = out.bytes;
    report.kernel = cap.stats().ok().map(|s| KernelStats {
        received: u64::from(s.received),
        dropped: u64::from(s.dropped),
        if_dropped: u64::from(s.if_dropped),
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_capture_filter;
    use pcap::Linktype;

    /// The default filters compile for the link types a live capture gives (Ethernet on
    /// a NIC or veth, Linux cooked v1/v2 on `any`, raw IP on tunnels: DLT 12 on Linux).
    #[test]
    fn default_filters_compile() {
        for link in [Linktype::ETHERNET, Linktype::LINUX_SLL, Linktype(276), Linktype(12)] {
            let dead = Capture::dead(link).unwrap();
            let ethernet = link == Linktype::ETHERNET;
            let filters = [false, true].into_iter().flat_map(|events| {
                [
                    default_capture_filter(None, ethernet, events),
                    default_capture_filter(Some((5060, 5090)), ethernet, events),
                ]
            });
            for filter in filters {
                if let Err(e) = dead.compile(&filter, true) {
                    panic!("{filter:?} on {link:?}: {e}");
                }
            }
        }
    }

    /// A port-only filter drops non-first fragments; ours keeps them, and still drops
    /// other ports. Checked against the compiled program with hand-made frames.
    #[test]
    fn port_range_filter_keeps_fragments() {
        let dead = Capture::dead(Linktype::ETHERNET).unwrap();
        let ours = dead.compile(&default_capture_filter(Some((5060, 5060)), true, true), true).unwrap();
        let port_only = dead.compile("udp portrange 5060-5060", true).unwrap();
        let first = udp_frame(0x2000, 5060); // MF set, offset 0: has the UDP header
        let later = udp_frame(0x00b9, 0); // offset 185*8: no UDP header
        let rtp = udp_frame(0, 40000);
        assert!(port_only.filter(&first) && !port_only.filter(&later), "the problem this avoids");
        assert!(ours.filter(&first) && ours.filter(&later));
        assert!(!ours.filter(&rtp), "other ports stay in the kernel");
        let everything = dead.compile(&default_capture_filter(None, true, true), true).unwrap();
        assert!(everything.filter(&first) && everything.filter(&later) && everything.filter(&rtp));
    }

    /// ARP and VRRP pass the default filters when network events are on (port range or
    /// not, tagged or not), and stay in the kernel when they are off.
    #[test]
    fn net_events_pass_the_default_filters() {
        let dead = Capture::dead(Linktype::ETHERNET).unwrap();
        let arp = frame(0x0806, &[0u8; 28]);
        let mut vrrp = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 255, 112, 0, 0, 10, 0, 0, 1, 224, 0, 0, 18];
        vrrp.extend_from_slice(&[0x21, 51, 100, 0, 0, 1, 0, 0]);
        let vrrp = frame(0x0800, &vrrp);
        let mut tagged_arp = arp[..12].to_vec();
        tagged_arp.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
        tagged_arp.extend_from_slice(&arp[12..]);
        for range in [None, Some((5060, 5090))] {
            let on = dead.compile(&default_capture_filter(range, true, true), true).unwrap();
            assert!(on.filter(&arp) && on.filter(&vrrp) && on.filter(&tagged_arp), "{range:?}");
            let off = dead.compile(&default_capture_filter(range, true, false), true).unwrap();
            assert!(!off.filter(&arp) && !off.filter(&vrrp), "{range:?}");
        }
    }

    #[test]
    fn own_hep_traffic_is_excluded() {
        let dead = Capture::dead(Linktype::ETHERNET).unwrap();
        let collectors: Vec<SocketAddr> = vec!["10.0.0.2:9060".parse().unwrap(), "[::1]:9061".parse().unwrap()];
        let filter = with_exclusions(default_capture_filter(None, true, true), &collectors);
        let program = dead.compile(&filter, true).unwrap();
        assert!(program.filter(&udp_frame(0, 5060)), "SIP to 10.0.0.2 still passes");
        assert!(!program.filter(&udp_frame(0, 9060)), "HEP to the collector does not");
        assert!(!program.filter(&udp_frame(0x00b9, 0)), "nor a later fragment to the collector");
        assert_eq!(with_exclusions(String::new(), &[]), "");
        dead.compile(&with_exclusions(String::new(), &collectors), true).unwrap();
    }

    /// An Ethernet frame of `ethertype` around `payload`.
    fn frame(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Ethernet + IPv4 (flags/offset as given) + 8 bytes of UDP header or payload.
    fn udp_frame(frag: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 36, 0x12, 0x34]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&40_001u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 16, 0, 0]);
        f.extend_from_slice(&[0u8; 8]);
        f
    }
}
