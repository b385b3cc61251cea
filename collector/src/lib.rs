//! The collector: receives HEP from capture agents (UDP and TCP), stores every SIP
//! message in ClickHouse, and serves call search and call flows over HTTP.
//!
//! Layout, in data-flow order:
//! - [`ingest`]: HEP listeners (UDP datagrams, TCP framed by the HEPv3 length) feeding a
//!   bounded queue; [`decode`] turns one packet into one `sip_messages` row.
//! - [`batch`]: the batcher, inserting by rows, bytes or age with classified retries.
//! - [`store`]: the storage traits and their ClickHouse implementation, plus the schema.
//! - [`api`]: the axum HTTP API (search, summary, flow, messages, metrics, health).
//! - [`config`], [`metrics`], [`shutdown`], [`timeutil`]: the plumbing.
//!
//! The collector keeps no per-call state: correlation happens in ClickHouse (the
//! `sip_calls` materialized view and query-time grouping), so any number of collectors
//! can share one database.

pub mod api;
pub mod batch;
pub mod config;
pub mod correlate;
pub mod decode;
pub mod ingest;
pub mod metrics;
pub mod shutdown;
pub mod store;
pub mod timeutil;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};

use crate::batch::Batcher;
use crate::config::Config;
use crate::decode::{Decoder, IdGen};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::clickhouse::ClickHouseStore;
use crate::store::schema;

/// How often expired partitions are looked for (servers without TTL).
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Pause between attempts to reach ClickHouse at start.
const SCHEMA_RETRY: Duration = Duration::from_secs(2);

/// The sockets the collector serves, bound by the caller (tests bind port 0).
pub struct Listeners {
    /// HEP over UDP.
    pub hep_udp: UdpSocket,
    /// HEP over TCP.
    pub hep_tcp: TcpListener,
    /// The HTTP API.
    pub api: TcpListener,
}

impl Listeners {
    /// Binds HEP UDP and TCP on `hep` (port 0: the TCP port is picked, and UDP takes the
    /// same number) and the API on `api`.
    pub async fn bind(hep: SocketAddr, api: SocketAddr) -> std::io::Result<Self> {
        let hep_tcp = TcpListener::bind(hep).await?;
        let hep_udp = UdpSocket::bind(hep_tcp.local_addr()?).await?;
        let api = TcpListener::bind(api).await?;
        Ok(Self { hep_udp, hep_tcp, api })
    }

    /// The HEP address (UDP and TCP).
    pub fn hep_addr(&self) -> std::io::Result<SocketAddr> {
        self.hep_tcp.local_addr()
    }

    /// The API address.
    pub fn api_addr(&self) -> std::io::Result<SocketAddr> {
        self.api.local_addr()
    }
}

/// Runs the collector until `shutdown` fires, then stops the listeners, flushes what
/// was received and returns.
pub async fn run(config: Config, listeners: Listeners, mut shutdown: Shutdown) -> Result<(), String> {
    let server = ClickHouseStore::server_client(&config);
    let Some(report) = apply_schema(&server, &config, &mut shutdown).await else {
        return Ok(());
    };
    tracing::info!(version = %report.server_version, modern = report.modern, statements = report.statements, "schema applied");
    let store = Arc::new(ClickHouseStore::new(&server, &config.clickhouse_database));
    let metrics = Arc::new(Metrics::default());

    let (tx, rx) = batch::queue(config.queue_rows);
    let batcher = Batcher::new(store.clone(), config.batch, metrics.clone(), shutdown.clone());
    let batcher = tokio::spawn(batcher.run(rx));

    let decoder = Decoder {
        auth_key: config.auth_key.as_ref().map(|k| k.as_bytes().to_vec()),
        scan: wire::sip::ScanConfig {
            aleg_headers: config.aleg_headers.iter().map(|h| h.as_bytes().to_vec()).collect(),
        },
        ids: IdGen::from_entropy(),
    };
    let ingest = Arc::new(Ingest::new(decoder, tx, metrics.clone()));
    let limits =
        ingest::tcp::TcpLimits { max_connections: config.tcp_max_connections, idle_timeout: config.tcp_idle_timeout };
    let udp = tokio::spawn(ingest::udp::serve(listeners.hep_udp, ingest.clone(), shutdown.clone()));
    let tcp = tokio::spawn(ingest::tcp::serve(listeners.hep_tcp, ingest, limits, shutdown.clone()));
    let retention = tokio::spawn(retention_loop(server.clone(), config.clone(), shutdown.clone()));

    let app = api::router(store, metrics, Arc::new(config.correlation.clone()));
    let mut api_shutdown = shutdown.clone();
    let api = axum::serve(listeners.api, app).with_graceful_shutdown(async move { api_shutdown.wait().await });
    tracing::info!(hep = %config.hep_listen, api = %config.api_listen, "collector running");
    if let Err(e) = api.await {
        tracing::error!(error = %e, "API server failed");
    }
    // The listener tasks hold the queue's senders; once they end, the batcher drains
    // the queue, flushes and ends too.
    shutdown.wait().await;
    let _ = tokio::join!(udp, tcp, retention);
    batcher.await.map_err(|e| format!("batcher task failed: {e}"))?;
    tracing::info!("collector stopped");
    Ok(())
}

/// Applies the schema, retrying while ClickHouse is unreachable. `None` on shutdown.
async fn apply_schema(
    server: &clickhouse::Client,
    config: &Config,
    shutdown: &mut Shutdown,
) -> Option<schema::SchemaReport> {
    loop {
        match schema::apply(server, &config.clickhouse_database, config.retention_days).await {
            Ok(report) => return Some(report),
            Err(e) => {
                tracing::warn!(error = %e, url = %config.clickhouse_url, "cannot apply schema yet; retrying")
            }
        }
        tokio::select! {
            () = shutdown.wait() => return None,
            () = tokio::time::sleep(SCHEMA_RETRY) => {}
        }
    }
}

/// Drops expired partitions hourly (the retention of servers without TTL).
async fn retention_loop(server: clickhouse::Client, config: Config, mut shutdown: Shutdown) {
    if config.retention_days == 0 {
        return;
    }
    loop {
        let today = timeutil::date_string(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64),
        );
        match schema::drop_expired_partitions(&server, &config.clickhouse_database, config.retention_days, &today).await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(partitions = n, retention_days = config.retention_days, "dropped expired partitions")
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(RETENTION_INTERVAL) => {}
        }
    }
}
