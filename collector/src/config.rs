//! Collector configuration: defaults, then a TOML file (`--config`), then environment
//! variables and flags (clap gives flags precedence over env). Limits are validated here
//! so a bad value stops the collector at start, not under load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::correlate::failover::FailoverConfig;
use crate::correlate::hostmap::HostMap;
use crate::correlate::legs::LinkConfig;

/// Default ClickHouse HTTP endpoint.
pub const DEFAULT_CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";
/// Default database (created when missing).
pub const DEFAULT_DATABASE: &str = "sip";
/// Default HEP listen address (UDP and TCP), the port HOMER users know.
pub const DEFAULT_HEP_LISTEN: &str = "0.0.0.0:9060";
/// Default API listen address: loopback, since the API has no authentication.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9080";
/// Rows per insert. ClickHouse prefers few large inserts (each one makes a part).
pub const DEFAULT_BATCH_MAX_ROWS: usize = 50_000;
/// Bytes (raw payload plus fields, estimated) per insert.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 32 << 20;
/// Longest a row waits in a batch: bounds the delay until a message is queryable.
pub const DEFAULT_BATCH_MAX_AGE_MS: u64 = 1000;
/// Inserts running at once. ClickHouse handles one insert on one core, so two keep a
/// small server busy while the next batch fills (measured: see scripts/bench-collector.sh).
pub const DEFAULT_INSERT_CONCURRENCY: usize = 2;
/// Rows the queue between listeners and the batcher holds before UDP drops / TCP waits.
pub const DEFAULT_QUEUE_ROWS: usize = 100_000;
/// Days of data kept (0: keep forever).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Concurrent HEP TCP connections.
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1024;
/// A HEP TCP connection silent this long is closed.
pub const DEFAULT_TCP_IDLE_TIMEOUT_SECS: u64 = 300;

/// Command line. Every option can also come from the environment (`COLLECTOR_*`) or the
/// config file (same name, with underscores).
#[derive(Debug, Parser, Default)]
#[command(
    name = "collector",
    version,
    about = "Receives HEP (UDP/TCP), stores SIP in ClickHouse, serves call search and call flows."
)]
pub struct Cli {
    /// TOML config file; flags and environment variables override its values.
    #[arg(long, env = "COLLECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// ClickHouse HTTP URL [default: http://127.0.0.1:8123].
    #[arg(long, env = "COLLECTOR_CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database, created when missing [default: sip].
    #[arg(long, env = "COLLECTOR_CLICKHOUSE_DATABASE")]
    pub clickhouse_database: Option<String>,
    /// ClickHouse user.
    #[arg(long, env = "COLLECTOR_CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password.
    #[arg(long, env = "COLLECTOR_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,
    /// HEP listen address, for both UDP and TCP [default: 0.0.0.0:9060].
    #[arg(long, env = "COLLECTOR_HEP_LISTEN")]
    pub hep_listen: Option<SocketAddr>,
    /// HTTP API listen address [default: 127.0.0.1:9080].
    #[arg(long, env = "COLLECTOR_API_LISTEN")]
    pub api_listen: Option<SocketAddr>,
    /// HEP auth key (password) agents must send; packets without it are dropped.
    #[arg(long, env = "COLLECTOR_AUTH_KEY", hide_env_values = true)]
    pub auth_key: Option<String>,
    /// Rows per ClickHouse insert [default: 50000].
    #[arg(long, env = "COLLECTOR_BATCH_MAX_ROWS")]
    pub batch_max_rows: Option<usize>,
    /// Bytes per ClickHouse insert [default: 33554432].
    #[arg(long, env = "COLLECTOR_BATCH_MAX_BYTES")]
    pub batch_max_bytes: Option<usize>,
    /// Longest a message waits before its batch is inserted, in ms [default: 1000].
    #[arg(long, env = "COLLECTOR_BATCH_MAX_AGE_MS")]
    pub batch_max_age_ms: Option<u64>,
    /// ClickHouse inserts running at once [default: 2].
    #[arg(long, env = "COLLECTOR_INSERT_CONCURRENCY")]
    pub insert_concurrency: Option<usize>,
    /// Rows queued before UDP drops and TCP waits [default: 100000].
    #[arg(long, env = "COLLECTOR_QUEUE_ROWS")]
    pub queue_rows: Option<usize>,
    /// Days of data kept; 0 keeps everything [default: 30].
    #[arg(long, env = "COLLECTOR_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Concurrent HEP TCP connections [default: 1024].
    #[arg(long, env = "COLLECTOR_TCP_MAX_CONNECTIONS")]
    pub tcp_max_connections: Option<usize>,
    /// Idle HEP TCP connections are closed after this many seconds [default: 300].
    #[arg(long, env = "COLLECTOR_TCP_IDLE_TIMEOUT_SECS")]
    pub tcp_idle_timeout_secs: Option<u64>,
    /// Log filter, e.g. `info` or `collector=debug,info` [default: info].
    #[arg(long, env = "COLLECTOR_LOG")]
    pub log: Option<String>,
    /// Names addresses as a logical host, e.g. `vip=10.0.0.100` or `ast1=10.0.1.21,10.0.2.0/24`
    /// (repeatable; env: `;`-separated). Added to the file's `[hosts]` table.
    #[arg(long = "host", env = "COLLECTOR_HOSTS", value_delimiter = ';')]
    pub hosts: Vec<String>,
    /// A virtual IP shared by load balancers (repeatable; more are learned).
    #[arg(long = "vip", env = "COLLECTOR_VIPS", value_delimiter = ',')]
    pub vips: Vec<String>,
    /// A backend address (repeatable) [default: learned from dispatcher OPTIONS probes].
    #[arg(long = "backend", env = "COLLECTOR_BACKENDS", value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Heuristic leg linking: longest delay from the A-leg reaching a B2BUA to the B-leg
    /// leaving it, in ms [default: 2000].
    #[arg(long, env = "COLLECTOR_LINK_WINDOW_MS")]
    pub link_window_ms: Option<u64>,
    /// Heuristic leg linking: trailing digits of caller and callee compared [default: 6].
    #[arg(long, env = "COLLECTOR_LINK_DIGITS")]
    pub link_digits: Option<usize>,
    /// Heuristic leg linking on or off [default: true].
    #[arg(long, env = "COLLECTOR_LINK_HEURISTIC")]
    pub link_heuristic: Option<bool>,
    /// How long before and after a failover calls are followed, in seconds [default: 3600].
    #[arg(long, env = "COLLECTOR_IMPACT_WINDOW_SECS")]
    pub impact_window_secs: Option<u64>,
}

/// The config file. Same names as the flags; unknown keys are an error so a typo does
/// not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Cli::clickhouse_url`].
    pub clickhouse_url: Option<String>,
    /// See [`Cli::clickhouse_database`].
    pub clickhouse_database: Option<String>,
    /// See [`Cli::clickhouse_user`].
    pub clickhouse_user: Option<String>,
    /// See [`Cli::clickhouse_password`].
    pub clickhouse_password: Option<String>,
    /// See [`Cli::hep_listen`].
    pub hep_listen: Option<SocketAddr>,
    /// See [`Cli::api_listen`].
    pub api_listen: Option<SocketAddr>,
    /// See [`Cli::auth_key`].
    pub auth_key: Option<String>,
    /// See [`Cli::batch_max_rows`].
    pub batch_max_rows: Option<usize>,
    /// See [`Cli::batch_max_bytes`].
    pub batch_max_bytes: Option<usize>,
    /// See [`Cli::batch_max_age_ms`].
    pub batch_max_age_ms: Option<u64>,
    /// See [`Cli::insert_concurrency`].
    pub insert_concurrency: Option<usize>,
    /// See [`Cli::queue_rows`].
    pub queue_rows: Option<usize>,
    /// See [`Cli::retention_days`].
    pub retention_days: Option<u32>,
    /// See [`Cli::tcp_max_connections`].
    pub tcp_max_connections: Option<usize>,
    /// See [`Cli::tcp_idle_timeout_secs`].
    pub tcp_idle_timeout_secs: Option<u64>,
    /// See [`Cli::log`].
    pub log: Option<String>,
    /// Headers carrying the A-leg Call-ID on a B2BUA's outbound leg, in order of
    /// preference [default: X-CID, X-Call-ID].
    pub aleg_headers: Option<Vec<String>>,
    /// Host map: `name = ["address", ...]` (IP, IP:port or CIDR).
    #[serde(default)]
    pub hosts: BTreeMap<String, Vec<String>>,
    /// See [`Cli::vips`].
    #[serde(default)]
    pub vips: Vec<String>,
    /// See [`Cli::backends`].
    #[serde(default)]
    pub backends: Vec<String>,
    /// See [`Cli::link_window_ms`].
    pub link_window_ms: Option<u64>,
    /// See [`Cli::link_digits`].
    pub link_digits: Option<usize>,
    /// See [`Cli::link_heuristic`].
    pub link_heuristic: Option<bool>,
    /// See [`Cli::impact_window_secs`].
    pub impact_window_secs: Option<u64>,
}

/// Correlation settings: host names, leg linking, failover analysis.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    /// Configured host names.
    pub hosts: HostMap,
    /// Leg linking.
    pub links: LinkConfig,
    /// Failover analysis.
    pub failover: FailoverConfig,
}

/// Batch limits: a batch is inserted when any one is reached.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Rows.
    pub max_rows: usize,
    /// Estimated bytes.
    pub max_bytes: usize,
    /// Age of the oldest row.
    pub max_age: Duration,
    /// Inserts running at once (not a flush trigger: the batcher waits for a free slot).
    pub inflight: usize,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// ClickHouse HTTP URL.
    pub clickhouse_url: String,
    /// Database holding the tables.
    pub clickhouse_database: String,
    /// ClickHouse user, when not the server default.
    pub clickhouse_user: Option<String>,
    /// ClickHouse password.
    pub clickhouse_password: Option<String>,
    /// HEP UDP + TCP address.
    pub hep_listen: SocketAddr,
    /// HTTP API address.
    pub api_listen: SocketAddr,
    /// Required HEP auth key, if any.
    pub auth_key: Option<String>,
    /// When batches are inserted.
    pub batch: BatchLimits,
    /// Queue capacity, in rows.
    pub queue_rows: usize,
    /// Days kept (0: forever).
    pub retention_days: u32,
    /// Concurrent HEP TCP connections.
    pub tcp_max_connections: usize,
    /// Idle timeout of a HEP TCP connection.
    pub tcp_idle_timeout: Duration,
    /// Log filter.
    pub log: String,
    /// A-leg headers, in order of preference.
    pub aleg_headers: Vec<String>,
    /// Correlation settings.
    pub correlation: Correlation,
}

impl Default for Config {
    fn default() -> Self {
        Self::merge(Cli::default(), FileConfig::default()).expect("the defaults are valid")
    }
}

impl Config {
    /// Reads the file named by `--config` (if any), merges it under the flags and
    /// environment, and validates the result.
    pub fn load(cli: Cli) -> Result<Self, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let config = Self::merge(cli, file)?;
        config.validate()?;
        Ok(config)
    }

    fn merge(cli: Cli, file: FileConfig) -> Result<Self, String> {
        fn addr(s: &str) -> SocketAddr {
            s.parse().expect("default address constants parse")
        }
        let correlation = correlation(&cli, &file)?;
        Ok(Self {
            clickhouse_url: cli.clickhouse_url.or(file.clickhouse_url).unwrap_or_else(|| DEFAULT_CLICKHOUSE_URL.into()),
            clickhouse_database: cli
                .clickhouse_database
                .or(file.clickhouse_database)
                .unwrap_or_else(|| DEFAULT_DATABASE.into()),
            clickhouse_user: cli.clickhouse_user.or(file.clickhouse_user),
            clickhouse_password: cli.clickhouse_password.or(file.clickhouse_password),
            hep_listen: cli.hep_listen.or(file.hep_listen).unwrap_or_else(|| addr(DEFAULT_HEP_LISTEN)),
            api_listen: cli.api_listen.or(file.api_listen).unwrap_or_else(|| addr(DEFAULT_API_LISTEN)),
            auth_key: cli.auth_key.or(file.auth_key).filter(|k| !k.is_empty()),
            batch: BatchLimits {
                max_rows: cli.batch_max_rows.or(file.batch_max_rows).unwrap_or(DEFAULT_BATCH_MAX_ROWS),
                max_bytes: cli.batch_max_bytes.or(file.batch_max_bytes).unwrap_or(DEFAULT_BATCH_MAX_BYTES),
                max_age: Duration::from_millis(
                    cli.batch_max_age_ms.or(file.batch_max_age_ms).unwrap_or(DEFAULT_BATCH_MAX_AGE_MS),
                ),
                inflight: cli.insert_concurrency.or(file.insert_concurrency).unwrap_or(DEFAULT_INSERT_CONCURRENCY),
            },
            queue_rows: cli.queue_rows.or(file.queue_rows).unwrap_or(DEFAULT_QUEUE_ROWS),
            retention_days: cli.retention_days.or(file.retention_days).unwrap_or(DEFAULT_RETENTION_DAYS),
            tcp_max_connections: cli
                .tcp_max_connections
                .or(file.tcp_max_connections)
                .unwrap_or(DEFAULT_TCP_MAX_CONNECTIONS),
            tcp_idle_timeout: Duration::from_secs(
                cli.tcp_idle_timeout_secs.or(file.tcp_idle_timeout_secs).unwrap_or(DEFAULT_TCP_IDLE_TIMEOUT_SECS),
            ),
            log: cli.log.or(file.log).unwrap_or_else(|| "info".into()),
            aleg_headers: file.aleg_headers.unwrap_or_else(|| vec!["X-CID".into(), "X-Call-ID".into()]),
            correlation,
        })
    }

    /// Rejects limits that would make the collector useless or unbounded.
    pub fn validate(&self) -> Result<(), String> {
        let b = &self.batch;
        if !(1..=1_000_000).contains(&b.max_rows) {
            return Err(format!("batch_max_rows must be 1..=1000000, got {}", b.max_rows));
        }
        if !(1024..=1 << 30).contains(&b.max_bytes) {
            return Err(format!("batch_max_bytes must be 1024..=1073741824, got {}", b.max_bytes));
        }
        if b.max_age.is_zero() || b.max_age > Duration::from_secs(60) {
            return Err(format!("batch_max_age_ms must be 1..=60000, got {}", b.max_age.as_millis()));
        }
        if !(1..=16).contains(&b.inflight) {
            return Err(format!("insert_concurrency must be 1..=16, got {}", b.inflight));
        }
        if !(1..=10_000_000).contains(&self.queue_rows) {
            return Err(format!("queue_rows must be 1..=10000000, got {}", self.queue_rows));
        }
        if self.tcp_max_connections == 0 || self.tcp_idle_timeout.is_zero() {
            return Err("tcp_max_connections and tcp_idle_timeout_secs must be > 0".into());
        }
        let db_ok = !self.clickhouse_database.is_empty()
            && self.clickhouse_database.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !db_ok {
            return Err(format!("clickhouse_database must be [A-Za-z0-9_]+, got `{}`", self.clickhouse_database));
        }
        Ok(())
    }
}

/// The correlation settings: the file's host table plus `--host` flags, lists from both.
fn correlation(cli: &Cli, file: &FileConfig) -> Result<Correlation, String> {
    let mut hosts = file.hosts.clone();
    for arg in &cli.hosts {
        let (name, addrs) = HostMap::parse_arg(arg)?;
        hosts.entry(name).or_default().extend(addrs);
    }
    let mut vips: Vec<String> = file.vips.iter().chain(&cli.vips).map(|v| v.trim().to_owned()).collect();
    let mut backends: Vec<String> = file.backends.iter().chain(&cli.backends).map(|v| v.trim().to_owned()).collect();
    for a in vips.iter().chain(&backends) {
        a.parse::<std::net::IpAddr>().map_err(|_| format!("vip/backend `{a}` is not an IP address"))?;
    }
    vips.sort();
    vips.dedup();
    backends.sort();
    backends.dedup();
    let defaults = LinkConfig::default();
    let links = LinkConfig {
        window_us: cli.link_window_ms.or(file.link_window_ms).map_or(defaults.window_us, |ms| ms * 1000),
        digits: cli.link_digits.or(file.link_digits).unwrap_or(defaults.digits),
        heuristic: cli.link_heuristic.or(file.link_heuristic).unwrap_or(defaults.heuristic),
    };
    if !(1..=600_000_000).contains(&links.window_us) || !(3..=20).contains(&links.digits) {
        return Err("link_window_ms must be 1..=600000 and link_digits 3..=20".into());
    }
    let impact_window_secs = cli.impact_window_secs.or(file.impact_window_secs).unwrap_or(3600);
    if !(1..=86_400).contains(&impact_window_secs) {
        return Err("impact_window_secs must be 1..=86400".into());
    }
    Ok(Correlation {
        hosts: HostMap::new(&hosts)?,
        links,
        failover: FailoverConfig { vips, backends, impact_window_us: impact_window_secs * 1_000_000 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let file: FileConfig =
            toml::from_str("clickhouse_url = \"http://ch:8123\"\nretention_days = 7\nbatch_max_rows = 10").unwrap();
        let cli = Cli { batch_max_rows: Some(20), ..Cli::default() };
        let c = Config::merge(cli, file).unwrap();
        assert_eq!(c.clickhouse_url, "http://ch:8123");
        assert_eq!(c.retention_days, 7);
        assert_eq!(c.batch.max_rows, 20);
        assert_eq!(c.clickhouse_database, DEFAULT_DATABASE);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_limits_are_rejected() {
        assert!(toml::from_str::<FileConfig>("clickhouse_ulr = \"x\"").is_err());
        let mut c = Config::default();
        c.batch.max_rows = 0;
        assert!(c.validate().is_err());
        let c = Config { clickhouse_database: "sip; DROP".into(), ..Config::default() };
        assert!(c.validate().is_err());
    }

    #[test]
    fn host_map_from_file_and_flags() {
        let file: FileConfig =
            toml::from_str("vips = [\"10.0.0.100\"]\nlink_digits = 7\n[hosts]\nlb1 = [\"10.0.0.11\"]\n").unwrap();
        let cli = Cli { hosts: vec!["vip=10.0.0.100".into(), "lb1=10.0.0.12/32".into()], ..Cli::default() };
        let c = Config::merge(cli, file).unwrap().correlation;
        assert_eq!(c.hosts.lookup("10.0.0.100", 5060), Some("vip"));
        assert_eq!(c.hosts.lookup("10.0.0.12", 5060), Some("lb1"));
        assert_eq!(c.failover.vips, vec!["10.0.0.100"]);
        assert_eq!(c.links.digits, 7);
        let bad = Cli { hosts: vec!["ast1=10.0.0.300".into()], ..Cli::default() };
        assert!(Config::merge(bad, FileConfig::default()).is_err());
    }
}
