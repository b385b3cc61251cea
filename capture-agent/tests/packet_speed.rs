//! Throughput of reading and decoding (ignored by default; run in release):
//! `cargo test --release -p capture-agent --test packet_speed -- --ignored --nocapture`

mod source_common;

use std::time::Instant;

use capture_agent::packet::Decoder;
use capture_agent::source::PcapFile;
use source_common::corpus_dir;

#[test]
#[ignore = "measurement, not a check"]
fn read_and_decode_rate() {
    for name in [
        "pcap/sipnab/sipp-branch-scenario.pcapng",
        "pcap/heplify/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    ] {
        let path = corpus_dir().join(name);
        let rounds = 200;
        let (mut packets, mut bytes) = (0u64, 0usize);
        let mut decoder = Decoder::new();
        let start = Instant::now();
        for _ in 0..rounds {
            let mut f = PcapFile::open(&path).unwrap();
            while let Some(p) = f.next_packet().unwrap() {
                decoder.decode(p.ts, p.link_type, p.data, &mut |seg| {
                    bytes += seg.payload.len()
                });
                packets += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {packets} packets in {secs:.3}s = {:.2} M packets/s ({bytes} payload bytes)",
            packets as f64 / secs / 1e6
        );
    }
}
