//! Agent settings from flags, environment variables and a TOML config file.
//!
//! Precedence: command line, then environment (`CAPTURE_AGENT_*`), then the config file,
//! then the defaults named below. heplify's single-dash spellings (`-hs`, `-rf`, `-hi`,
//! ...) are translated to ours before parsing, so existing scripts keep working.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Parser;
use serde::Deserialize;

use crate::filter::Filter;

/// Default HEP destination: the collector's default listen address.
pub const DEFAULT_HEP_SERVER: &str = "127.0.0.1:9060";

/// Command-line interface.
#[derive(Debug, Parser, Default)]
#[command(
    name = "capture-agent",
    version,
    about = "Capture SIP live from network interfaces (libpcap) or from pcap/pcapng files, and send it as \
             HEPv3 to one or more collectors.",
    after_help = "Live capture (--interface) runs until SIGINT or SIGTERM, then sends what it holds, prints a \
                  summary with the kernel's drop counters and exits 0 (1 if a capture failed). It needs \
                  CAP_NET_RAW and CAP_NET_ADMIN, not root: see capture-agent.service.\n\
                  heplify spellings are accepted too: -rf -hs -nt -hi -hn -hp -dim -dd -rs -bpf -pr -s.\n\
                  Every option can also be set in the config file (--config) with the same name \
                  in snake_case, or in the environment as CAPTURE_AGENT_<NAME>."
)]
pub struct Cli {
    /// Read packets from this pcap or pcapng file (repeat for several files, read in order).
    #[arg(short = 'r', long = "read-file", value_name = "FILE")]
    pub read_file: Vec<PathBuf>,

    /// Capture live from this interface (repeat for several; `any` for all of them).
    /// Excludes --read-file.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        value_delimiter = ',',
        env = "CAPTURE_AGENT_INTERFACE"
    )]
    pub interface: Vec<String>,

    /// Live capture: bytes kept of each frame [default: 65535].
    #[arg(long, value_name = "BYTES", env = "CAPTURE_AGENT_SNAPLEN")]
    pub snaplen: Option<u32>,

    /// Live capture: put the interfaces in promiscuous mode (see traffic not addressed
    /// to this host, e.g. on a mirror port).
    #[arg(long, env = "CAPTURE_AGENT_PROMISCUOUS")]
    pub promiscuous: bool,

    /// Live capture: kernel BPF filter (tcpdump syntax, compiled by libpcap); "" captures
    /// everything. The default keeps everything that can carry SIP, every IP fragment
    /// included; with --port-range it keeps those ports plus every fragment and tunnel.
    #[arg(long, value_name = "EXPR", env = "CAPTURE_AGENT_CAPTURE_FILTER")]
    pub capture_filter: Option<String>,

    /// Live capture: kernel capture buffer per interface, bytes [default: 33554432].
    #[arg(long, value_name = "BYTES", env = "CAPTURE_AGENT_BUFFER_SIZE")]
    pub buffer_size: Option<u32>,

    /// Send HEP to this collector (repeat, or separate with commas, to send to each).
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',', env = "CAPTURE_AGENT_HEP_SERVER")]
    pub hep_server: Vec<String>,

    /// HEP transport.
    #[arg(long, value_name = "udp|tcp", env = "CAPTURE_AGENT_TRANSPORT")]
    pub transport: Option<Transport>,

    /// Capture agent id sent in every HEP packet (chunk 0x0c).
    #[arg(long, value_name = "N", env = "CAPTURE_AGENT_NODE_ID")]
    pub node_id: Option<u32>,

    /// Capture node name sent in every HEP packet (chunk 0x13). Default: the host name.
    #[arg(long, value_name = "NAME", env = "CAPTURE_AGENT_NODE_NAME")]
    pub node_name: Option<String>,

    /// HEP authentication key / password (chunk 0x0e).
    #[arg(long, value_name = "KEY", env = "CAPTURE_AGENT_AUTH_KEY")]
    pub auth_key: Option<String>,

    /// Put this header's value in the HEP correlation id when present (e.g. X-CID);
    /// otherwise the Call-ID is used.
    #[arg(long, value_name = "HEADER", env = "CAPTURE_AGENT_CORRELATION_HEADER")]
    pub correlation_header: Option<String>,

    /// Replay pace: `max` (as fast as possible), `realtime` (original timing) or a factor
    /// (2 = twice as fast).
    #[arg(long, value_name = "max|realtime|FACTOR", env = "CAPTURE_AGENT_REPLAY_SPEED")]
    pub replay_speed: Option<ReplaySpeed>,

    /// Do not send requests with these methods, nor their responses (comma separated).
    #[arg(long, value_name = "METHOD,...", value_delimiter = ',', env = "CAPTURE_AGENT_DISCARD_METHODS")]
    pub discard_methods: Vec<String>,

    /// Drop copies of the same packet seen twice within 500 ms (e.g. on a VLAN and its
    /// parent interface). Real SIP retransmissions are kept.
    #[arg(long, env = "CAPTURE_AGENT_DEDUP")]
    pub dedup: bool,

    /// Packet filter in a BPF-like language applied in the agent after decoding (so it sees inner
    /// tunnel addresses and reassembled fragments), e.g. `udp and port 5060`,
    /// `host 10.0.0.1 or net 192.0.2.0/24`, `portrange 5060-5090`, `not tcp`.
    #[arg(long, value_name = "EXPR", env = "CAPTURE_AGENT_FILTER")]
    pub filter: Option<String>,

    /// Send gratuitous ARP and VRRP advertisements as HEP (payload type 0x70, JSON), which
    /// show a virtual IP moving between hosts [default: true]. `--net-events=false` or
    /// --no-net-events turns it off. Not subject to --filter, --discard-methods, --dedup.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        overrides_with = "no_net_events",
        env = "CAPTURE_AGENT_NET_EVENTS"
    )]
    pub net_events: Option<bool>,

    /// Do not send gratuitous ARP and VRRP advertisements (see --net-events).
    #[arg(long, overrides_with = "net_events")]
    pub no_net_events: bool,

    /// Shorthand for `--filter "portrange A-B"` (heplify's -pr), and-ed with --filter. In
    /// live capture it also narrows the default kernel filter to these ports plus every
    /// IP fragment and tunnel.
    #[arg(long, value_name = "A-B", env = "CAPTURE_AGENT_PORT_RANGE")]
    pub port_range: Option<String>,

    /// Read settings from this TOML file.
    #[arg(short = 'c', long, value_name = "FILE", env = "CAPTURE_AGENT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Never draw a progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,

    /// Decode and count everything, send nothing (inspect a capture; benchmark floor).
    #[arg(long)]
    pub dry_run: bool,
}

/// The config file: the same settings as the flags, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    read_file: Option<Vec<PathBuf>>,
    interface: Option<Vec<String>>,
    snaplen: Option<u32>,
    promiscuous: Option<bool>,
    capture_filter: Option<String>,
    buffer_size: Option<u32>,
    hep_server: Option<Vec<String>>,
    transport: Option<String>,
    node_id: Option<u32>,
    node_name: Option<String>,
    auth_key: Option<String>,
    correlation_header: Option<String>,
    replay_speed: Option<String>,
    discard_methods: Option<Vec<String>>,
    dedup: Option<bool>,
    filter: Option<String>,
    port_range: Option<String>,
    net_events: Option<bool>,
}

/// HEP transport to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// One datagram per HEP packet.
    #[default]
    Udp,
    /// A stream of HEP packets, framed by their length.
    Tcp,
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            other => Err(format!("unknown transport {other:?}: use udp or tcp")),
        }
    }
}

/// How fast to replay a file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReplaySpeed {
    /// As fast as the collector accepts.
    #[default]
    Max,
    /// Original inter-packet timing divided by this factor (1.0 = real time).
    Factor(f64),
}

impl FromStr for ReplaySpeed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "max" => Ok(Self::Max),
            "realtime" | "real-time" => Ok(Self::Factor(1.0)),
            other => match other.parse::<f64>() {
                Ok(f) if f > 0.0 && f.is_finite() => Ok(Self::Factor(f)),
                _ => Err(format!("bad replay speed {s:?}: use max, realtime or a positive factor")),
            },
        }
    }
}

/// Resolved settings the agent runs with.
#[derive(Debug)]
pub struct Settings {
    /// Files to replay, in order (empty in live mode).
    pub files: Vec<PathBuf>,
    /// Interfaces to capture from (empty when replaying files).
    pub interfaces: Vec<String>,
    /// Live capture options.
    pub live: LiveOptions,
    /// Collectors; every HEP packet goes to each (none with `--dry-run`).
    pub servers: Vec<String>,
    /// HEP transport.
    pub transport: Transport,
    /// HEP capture id.
    pub node_id: u32,
    /// HEP node name.
    pub node_name: String,
    /// HEP auth key.
    pub auth_key: Option<String>,
    /// Header whose value becomes the correlation id (else the Call-ID).
    pub correlation_header: Option<String>,
    /// Replay pace.
    pub replay_speed: ReplaySpeed,
    /// Methods to discard, upper case.
    pub discard_methods: Vec<String>,
    /// Drop duplicate copies of a packet.
    pub dedup: bool,
    /// Flow filter.
    pub filter: Option<Filter>,
    /// Send gratuitous ARP and VRRP advertisements as HEP.
    pub net_events: bool,
    /// Draw a progress bar if stderr is a terminal.
    pub progress: bool,
}

/// Default snap length: whole frames (a SIP INVITE with SDP easily exceeds heplify's
/// 8192 on jumbo-frame links, and a truncated message is useless).
pub const DEFAULT_SNAPLEN: u32 = 65_535;

/// Default kernel buffer per interface. libpcap's own default (2 MiB on Linux) holds well
/// under a second of a busy SIP trunk; 32 MiB rides out pauses of the agent (a slow
/// collector, a burst of reassembly) at little cost.
pub const DEFAULT_BUFFER_SIZE: u32 = 32 * 1024 * 1024;

/// What can carry SIP, in BPF: UDP, TCP and SCTP; every IPv4 fragment (MF bit or a
/// fragment offset: a non-first fragment has no transport header to match); all IPv6
/// (a fragment or any extension header hides the transport from BPF); IP-in-IP and GRE
/// tunnels (the decoder unwraps them).
const CARRIERS_BPF: &str = "udp or tcp or sctp or (ip[6:2] & 0x3fff != 0) or ip6 or ip proto 4 or ip proto 47";

/// Network events, in BPF: ARP and VRRP over IPv4 (VRRP over IPv6 already passes with
/// the IPv6 clauses). Rare packets: a few per second on a LAN.
const NET_EVENTS_BPF: &str = "arp or ip proto 112";

/// The kernel filter used when none is given, for a capture of this link type.
///
/// Without `--port-range` it keeps everything that can carry SIP, whatever the port,
/// because the agent recognises SIP by content (SIP on 6060, HTTP on 5060 are real) and
/// drops the rest in user space. With a port range (heplify's `-pr`) it keeps those ports
/// *and every IP fragment and tunnel*: a port-only filter such as `portrange 5060-5090`
/// loses the non-first fragments of a large INVITE (they carry no UDP header, so libpcap's
/// port test fails on them), and the agent could then never reassemble it. The user-space
/// port filter still applies after reassembly, so fragments of other traffic are dropped
/// there. Media (RTP) on other ports stays in the kernel, which matters on busy hosts.
///
/// With `net_events` it also keeps ARP and VRRP (gratuitous ARP and advertisements are
/// how a virtual IP moving between hosts shows), whatever the port range.
///
/// On Ethernet the same clauses are repeated after `vlan` for tagged frames the kernel
/// did not untag (`vlan` must come last: it shifts the offsets of everything after it).
/// Other link types (`any` gives Linux cooked capture) have no VLAN test in libpcap.
pub fn default_capture_filter(port_range: Option<(u16, u16)>, ethernet: bool, net_events: bool) -> String {
    let mut carriers = match port_range {
        None => CARRIERS_BPF.to_string(),
        Some((lo, hi)) => format!(
            "portrange {lo}-{hi} or (ip[6:2] & 0x3fff != 0) or (ip6 and not ip6 proto 6 and not ip6 proto 17 \
             and not ip6 proto 132) or ip proto 4 or ip proto 47"
        ),
    };
    if net_events {
        carriers = format!("{carriers} or {NET_EVENTS_BPF}");
    }
    if ethernet {
        format!("{carriers} or (vlan and ({carriers}))")
    } else {
        carriers
    }
}

/// Options of a live capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// Kernel BPF filter given by the user (empty: none); `None`: the default.
    pub capture_filter: Option<String>,
    /// `--port-range`, which narrows the default kernel filter.
    pub port_range: Option<(u16, u16)>,
    /// Kernel capture buffer per interface, bytes.
    pub buffer_size: u32,
    /// Network events are sent, so the default kernel filter keeps ARP and VRRP.
    pub net_events: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            snaplen: DEFAULT_SNAPLEN,
            promiscuous: false,
            capture_filter: None,
            port_range: None,
            buffer_size: DEFAULT_BUFFER_SIZE,
            net_events: true,
        }
    }
}

impl LiveOptions {
    /// The kernel filter for a capture whose link type is Ethernet or not; empty: none.
    pub fn kernel_filter(&self, ethernet: bool) -> String {
        match &self.capture_filter {
            Some(expr) => expr.trim().to_string(),
            None => default_capture_filter(self.port_range, ethernet, self.net_events),
        }
    }
}

impl Settings {
    /// Parses the process arguments (with heplify spellings translated) and environment,
    /// and reads the config file they name.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Self, String> {
        let cli = Cli::try_parse_from(translate_heplify_args(args)).map_err(|e| e.to_string())?;
        let file = match &cli.config {
            Some(path) => read_config_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    fn merge(cli: Cli, file: FileConfig) -> Result<Self, String> {
        let transport = match (cli.transport, file.transport) {
            (Some(t), _) => t,
            (None, Some(t)) => t.parse()?,
            (None, None) => Transport::default(),
        };
        let replay_speed = match (cli.replay_speed, file.replay_speed) {
            (Some(s), _) => s,
            (None, Some(s)) => s.parse()?,
            (None, None) => ReplaySpeed::default(),
        };
        let (files, interfaces) = source_mode(cli.read_file, cli.interface, file.read_file, file.interface)?;
        let port_range = cli.port_range.or(file.port_range);
        let net_events = !cli.no_net_events && cli.net_events.or(file.net_events).unwrap_or(true);
        let live = LiveOptions {
            snaplen: cli.snaplen.or(file.snaplen).unwrap_or(DEFAULT_SNAPLEN),
            promiscuous: cli.promiscuous || file.promiscuous.unwrap_or(false),
            capture_filter: cli.capture_filter.or(file.capture_filter),
            port_range: port_range.as_deref().map(parse_port_range).transpose()?,
            buffer_size: cli.buffer_size.or(file.buffer_size).unwrap_or(DEFAULT_BUFFER_SIZE),
            net_events,
        };
        if live.snaplen == 0 || live.buffer_size == 0 {
            return Err("--snaplen and --buffer-size must be positive".into());
        }
        let filter = build_filter(cli.filter.or(file.filter), port_range)?;
        let servers = if cli.dry_run {
            Vec::new()
        } else {
            non_empty(cli.hep_server).or(file.hep_server).unwrap_or_else(|| vec![DEFAULT_HEP_SERVER.into()])
        };
        let discard_methods = non_empty(cli.discard_methods).or(file.discard_methods).unwrap_or_default();
        Ok(Self {
            files,
            interfaces,
            live,
            servers,
            transport,
            node_id: cli.node_id.or(file.node_id).unwrap_or(0),
            node_name: cli.node_name.or(file.node_name).unwrap_or_else(host_name),
            auth_key: cli.auth_key.or(file.auth_key),
            correlation_header: cli.correlation_header.or(file.correlation_header),
            replay_speed,
            discard_methods: discard_methods
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .filter(|m| !m.is_empty())
                .collect(),
            dedup: cli.dedup || file.dedup.unwrap_or(false),
            filter,
            net_events,
            progress: !cli.no_progress,
        })
    }
}

/// Files or interfaces, never both. The command line (and environment) decides the mode
/// when it names either; the config file's choice applies only when it does not, so
/// `--interface eth0` overrides a config file that lists files.
fn source_mode(
    cli_files: Vec<PathBuf>,
    cli_ifaces: Vec<String>,
    file_files: Option<Vec<PathBuf>>,
    file_ifaces: Option<Vec<String>>,
) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    const BOTH: &str = "--read-file and --interface are mutually exclusive: replay files or capture live, not both";
    match (non_empty(cli_files), non_empty(cli_ifaces)) {
        (Some(_), Some(_)) => Err(BOTH.into()),
        (Some(f), None) => Ok((f, Vec::new())),
        (None, Some(i)) => Ok((Vec::new(), i)),
        (None, None) => match (file_files.and_then(non_empty), file_ifaces.and_then(non_empty)) {
            (Some(_), Some(_)) => Err(format!("config file: {BOTH}")),
            (f, i) => Ok((f.unwrap_or_default(), i.unwrap_or_default())),
        },
    }
}

/// `A-B` (or a single port) as an inclusive range.
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("bad port range {text:?}: use A-B, e.g. 5060-5090");
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn build_filter(expr: Option<String>, port_range: Option<String>) -> Result<Option<Filter>, String> {
    let text = match (expr, port_range) {
        (None, None) => return Ok(None),
        (Some(e), None) => e,
        (None, Some(r)) => format!("portrange {r}"),
        (Some(e), Some(r)) => format!("({e}) and portrange {r}"),
    };
    text.parse::<Filter>().map(Some).map_err(|e| format!("bad filter {text:?}: {e}"))
}

fn read_config_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("bad config file {}: {e}", path.display()))
}

/// The host name, the natural default node name for an agent on every host.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "capture-agent".into())
}

/// Rewrites heplify's single-dash long options into ours.
fn translate_heplify_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let ours = match flag.as_str() {
            "-rf" => "--read-file",
            "-hs" => "--hep-server",
            "-nt" => "--transport",
            "-hi" => "--node-id",
            "-hn" => "--node-name",
            "-hp" => "--auth-key",
            "-dim" => "--discard-methods",
            "-dd" => "--dedup",
            "-bpf" => "--filter",
            "-pr" => "--port-range",
            "-s" => "--snaplen",
            "-rs" => {
                out.push("--replay-speed=max".into());
                continue;
            }
            _ => {
                out.push(arg);
                continue;
            }
        };
        out.push(match value {
            Some(v) => format!("{ours}={v}"),
            None => ours.into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        Settings::from_args(std::iter::once("capture-agent").chain(args.iter().copied()).map(String::from))
    }

    #[test]
    fn heplify_spellings() {
        let s = parse(&[
            "-rf",
            "a.pcap",
            "-hs",
            "10.0.0.1:9060",
            "-nt",
            "tcp",
            "-hi",
            "7",
            "-dd",
            "-rs",
            "-dim",
            "OPTIONS,notify",
        ])
        .unwrap();
        assert_eq!(s.files, vec![PathBuf::from("a.pcap")]);
        assert_eq!(s.servers, vec!["10.0.0.1:9060"]);
        assert_eq!(s.transport, Transport::Tcp);
        assert_eq!(s.node_id, 7);
        assert!(s.dedup);
        assert_eq!(s.replay_speed, ReplaySpeed::Max);
        assert_eq!(s.discard_methods, vec!["OPTIONS", "NOTIFY"]);
    }

    #[test]
    fn several_servers_and_files() {
        let s = parse(&["--read-file", "a", "--read-file", "b", "--hep-server", "h1:1,h2:2", "--hep-server", "h3:3"])
            .unwrap();
        assert_eq!(s.files.len(), 2);
        assert_eq!(s.servers, vec!["h1:1", "h2:2", "h3:3"]);
    }

    #[test]
    fn config_file_under_flags() {
        let dir = std::env::temp_dir().join(format!("agent-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(
            &path,
            "hep_server = [\"file:1\"]\nnode_name = \"lb1\"\ntransport = \"tcp\"\nreplay_speed = \"2\"\n",
        )
        .unwrap();
        let s = parse(&["--config", path.to_str().unwrap(), "--node-name", "lb2"]).unwrap();
        assert_eq!(s.servers, vec!["file:1"]);
        assert_eq!(s.node_name, "lb2");
        assert_eq!(s.transport, Transport::Tcp);
        assert_eq!(s.replay_speed, ReplaySpeed::Factor(2.0));
        std::fs::write(&path, "hep_servers = [\"typo\"]\n").unwrap();
        assert!(parse(&["--config", path.to_str().unwrap()]).unwrap_err().contains("unknown field"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn live_options_and_mode() {
        let s = parse(&["-i", "eth0", "--interface", "any", "--snaplen", "1500", "--promiscuous"]).unwrap();
        assert_eq!(s.interfaces, vec!["eth0", "any"]);
        assert!(s.files.is_empty());
        assert_eq!(s.live.snaplen, 1500);
        assert!(s.live.promiscuous);
        assert_eq!(s.live.buffer_size, DEFAULT_BUFFER_SIZE);
        assert_eq!(s.live.kernel_filter(true), default_capture_filter(None, true, true));
        let s = parse(&["-i", "eth0", "-pr", "5060-5070", "--capture-filter", ""]).unwrap();
        assert_eq!(s.live.kernel_filter(true), "", "an empty filter means no kernel filter");
        let s = parse(&["-i", "eth0", "-pr", "5060-5070"]).unwrap();
        assert!(s.live.kernel_filter(false).starts_with("portrange 5060-5070 or (ip[6:2] & 0x3fff != 0)"));
        assert!(!s.live.kernel_filter(false).contains("vlan") && s.live.kernel_filter(true).contains("vlan"));
        let err = parse(&["-i", "eth0", "-r", "a.pcap"]).unwrap_err();
        assert!(err.contains("mutually exclusive"), "{err}");
        assert!(parse(&["-i", "eth0", "--snaplen", "0"]).is_err());
    }

    #[test]
    fn live_options_from_config_file() {
        let dir = std::env::temp_dir().join(format!("agent-live-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.toml");
        let cfg = "interface = [\"eth1\"]\nsnaplen = 9000\npromiscuous = true\nbuffer_size = 1048576\n\
                   capture_filter = \"udp port 5060\"\n";
        std::fs::write(&path, cfg).unwrap();
        let s = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(s.interfaces, vec!["eth1"]);
        assert_eq!(
            s.live,
            LiveOptions {
                snaplen: 9000,
                promiscuous: true,
                capture_filter: Some("udp port 5060".into()),
                port_range: None,
                buffer_size: 1_048_576,
                net_events: true,
            }
        );
        // The command line's mode wins over the file's.
        let s = parse(&["--config", path.to_str().unwrap(), "-r", "a.pcap"]).unwrap();
        assert!(s.interfaces.is_empty());
        std::fs::write(&path, "interface = [\"eth1\"]\nread_file = [\"a.pcap\"]\n").unwrap();
        assert!(parse(&["--config", path.to_str().unwrap()]).unwrap_err().contains("mutually exclusive"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn net_events_default_on_and_switch_off_everywhere() {
        let on = |args: &[&str]| {
            let s = parse(args).unwrap();
            assert_eq!(s.live.net_events, s.net_events);
            s.net_events
        };
        assert!(on(&["-i", "eth0"]));
        assert!(s_filter(&["-i", "eth0"]).contains("arp or ip proto 112"));
        assert!(!on(&["-i", "eth0", "--no-net-events"]));
        assert!(!s_filter(&["-i", "eth0", "--no-net-events"]).contains("arp"));
        assert!(!on(&["--net-events=false"]));
        assert!(on(&["--net-events"]));
        // The last of the two spellings wins, as with any repeated flag.
        assert!(on(&["--no-net-events", "--net-events"]));
        assert!(!on(&["--net-events", "--no-net-events"]));
        let dir = std::env::temp_dir().join(format!("agent-net-events-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(&path, "net_events = false\n").unwrap();
        let cfg = path.to_str().unwrap();
        assert!(!on(&["--config", cfg]));
        assert!(on(&["--config", cfg, "--net-events"]), "flags win over the file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn s_filter(args: &[&str]) -> String {
        parse(args).unwrap().live.kernel_filter(true)
    }

    #[test]
    fn bad_values_are_clear() {
        assert!(parse(&["--transport", "sctp"]).unwrap_err().contains("udp or tcp"));
        assert!(parse(&["--replay-speed", "0"]).unwrap_err().contains("replay speed"));
        assert!(parse(&["--filter", "port banana"]).unwrap_err().contains("bad filter"));
    }
}
