//! Interoperability: HEP as other senders write it (Kamailio siptrace v2 and v3, the HEP
//! spec example, heplify-server's test packet, variants with auth key, node name, other
//! vendors' chunks, IPv6/TCP, an RTCP report with a correlation id) sent byte for byte to
//! the real collector, over UDP and over one TCP stream, lands in ClickHouse with the
//! fields each packet carries.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use e2e::{repo, sql, wait_for_rows, Collector};
use wire::hep;

fn vectors() -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("wire/tests/data");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() >= 10, "HEP vectors in {}", dir.display());
    v
}

/// One stored row as `src_ip, src_port, dst_port, ts, node_id, payload_type, correlation_id, length(raw)`.
fn expected_row(packet: &[u8]) -> String {
    let h = hep::decode(packet).unwrap();
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        h.src_ip,
        h.src_port,
        h.dst_port,
        h.ts_sec,
        h.capture_id.unwrap_or(0),
        u8::from(h.payload_type),
        String::from_utf8_lossy(h.correlation_id.unwrap_or_default()),
        h.payload.len()
    )
}

fn stored_rows(db: &str, transport_filter: &str) -> Vec<String> {
    let out = sql(&format!(
        "SELECT src_ip, src_port, dst_port, toUnixTimestamp(ts), node_id, payload_type, correlation_id, length(raw) \
         FROM {db}.sip_messages WHERE {transport_filter} ORDER BY src_ip, ts, length(raw) FORMAT TSV"
    ));
    out.lines().map(String::from).collect()
}

#[test]
fn vectors_sent_as_is_are_stored_with_their_fields() {
    let db = "e2e_interop";
    let collector = Collector::start(db);
    let vectors = vectors();

    // UDP: every vector, one datagram each, untouched.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (_, bytes) in &vectors {
        udp.send_to(bytes, &collector.hep).unwrap();
    }
    // TCP: the v3 ones back to back in one stream (v1/v2 carry no length to frame by).
    let v3: Vec<_> = vectors.iter().filter(|(_, b)| b.starts_with(b"HEP3")).collect();
    let mut tcp = TcpStream::connect(&collector.hep).unwrap();
    for (_, bytes) in &v3 {
        tcp.write_all(bytes).unwrap();
    }
    drop(tcp);
    let total = (vectors.len() + v3.len()) as u64;
    assert_eq!(wait_for_rows(db, total), total, "every packet stored once per send");

    let mut want: Vec<String> = vectors.iter().map(|(_, b)| expected_row(b)).collect();
    want.extend(v3.iter().map(|(_, b)| expected_row(b)));
    want.sort();
    let mut got = stored_rows(db, "1");
    got.sort();
    assert_eq!(got, want, "stored rows equal what each packet carries");

    // Spot checks against values known independently of our decoder (hep_vectors/*.json).
    let spec = sql(&format!(
        "SELECT src_ip, src_port, dst_ip, dst_port, node_id, raw FROM {db}.sip_messages \
         WHERE src_ip = '212.202.0.1' LIMIT 1 FORMAT TSV"
    ));
    // Its payload is a shortened "INVITE sip:bob" (no SIP version): stored as is, unparsed.
    assert_eq!(spec.trim(), "212.202.0.1\t12010\t82.116.0.211\t5060\t228\tINVITE sip:bob");
    let rtcp = sql(&format!(
        "SELECT payload_type, correlation_id, call_id FROM {db}.sip_messages WHERE payload_type = 5 LIMIT 1 FORMAT TSV"
    ));
    assert_eq!(rtcp.trim(), "5\thep-1@192.0.2.10\thep-1@192.0.2.10", "RTCP kept and tied to its call");
}
