//! HEP over TCP: the stream is cut into packets by the HEPv3 length field.
//!
//! Connections are capped by a semaphore (a permit is taken before `accept`, so excess
//! clients wait in the kernel backlog), idle ones are closed, and a framing error closes
//! only the connection it happened on.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use wire::hep;

use super::SharedIngest;
use crate::metrics::DropReason;
use crate::shutdown::Shutdown;

/// Initial read buffer: a few typical HEP packets; it grows to the largest frame.
const READ_BUF: usize = 64 * 1024;
/// Most rows queued at once by one connection.
const MAX_CHUNK: usize = 256;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Close after this long without data.
    pub idle_timeout: Duration,
}

/// Accepts on `listener` until shutdown; each connection runs in its own task.
pub async fn serve(listener: TcpListener, ingest: SharedIngest, limits: TcpLimits, mut shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "HEP TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        ingest.metrics().tcp_connections.fetch_add(1, Ordering::Relaxed);
        let (ingest, shutdown) = (ingest.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(reason) = connection(stream, peer, &ingest, limits.idle_timeout, shutdown).await {
                tracing::info!(%peer, %reason, "HEP TCP connection closed");
            }
            drop(permit);
        });
    }
}

/// Reads frames until EOF, idle timeout, shutdown or a framing error.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    ingest: &SharedIngest,
    idle: Duration,
    mut shutdown: Shutdown,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(READ_BUF);
    loop {
        drain_frames(&mut buf, peer, ingest).await?;
        let read = tokio::select! {
            biased;
            () = shutdown.wait() => return Ok(()),
            r = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => r,
        };
        match read {
            Err(_) => return Err(format!("idle for {} s", idle.as_secs())),
            Ok(Ok(0)) if buf.is_empty() => return Ok(()),
            Ok(Ok(0)) => {
                ingest.metrics().drop_n(DropReason::Decode, 1);
                return Err(format!("closed in the middle of a packet ({} bytes buffered)", buf.len()));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// Decodes every whole frame at the front of `buf` and queues the rows together (in
/// chunks of at most [`MAX_CHUNK`]).
async fn drain_frames(buf: &mut BytesMut, peer: SocketAddr, ingest: &SharedIngest) -> Result<(), String> {
    let mut rows = Vec::new();
    let framing = loop {
        let len = match hep::frame_len(buf) {
            Ok(Some(len)) if buf.len() >= len => len,
            Ok(_) => break Ok(()),
            Err(e) => {
                ingest.metrics().tcp_frame_errors.fetch_add(1, Ordering::Relaxed);
                ingest.metrics().drop_n(DropReason::Decode, 1);
                break Err(format!("framing error: {e}"));
            }
        };
        let frame = buf.split_to(len);
        ingest.metrics().received_tcp.fetch_add(1, Ordering::Relaxed);
        if let Some(row) = ingest.decode(&frame, peer) {
            rows.push(row);
        }
        if rows.len() >= MAX_CHUNK {
            ingest.push(std::mem::take(&mut rows)).await.map_err(|()| "collector shutting down".to_owned())?;
        }
    };
    if !rows.is_empty() {
        ingest.push(rows).await.map_err(|()| "collector shutting down".to_owned())?;
    }
    framing
}
