//! Test helpers: a real ClickHouse started once per test binary by
//! `scripts/clickhouse.sh` (throwaway dir, spare ports, stopped by its watchdog when the
//! test process exits), an in-process collector per test on port 0, a hand-built HEPv3
//! encoder (independent of `wire`, so it also checks the decoder), and a tiny HTTP GET.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use collector::config::Config;
use collector::shutdown::{self, ShutdownTrigger};
use collector::Listeners;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The shared server.
pub struct ClickHouse {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// Starts ClickHouse on first use. Fails the test (never skips) when it cannot start.
pub fn clickhouse() -> &'static ClickHouse {
    static SERVER: OnceLock<ClickHouse> = OnceLock::new();
    SERVER.get_or_init(start_clickhouse)
}

fn start_clickhouse() -> ClickHouse {
    let port = spare_port_pair();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("clickhouse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/clickhouse.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["start", "--port-http", &port.to_string(), "--dir"])
        .arg(&dir)
        .args(["--owner-pid", &std::process::id().to_string()])
        .output()
        .expect("running scripts/clickhouse.sh");
    assert!(
        out.status.success(),
        "ClickHouse did not start (scripts/clickhouse.sh start --port-http {port} --dir {}):\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ClickHouse { url: format!("http://127.0.0.1:{port}") }
}

/// A port P with P and P+1 free (HTTP and native TCP).
fn spare_port_pair() -> u16 {
    for _ in 0..50 {
        let a = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && StdTcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no spare port pair for ClickHouse");
}

/// A ClickHouse client on `db` (which the caller's collector creates).
pub fn client(db: &str) -> clickhouse::Client {
    clickhouse::Client::default().with_url(&clickhouse().url).with_validation(false).with_database(db)
}

/// A client without a database, dropping `db` first so reruns start clean.
pub async fn fresh_db(db: &str) -> clickhouse::Client {
    let c = clickhouse::Client::default().with_url(&clickhouse().url).with_validation(false);
    c.query(&format!("DROP DATABASE IF EXISTS {db}")).execute().await.unwrap();
    c
}

/// A collector running in this process.
pub struct TestCollector {
    /// HEP UDP + TCP.
    pub hep: SocketAddr,
    /// HTTP API.
    pub api: SocketAddr,
    /// Its database.
    pub db: String,
    trigger: ShutdownTrigger,
    task: JoinHandle<Result<(), String>>,
}

/// Config for a test collector on database `db`: short batch age so rows land fast.
pub fn test_config(db: &str) -> Config {
    Config {
        clickhouse_url: clickhouse().url.clone(),
        clickhouse_database: db.into(),
        batch: collector::config::BatchLimits { max_age: Duration::from_millis(100), ..Config::default().batch },
        ..Config::default()
    }
}

impl TestCollector {
    /// Starts a collector with `config` (database dropped first) and waits for `/healthz`.
    pub async fn start(config: Config) -> Self {
        fresh_db(&config.clickhouse_database).await;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listeners = Listeners::bind(loopback, loopback).await.unwrap();
        let (hep, api) = (listeners.hep_addr().unwrap(), listeners.api_addr().unwrap());
        let (trigger, signal) = shutdown::channel();
        let db = config.clickhouse_database.clone();
        let task = tokio::spawn(collector::run(config, listeners, signal));
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(api, "/healthz").await.0 != 200 {
            assert!(Instant::now() < deadline, "collector API did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { hep, api, db, trigger, task }
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("collector stops within 20 s")
            .unwrap()
            .unwrap();
    }

    /// Sends each packet as one UDP datagram.
    pub async fn send_udp(&self, packets: &[Vec<u8>]) {
        let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        for p in packets {
            sock.send_to(p, self.hep).await.unwrap();
        }
    }

    /// Sends packets over one TCP connection, cut into 7-byte writes so frames span reads.
    pub async fn send_tcp(&self, packets: &[Vec<u8>]) {
        let mut s = TcpStream::connect(self.hep).await.unwrap();
        let all: Vec<u8> = packets.concat();
        for chunk in all.chunks(7) {
            s.write_all(chunk).await.unwrap();
        }
        s.shutdown().await.unwrap();
    }

    /// GET on the API.
    pub async fn get(&self, path: &str) -> (u16, String) {
        get(self.api, path).await
    }

    /// GET on the API, body as bytes.
    pub async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        get_bytes(self.api, path).await
    }

    /// Value of a Prometheus counter line (`name{labels}` as printed).
    pub async fn metric(&self, series: &str) -> u64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    }

    /// Waits until `SELECT count() FROM sip_messages WHERE {cond}` reaches `n`.
    pub async fn wait_rows(&self, cond: &str, n: u64) -> u64 {
        self.wait_count(&format!("SELECT count() FROM sip_messages WHERE {cond}"), n).await
    }

    /// Waits until the call summary has counted `n` messages. The source part of an
    /// insert becomes visible before the materialized view's part, so tests that read
    /// the summary wait for it separately.
    pub async fn wait_summary(&self, n: u64) -> u64 {
        self.wait_count("SELECT countMerge(messages) FROM sip_calls", n).await
    }

    /// Waits until the count `sql` returns reaches `n` (15 s at most); returns the last count.
    pub async fn wait_count(&self, sql: &str, n: u64) -> u64 {
        let c = client(&self.db);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got: u64 = c.query(sql).fetch_one().await.unwrap();
            if got >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Minimal HTTP/1.1 GET (Connection: close): status and body as text.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = get_bytes(addr, path).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Minimal HTTP/1.1 GET (Connection: close): status and body bytes.
pub async fn get_bytes(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return (0, Vec::new());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = &buf[end + 4..];
    let body = if head.contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_vec() };
    (status, body)
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&s[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&s[eol + 2..eol + 2 + n]);
        s = &s[eol + 4 + n..];
    }
    out
}

/// Fields of a hand-built HEPv3 packet.
#[derive(Clone)]
pub struct Hep3<'a> {
    pub src: ([u8; 4], u16),
    pub dst: ([u8; 4], u16),
    pub ts: (u32, u32),
    pub payload_type: u8,
    pub node_id: u32,
    pub node_name: &'a str,
    pub auth_key: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub payload: &'a [u8],
}

impl Default for Hep3<'_> {
    fn default() -> Self {
        Self {
            src: ([10, 0, 0, 1], 5060),
            dst: ([10, 0, 0, 2], 5060),
            ts: (1_763_780_000, 0),
            payload_type: 1,
            node_id: 101,
            node_name: "lb1",
            auth_key: None,
            correlation_id: None,
            payload: b"",
        }
    }
}

impl Hep3<'_> {
    /// HEPv3 bytes, written chunk by chunk from the spec (not with `wire`).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut chunk = |ty: u16, data: &[u8]| {
            body.extend_from_slice(&0u16.to_be_bytes());
            body.extend_from_slice(&ty.to_be_bytes());
            body.extend_from_slice(&(data.len() as u16 + 6).to_be_bytes());
            body.extend_from_slice(data);
        };
        chunk(0x01, &[2]);
        chunk(0x02, &[17]);
        chunk(0x03, &self.src.0);
        chunk(0x04, &self.dst.0);
        chunk(0x07, &self.src.1.to_be_bytes());
        chunk(0x08, &self.dst.1.to_be_bytes());
        chunk(0x09, &self.ts.0.to_be_bytes());
        chunk(0x0a, &self.ts.1.to_be_bytes());
        chunk(0x0b, &[self.payload_type]);
        chunk(0x0c, &self.node_id.to_be_bytes());
        if let Some(k) = self.auth_key {
            chunk(0x0e, k.as_bytes());
        }
        if let Some(c) = self.correlation_id {
            chunk(0x11, c.as_bytes());
        }
        chunk(0x13, self.node_name.as_bytes());
        chunk(0x0f, self.payload);
        let mut out = b"HEP3".to_vec();
        out.extend_from_slice(&(body.len() as u16 + 6).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// One SIP message of a test call, with where it goes.
pub struct SipMsg {
    pub text: Vec<u8>,
    pub src: ([u8; 4], u16),
    pub dst: ([u8; 4], u16),
    /// Milliseconds after the call start.
    pub at_ms: u32,
}

/// A basic call caller -> callee between 10.0.0.1 and 10.0.0.2: INVITE, 100, 180,
/// 200, ACK, BYE, 200.
pub fn basic_call(call_id: &str, caller: &str, callee: &str) -> Vec<SipMsg> {
    let a = ([10, 0, 0, 1], 5060);
    let b = ([10, 0, 0, 2], 5060);
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let hdr = |first: &str, cseq: &str, to_tag: bool, extra: &str, body: &str| -> Vec<u8> {
        let tag = if to_tag { ";tag=callee1" } else { "" };
        format!(
            "{first}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-{call_id}\r\n\
             From: \"Alice\" <sip:{caller}@example.com>;tag=caller1\r\nTo: <sip:{callee}@example.com>{tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq}\r\nUser-Agent: test-agent\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let req = |m: &str| format!("{m} sip:{callee}@10.0.0.2:5060 SIP/2.0");
    let ct = "Content-Type: application/sdp\r\n";
    let msg = |text, src, dst, at_ms| SipMsg { text, src, dst, at_ms };
    vec![
        msg(hdr(&req("INVITE"), "1 INVITE", false, ct, sdp), a, b, 0),
        msg(hdr("SIP/2.0 100 Trying", "1 INVITE", false, "", ""), b, a, 10),
        msg(hdr("SIP/2.0 180 Ringing", "1 INVITE", true, "", ""), b, a, 100),
        msg(hdr("SIP/2.0 200 OK", "1 INVITE", true, ct, sdp), b, a, 2000),
        msg(hdr(&req("ACK"), "1 ACK", true, "", ""), a, b, 2010),
        msg(hdr(&req("BYE"), "2 BYE", true, "", ""), a, b, 30_000),
        msg(hdr("SIP/2.0 200 OK", "2 BYE", true, "", ""), b, a, 30_010),
    ]
}

/// HEP packets for `msgs` as captured by one node, `delay_us` after the call start.
pub fn hep_for(msgs: &[SipMsg], start: u32, node: (u32, &str), delay_us: u32, auth: Option<&str>) -> Vec<Vec<u8>> {
    msgs.iter()
        .map(|m| {
            let us = u64::from(m.at_ms) * 1000 + u64::from(delay_us);
            Hep3 {
                src: m.src,
                dst: m.dst,
                ts: (start + (us / 1_000_000) as u32, (us % 1_000_000) as u32),
                node_id: node.0,
                node_name: node.1,
                auth_key: auth,
                payload: &m.text,
                ..Hep3::default()
            }
            .encode()
        })
        .collect()
}
