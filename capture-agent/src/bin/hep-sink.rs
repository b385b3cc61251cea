//! `hep-sink`: receives HEP over UDP and TCP, decodes it and counts (or prints) what
//! arrived. For checking an agent's output, benchmarks, and debugging a HEP feed.
//!
//! Prints `listening on ADDR` first, then, at exit, one JSON summary line (`sip` counts
//! SIP payloads, `net_events` payload type 0x70: gratuitous ARP and VRRP). Exits at end of
//! standard input, once no TCP stream is open and (with `--idle-exit-ms N`) nothing has
//! arrived for N ms. A test closes stdin after the agent exited: an agent exits only after
//! the sink has read its whole TCP stream, so the counts are final.

use std::collections::HashSet;
use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use wire::hep::{self, PayloadType};

#[derive(Default)]
struct Totals {
    packets: u64,
    bytes: u64,
    sip: u64,
    net_events: u64,
    bad: u64,
    call_ids: HashSet<Vec<u8>>,
}

struct Shared {
    totals: Mutex<Totals>,
    last_activity_ms: AtomicU64,
    open_streams: AtomicU64,
    print: bool,
    count_only: bool,
    start: Instant,
}

impl Shared {
    fn touch(&self) {
        self.last_activity_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Decodes and counts a run of HEP packets.
    fn record<'a>(&self, packets: impl Iterator<Item = &'a [u8]>) {
        let mut t = self.totals.lock().expect("totals lock");
        for p in packets {
            t.packets += 1;
            t.bytes += p.len() as u64;
            if self.count_only {
                continue;
            }
            match hep::decode(p) {
                Ok(h) if h.payload_type == PayloadType::Sip => {
                    t.sip += 1;
                    if let Ok(m) = wire::sip::scan(&h.payload) {
                        if let Some(cid) = m.call_id {
                            if !t.call_ids.contains(cid) {
                                t.call_ids.insert(cid.to_vec());
                            }
                        }
                        if self.print {
                            print_message(&h, &m);
                        }
                    }
                }
                Ok(h) if h.payload_type == PayloadType::NetEvent => {
                    t.net_events += 1;
                    if self.print {
                        print_net_event(&h);
                    }
                }
                Ok(_) => {}
                Err(_) => t.bad += 1,
            }
        }
        drop(t);
        self.touch();
    }
}

fn print_message(h: &hep::Hep<'_>, m: &wire::sip::SipMessage<'_>) {
    let what = match m.start {
        wire::sip::StartLine::Request { method, .. } => String::from_utf8_lossy(method).into_owned(),
        wire::sip::StartLine::Response { code, .. } => code.to_string(),
    };
    println!(
        "{}.{:06} {}:{} -> {}:{} {} {}",
        h.ts_sec,
        h.ts_usec,
        h.src_ip,
        h.src_port,
        h.dst_ip,
        h.dst_port,
        what,
        String::from_utf8_lossy(m.call_id.unwrap_or_default())
    );
}

/// `TIME SRC:PORT -> DST:PORT net-event proto=P node=ID/NAME JSON`: the whole envelope,
/// so a test can check it.
fn print_net_event(h: &hep::Hep<'_>) {
    println!(
        "{}.{:06} {}:{} -> {}:{} net-event proto={} node={}/{} {}",
        h.ts_sec,
        h.ts_usec,
        h.src_ip,
        h.src_port,
        h.dst_ip,
        h.dst_port,
        h.ip_proto,
        h.capture_id.unwrap_or(0),
        String::from_utf8_lossy(h.node_name.unwrap_or_default()),
        String::from_utf8_lossy(&h.payload)
    );
}

struct Args {
    listen: String,
    idle_exit_ms: Option<u64>,
    print: bool,
    count_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { listen: "127.0.0.1:9060".into(), idle_exit_ms: None, print: false, count_only: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => a.listen = it.next().ok_or("--listen needs ADDR")?,
            "--idle-exit-ms" => {
                a.idle_exit_ms = Some(it.next().and_then(|v| v.parse().ok()).ok_or("--idle-exit-ms needs a number")?)
            }
            "--print" => a.print = true,
            "--count-only" => a.count_only = true,
            "-h" | "--help" => {
                println!(
                    "usage: hep-sink [--listen ADDR] [--idle-exit-ms N] [--print] [--count-only]\n\
                     Receives HEP on UDP and TCP ADDR (port 0 picks one), prints `listening on ADDR`.\n\
                     At end of stdin, once no TCP stream is open (and nothing arrived for N ms),\n\
                     prints a JSON summary and exits. --count-only skips decoding (benchmarks)."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("hep-sink: {e}");
        std::process::exit(2)
    });
    let tcp = TcpListener::bind(&args.listen).unwrap_or_else(|e| fail(&format!("bind tcp {}: {e}", args.listen)));
    let addr = tcp.local_addr().expect("bound address");
    let udp = UdpSocket::bind(addr).unwrap_or_else(|e| fail(&format!("bind udp {addr}: {e}")));
    let shared = Arc::new(Shared {
        totals: Mutex::default(),
        last_activity_ms: AtomicU64::new(0),
        open_streams: AtomicU64::new(0),
        print: args.print,
        count_only: args.count_only,
        start: Instant::now(),
    });
    println!("listening on {addr}");
    io::stdout().flush().ok();

    let s = shared.clone();
    thread::spawn(move || serve_udp(&udp, &s));
    let s = shared.clone();
    thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            s.open_streams.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            thread::spawn(move || {
                serve_tcp(conn, &s);
                s.open_streams.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    let stdin_closed = Arc::new(AtomicBool::new(false));
    let flag = stdin_closed.clone();
    thread::spawn(move || {
        for _ in io::stdin().lock().lines() {}
        flag.store(true, Ordering::SeqCst);
    });
    wait_for_exit(&args, &shared, &stdin_closed);
    let t = shared.totals.lock().expect("totals lock");
    println!(
        "{{\"packets\":{},\"bytes\":{},\"sip\":{},\"call_ids\":{},\"net_events\":{},\"bad\":{},\"seconds\":{:.3}}}",
        t.packets,
        t.bytes,
        t.sip,
        t.call_ids.len(),
        t.net_events,
        t.bad,
        shared.last_activity_ms.load(Ordering::Relaxed) as f64 / 1000.0
    );
}

fn wait_for_exit(args: &Args, shared: &Shared, stdin_closed: &AtomicBool) {
    loop {
        thread::sleep(Duration::from_millis(10));
        let idle_ms = shared.start.elapsed().as_millis() as u64 - shared.last_activity_ms.load(Ordering::Relaxed);
        if stdin_closed.load(Ordering::SeqCst)
            && shared.open_streams.load(Ordering::SeqCst) == 0
            && args.idle_exit_ms.is_none_or(|ms| idle_ms >= ms)
        {
            return;
        }
    }
}

fn serve_udp(udp: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = udp.recv(&mut buf) {
        shared.record(std::iter::once(&buf[..n]));
    }
}

/// Reads a HEPv3 stream, cutting packets by their length field.
fn serve_tcp(mut conn: TcpStream, shared: &Shared) {
    let mut buf = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 18];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut ends = Vec::new();
        let mut pos = 0;
        while let Ok(Some(len)) = hep::frame_len(&buf[pos..]) {
            if buf.len() - pos < len {
                break;
            }
            pos += len;
            ends.push(pos);
        }
        if pos == 0 && hep::frame_len(&buf).is_err() {
            shared.totals.lock().expect("totals lock").bad += 1;
            break;
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        shared.record(starts.zip(ends.iter().copied()).map(|(s, e)| &buf[s..e]));
        buf.drain(..pos);
    }
    shared.touch();
}

fn fail(msg: &str) -> ! {
    eprintln!("hep-sink: {msg}");
    std::process::exit(1)
}
