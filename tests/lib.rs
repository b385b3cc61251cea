//! Harness for the end-to-end tests: the real `capture-agent`, `collector` and `hep-sink`
//! binaries (built by `cargo test --workspace`), a real ClickHouse started by the
//! project's own `scripts/clickhouse.sh`, and a tiny HTTP client.
//!
//! Everything listens on 127.0.0.1 ports picked at run time; every process is stopped when
//! its handle drops, and ClickHouse by its watchdog when the test process exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared reference corpus beside the checkout.
pub fn corpus() -> PathBuf {
    repo().join("../shared/corpus")
}

/// Path of a workspace binary, checked to be newer than its sources: these tests run
/// the binaries `cargo test --workspace` builds, and a stale one would test old code.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let path = dir.join(name);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} missing: run `cargo test --workspace` (or ./run test)", path.display()));
    let crate_dir = if name == "collector" { "collector" } else { "capture-agent" };
    for src in [crate_dir, "wire"] {
        let newest = newest_source(&repo().join(src).join("src"));
        assert!(newest <= built, "{} is older than {src}/src: run `cargo test --workspace`", path.display());
    }
    path
}

fn newest_source(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        let t = if p.is_dir() { newest_source(&p) } else { entry.metadata().and_then(|m| m.modified()).unwrap() };
        newest = newest.max(t);
    }
    newest
}

/// A free TCP port on 127.0.0.1 (also free for UDP in practice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The ClickHouse server shared by every test of this binary.
pub fn clickhouse() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = loop {
            let p = free_port();
            if TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let dir = std::env::temp_dir().join(format!("e2e-clickhouse-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(repo().join("scripts/clickhouse.sh"))
            .args(["start", "--port-http", &port.to_string(), "--dir"])
            .arg(&dir)
            .args(["--owner-pid", &std::process::id().to_string()])
            .output()
            .expect("run scripts/clickhouse.sh");
        assert!(
            out.status.success(),
            "ClickHouse did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        format!("127.0.0.1:{port}")
    })
}

/// Runs one SQL statement on the shared ClickHouse and returns its TSV output.
pub fn sql(query: &str) -> String {
    let (status, body) = http("POST", clickhouse(), "/", query.as_bytes());
    assert_eq!(status, 200, "ClickHouse refused {query:?}: {}", String::from_utf8_lossy(&body));
    String::from_utf8(body).unwrap()
}

/// A minimal HTTP/1.1 request (Connection: close). Returns status and body.
pub fn http(method: &str, host: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("HTTP status");
    let mut payload = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    (status, payload)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[nl + 2..nl + 2 + size]);
        data = &data[nl + 2 + size + 2..];
    }
    out
}

/// GET on the API, as JSON. Panics on a non-200 answer.
pub fn get_json(api: &str, path: &str) -> serde_json::Value {
    let (status, body) = http("GET", api, path, b"");
    assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e})"))
}

/// A running collector on spare ports, writing to `database` (dropped first).
pub struct Collector {
    child: Child,
    /// HEP address (UDP and TCP).
    pub hep: String,
    /// API address.
    pub api: String,
}

impl Collector {
    /// Starts a collector on a fresh `database` and waits until its API answers.
    pub fn start(database: &str) -> Self {
        Self::start_with(database, &[])
    }

    /// Like [`Collector::start`], with extra command-line arguments.
    pub fn start_with(database: &str, extra: &[&str]) -> Self {
        sql(&format!("DROP DATABASE IF EXISTS {database}"));
        Self::join(database, extra)
    }

    /// Another collector on `database` as it is (several collectors share one database).
    pub fn join(database: &str, extra: &[&str]) -> Self {
        let (hep, api) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
        let child = Command::new(binary("collector"))
            .args(["--clickhouse-url", &format!("http://{}", clickhouse()), "--clickhouse-database", database])
            .args(["--hep-listen", &hep, "--api-listen", &api, "--batch-max-age-ms", "100", "--log", "warn"])
            .args(extra)
            .spawn()
            .expect("start collector");
        let mut c = Self { child, hep, api };
        // Ready means /healthz answers: the API is served only once the schema is applied
        // (the sockets are bound before, so a bare connect would succeed too early).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthy(&c.api) {
            assert!(Instant::now() < deadline, "collector did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        // A collector that could not bind its ports has exited, and another test's
        // collector may be answering on them.
        assert!(matches!(c.child.try_wait(), Ok(None)), "collector for {database} exited at start");
        c
    }
}

fn healthy(api: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(api) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = String::new();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n").is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Runs the agent with `args` (plus `--no-progress`) and returns its output.
pub fn agent(args: &[&str]) -> Output {
    Command::new(binary("capture-agent")).arg("--no-progress").args(args).output().expect("run capture-agent")
}

/// How many HEP packets an agent run says it sent (SIP encoded, HEP relayed and network
/// events): the rows the collector will store.
pub fn sent_by(out: &Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stderr);
    let num = |key: &str| -> u64 {
        text.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    num("sip_messages=") + num("hep_relayed=") + num("net_events=")
}

/// Waits until `database.sip_messages` holds `rows` rows (the collector flushes batches
/// every 100 ms), then returns the count.
pub fn wait_for_rows(database: &str, rows: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: u64 = sql(&format!("SELECT count() FROM {database}.sip_messages")).trim().parse().unwrap();
        if n >= rows || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` for up to 10 s. The call summary is kept by a ClickHouse materialized
/// view and can trail the raw rows by a moment on a busy machine.
pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A running `hep-sink`; `finish` returns the SIP lines it printed.
pub struct Sink {
    child: Child,
    /// Its address.
    pub addr: String,
}

impl Sink {
    /// Starts `hep-sink --print` on a spare port.
    pub fn start() -> Self {
        let mut child = Command::new(binary("hep-sink"))
            .args(["--listen", "127.0.0.1:0", "--print"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hep-sink");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
        let addr = first.trim().strip_prefix("listening on ").expect("sink address").to_string();
        Self { child, addr }
    }

    /// Ends the sink and returns one line per SIP message (and network event) received.
    pub fn finish(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        self.child.wait().unwrap();
        out.lines().filter(|l| !l.starts_with('{')).map(String::from).collect()
    }
}
