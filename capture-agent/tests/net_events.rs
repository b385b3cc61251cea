//! Network events end to end: the real `capture-agent` replays captures of a VIP failover
//! to the real `hep-sink`, and the gratuitous ARP and VRRP advertisements in them arrive as
//! HEP payload type 0x70 with the JSON of `capture_agent::net_event`, at their capture time.
//!
//! - `pcaps/scenarios/lb-failover`: the VIP moved by script; lb2 sends two gratuitous ARP
//!   (`arping -U -c 2`) when it takes 10.77.0.100;
//! - `pcaps/scenarios/lb-failover-vrrp`: keepalived moves it; lb1's unicast adverts before
//!   the kill, lb2's after, and keepalived's own gratuitous ARP bursts;
//! - the shared corpus capture with VRRP (a v2 multicast advertisement with no address).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scenario(name: &str, host: &str) -> PathBuf {
    repo().join("pcaps/scenarios").join(name).join(format!("{host}.pcap"))
}

/// One `net-event` line printed by `hep-sink --print`.
#[derive(Debug, Clone, PartialEq)]
struct Printed {
    /// Capture time, microseconds since the epoch.
    us: u64,
    src: String,
    dst: String,
    proto: String,
    node: String,
    json: String,
}

impl Printed {
    /// `SECS.USECS SRC:PORT -> DST:PORT net-event proto=P node=ID/NAME JSON`
    fn parse(line: &str) -> Option<Self> {
        let mut it = line.splitn(7, ' ');
        let (time, src, _, dst, kind, proto, rest) =
            (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
        if kind != "net-event" {
            return None;
        }
        let (secs, usecs) = time.split_once('.')?;
        let (node, json) = rest.split_once(' ')?;
        Some(Self {
            us: secs.parse::<u64>().ok()? * 1_000_000 + usecs.parse::<u64>().ok()?,
            src: src.to_string(),
            dst: dst.to_string(),
            proto: proto.strip_prefix("proto=")?.to_string(),
            node: node.strip_prefix("node=")?.to_string(),
            json: json.to_string(),
        })
    }
}

/// What one replay delivered: the printed events and the sink's JSON summary.
struct Delivered {
    events: Vec<Printed>,
    summary: String,
    agent: Output,
}

impl Delivered {
    fn count(&self, name: &str) -> u64 {
        let at = self.summary.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name} in {}", self.summary));
        let digits: String = self.summary[at + name.len() + 3..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.agent.stderr).into_owned()
    }

    fn of_kind(&self, kind: &str) -> Vec<&Printed> {
        let prefix = format!(r#"{{"event":"{kind}","#);
        self.events.iter().filter(|e| e.json.starts_with(&prefix)).collect()
    }
}

/// Replays `file` with `extra` agent options to a fresh `hep-sink --print` over TCP.
fn replay(file: &Path, extra: &[&str]) -> Delivered {
    replay_with_env(file, extra, &[])
}

fn replay_with_env(file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Delivered {
    let mut sink = Command::new(env!("CARGO_BIN_EXE_hep-sink"))
        .args(["--listen", "127.0.0.1:0", "--print"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hep-sink");
    let mut out = BufReader::new(sink.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first.trim().strip_prefix("listening on ").expect("sink announces its address").to_string();
    let agent = Command::new(env!("CARGO_BIN_EXE_capture-agent"))
        .args(["--no-progress", "-r", file.to_str().unwrap(), "--hep-server", &addr, "--transport", "tcp"])
        .args(["--node-id", "12", "--node-name", "lb2"])
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .expect("run agent");
    assert!(agent.status.success(), "{}", String::from_utf8_lossy(&agent.stderr));
    drop(sink.stdin.take());
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    sink.wait().unwrap();
    let summary = text.lines().rfind(|l| l.starts_with('{')).expect("sink summary").to_string();
    Delivered { events: text.lines().filter_map(Printed::parse).collect(), summary, agent }
}

/// A number field of a truth.json (epoch seconds, ms precision) as microseconds.
fn truth_us(scenario_name: &str, field: &str) -> u64 {
    let path = repo().join("pcaps/scenarios").join(scenario_name).join("truth.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find(&format!("\"{field}\": ")).unwrap_or_else(|| panic!("{field} in {}", path.display()));
    let value: String = text[at + field.len() + 4..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    (value.parse::<f64>().unwrap() * 1e6).round() as u64
}

const GARP_LB2: &str = r#"{"event":"garp","ip":"10.77.0.100","mac":"1e:a7:48:48:c1:dd","op":"request"}"#;

#[test]
fn gratuitous_arp_of_the_scripted_failover_arrives_as_payload_type_112() {
    let d = replay(&scenario("lb-failover", "lb2"), &[]);
    assert_eq!((d.count("sip"), d.count("net_events"), d.count("packets")), (112, 2, 114), "{}", d.summary);
    assert!(d.stderr().contains("net_events=2") && d.stderr().contains("arp_vrrp=25"), "{}", d.stderr());
    // `arping -U -c 2` one second apart (tshark: arp.isgratuitous); the 23 other ARP
    // packets (requests and replies between hosts) are not sent.
    let want = |us| Printed {
        us,
        src: "10.77.0.100:0".into(),
        dst: "10.77.0.100:0".into(),
        proto: "0".into(),
        node: "12/lb2".into(),
        json: GARP_LB2.into(),
    };
    assert_eq!(d.events, vec![want(1_795_321_827_901_276), want(1_795_321_828_901_321)]);
    // The script added the VIP, then ran arping: the first announcement follows within 50 ms.
    let moved = truth_us("lb-failover", "t_vip_moved");
    assert!((moved..moved + 50_000).contains(&d.events[0].us), "VIP moved at {moved}, GARP at {}", d.events[0].us);
}

#[test]
fn keepalived_failover_shows_both_masters_adverts_and_the_takeover() {
    let d = replay(&scenario("lb-failover-vrrp", "lb2"), &[]);
    let killed = truth_us("lb-failover-vrrp", "t_lb_killed");
    let master = truth_us("lb-failover-vrrp", "t");
    let vrrp = d.of_kind("vrrp");
    let lb1 = r#"{"event":"vrrp","version":2,"vrid":51,"priority":150,"src":"10.77.0.11","addresses":["10.77.0.100"]}"#;
    let lb2 = r#"{"event":"vrrp","version":2,"vrid":51,"priority":100,"src":"10.77.0.12","addresses":["10.77.0.100"]}"#;
    let (before, after): (Vec<&Printed>, Vec<&Printed>) = vrrp.iter().copied().partition(|e| e.us < killed);
    assert!(!before.is_empty() && before.iter().all(|e| e.json == lb1), "{before:?}");
    assert!(before
        .iter()
        .all(|e| (e.src.as_str(), e.dst.as_str(), e.proto.as_str()) == ("10.77.0.11:0", "10.77.0.12:0", "112")));
    assert!(!after.is_empty() && after.iter().all(|e| e.json == lb2 && e.dst == "10.77.0.11:0"), "{after:?}");
    // keepalived adverts as master before its notify_master script writes the time.
    let first = after[0].us;
    assert!(first <= master && master - first < 100_000, "first lb2 advert {first}, master at {master}");
    // Its gratuitous ARP burst at the takeover, from lb2's MAC; lb1's at start-up before.
    let garps = d.of_kind("garp");
    let at_takeover: Vec<_> = garps.iter().filter(|e| e.us >= killed).collect();
    assert!(at_takeover.len() >= 5 && at_takeover[0].us - first < 100_000, "{garps:?}");
    assert!(at_takeover.iter().all(|e| e.json.contains(r#""ip":"10.77.0.100""#)));
    assert_ne!(garps[0].json, at_takeover[0].json, "lb1 and lb2 announce different MACs");
    // Every VRRP and GARP in the capture, nothing else: tshark counts 9 advertisements
    // (`vrrp && !icmp`: lb1's ICMP errors quote lb2's adverts, not decoded) and 10 GARP.
    assert_eq!((vrrp.len(), garps.len(), d.count("net_events")), (9, 10, 19), "{}", d.summary);
    assert_eq!(d.count("sip"), 120);
}

#[test]
fn corpus_vrrp_advertisements_become_events() {
    let corpus = repo().join("../shared/corpus/pcap/heplify/sip_ipv4_tcp_retrans.pcap");
    let d = replay(&corpus, &[]);
    let want = r#"{"event":"vrrp","version":2,"vrid":100,"priority":100,"src":"1.1.1.1","addresses":[]}"#;
    assert_eq!(d.events.len(), 9, "{}", d.summary);
    assert!(d.events.iter().all(|e| e.json == want && e.dst == "224.0.0.18:0" && e.proto == "112"), "{:?}", d.events);
    assert_eq!(d.events[0].us, 1_507_433_574_340_740);
    assert_eq!(d.count("sip"), 8, "SIP unchanged by the events beside it");
}

#[test]
fn switched_off_or_filtered_sip_leaves_events_alone() {
    let file = scenario("lb-failover", "lb2");
    let off = replay(&file, &["--no-net-events"]);
    assert_eq!((off.count("sip"), off.count("net_events")), (112, 0));
    assert!(off.stderr().contains("net_events=0") && off.stderr().contains("arp_vrrp=25"), "{}", off.stderr());
    let off = replay(&file, &["--net-events=false"]);
    assert_eq!(off.count("net_events"), 0);
    // The SIP filters do not apply to events: --filter selects SIP flows (no ARP has a
    // port), discard and dedup are about SIP messages.
    let filtered = replay(&file, &["--filter", "udp and port 9999", "--discard-methods", "INVITE", "--dedup"]);
    assert_eq!((filtered.count("sip"), filtered.count("net_events")), (0, 2), "{}", filtered.stderr());
}

/// The agent's environment variable turns events off too.
#[test]
fn environment_switch() {
    let d = replay_with_env(&scenario("lb-failover", "lb2"), &[], &[("CAPTURE_AGENT_NET_EVENTS", "false")]);
    assert_eq!((d.count("sip"), d.count("net_events")), (112, 0));
}
