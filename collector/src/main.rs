//! `collector` binary: parses options, sets up logging, binds, runs until SIGTERM/ctrl-c.

use clap::Parser;
use collector::config::{Cli, Config};
use collector::{shutdown, Listeners};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Config::load(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("collector: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    let listeners = match Listeners::bind(config.hep_listen, config.api_listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, hep = %config.hep_listen, api = %config.api_listen, "cannot bind");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: flushing queued messages");
        trigger.trigger();
    });
    match collector::run(config, listeners, signal).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "collector failed");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let targets: tracing_subscriber::filter::Targets = filter.parse().unwrap_or_else(|e| {
        eprintln!("collector: bad log filter `{filter}` ({e}); using info");
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
    });
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(targets)
        .init();
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
