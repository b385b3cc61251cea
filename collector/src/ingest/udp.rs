//! HEP over UDP: one datagram is one packet.

use std::sync::atomic::Ordering;

use tokio::net::UdpSocket;

use super::SharedIngest;
use crate::shutdown::Shutdown;

/// Largest datagram (the HEP length field is a u16).
const MAX_DATAGRAM: usize = 65_535;

/// Receives on `socket` until shutdown. A bad datagram drops only itself.
pub async fn serve(socket: UdpSocket, ingest: SharedIngest, mut shutdown: Shutdown) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, peer) = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors and the like surface here; the socket stays usable.
                    tracing::debug!(error = %e, "UDP receive error");
                    continue;
                }
            },
        };
        ingest.metrics().received_udp.fetch_add(1, Ordering::Relaxed);
        if let Some(row) = ingest.decode(&buf[..n], peer) {
            ingest.offer(row);
        }
    }
}
