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
    about = "Capture SIP from pcap/pcapng files and send it as HEPv3 to one or more collectors.",
    after_help = "heplify spellings are accepted too: -rf -hs -nt -hi -hn -hp -dim -dd -rs -bpf -pr.\n\
                  Every option can also be set in the config file (--config) with the same name \
                  in snake_case, or in the environment as CAPTURE_AGENT_<NAME>."
)]
pub struct Cli {
    /// Read packets from this pcap or pcapng file (repeat for several files, read in order).
    #[arg(short = 'r', long = "read-file", value_name = "FILE")]
    pub read_file: Vec<PathBuf>,

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

    /// Packet filter in a BPF-like language applied after decoding (so it sees inner
    /// tunnel addresses and reassembled fragments), e.g. `udp and port 5060`,
    /// `host 10.0.0.1 or net 192.0.2.0/24`, `portrange 5060-5090`, `not tcp`.
    #[arg(long, value_name = "EXPR", env = "CAPTURE_AGENT_FILTER")]
    pub filter: Option<String>,

    /// Shorthand for `--filter "portrange A-B"` (heplify's -pr), and-ed with --filter.
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
    /// Files to replay, in order.
    pub files: Vec<PathBuf>,
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
    /// Draw a progress bar if stderr is a terminal.
    pub progress: bool,
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
        let filter = build_filter(cli.filter.or(file.filter), cli.port_range.or(file.port_range))?;
        let servers = if cli.dry_run {
            Vec::new()
        } else {
            non_empty(cli.hep_server).or(file.hep_server).unwrap_or_else(|| vec![DEFAULT_HEP_SERVER.into()])
        };
        let discard_methods = non_empty(cli.discard_methods).or(file.discard_methods).unwrap_or_default();
        Ok(Self {
            files: non_empty(cli.read_file).or(file.read_file).unwrap_or_default(),
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
            progress: !cli.no_progress,
        })
    }
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
    fn bad_values_are_clear() {
        assert!(parse(&["--transport", "sctp"]).unwrap_err().contains("udp or tcp"));
        assert!(parse(&["--replay-speed", "0"]).unwrap_err().contains("replay speed"));
        assert!(parse(&["--filter", "port banana"]).unwrap_err().contains("bad filter"));
    }
}
