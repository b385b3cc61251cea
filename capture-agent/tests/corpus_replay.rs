//! End to end: the real `capture-agent` replays every capture of the shared corpus to the
//! real `hep-sink`, and what arrives is compared, per file, with what tshark decodes from
//! the same file (`shared/corpus/analysis_oneline.tsv`): SIP messages and distinct
//! Call-IDs. Where we decode more than tshark (or less, knowingly), the table below says
//! why. Network events (gratuitous ARP, VRRP advertisements: HEP payload type 0x70) are
//! counted apart from SIP and compared with tshark's count of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

/// Counts that differ from tshark's, and why: (file, SIP messages, Call-IDs).
const NOT_TSHARK: &[(&str, u64, u64, &str)] = &[
    // tshark's HEP dissector shows one HEP packet per TCP segment; the stream holds
    // seven (several per segment, one split across two) and we frame them all.
    ("gen/synthetic/hep3_tcp_stream.pcap", 7, 1, "all HEP packets of the TCP stream"),
    // tshark does not inflate HEP chunk 0x10; the 21 packets carry SIP of one call.
    ("pcap/hep/hep3_compressed.pcap.pcapng", 21, 1, "compressed HEP payloads inflated"),
];

/// Captures with network events, and how many: tshark's `vrrp.type == 1 ||
/// arp.isgratuitous` (ARP requests and replies only). Every other capture has none.
const NET_EVENTS: &[(&str, u64)] = &[
    // Nine VRRPv2 advertisements from 1.1.1.1 to 224.0.0.18 (no address in them).
    ("pcap/heplify/sip_ipv4_tcp_retrans.pcap", 9),
];

/// Not a pcap/pcapng file (Microsoft NetMon): a clear error, exit status 1.
const UNREADABLE: &str = "pcap/sipnab/c07-sip-r2.cap";

struct Expected {
    file: String,
    sip: u64,
    call_ids: u64,
    net_events: u64,
}

fn reference() -> Vec<Expected> {
    let tsv = std::fs::read_to_string(corpus().join("analysis_oneline.tsv")).expect("corpus beside the checkout");
    tsv.lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let num = |key: &str| -> u64 {
                let col = cols.iter().find_map(|c| c.strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {line}"));
                col.parse().unwrap()
            };
            let file = cols[0].to_string();
            let net_events = NET_EVENTS.iter().find(|(f, _)| *f == file).map_or(0, |(_, n)| *n);
            let mut e = Expected { file, sip: num("sip="), call_ids: num("callids="), net_events };
            if let Some((_, sip, cids, _)) = NOT_TSHARK.iter().find(|(f, ..)| *f == e.file) {
                (e.sip, e.call_ids) = (*sip, *cids);
            }
            e
        })
        .collect()
}

/// A running `hep-sink` on a free port.
struct Sink {
    child: Child,
    addr: String,
}

impl Sink {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hep-sink"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hep-sink");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
        let addr = first.trim().strip_prefix("listening on ").expect("sink announces its address").to_string();
        Self { child, addr }
    }

    /// Closes the sink's stdin (the agent has exited, so its streams were read) and
    /// returns its JSON summary as (packets, sip, call_ids).
    fn finish(self) -> (u64, u64, u64) {
        let c = self.counts();
        (c.packets, c.sip, c.call_ids)
    }

    /// Like [`Sink::finish`], with the network events too.
    fn counts(mut self) -> Counts {
        drop(self.child.stdin.take());
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        self.child.wait().unwrap();
        let field = |name: &str| -> u64 {
            let at = out.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name} in {out}"));
            out[at + name.len() + 3..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
        };
        Counts {
            packets: field("packets"),
            sip: field("sip"),
            call_ids: field("call_ids"),
            net_events: field("net_events"),
        }
    }
}

/// What a sink received.
struct Counts {
    packets: u64,
    sip: u64,
    call_ids: u64,
    net_events: u64,
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capture-agent")).arg("--no-progress").args(args).output().expect("run agent")
}

fn replay(file: &str, transport: &str, extra: &[&str]) -> (Output, (u64, u64, u64)) {
    let (out, c) = replay_counts(file, transport, extra);
    (out, (c.packets, c.sip, c.call_ids))
}

fn replay_counts(file: &str, transport: &str, extra: &[&str]) -> (Output, Counts) {
    let sink = Sink::start(if transport == "udp" { &["--idle-exit-ms", "200"] } else { &[] });
    let path = corpus().join(file);
    let mut args = vec!["-r", path.to_str().unwrap(), "--hep-server", &sink.addr, "--transport", transport];
    args.extend_from_slice(extra);
    let out = agent(&args);
    (out, sink.counts())
}

#[test]
fn every_capture_matches_the_reference_counts_over_tcp() {
    let mut failures = Vec::new();
    for e in reference() {
        let (out, got) = replay_counts(&e.file, "tcp", &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if e.file == UNREADABLE {
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(stderr.contains("Microsoft Network Monitor"), "clear error expected: {stderr}");
            continue;
        }
        let (sip, call_ids, events) = (got.sip, got.call_ids, got.net_events);
        if !out.status.success() || (sip, call_ids, events) != (e.sip, e.call_ids, e.net_events) {
            failures.push(format!(
                "{}: got {sip} SIP / {call_ids} Call-IDs / {events} net events, expected {} / {} / {} (exit {:?})\n{stderr}",
                e.file, e.sip, e.call_ids, e.net_events, out.status
            ));
        }
        // Without relayed HEP (which may carry RTCP and other types), nothing but SIP and
        // the events arrives.
        if out.status.success() && stderr.contains(" hep_relayed=0 ") && got.packets != sip + events {
            failures.push(format!("{}: {} HEP packets for {sip} SIP + {events} events", e.file, got.packets));
        }
    }
    assert!(failures.is_empty(), "{} file(s) differ:\n{}", failures.len(), failures.join("\n"));
}

/// UDP has no flow control: a max-speed replay can overrun a receiver's socket buffer,
/// and on a busy machine the receiver may not run at all for a while. A burst of up to
/// 40 messages fits Linux's default receive buffer (~200 KiB, at ~2.5 KiB of accounting
/// per small datagram) whatever the receiver's speed, so those captures must arrive whole.
#[test]
fn small_captures_arrive_whole_over_udp() {
    for e in reference().into_iter().filter(|e| e.sip <= 40 && e.file != UNREADABLE) {
        let (out, (_, sip, call_ids)) = replay(&e.file, "udp", &[]);
        assert!(out.status.success(), "{}: {}", e.file, String::from_utf8_lossy(&out.stderr));
        assert_eq!((sip, call_ids), (e.sip, e.call_ids), "{}", e.file);
    }
}

#[test]
fn discard_methods_and_filter_drop_what_they_say() {
    // 120 messages: 20 calls of INVITE, 180, 200, ACK, BYE, 200.
    let file = "gen/sipp_basic.pcap";
    let (out, (_, sip, _)) = replay(file, "tcp", &["--discard-methods", "bye"]);
    assert!(out.status.success());
    assert_eq!(sip, 80, "BYE and its 200 OK are discarded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("discarded_methods=40"));
    let (_, (_, sip, _)) = replay(file, "tcp", &["--filter", "not port 5060"]);
    assert_eq!(sip, 0);
    let (_, (_, sip, _)) = replay(file, "tcp", &["-pr", "5000-5100"]);
    assert_eq!(sip, 120);
}

#[test]
fn several_files_and_several_collectors() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let f1 = corpus().join("gen/sipp_basic.pcap");
    let f2 = corpus().join("gen/synthetic/tcp_multi_sip_out_of_order.pcap");
    let servers = format!("{},{}", a.addr, b.addr);
    let out = agent(&["-r", f1.to_str().unwrap(), "-r", f2.to_str().unwrap(), "-hs", &servers, "-nt", "tcp"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(a.finish().1, 131);
    assert_eq!(b.finish().1, 131);
}

#[test]
fn truncated_capture_sends_what_precedes_the_cut_and_warns() {
    let data = std::fs::read(corpus().join("gen/sipp_basic.pcap")).unwrap();
    let dir = std::env::temp_dir().join(format!("agent-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::File::create(&cut).unwrap().write_all(&data[..data.len() / 2]).unwrap();
    let sink = Sink::start(&[]);
    let out = agent(&["-r", cut.to_str().unwrap(), "--hep-server", &sink.addr, "--transport", "tcp"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning") && stderr.contains("truncated"), "{stderr}");
    let (_, sip, _) = sink.finish();
    assert!(sip > 40 && sip < 120, "the messages before the cut arrive: {sip}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreachable_collector_is_an_error_not_a_hang() {
    // Nothing listens on port 9 of 127.0.0.2: every UDP send is refused, counted, and the
    // exit status says so.
    let file = corpus().join("gen/sipp_basic.pcap");
    let out = agent(&["-r", file.to_str().unwrap(), "--hep-server", "127.0.0.2:9", "--transport", "udp"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("LOST"), "{stderr}");
}

/// Rewrites a classic little-endian Ethernet pcap so every packet appears twice: as
/// captured on a VLAN interface (802.1Q tag 100) and, 20 us later, untagged on its parent.
fn doubled_with_vlan_copy(pcap: &[u8]) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let word = |o: usize| u32::from_le_bytes(pcap[at + o..at + o + 4].try_into().unwrap());
        let (sec, usec, caplen) = (word(0), word(4), word(8) as usize);
        let frame = &pcap[at + 16..at + 16 + caplen];
        let mut tagged = frame[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
        tagged.extend_from_slice(&frame[12..]);
        for (usec, bytes) in [(usec, &tagged[..]), (usec + 20, frame)] {
            for v in [sec, usec, bytes.len() as u32, bytes.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(bytes);
        }
        at += 16 + caplen;
    }
    out
}

#[test]
fn dedup_drops_the_copy_on_the_parent_interface_only() {
    let data = std::fs::read(corpus().join("gen/sipp_basic.pcap")).unwrap();
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian microsecond pcap");
    let file = std::env::temp_dir().join(format!("agent-dedup-{}.pcap", std::process::id()));
    std::fs::write(&file, doubled_with_vlan_copy(&data)).unwrap();
    let path = file.to_str().unwrap();
    let count = |extra: &[&str]| {
        let sink = Sink::start(&[]);
        let mut args = vec!["-r", path, "--hep-server", &sink.addr, "--transport", "tcp"];
        args.extend_from_slice(extra);
        let out = agent(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (sink.finish().1, String::from_utf8_lossy(&out.stderr).to_string())
    };
    assert_eq!(count(&[]).0, 240, "without --dedup both copies are sent");
    let (sip, stderr) = count(&["--dedup"]);
    assert_eq!(sip, 120, "one copy of each packet: {stderr}");
    assert!(stderr.contains("duplicates=120"), "{stderr}");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn settings_from_the_environment_and_paced_replay() {
    let sink = Sink::start(&[]);
    let file = corpus().join("gen/synthetic/sip_udp_qinq_vlan200_100.pcap");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_capture-agent"))
        .args(["--no-progress", "-r", file.to_str().unwrap()])
        .env("CAPTURE_AGENT_HEP_SERVER", &sink.addr)
        .env("CAPTURE_AGENT_TRANSPORT", "tcp")
        .env("CAPTURE_AGENT_REPLAY_SPEED", "realtime")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sink.finish().1, 7);
    // Seven packets 10 ms apart: real-time pacing cannot take less than 60 ms (only a
    // lower bound: a busy machine may take longer, never shorter).
    assert!(started.elapsed() >= std::time::Duration::from_millis(60), "{:?}", started.elapsed());
}
