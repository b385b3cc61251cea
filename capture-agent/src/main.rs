//! `capture-agent`: replays pcap/pcapng files and sends every SIP message as HEPv3.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use capture_agent::config::Settings;
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
            eprint!("{e}");
            return if is_help { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    if settings.files.is_empty() {
        eprintln!("capture-agent: nothing to do: give --read-file FILE (live capture is not built yet)");
        return ExitCode::from(2);
    }
    match run(&settings) {
        Ok(summary) => {
            eprint!("{summary}");
            if summary.is_complete() {
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
    let cfg = PipelineConfig {
        node_id: settings.node_id,
        node_name: settings.node_name.clone(),
        auth_key: settings.auth_key.clone(),
        correlation_header: settings.correlation_header.clone(),
        discard_methods: settings.discard_methods.clone(),
        dedup: settings.dedup,
        filter: settings.filter.clone(),
    };
    let mut replay = Replay::new(cfg, settings.replay_speed, |batch| senders.submit(batch));
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
    summary.take_counters(&replay);
    drop(replay);
    summary.senders = senders.finish();
    summary.elapsed = started.elapsed();
    Ok(summary)
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
