//! Property tests: `Decoder::decode` never panics, whatever the bytes and link type, and
//! fragment state stays within its limits.

mod source_common;

use std::sync::OnceLock;
use std::time::Duration;

use capture_agent::flow::Timestamp;
use capture_agent::packet::{Decoder, DefragConfig};
use capture_agent::source::{LinkType, PcapFile};
use proptest::prelude::*;
use source_common::corpus_dir;

const LINK_TYPES: [u32; 10] = [0, 1, 12, 101, 108, 113, 228, 229, 276, 147];

/// Real frames from captures that reach every layer (VLAN, PPPoE, SLL, raw IP, ERSPAN,
/// IP-in-IP, SCTP, IPv4/IPv6 fragments), to mutate: random bytes alone rarely get past
/// the first header.
fn seed_frames() -> &'static [(LinkType, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(LinkType, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(read_seeds)
}

fn read_seeds() -> Vec<(LinkType, Vec<u8>)> {
    let files = [
        "gen/synthetic/sip_udp_qinq_vlan200_100.pcap",
        "pcap/sipnab/DTMFsipinfo.pcap",
        "pcap/heplify/sip_sctp.pcap",
        "pcap/heplify/erspan_sip_ipv4_udp.pcapng",
        "pcap/heplify/ipip0.pcap",
        "pcap/sngrep/ipip.pcap",
        "pcap/sngrep/ipv6frag.pcap",
        "gen/sipp_large_invite_ipv4_frag.pcap",
        "gen/synthetic/sip_ipv6_udp_frag_reversed.pcap",
        "pcap/suricata/sip-body-large__sip-body-large.pcap",
        "pcap/heplify/sip_ipv4_tcp_retrans.pcap",
    ];
    let mut out = Vec::new();
    for name in files {
        let mut f = PcapFile::open(corpus_dir().join(name)).unwrap();
        for _ in 0..4 {
            let Some(p) = f.next_packet().unwrap() else {
                break;
            };
            out.push((p.link_type, p.data.to_vec()));
        }
    }
    out
}

fn decode_all(decoder: &mut Decoder, ts: u64, link: LinkType, frame: &[u8]) {
    decoder.decode(Timestamp::from_micros(ts), link, frame, &mut |seg| {
        assert!(seg.payload.len() <= 65_535 + frame.len());
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(link in prop::sample::select(&LINK_TYPES[..]), frame in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut d = Decoder::new();
        decode_all(&mut d, 0, LinkType::from(link), &frame);
        prop_assert_eq!(d.counters().frames, 1);
    }

    #[test]
    fn mutated_real_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        link in prop::option::of(prop::sample::select(&LINK_TYPES[..])),
    ) {
        let seeds = seed_frames();
        let (seed_link, seed) = &seeds[pick.index(seeds.len())];
        let mut frame = seed.clone();
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        frame.truncate(cut.index(frame.len() + 1));
        let mut d = Decoder::new();
        decode_all(&mut d, 0, link.map_or(*seed_link, LinkType::from), &frame);
    }

    /// Random IPv4 fragments (raw IP link) against small limits: the table never holds
    /// more than its caps, and never panics.
    #[test]
    fn fragment_floods_stay_bounded(
        frags in prop::collection::vec((0u16..4, any::<u16>(), any::<bool>(), 1usize..64, 0u64..5_000_000), 1..300),
    ) {
        let cfg = DefragConfig { max_datagrams: 8, max_datagram_bytes: 65_535, max_total_bytes: 4096, timeout: Duration::from_secs(1) };
        let mut d = Decoder::with_config(cfg);
        let mut now = 0;
        for (id, offset_units, more, len, dt) in frags {
            now += dt;
            let offset = offset_units & 0x1fff;
            let mut p = vec![0x45, 0, 0, 0, 0, id as u8, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
            let total = (20 + len) as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[6..8].copy_from_slice(&(offset | if more { 0x2000 } else { 0 }).to_be_bytes());
            p.extend((0..len).map(|i| i as u8));
            decode_all(&mut d, now, LinkType::Raw, &p);
            let (count, bytes) = d.fragments_in_flight();
            prop_assert!(count <= 8 && bytes <= 4096, "{count} datagrams, {bytes} bytes");
        }
    }
}
