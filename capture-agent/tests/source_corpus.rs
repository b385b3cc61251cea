//! Every capture in the shared corpus opens and yields exactly the frames tshark counted.

mod source_common;

use capture_agent::source::{PcapFile, SourceError};
use source_common::{capture_files, corpus_dir, expectations, NETMON_FILE};

/// Reads a whole file, returning the packet count and the error that ended it, if any.
fn count(bytes: &[u8]) -> (u64, Option<SourceError>) {
    let mut f = match PcapFile::from_reader(bytes, Some(bytes.len() as u64)) {
        Ok(f) => f,
        Err(e) => return (0, Some(e)),
    };
    let mut n = 0;
    loop {
        match f.next_packet() {
            Ok(Some(p)) => {
                assert!(p.data.len() <= capture_agent::source::MAX_PACKET_LEN);
                n += 1;
            }
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

#[test]
fn every_corpus_file_yields_the_expected_frames() {
    let expected = expectations();
    let files = capture_files();
    assert!(
        files.len() > 60,
        "corpus not found at {}",
        corpus_dir().display()
    );
    for name in &files {
        let path = corpus_dir().join(name);
        if name == NETMON_FILE {
            let err = PcapFile::open(&path).unwrap_err();
            assert!(
                matches!(err, SourceError::UnknownFormat { magic } if &magic == b"GMBU"),
                "{err}"
            );
            continue;
        }
        let mut f = PcapFile::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut frames = 0u64;
        while let Some(_p) = f.next_packet().unwrap_or_else(|e| panic!("{name}: {e}")) {
            frames += 1;
        }
        assert_eq!(
            f.bytes_read(),
            f.file_size().unwrap(),
            "{name}: whole file consumed"
        );
        match expected.get(name.as_str()) {
            Some(e) => assert_eq!(frames, e.frames, "{name}"),
            // Not in the tshark table (gen/sipp_tcp_basic.pcap): `capinfos` says 61.
            None => assert_eq!((name.as_str(), frames), ("gen/sipp_tcp_basic.pcap", 61)),
        }
    }
}

/// Offsets where a record or block ends: a cut there is a clean end of file.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        // pcapng (the little-endian files used below): walk the block lengths.
        let mut out = vec![0];
        while *out.last().unwrap() < bytes.len() {
            let at = *out.last().unwrap();
            out.push(at + le32(at + 4));
        }
        out
    } else {
        // pcap (little-endian, microseconds): file header, then 16-byte record headers.
        let mut out = vec![0, 24];
        while *out.last().unwrap() < bytes.len() {
            let at = *out.last().unwrap();
            out.push(at + 16 + le32(at + 8));
        }
        out
    }
}

/// Cutting a file anywhere never panics, delivers every packet that ends before the cut,
/// and reports the cut record as `Truncated` at its offset.
#[test]
fn truncated_files_deliver_packets_before_the_cut() {
    for name in [
        "pcap/sipnab/sip-sdp-example.pcap",
        "pcap/sipnab/sip-auth-failure.pcapng",
    ] {
        let bytes = std::fs::read(corpus_dir().join(name)).unwrap();
        // Offsets where each packet's record ends, from a full read.
        let mut ends = Vec::new();
        let mut f = PcapFile::from_reader(&bytes[..], None).unwrap();
        while f.next_packet().unwrap().is_some() {
            ends.push(f.bytes_read());
        }
        for cut in 0..bytes.len() {
            let (n, err) = count(&bytes[..cut]);
            let complete = ends.iter().filter(|&&end| end <= cut as u64).count() as u64;
            assert_eq!(n, complete, "{name} cut at {cut}");
            match err {
                None => assert!(boundaries(&bytes).contains(&cut), "{name} cut at {cut}"),
                Some(SourceError::Truncated {
                    offset, available, ..
                }) => {
                    assert!(
                        offset + available == cut as u64,
                        "{name} cut at {cut}: offset {offset}"
                    );
                }
                Some(e) => panic!("{name} cut at {cut}: unexpected {e}"),
            }
        }
    }
}
