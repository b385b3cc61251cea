//! End to end, live: two network namespaces the test creates, joined by a veth pair with a
//! 1400-byte MTU. SIP goes from A to B (UDP, one INVITE large enough to be IP-fragmented,
//! and a SIP-over-TCP call); in B two real `capture-agent`s capture `vethb` through
//! libpcap and send HEP over TCP to two real `hep-sink`s on B's own loopback (inside a
//! namespace 127.0.0.1 is that namespace's `lo`, so agent and sink must share it, and the
//! HEP traffic never crosses the captured link). One agent uses the default kernel filter,
//! the other `--port-range 5060-5060`, whose filter must still keep the non-first
//! fragments a port-only BPF would lose.
//!
//! The test checks that every message arrives while the agents still run (a quiet link is
//! flushed within ~100 ms), then stops them with SIGTERM and checks exit status 0, the
//! summary's kernel drop counters (0) and the sinks' exact counts and Call-IDs. A's MAC
//! address then changes with `arp_notify` on, so A's kernel sends one gratuitous ARP: both
//! default kernel filters must let it through, and it arrives as a network event.
//!
//! Needs root (or CAP_NET_ADMIN + CAP_NET_RAW + CAP_SYS_ADMIN) and iproute2: without them it
//! fails with a message saying so; it never skips. The traffic stays inside the two
//! namespaces. The namespaces (and with them the veth pair) are removed by a drop guard,
//! also when the test fails.
//!
//! The same test binary doubles as the traffic generator: run inside a namespace with
//! `SIPT_HELPER` set, [`helper_entry_point`] plays the sender (in A) or the SIP-over-TCP
//! server (in B) with std sockets only.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const ADDR_A: &str = "10.199.77.1";
const ADDR_B: &str = "10.199.77.2";
const MTU: &str = "1400";
/// Small UDP messages sent from A (one Call-ID each).
const SMALL_UDP: usize = 20;
/// Body of the large INVITE: well over the MTU, so it leaves A in three fragments.
const BIG_BODY: usize = 3000;
/// The MAC A takes at the end, which makes its kernel send a gratuitous ARP.
const GARP_MAC: &str = "02:00:00:5e:77:01";

// ---------------------------------------------------------------------------------------
// The traffic: what is sent, and what the sinks must therefore see.

fn small_udp(i: usize) -> String {
    let method = if i.is_multiple_of(2) { "OPTIONS" } else { "MESSAGE" };
    sip_request(method, &format!("udp-{i}@sipt"), 1, "")
}

fn big_invite() -> String {
    // A plausible SDP padded with attribute lines to BIG_BODY bytes.
    let mut body =
        format!("v=0\r\no=- 1 1 IN IP4 {ADDR_A}\r\ns=-\r\nc=IN IP4 {ADDR_A}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    let mut n = 0;
    while body.len() < BIG_BODY {
        body.push_str(&format!("a=x-pad:{n:06} padding to force IP fragmentation\r\n"));
        n += 1;
    }
    sip_request("INVITE", "big-invite@sipt", 1, &body)
}

/// The SIP-over-TCP call: (who sends it, message). ACK and BYE go in one write (two SIP
/// messages in one segment).
fn tcp_call() -> [(char, String); 5] {
    let cid = "tcp-call@sipt";
    [
        ('c', sip_request("INVITE", cid, 1, "")),
        ('s', sip_response(200, "INVITE", cid, 1)),
        ('c', sip_request("ACK", cid, 1, "")),
        ('c', sip_request("BYE", cid, 2, "")),
        ('s', sip_response(200, "BYE", cid, 2)),
    ]
}

fn sip_request(method: &str, call_id: &str, cseq: u32, body: &str) -> String {
    format!(
        "{method} sip:bob@{ADDR_B} SIP/2.0\r\nVia: SIP/2.0/UDP {ADDR_A}:5060;branch=z9hG4bK-{call_id}-{cseq}\r\n\
         From: <sip:alice@{ADDR_A}>;tag=a1\r\nTo: <sip:bob@{ADDR_B}>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn sip_response(code: u16, method: &str, call_id: &str, cseq: u32) -> String {
    format!(
        "SIP/2.0 {code} OK\r\nVia: SIP/2.0/TCP {ADDR_A}:5060;branch=z9hG4bK-{call_id}-{cseq}\r\n\
         From: <sip:alice@{ADDR_A}>;tag=a1\r\nTo: <sip:bob@{ADDR_B}>;tag=b1\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn expected_call_ids() -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = (0..SMALL_UDP).map(|i| format!("udp-{i}@sipt")).collect();
    ids.insert("big-invite@sipt".into());
    ids.insert("tcp-call@sipt".into());
    ids
}

fn expected_messages() -> usize {
    SMALL_UDP + 1 + tcp_call().len()
}

// ---------------------------------------------------------------------------------------
// Helper roles, run by this same binary inside a namespace.

/// Entry point for the helper roles; a no-op in a normal test run (no `SIPT_HELPER`).
#[test]
fn helper_entry_point() {
    match std::env::var("SIPT_HELPER").as_deref() {
        Ok("tcp-server") => tcp_server(),
        Ok("sender") => sender(),
        _ => {}
    }
}

/// In B: accepts one SIP-over-TCP connection and answers the call.
fn tcp_server() {
    let listener = TcpListener::bind((ADDR_B, 5060)).expect("bind the SIP TCP port in B");
    println!("ready");
    std::io::stdout().flush().unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let call = tcp_call();
    let mut pending = Vec::new();
    for (who, msg) in &call {
        if *who == 'c' {
            read_exactly(&mut conn, &mut pending, msg.len());
        } else {
            conn.write_all(msg.as_bytes()).unwrap();
        }
    }
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(pending.is_empty() && rest.is_empty(), "unexpected bytes from the client");
}

/// In A: the UDP messages, the fragmented INVITE, then the TCP call.
fn sender() {
    let udp = UdpSocket::bind((ADDR_A, 0)).unwrap();
    for i in 0..SMALL_UDP {
        udp.send_to(small_udp(i).as_bytes(), (ADDR_B, 5060)).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let big = big_invite();
    assert!(big.len() > 2 * 1400, "the INVITE must need several fragments");
    udp.send_to(big.as_bytes(), (ADDR_B, 5060)).expect("send the large INVITE (fragmented by the kernel)");

    let mut conn = TcpStream::connect((ADDR_B, 5060)).unwrap();
    let call = tcp_call();
    let mut pending = Vec::new();
    let mut i = 0;
    while i < call.len() {
        let (who, msg) = &call[i];
        if *who == 's' {
            read_exactly(&mut conn, &mut pending, msg.len());
            i += 1;
            continue;
        }
        // Consecutive client messages leave in one write (one segment).
        let mut out = msg.clone();
        while i + 1 < call.len() && call[i + 1].0 == 'c' {
            i += 1;
            out.push_str(&call[i].1);
        }
        conn.write_all(out.as_bytes()).unwrap();
        i += 1;
    }
    conn.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
}

/// Reads until `buf` holds `n` bytes, then removes them.
fn read_exactly(conn: &mut TcpStream, buf: &mut Vec<u8>, n: usize) {
    let mut chunk = [0u8; 4096];
    while buf.len() < n {
        let got = conn.read(&mut chunk).unwrap();
        assert!(got > 0, "peer closed early");
        buf.extend_from_slice(&chunk[..got]);
    }
    buf.drain(..n);
}

// ---------------------------------------------------------------------------------------
// Namespaces and processes.

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces joined by `vetha` (in A) and `vethb` (in B); removed on drop.
struct Net {
    a: String,
    b: String,
}

impl Net {
    fn create() -> Self {
        let pid = std::process::id();
        let net = Self { a: format!("sipt-a-{pid}"), b: format!("sipt-b-{pid}") };
        if let Err(e) = ip(&["netns", "add", &net.a]) {
            panic!(
                "this test needs network namespaces (run as root, or with CAP_SYS_ADMIN, CAP_NET_ADMIN and \
                 CAP_NET_RAW, with iproute2 installed); it does not skip: {e}"
            );
        }
        let (a, b) = (net.a.as_str(), net.b.as_str());
        let steps: &[&[&str]] = &[
            &["netns", "add", b],
            &["link", "add", "vetha", "netns", a, "type", "veth", "peer", "name", "vethb", "netns", b],
            &["-n", a, "link", "set", "vetha", "mtu", MTU, "up"],
            &["-n", b, "link", "set", "vethb", "mtu", MTU, "up"],
            &["-n", a, "link", "set", "lo", "up"],
            &["-n", b, "link", "set", "lo", "up"],
            &["-n", a, "addr", "add", &format!("{ADDR_A}/30"), "dev", "vetha"],
            &["-n", b, "addr", "add", &format!("{ADDR_B}/30"), "dev", "vethb"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                panic!("cannot set up the test network: {e}");
            }
        }
        net
    }

    /// A command run inside namespace `ns` (`ip netns exec` execs it: same pid).
    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace destroys its end of the veth pair, and with it the peer.
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A child process killed on drop (a failing test must not leave agents running in the
/// namespaces, which would keep them alive).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines a child writes to one of its pipes, collected by a thread.
fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = pred(&line);
                seen.push(line);
                if done {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!("timed out waiting for {what}; output so far:\n{}", seen.join("\n"));
}

struct Sink {
    proc: Proc,
    addr: String,
    lines: mpsc::Receiver<String>,
    /// Call-ID of each SIP message printed so far.
    call_ids: Vec<String>,
    /// JSON of each network event printed so far.
    events: Vec<String>,
}

impl Sink {
    fn start(net: &Net) -> Self {
        let mut child = net
            .exec(&net.b, env!("CARGO_BIN_EXE_hep-sink"))
            .args(["--listen", "127.0.0.1:0", "--print"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hep-sink in B");
        let lines = lines_of(child.stdout.take().unwrap());
        let mut seen = Vec::new();
        wait_for_line(&lines, "hep-sink to listen", |l| l.starts_with("listening on "), &mut seen);
        let addr = seen.last().unwrap().trim_start_matches("listening on ").to_string();
        Self { proc: Proc(child), addr, lines, call_ids: Vec::new(), events: Vec::new() }
    }

    /// Collects printed SIP messages and network events until `n` and `events` arrived or
    /// `within` passed.
    fn collect(&mut self, n: usize, events: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.call_ids.len() < n || self.events.len() < events {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return };
            let Ok(line) = self.lines.recv_timeout(left) else { return };
            // SIP: `<ts> <src> -> <dst> <method|code> <call-id>`; network events:
            // `<ts> <src> -> <dst> net-event proto=<p> node=<id>/<name> <json>`.
            if let Some((_, event)) = line.split_once(" net-event ") {
                self.events.push(event.splitn(3, ' ').nth(2).unwrap_or_default().to_string());
            } else if let Some(cid) = line.rsplit(' ').next().filter(|_| line.contains(" -> ")) {
                self.call_ids.push(cid.to_string());
            }
        }
    }

    /// Closes stdin (the agent has exited, so its TCP stream was read) and returns the
    /// final JSON summary line.
    fn finish(mut self) -> String {
        drop(self.proc.0.stdin.take());
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(20)) {
            rest.push(line);
        }
        self.proc.0.wait().unwrap();
        rest.into_iter().rfind(|l| l.starts_with('{')).expect("hep-sink summary")
    }
}

struct Agent {
    proc: Proc,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Agent {
    fn start(net: &Net, sink: &Sink, extra: &[&str]) -> Self {
        let mut child = net
            .exec(&net.b, env!("CARGO_BIN_EXE_capture-agent"))
            .args(["--interface", "vethb", "--hep-server", &sink.addr, "--transport", "tcp", "--node-name", "sipt"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start capture-agent in B");
        let stderr = lines_of(child.stderr.take().unwrap());
        let mut agent = Self { proc: Proc(child), stderr, seen: Vec::new() };
        // The capture is open (and the kernel buffering) once the agent says so.
        wait_for_line(&agent.stderr, "the agent to capture", |l| l.contains("capturing on vethb"), &mut agent.seen);
        agent
    }

    /// SIGTERM, then the exit status and everything it wrote to stderr.
    fn stop(mut self) -> (Option<i32>, String) {
        let pid = self.proc.0.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(killed.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.proc.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "agent did not exit after SIGTERM:\n{}", self.seen.join("\n"));
            thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }
}

fn run_helper(net: &Net, ns: &str, role: &str) -> Command {
    let me = std::env::current_exe().expect("test binary path");
    let mut c = net.exec(ns, me.to_str().unwrap());
    c.args(["--exact", "helper_entry_point", "--nocapture", "--test-threads", "1"]).env("SIPT_HELPER", role);
    c
}

fn check_output(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_field(json: &str, name: &str) -> u64 {
    let at = json.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name} in {json}"));
    json[at + name.len() + 3..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

// ---------------------------------------------------------------------------------------

#[test]
fn live_capture_between_namespaces_delivers_every_message() {
    let net = Net::create();
    let mut sinks = [Sink::start(&net), Sink::start(&net)];
    let agents = [Agent::start(&net, &sinks[0], &[]), Agent::start(&net, &sinks[1], &["--port-range", "5060-5060"])];

    let mut server = run_helper(&net, &net.b, "tcp-server").stdout(Stdio::piped()).spawn().expect("tcp server");
    let server_out = lines_of(server.stdout.take().unwrap());
    wait_for_line(&server_out, "the SIP TCP server", |l| l.ends_with("ready"), &mut Vec::new());
    let mut server = Proc(server);

    let sent_at = Instant::now();
    let out = run_helper(&net, &net.a, "sender").output().expect("run the sender in A");
    check_output("sender", &out);
    let server_status = server.0.wait().unwrap();
    assert!(server_status.success(), "SIP TCP server failed: {server_status:?}");

    // While the agents still run: everything arrives promptly, with no batch filling up.
    for sink in &mut sinks {
        sink.collect(expected_messages(), 0, Duration::from_secs(10));
    }
    let delivered_in = sent_at.elapsed();

    // A new MAC on A with arp_notify on: A's kernel announces its address (one GARP).
    let announce = [
        vec!["netns", "exec", &net.a, "sysctl", "-qw", "net.ipv4.conf.vetha.arp_notify=1"],
        vec!["-n", &net.a, "link", "set", "vetha", "address", GARP_MAC],
    ];
    for step in &announce {
        ip(step).unwrap_or_else(|e| panic!("{e}"));
    }
    for sink in &mut sinks {
        sink.collect(expected_messages(), 1, Duration::from_secs(10));
    }

    let reports: Vec<(Option<i32>, String)> = agents.into_iter().map(Agent::stop).collect();
    for ((code, stderr), name) in reports.iter().zip(["default filter", "--port-range filter"]) {
        eprintln!("agent with {name}:\n{stderr}");
        assert_eq!(*code, Some(0), "agent ({name}) exit status; stderr:\n{stderr}");
        assert!(stderr.contains("kernel_dropped=0"), "agent ({name}) reports kernel drops = 0:\n{stderr}");
        assert!(stderr.contains("ip_datagrams_reassembled=1"), "agent ({name}) reassembled the INVITE:\n{stderr}");
        assert!(!stderr.contains("LOST"), "agent ({name}) lost nothing:\n{stderr}");
    }
    for ((sink, (_, stderr)), name) in sinks.into_iter().zip(&reports).zip(["default filter", "--port-range filter"]) {
        let mut got = sink.call_ids.clone();
        got.sort();
        let sink_events = sink.events.clone();
        let summary = sink.finish();
        assert_eq!(
            got.len(),
            expected_messages(),
            "{name}: SIP messages delivered while running (sink summary {summary}); agent:\n{stderr}"
        );
        assert_eq!(json_field(&summary, "sip"), expected_messages() as u64, "{name}: {summary}");
        let garp = format!(r#"{{"event":"garp","ip":"{ADDR_A}","mac":"{GARP_MAC}","op":"request"}}"#);
        assert_eq!(sink_events, vec![garp], "{name}: the gratuitous ARP; agent:\n{stderr}");
        assert_eq!(json_field(&summary, "net_events"), 1, "{name}: {summary}");
        assert_eq!(json_field(&summary, "packets"), expected_messages() as u64 + 1, "{name}: nothing else sent");
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(distinct, expected_call_ids(), "{name}: Call-IDs");
        assert_eq!(got.iter().filter(|c| *c == "tcp-call@sipt").count(), tcp_call().len(), "{name}: TCP call");
    }
    // Generous for a loaded CI machine; typically well under a second (flush <= 100 ms).
    assert!(delivered_in < Duration::from_secs(5), "delivery took {delivered_in:?}");
}
