//! The HTML ladder (`/api/v1/calls/{id}/flow.html`) in a real browser: Debian's headless
//! `chromium` loads the page from an in-process collector backed by a real ClickHouse,
//! and the test reads the DOM it dumps and the screenshot it takes.
//!
//! Chromium missing is a failure, not a skip: `scripts/install-deps.sh` installs it.

mod common;

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Longest a Chromium run may take before it is killed and the test fails.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(30);
/// The flags of a headless Chromium that stays off the (closed) network.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    // Lets the page's fetch of the raw message finish before the DOM or picture is taken.
    "--virtual-time-budget=10000",
];
const LABELS: [&str; 7] = ["INVITE", "100 Trying", "180 Ringing", "200 OK", "ACK", "BYE", "200 OK"];

fn now_secs() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32
}

/// A fresh directory for this test process's browser files.
fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ladder-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a Chromium run printed.
struct Run {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium with `args` and a new profile under `dir`, in its own process
/// group so a timeout kills it and every helper process it started.
fn chromium(dir: &Path, name: &str, args: &[String]) -> Run {
    let (out_path, err_path) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
    let mut child = Command::new("chromium")
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", dir.join(format!("{name}-profile")).display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}): install it with scripts/install-deps.sh"));
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            panic!("chromium {name} took over {CHROMIUM_TIMEOUT:?}: {}", read(&err_path));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run { stdout: read(&out_path), stderr: read(&err_path) };
    assert!(status.success(), "chromium {name} failed ({status}):\n{}", run.stderr);
    run
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Runs [`chromium`] on the blocking pool: the collector answering it shares this runtime.
async fn chromium_async(dir: &Path, name: &'static str, args: Vec<String>) -> Run {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || chromium(&dir, name, &args)).await.unwrap()
}

/// The contents of every `<text class="{class}" ...>` element, in document order.
fn texts<'a>(dom: &'a str, class: &str) -> Vec<&'a str> {
    let open = format!("<text class=\"{class}\"");
    dom.split(open.as_str()).skip(1).map(|t| &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()]).collect()
}

/// Starts a collector, stores a basic call seen by two capture nodes, and returns the
/// collector with the flow's message ids.
async fn collector_with_call(call_id: &str) -> (TestCollector, Vec<String>) {
    let c = TestCollector::start(test_config("t_ladder")).await;
    let start = now_secs() - 3600;
    let call = basic_call(call_id, "1001", "4915551234");
    c.send_udp(&hep_for(&call, start, (1, "lb1"), 0, None)).await;
    c.send_udp(&hep_for(&call, start, (2, "ast1"), 300, None)).await;
    assert_eq!(c.wait_rows("1", 14).await, 14);
    assert_eq!(c.wait_summary(14).await, 14);
    let (status, body) = c.get(&format!("/api/v1/calls/{call_id}/flow")).await;
    assert_eq!(status, 200, "{body}");
    let flow: Value = serde_json::from_str(&body).unwrap();
    let ids = flow["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    (c, ids)
}

#[tokio::test]
async fn html_ladder_renders_in_headless_chromium() {
    let (c, ids) = collector_with_call("ladder-1@test").await;
    assert_eq!(ids.len(), 7);
    let dir = work_dir();
    // `#m{id}` makes the page's script fetch and show that raw message on load.
    let url = format!("http://{}/api/v1/calls/ladder-1@test/flow.html#m{}", c.api, ids[0]);

    let dom = chromium_async(&dir, "dom", vec!["--dump-dom".into(), url.clone()]).await.stdout;
    assert_eq!(dom.matches("<svg ").count(), 1, "one inline SVG ladder:\n{dom}");
    assert_eq!(dom.matches("<a class=\"arrow ").count(), 7, "one arrow per message:\n{dom}");
    assert_eq!(texts(&dom, "ld-label"), LABELS, "arrow labels in wire order");
    assert_eq!(texts(&dom, "ld-addr"), ["10.0.0.1:5060", "10.0.0.2:5060"]);
    assert_eq!(texts(&dom, "ld-note"), ["\u{d7}2 sightings"; 7]);
    for id in &ids {
        assert!(dom.contains(&format!("href=\"/api/v1/messages/{id}?format=raw\" data-id=\"{id}\"")), "arrow {id}");
        assert!(dom.contains(&format!("data-id=\"{id}\"><td class=\"n\">")), "table row {id}");
    }
    assert!(dom.contains("<dt>Caller</dt><dd class=\"\">1001</dd>"), "summary:\n{dom}");
    // The script ran: the first message is shown raw, its arrow and row selected.
    assert!(
        dom.contains("<pre id=\"raw\" class=\"\">INVITE sip:4915551234@10.0.0.2:5060 SIP/2.0"),
        "raw panel:\n{dom}"
    );
    assert_eq!(dom.matches(" sel\"").count(), 2, "arrow and row selected");

    // Without script the page is the same: the ladder is drawn by the server, not the script.
    let (status, source) = c.get("/api/v1/calls/ladder-1@test/flow.html").await;
    assert_eq!(status, 200);
    assert_eq!(texts(&source, "ld-label"), LABELS);
    assert_eq!(source.matches("<a class=\"arrow ").count(), 7);

    let png = dir.join("ladder.png");
    let args = vec![format!("--screenshot={}", png.display()), "--window-size=1200,900".into(), url];
    chromium_async(&dir, "shot", args).await;
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (w, h) =
        (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()));
    assert_eq!((w, h), (1200, 900));
    assert!(bytes.len() > 20_000, "a real picture, not a blank page: {} bytes", bytes.len());
    // Kept where a person can look at it; the rest of the browser files go.
    let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ladder-screenshot.png");
    std::fs::copy(&png, &kept).unwrap();
    println!("screenshot: {}", kept.display());
    let _ = std::fs::remove_dir_all(&dir);
    c.stop().await;
}
