//! `capture-agent`: captures SIP live (libpcap) or replays pcap/pcapng files, and sends
//! every SIP message as HEPv3.
//!
//! Exit status: 2 for bad settings; for a replay, 0 only when everything read reached
//! every collector; for a live capture (which runs until SIGINT/SIGTERM), 0 after a
//! requested stop, 1 if a capture could not be opened or failed. Drops a live capture
//! cannot avoid (kernel buffer, full sender queue) are counted in the summary, not
//! turned into a failure status.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Instant;

use capture_agent::chain::Chain;
use capture_agent::config::Settings;
use capture_agent::live::{self, LiveCapture};
use capture_agent::pipeline::PipelineConfig;
use capture_agent::replay::Replay;
use capture_agent::sender::{Senders, WhenFull};
use capture_agent::summary::Summary;
use indicatif::{ProgressBar, ProgressStyle};

fn main() -> ExitCode {
    let settings = match Settings::from_args(std::env::args()) {
        Ok(s) => s,
        Err(e) => {
            // clap's own --help/--version output arrives here too: print it as is.
            let is_help = e.starts_with("capture-agent") || e.starts_with("Capture SIP") || e.starts_with("Usage");
            if is_help || e.ends_with('\n') {
                eprint!("{e}");
            } else {
                eprintln!("capture-agent: {e}");
            }
            return if is_help { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    if settings.files.is_empty() && settings.interfaces.is_empty() {
        eprintln!("capture-agent: nothing to do: give --interface IFACE (live) or --read-file FILE (replay)");
        return ExitCode::from(2);
    }
    let is_live = !settings.interfaces.is_empty();
    let result = if is_live { run_live(&settings) } else { run(&settings) };
    match result {
        Ok(summary) => {
            eprint!("{summary}");
            let ok = if is_live { !summary.capture_failed() } else { summary.is_complete() };
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("capture-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: &Settings) -> Result<Summary, String> {
    let started = Instant::now();
    let mut senders = Senders::start(&settings.servers, settings.transport, WhenFull::Block)
        .map_err(|e| format!("cannot start HEP senders: {e}"))?;
    let mut replay = Replay::new(pipeline_config(settings), settings.replay_speed, |batch| senders.submit(batch));
    let mut summary = Summary::default();
    let bar = progress_bar(settings);
    let mut done_bytes = 0;
    for path in &settings.files {
        bar.set_message(path.display().to_string());
        let result = replay.file(path, &mut |bytes| bar.set_position(done_bytes + bytes));
        match result {
            Ok(report) => {
                done_bytes += report.bytes;
                summary.add_file(path, report);
            }
            Err(e) => summary.add_unreadable(path, e),
        }
    }
    replay.finish();
    bar.finish_and_clear();
    summary.take_counters(&replay.chain);
    drop(replay);
    summary.senders = senders.finish();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Live capture until SIGINT/SIGTERM (or until every capture failed).
fn run_live(settings: &Settings) -> Result<Summary, String> {
    let started = Instant::now();
    // Handlers first: a signal during start-up must stop us cleanly too.
    let stop = capture_agent::signals::stop_on_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let collectors: Vec<SocketAddr> = settings
        .servers
        .iter()
        .map(|s| s.to_socket_addrs().map_err(|e| format!("HEP server {s}: {e}")))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let captures = settings
        .interfaces
        .iter()
        .map(|iface| LiveCapture::open(iface, &settings.live, &collectors))
        .collect::<Result<Vec<_>, _>>()?;
    // The kernel ring cannot be paused: a collector that falls behind loses (counted)
    // batches rather than stalling the capture.
    let mut senders = Senders::start(&settings.servers, settings.transport, WhenFull::DropNewest)
        .map_err(|e| format!("cannot start HEP senders: {e}"))?;
    let mut chain = Chain::new(pipeline_config(settings), |batch| senders.submit(batch));
    for c in &captures {
        let filter = if c.filter().is_empty() { "none" } else { c.filter() };
        eprintln!("capture-agent: capturing on {} (link type {:?}, kernel filter: {filter})", c.name(), c.link_type());
    }
    let reports = live::run(captures, &mut chain, &stop);
    chain.finish();
    let mut summary = Summary::default();
    summary.take_counters(&chain);
    drop(chain);
    summary.senders = senders.finish();
    summary.set_interfaces(reports);
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn pipeline_config(settings: &Settings) -> PipelineConfig {
    PipelineConfig {
        node_id: settings.node_id,
        node_name: settings.node_name.clone(),
        auth_key: settings.auth_key.clone(),
        correlation_header: settings.correlation_header.clone(),
        discard_methods: settings.discard_methods.clone(),
        dedup: settings.dedup,
        filter: settings.filter.clone(),
        net_events: settings.net_events,
    }
}

fn progress_bar(settings: &Settings) -> ProgressBar {
    if !settings.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total: u64 = settings.files.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}")
            .expect("valid progress template"),
    );
    bar
}
