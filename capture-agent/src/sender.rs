//! Delivery of encoded HEP packets to collectors.
//!
//! The capture side encodes HEP packets back to back into a [`Batch`] (one buffer, no
//! allocation per packet) and hands full batches to [`Senders`]. Each collector has its
//! own thread that owns its socket behind a bounded queue, so a slow or absent collector
//! never blocks the others. What happens when a queue is full is a policy ([`WhenFull`]):
//! a file replay waits (nothing read may be lost), a live capture drops and counts.
//!
//! TCP writes a batch with one `write_all`; UDP sends one datagram per packet.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::Transport;

/// Flush a batch once it holds this many bytes. Large writes amortise syscalls; 256 KiB
/// keeps the latency of a live capture batch small at low rates too.
pub const BATCH_BYTES: usize = 256 * 1024;

/// Batches queued per collector before [`WhenFull`] applies (64 x 256 KiB = 16 MiB).
pub const QUEUE_BATCHES: usize = 64;

/// Largest HEP packet a UDP datagram can carry over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// How long a sender keeps trying to (re)connect before it counts a batch as lost.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// How long to wait, at exit, for a TCP collector to confirm it read everything.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// HEP packets encoded back to back.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// The packets' bytes.
    pub bytes: Vec<u8>,
    /// End offset of each packet in `bytes`.
    pub ends: Vec<u32>,
}

impl Batch {
    /// An empty batch with room for [`BATCH_BYTES`].
    pub fn with_capacity() -> Self {
        Self { bytes: Vec::with_capacity(BATCH_BYTES + 64 * 1024), ends: Vec::with_capacity(1024) }
    }

    /// Marks the bytes appended since the last call as one packet.
    pub fn end_packet(&mut self) {
        self.ends.push(self.bytes.len() as u32);
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// True when the batch should be flushed.
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= BATCH_BYTES
    }

    fn packets(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(s, e)| &self.bytes[s as usize..e as usize])
    }
}

/// What to do when a collector's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for room (file replay: the reader slows down, nothing is lost).
    Block,
    /// Drop the batch for that collector and count it (live capture: the kernel ring
    /// cannot be paused, so losing deliberately beats losing at random).
    DropNewest,
}

/// What one collector's sender did.
#[derive(Debug, Clone, Default)]
pub struct SenderReport {
    /// The collector, as configured.
    pub server: String,
    /// HEP packets written to the socket.
    pub packets_sent: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Packets lost: the collector stayed unreachable, or its queue was full.
    pub packets_lost: u64,
    /// Packets too large for one UDP datagram.
    pub packets_too_large: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// For TCP: the collector closed the stream after reading everything we sent.
    pub drained: bool,
    /// The last error seen, if any.
    pub last_error: Option<String>,
}

struct Worker {
    tx: SyncSender<Arc<Batch>>,
    handle: JoinHandle<SenderReport>,
    dropped: u64,
}

/// One sender thread per collector.
pub struct Senders {
    workers: Vec<Worker>,
    when_full: WhenFull,
}

impl Senders {
    /// Resolves every server address and starts its sender thread. Connections are made
    /// by the threads, so an unreachable collector does not fail start-up.
    pub fn start(servers: &[String], transport: Transport, when_full: WhenFull) -> io::Result<Self> {
        let mut workers = Vec::new();
        for server in servers {
            let addr = resolve(server)?;
            let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
            let name = server.clone();
            let handle = thread::Builder::new().name(format!("hep-{server}")).spawn(move || match transport {
                Transport::Tcp => run_tcp(name, addr, rx),
                Transport::Udp => run_udp(name, addr, rx),
            })?;
            workers.push(Worker { tx, handle, dropped: 0 });
        }
        Ok(Self { workers, when_full })
    }

    /// Hands a batch to every collector.
    pub fn submit(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let packets = batch.len() as u64;
        let batch = Arc::new(batch);
        for w in &mut self.workers {
            let sent = match self.when_full {
                WhenFull::Block => w.tx.send(batch.clone()).is_ok(),
                WhenFull::DropNewest => match w.tx.try_send(batch.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
                },
            };
            if !sent {
                w.dropped += packets;
            }
        }
    }

    /// Closes the queues, waits for every sender to deliver what it holds, and reports.
    pub fn finish(self) -> Vec<SenderReport> {
        self.workers
            .into_iter()
            .map(|w| {
                drop(w.tx);
                let mut report = w.handle.join().unwrap_or_else(|_| SenderReport {
                    last_error: Some("sender thread panicked".into()),
                    ..SenderReport::default()
                });
                report.packets_lost += w.dropped;
                report
            })
            .collect()
    }
}

fn resolve(server: &str) -> io::Result<SocketAddr> {
    server.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("HEP server {server:?} resolves to no address"))
    })
}

fn run_tcp(server: String, addr: SocketAddr, rx: Receiver<Arc<Batch>>) -> SenderReport {
    let mut report = SenderReport { server, ..SenderReport::default() };
    let mut conn: Option<TcpStream> = None;
    let mut connected_once = false;
    for batch in rx {
        if !deliver_tcp(&mut report, &mut conn, &mut connected_once, addr, &batch) {
            report.packets_lost += batch.len() as u64;
        }
    }
    if let Some(c) = conn {
        report.drained = drain(c);
    }
    report
}

/// Writes one batch, connecting first if needed. A failed write is retried once on a
/// fresh connection: the batch is resent whole, so the stream stays framed (the collector
/// may see a few packets twice, never a torn one).
fn deliver_tcp(
    report: &mut SenderReport,
    conn: &mut Option<TcpStream>,
    connected_once: &mut bool,
    addr: SocketAddr,
    batch: &Batch,
) -> bool {
    for _attempt in 0..2 {
        if conn.is_none() {
            match connect_with_backoff(addr) {
                Ok(c) => {
                    report.reconnects += u64::from(*connected_once);
                    *connected_once = true;
                    *conn = Some(c);
                }
                Err(e) => {
                    report.last_error = Some(format!("connect {addr}: {e}"));
                    return false;
                }
            }
        }
        let Some(c) = conn.as_mut() else { return false };
        match c.write_all(&batch.bytes) {
            Ok(()) => {
                report.packets_sent += batch.len() as u64;
                report.bytes_sent += batch.bytes.len() as u64;
                return true;
            }
            Err(e) => {
                report.last_error = Some(format!("write to {addr}: {e}"));
                *conn = None;
            }
        }
    }
    false
}

fn connect_with_backoff(addr: SocketAddr) -> io::Result<TcpStream> {
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let mut delay = Duration::from_millis(50);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(c) => {
                c.set_nodelay(true)?;
                return Ok(c);
            }
            Err(e) if Instant::now() + delay > deadline => return Err(e),
            Err(_) => {
                thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Half-closes the stream and waits until the collector closes its side: then it has
/// read everything we wrote. Returns false if it did not within [`DRAIN_TIMEOUT`].
fn drain(mut conn: TcpStream) -> bool {
    if conn.flush().is_err() || conn.shutdown(Shutdown::Write).is_err() {
        return false;
    }
    if conn.set_read_timeout(Some(DRAIN_TIMEOUT)).is_err() {
        return false;
    }
    let mut sink = [0u8; 4096];
    loop {
        match conn.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

fn run_udp(server: String, addr: SocketAddr, rx: Receiver<Arc<Batch>>) -> SenderReport {
    let mut report = SenderReport { server, ..SenderReport::default() };
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal address");
    let socket = match UdpSocket::bind(bind).and_then(|s| s.connect(addr).map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            report.last_error = Some(format!("udp socket for {addr}: {e}"));
            for batch in rx {
                report.packets_lost += batch.len() as u64;
            }
            return report;
        }
    };
    for batch in rx {
        for packet in batch.packets() {
            if packet.len() > MAX_UDP_PAYLOAD {
                report.packets_too_large += 1;
                continue;
            }
            match send_datagram(&socket, packet) {
                Ok(refused) => {
                    report.packets_sent += 1;
                    report.bytes_sent += packet.len() as u64;
                    if refused > 0 {
                        // Each refusal reports an earlier datagram the collector's host
                        // rejected: that one is lost.
                        report.packets_lost += refused;
                        report.last_error = Some(format!(
                            "{addr} refused datagrams (ICMP port unreachable): is the collector running?"
                        ));
                    }
                }
                Err(e) => {
                    report.packets_lost += 1;
                    report.last_error = Some(format!("send to {addr}: {e}"));
                }
            }
        }
    }
    report
}

/// Sends one datagram, retrying while the local socket buffer is momentarily full.
/// Returns how many refusals (ICMP port unreachable, reported on a later send for an
/// earlier datagram) were seen on the way.
fn send_datagram(socket: &UdpSocket, packet: &[u8]) -> io::Result<u64> {
    let mut refused = 0;
    for _ in 0..100 {
        match socket.send(packet) {
            Ok(_) => return Ok(refused),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => refused += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(105) => {
                thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::WouldBlock, "socket buffer full"))
}
