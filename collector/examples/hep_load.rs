//! HEP load generator and probes for `scripts/bench-collector.sh`.
//!
//! ```text
//! hep_load load    --hep ADDR --messages N [--connections C] [--tag HEX] [--ids-out FILE]
//!                  [--clickhouse URL --database DB]
//! hep_load latency --hep ADDR --api ADDR [--samples N]
//! hep_load query   --api ADDR --ids FILE [--samples N] [--search-samples N]
//! hep_load floor   --clickhouse URL --database DB --messages N [--parallel P] [--batch-rows R]
//! ```
//!
//! - `load`: realistic SIP calls (INVITE with SDP, 100, 180, 200 with SDP, ACK, BYE,
//!   200; unique Call-IDs; caller and callee numbers) as HEPv3 over C TCP connections,
//!   one per capture node, as fast as the collector reads (TCP backpressure). With
//!   `--clickhouse`, it then waits until ClickHouse holds all N more rows and reports
//!   when the last one was stored. Writes a sample of Call-IDs and numbers to
//!   `--ids-out` for `query`.
//! - `latency`: one message at a time on an idle collector; polls the API's flow
//!   endpoint until the message is there.
//! - `query`: times the flow endpoint on random known calls, and the search by number.
//! - `floor`: the database's own limit on this machine: the same rows, decoded ahead of
//!   time, inserted with the collector's store code (no HEP, no TCP ingest).
//!
//! Every mode prints `key=value` result lines starting with `RESULT` for the script.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector::decode::{Decoder, IdGen, MessageRow};
use collector::store::clickhouse::ClickHouseStore;
use collector::store::{InsertOutcome, MessageSink};
use wire::hep::{self, Hep, PayloadType};

/// Messages per call.
const PER_CALL: u64 = 7;
/// Capture-time offset of each message from the call start, microseconds.
const OFFSETS_US: [u64; 7] = [0, 4_000, 90_000, 2_500_000, 2_510_000, 30_000_000, 30_012_000];
/// Call starts are this far apart (per run, across connections).
const CALL_GAP_US: u64 = 1_000;
/// Bytes buffered per connection before a write.
const WRITE_BUF: usize = 256 * 1024;
/// Longest wait for ClickHouse to catch up, or for one probe message.
const STORE_TIMEOUT: Duration = Duration::from_secs(600);

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let opts = Opts::parse(args.collect());
    match mode.as_str() {
        "load" => load(&opts),
        "latency" => latency(&opts),
        "query" => query(&opts),
        "floor" => floor(&opts),
        _ => die("usage: hep_load load|latency|query|floor [options] (see the source header)"),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("hep_load: {msg}");
    std::process::exit(2)
}

/// `--name value` options.
struct Opts(Vec<(String, String)>);

impl Opts {
    fn parse(args: Vec<String>) -> Self {
        if !args.len().is_multiple_of(2) {
            die("options come as --name value pairs");
        }
        let pairs = args
            .chunks(2)
            .map(|p| match p[0].strip_prefix("--") {
                Some(name) => (name.to_owned(), p[1].clone()),
                None => die(&format!("expected --option, got `{}`", p[0])),
            })
            .collect();
        Self(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn req(&self, name: &str) -> &str {
        self.get(name).unwrap_or_else(|| die(&format!("--{name} is required")))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.get(name).map_or(default, |v| v.parse().unwrap_or_else(|_| die(&format!("--{name}: bad number `{v}`"))))
    }

    fn addr(&self, name: &str) -> SocketAddr {
        let v = self.req(name);
        v.parse().unwrap_or_else(|_| die(&format!("--{name}: bad address `{v}`")))
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Builds the SIP messages of a call and encodes them as HEPv3.
struct CallGen {
    tag: String,
    /// Start of call 0, microseconds since the epoch.
    t0_us: u64,
    sip: Vec<u8>,
    sdp: Vec<u8>,
}

/// Who a message goes from and to.
const UAC: [u8; 4] = [10, 20, 0, 10];
const UAS: [u8; 4] = [10, 30, 0, 20];

impl CallGen {
    fn new(tag: &str, t0_us: u64) -> Self {
        Self { tag: tag.to_owned(), t0_us, sip: Vec::with_capacity(2048), sdp: Vec::with_capacity(512) }
    }

    fn call_id(tag: &str, call: u64) -> String {
        format!("{tag}-{call:09x}@bench.example")
    }

    fn caller(call: u64) -> String {
        format!("+1555{:07}", call % 10_000_000)
    }

    fn callee(call: u64) -> String {
        format!("+1666{:07}", (call * 7 + 3) % 10_000_000)
    }

    /// Appends message `msg` (0..7) of `call`, captured by `node`, to `out` as HEPv3.
    fn encode(&mut self, call: u64, msg: usize, node: (u32, &[u8]), out: &mut Vec<u8>) {
        self.sip.clear();
        let from_uac = matches!(msg, 0 | 4 | 5);
        self.write_sip(call, msg);
        let t = self.t0_us + call * CALL_GAP_US + OFFSETS_US[msg];
        let (src, dst) = if from_uac { (UAC, UAS) } else { (UAS, UAC) };
        let packet = Hep {
            ip_proto: 17,
            src_ip: IpAddr::V4(Ipv4Addr::from(src)),
            dst_ip: IpAddr::V4(Ipv4Addr::from(dst)),
            src_port: 5060,
            dst_port: 5060,
            ts_sec: (t / 1_000_000) as u32,
            ts_usec: (t % 1_000_000) as u32,
            payload_type: PayloadType::Sip,
            capture_id: Some(node.0),
            node_name: Some(node.1),
            payload: Cow::Borrowed(&self.sip),
            ..Hep::default()
        };
        hep::encode_v3(&packet, out).expect("a bench message fits in one HEP packet");
    }

    fn write_sip(&mut self, call: u64, msg: usize) {
        let (caller, callee, cid) = (Self::caller(call), Self::callee(call), Self::call_id(&self.tag, call));
        let uac = "10.20.0.10";
        let uas = "10.30.0.20";
        let (method, cseq, status) = match msg {
            0 => ("INVITE", "1 INVITE", ""),
            1 => ("", "1 INVITE", "100 Trying"),
            2 => ("", "1 INVITE", "180 Ringing"),
            3 => ("", "1 INVITE", "200 OK"),
            4 => ("ACK", "1 ACK", ""),
            5 => ("BYE", "2 BYE", ""),
            _ => ("", "2 BYE", "200 OK"),
        };
        let to_tag = if msg >= 2 { format!(";tag={call:x}-uas") } else { String::new() };
        self.sdp.clear();
        if msg == 0 || msg == 3 {
            let ip = if msg == 0 { uac } else { uas };
            let port = 20_000 + (call % 10_000) * 2;
            let _ = write!(
                self.sdp,
                "v=0\r\no=- {call} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
            );
        }
        let s = &mut self.sip;
        if method.is_empty() {
            let _ = write!(s, "SIP/2.0 {status}\r\n");
        } else {
            let _ = write!(s, "{method} sip:{callee}@{uas}:5060 SIP/2.0\r\n");
        }
        let branch = if msg == 5 || msg == 6 { "b" } else { "a" };
        let _ = write!(
            s,
            "Via: SIP/2.0/UDP {uac}:5060;branch=z9hG4bK{call:x}{branch};rport\r\n\
             From: \"{caller}\" <sip:{caller}@{uac}>;tag={call:x}-uac\r\n\
             To: <sip:{callee}@{uas}>{to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq}\r\n"
        );
        if method.is_empty() {
            let _ = write!(s, "Contact: <sip:{callee}@{uas}:5060>\r\nServer: bench-uas/1.0\r\n");
        } else {
            let _ = write!(
                s,
                "Max-Forwards: 70\r\nContact: <sip:{caller}@{uac}:5060>\r\nUser-Agent: bench-uac/1.0\r\n\
                 P-Asserted-Identity: <sip:{caller}@{uac}>\r\n"
            );
        }
        if !self.sdp.is_empty() {
            s.extend_from_slice(b"Content-Type: application/sdp\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.sdp.len());
        s.extend_from_slice(&self.sdp);
    }
}

/// A random-enough run tag, so runs into one table never share Call-IDs.
fn run_tag() -> String {
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    format!("{:08x}", (n ^ (n >> 29) ^ u64::from(std::process::id()) << 16) as u32)
}

/// Node `i`: capture id and name.
fn node(i: usize) -> (u32, Vec<u8>) {
    (101 + i as u32, format!("edge-{}", i + 1).into_bytes())
}

/// Calls needed for `messages` (the last call may be cut short).
fn calls_for(messages: u64) -> u64 {
    messages.div_ceil(PER_CALL)
}

/// Start time of call 0: the whole run ends a minute before now, so searches over
/// the API's default window (the last 24 h) see every call.
fn start_of_run(messages: u64) -> u64 {
    now_us() - calls_for(messages) * CALL_GAP_US - OFFSETS_US[6] - 60_000_000
}

fn load(o: &Opts) {
    let hep_addr = o.addr("hep");
    let messages: u64 = o.num("messages", 1_000_000);
    let connections: usize = o.num("connections", 4).max(1);
    let tag = o.get("tag").map_or_else(run_tag, str::to_owned);
    let t0 = start_of_run(messages);
    let calls = calls_for(messages);
    let ch = o.get("clickhouse").map(|url| (url.to_owned(), o.req("database").to_owned()));
    let before = ch.as_ref().map_or(0, |(url, db)| count_rows(url, db));

    if let Some(path) = o.get("ids-out") {
        // ~2000 evenly spread calls whose 7 messages are all sent.
        let full_calls = messages / PER_CALL;
        let step = (full_calls / 2000).max(1);
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("creating --ids-out"));
        for call in (0..full_calls).step_by(step as usize) {
            writeln!(f, "{} {}", CallGen::call_id(&tag, call), CallGen::caller(call)).expect("writing --ids-out");
        }
        f.flush().expect("writing --ids-out");
    }

    let start = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|conn| {
            let tag = tag.clone();
            std::thread::spawn(move || {
                let (node_id, node_name) = node(conn);
                let mut gen = CallGen::new(&tag, t0);
                let mut stream = TcpStream::connect(hep_addr).unwrap_or_else(|e| die(&format!("connect: {e}")));
                stream.set_nodelay(true).ok();
                let mut buf = Vec::with_capacity(WRITE_BUF + 4096);
                let mut sent = 0u64;
                let mut call = conn as u64;
                while call < calls {
                    for msg in 0..PER_CALL as usize {
                        if call * PER_CALL + msg as u64 >= messages {
                            break;
                        }
                        gen.encode(call, msg, (node_id, &node_name), &mut buf);
                        sent += 1;
                    }
                    if buf.len() >= WRITE_BUF {
                        stream.write_all(&buf).unwrap_or_else(|e| die(&format!("send: {e}")));
                        buf.clear();
                    }
                    call += connections as u64;
                }
                stream.write_all(&buf).unwrap_or_else(|e| die(&format!("send: {e}")));
                stream.shutdown(std::net::Shutdown::Write).ok();
                // Wait for the collector to close its side: every byte was read.
                let _ = stream.read(&mut [0u8; 1]);
                sent
            })
        })
        .collect();
    let sent: u64 = handles.into_iter().map(|h| h.join().expect("sender thread")).sum();
    let send_s = start.elapsed().as_secs_f64();
    println!(
        "RESULT mode=load tag={tag} connections={connections} sent={sent} send_s={send_s:.3} send_rate={:.0}",
        sent as f64 / send_s
    );
    if let Some((url, db)) = ch {
        let want = before + sent;
        let deadline = Instant::now() + STORE_TIMEOUT;
        let mut last = before;
        let mut last_change = Instant::now();
        loop {
            let n = count_rows(&url, &db);
            if n != last {
                last = n;
                last_change = Instant::now();
            }
            if n >= want || Instant::now() > deadline || last_change.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let stored_s = start.elapsed().as_secs_f64();
        let stored = last - before;
        println!(
            "RESULT mode=stored stored={stored} stored_s={stored_s:.3} stored_rate={:.0}",
            stored as f64 / stored_s
        );
    }
}

/// `SELECT count() FROM DB.sip_messages` over HTTP.
fn count_rows(url: &str, db: &str) -> u64 {
    let body = clickhouse_query(url, &format!("SELECT count() FROM {db}.sip_messages"));
    body.trim().parse().unwrap_or_else(|_| die(&format!("count(): unexpected answer `{body}`")))
}

fn clickhouse_query(url: &str, sql: &str) -> String {
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    let addr: SocketAddr = hostport.parse().unwrap_or_else(|_| die(&format!("need http://IP:PORT, got `{url}`")));
    let (status, body) = http_get(addr, &format!("/?query={}", percent_encode(sql)));
    if status != 200 {
        die(&format!("ClickHouse answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Minimal HTTP/1.1 GET (`Connection: close`): status and (de-chunked) body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| die(&format!("connect {addr}: {e}")));
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").expect("HTTP request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap_or_else(|e| die(&format!("HTTP read: {e}")));
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return (0, Vec::new()) };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = &buf[end + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (status, body.to_vec());
    }
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 || body.len() < eol + 2 + n {
            break;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + n]);
        body = &body[(eol + 4 + n).min(body.len())..];
    }
    (status, out)
}

/// p-th percentile (nearest rank) of sorted `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "RESULT mode={name} samples={} p50_ms={:.1} p95_ms={:.1} max_ms={:.1}",
        ms.len(),
        pct(&ms, 50.0),
        pct(&ms, 95.0),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

fn latency(o: &Opts) {
    let hep_addr = o.addr("hep");
    let api = o.addr("api");
    let samples: usize = o.num("samples", 20);
    let tag = format!("lat{}", run_tag());
    let mut stream = TcpStream::connect(hep_addr).unwrap_or_else(|e| die(&format!("connect: {e}")));
    stream.set_nodelay(true).ok();
    let (node_id, node_name) = node(0);
    let mut delays = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        // Call `i` of a run starting now: its INVITE carries the current time.
        let mut gen = CallGen::new(&tag, now_us() - i * CALL_GAP_US);
        let mut buf = Vec::new();
        gen.encode(i, 0, (node_id, &node_name), &mut buf);
        let path = format!("/api/v1/calls/{}/flow", CallGen::call_id(&tag, i));
        let start = Instant::now();
        stream.write_all(&buf).unwrap_or_else(|e| die(&format!("send: {e}")));
        loop {
            let (status, body) = http_get(api, &path);
            if status == 200 && body.windows(6).any(|w| w == b"INVITE") {
                break;
            }
            if start.elapsed() > STORE_TIMEOUT {
                die(&format!("message {i} not queryable after {STORE_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        delays.push(start.elapsed().as_secs_f64() * 1000.0);
        // Let the batcher go idle again, so each sample starts a fresh batch.
        std::thread::sleep(Duration::from_millis(200));
    }
    summary("latency", delays);
}

/// Small deterministic PRNG (xorshift64*), seeded from the clock.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

fn query(o: &Opts) {
    let api = o.addr("api");
    let samples: usize = o.num("samples", 50);
    let search_samples: usize = o.num("search-samples", 10);
    let text = std::fs::read_to_string(o.req("ids")).unwrap_or_else(|e| die(&format!("--ids: {e}")));
    let ids: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    if ids.is_empty() {
        die("--ids file is empty");
    }
    let mut rng = Rng(now_us() | 1);
    let time = |path: &str, expect: &str| {
        let start = Instant::now();
        let (status, body) = http_get(api, path);
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if status != 200 || !String::from_utf8_lossy(&body).contains(expect) {
            die(&format!("GET {path}: status {status}, no `{expect}` in {}", String::from_utf8_lossy(&body)));
        }
        ms
    };
    // One untimed request of each kind, so the first sample does not pay for cold caches.
    let (cid, num) = ids[0];
    time(&format!("/api/v1/calls/{cid}/flow"), "BYE");
    time(&format!("/api/v1/calls?number={}", &num[1..]), cid);
    let mut flow = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (cid, _) = ids[rng.below(ids.len())];
        flow.push(time(&format!("/api/v1/calls/{cid}/flow"), "BYE"));
    }
    summary("flow", flow);
    let mut search = Vec::with_capacity(search_samples);
    for _ in 0..search_samples {
        let (cid, num) = ids[rng.below(ids.len())];
        // `+` would need escaping in a query string; the suffix match needs no plus.
        search.push(time(&format!("/api/v1/calls?number={}", &num[1..]), cid));
    }
    summary("search", search);
}

fn floor(o: &Opts) {
    let url = o.req("clickhouse").to_owned();
    let db = o.req("database").to_owned();
    let messages: u64 = o.num("messages", 1_000_000);
    let parallel: usize = o.num("parallel", 1).max(1);
    let batch_rows: usize = o.num("batch-rows", collector::config::DEFAULT_BATCH_MAX_ROWS);

    // The same rows the collector would store, decoded before the clock starts.
    let decoder = Decoder { auth_key: None, scan: wire::sip::ScanConfig::default(), ids: IdGen::from_entropy() };
    let tag = run_tag();
    let mut gen = CallGen::new(&tag, start_of_run(messages));
    let mut rows: Vec<MessageRow> = Vec::with_capacity(messages as usize);
    let mut buf = Vec::with_capacity(4096);
    let nodes: Vec<(u32, Vec<u8>)> = (0..4).map(node).collect();
    'calls: for call in 0..calls_for(messages) {
        let (id, name) = &nodes[(call % 4) as usize];
        for msg in 0..PER_CALL as usize {
            if rows.len() as u64 >= messages {
                break 'calls;
            }
            buf.clear();
            gen.encode(call, msg, (*id, name), &mut buf);
            rows.push(decoder.decode(&buf, now_us()).unwrap_or_else(|r| die(&format!("decode: {r:?}"))));
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async {
        let config = collector::config::Config { clickhouse_url: url, ..collector::config::Config::default() };
        let server = ClickHouseStore::server_client(&config);
        collector::store::schema::apply(&server, &db, 0).await.unwrap_or_else(|e| die(&e));
        let store = Arc::new(ClickHouseStore::new(&server, &db));
        let rows = Arc::new(rows);
        let batches: Vec<(usize, usize)> =
            (0..rows.len()).step_by(batch_rows).map(|s| (s, (s + batch_rows).min(rows.len()))).collect();
        let batches = Arc::new(batches);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..parallel)
            .map(|_| {
                let (store, rows, batches, next) = (store.clone(), rows.clone(), batches.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(a, b)) = batches.get(i) else { return };
                        match store.insert(&rows[a..b]).await {
                            InsertOutcome::Ok => {}
                            other => die(&format!("floor insert failed: {other:?}")),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("insert task");
        }
        let s = start.elapsed().as_secs_f64();
        println!(
            "RESULT mode=floor rows={} parallel={parallel} batch_rows={batch_rows} insert_s={s:.3} rate={:.0}",
            rows.len(),
            rows.len() as f64 / s
        );
    });
}
