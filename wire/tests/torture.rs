//! RFC 4475 torture messages through the SIP framer and scanner.
//!
//! The corpus and its provenance are in `tests/torture/` (see the README there).

use std::fs;
use std::path::{Path, PathBuf};

use wire::sip::{frame, scan, CSeq, Frame, NameAddr, ScanError, Sdp, SipMessage, StartLine};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torture")
}

/// `(file stem, verdict)` for every message in `index.tsv`.
fn index() -> Vec<(String, String)> {
    let tsv = fs::read_to_string(dir().join("index.tsv")).expect("index.tsv");
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].trim_end_matches(".dat").to_owned(), cols[3].to_owned())
        })
        .collect()
}

fn load(stem: &str) -> Vec<u8> {
    fs::read(dir().join(format!("{stem}.dat"))).expect("torture message")
}

/// Runs `check` on the scan of message `stem`.
fn with_scan(stem: &str, check: impl FnOnce(SipMessage<'_>)) {
    let bytes = load(stem);
    let msg = scan(&bytes).unwrap_or_else(|e| panic!("{stem}: {e}"));
    check(msg);
}

#[test]
fn index_covers_every_file() {
    let mut listed: Vec<String> = index().into_iter().map(|(stem, _)| stem).collect();
    let mut files: Vec<String> = fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".dat").map(str::to_owned))
        .collect();
    listed.sort();
    files.sort();
    assert_eq!(listed, files);
    assert_eq!(files.len(), 50);
}

#[test]
fn every_message_scans_without_panic_and_valid_ones_yield_ids() {
    for (stem, verdict) in index() {
        let bytes = load(&stem);
        let _ = frame(&bytes);
        // Every prefix too: a capture may cut a datagram anywhere.
        for cut in 0..bytes.len() {
            let _ = scan(&bytes[..cut]);
            let _ = frame(&bytes[..cut]);
        }
        let result = scan(&bytes);
        if !matches!(verdict.as_str(), "valid" | "valid-syntax") {
            continue;
        }
        let msg = result.unwrap_or_else(|e| panic!("{stem} ({verdict}): {e}"));
        let call_id = msg.call_id.unwrap_or_else(|| panic!("{stem}: no Call-ID"));
        // RFC 4475 names most Call-IDs after the test; this catches a wrong header.
        if stem != "mpart01" {
            assert!(call_id.starts_with(stem.as_bytes()), "{stem}: Call-ID {:?}", String::from_utf8_lossy(call_id));
        }
        let cseq = msg.cseq.unwrap_or_else(|| panic!("{stem}: no CSeq"));
        assert!(!cseq.method.is_empty(), "{stem}: CSeq without method");
        // inv2543's and longreq's top Via have no branch parameter.
        let branch_expected = !matches!(stem.as_str(), "inv2543" | "longreq");
        assert_eq!(msg.via_branch.is_some(), branch_expected, "{stem}: Via branch");
        assert!(matches!(frame(&bytes), Ok(Frame::Complete { .. })), "{stem}: not framed");
    }
}

#[test]
fn wsinv_short_tortuous_invite() {
    with_scan("wsinv", |m| {
        assert_eq!(
            m.start,
            StartLine::Request { method: b"INVITE", uri: b"sip:vivekg@chair-dnrc.example.com;unknownparam" }
        );
        assert_eq!((m.ruri_user, m.ruri_domain), (Some(&b"vivekg"[..]), Some(&b"chair-dnrc.example.com"[..])));
        assert_eq!(m.call_id, Some(&b"wsinv.ndaksdj@192.0.2.1"[..]));
        assert_eq!(m.cseq, Some(CSeq { seq: 9, method: b"INVITE" }));
        assert_eq!(
            m.to,
            NameAddr {
                display: None,
                user: Some(b"vivekg"),
                domain: Some(b"chair-dnrc.example.com"),
                tag: Some(b"1918181833n")
            }
        );
        assert_eq!(
            m.from,
            NameAddr {
                display: Some(br#"J Rosenberg \\\""#),
                user: Some(b"jdrosen"),
                domain: Some(b"example.com"),
                tag: Some(b"98asjd8"),
            }
        );
        assert_eq!(m.via_branch, Some(&b"390skdjuw"[..]));
        assert_eq!((m.content_length, m.body.len()), (Some(150), 150));
        assert_eq!(m.content_type, Some(&b"application/sdp"[..]));
        assert_eq!(m.sdp, Some(Sdp { connection: Some(b"192.0.2.4"), media_port: Some(49217) }));
    });
}

#[test]
fn dblreq_takes_only_the_first_message() {
    let bytes = load("dblreq");
    let Ok(Frame::Complete { len, .. }) = frame(&bytes) else { panic!("dblreq not framed") };
    assert!(bytes[len..].starts_with(b"\r\nINVITE sip:joe@example.com SIP/2.0\r\n"));
    with_scan("dblreq", |m| {
        assert_eq!(m.start, StartLine::Request { method: b"REGISTER", uri: b"sip:example.com" });
        assert_eq!(m.call_id, Some(&b"dblreq.0ha0isndaksdj99sdfafnl3lk233412"[..]));
        assert_eq!(m.cseq, Some(CSeq { seq: 8, method: b"REGISTER" }));
        assert_eq!((m.content_length, m.body, m.sdp), (Some(0), &b""[..], None));
    });
}

#[test]
fn esc02_percent_method_is_a_literal_token() {
    with_scan("esc02", |m| {
        assert!(matches!(m.start, StartLine::Request { method: b"RE%47IST%45R", .. }));
        assert_eq!(m.cseq, Some(CSeq { seq: 29344, method: b"RE%47IST%45R" }));
        assert_eq!(m.to.display, Some(&b"%Z%45"[..]));
        assert_eq!(m.via_branch, Some(&b"z9hG4bK209%fzsnel234"[..]));
    });
}

#[test]
fn intmeth_wide_range_of_characters() {
    const METHOD: &[u8] = b"!interesting-Method0123456789_*+`.%indeed'~";
    with_scan("intmeth", |m| {
        assert!(matches!(m.start, StartLine::Request { method: METHOD, .. }));
        assert_eq!(m.cseq, Some(CSeq { seq: 139122385, method: METHOD }));
        assert_eq!(m.ruri_user, Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]));
        assert_eq!(m.ruri_domain, Some(&b"example.com"[..]));
        assert_eq!(m.to.display, Some(&b"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"[..]));
        assert_eq!(m.to.user, Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]));
        assert_eq!(m.from.display, Some(&b"token1~` token2'+_ token3*%!.-"[..]));
        assert_eq!(m.from.tag, Some(&b"_token~1'+`*%!-."[..]));
        assert_eq!(m.via_branch, Some(&b"z9hG4bK-.!%66*_+`'~"[..]));
    });
}

#[test]
fn lwsdisp_display_without_space() {
    with_scan("lwsdisp", |m| {
        assert_eq!(
            m.from,
            NameAddr {
                display: Some(b"caller"),
                user: Some(b"caller"),
                domain: Some(b"example.com"),
                tag: Some(b"323")
            }
        );
        assert_eq!(m.to.user, Some(&b"user"[..]));
    });
}

#[test]
fn unreason_and_noreason_phrases() {
    let bytes = load("unreason");
    let first_line = &bytes[..bytes.iter().position(|&b| b == b'\r').unwrap()];
    let reason = &first_line[b"SIP/2.0 200 ".len()..];
    assert!(reason.starts_with(b"= 2**3 * 5**2 \xd0\xbd\xd0\xbe"));
    with_scan("unreason", |m| {
        assert_eq!(m.start, StartLine::Response { code: 200, reason });
        assert_eq!(m.sdp, Some(Sdp { connection: Some(b"192.0.2.198"), media_port: Some(49217) }));
    });
    with_scan("noreason", |m| assert_eq!(m.start, StartLine::Response { code: 100, reason: b"" }));
}

#[test]
fn uri_user_parts() {
    with_scan("semiuri", |m| {
        assert_eq!((m.ruri_user, m.ruri_domain), (Some(&b"user;par=u%40example.net"[..]), Some(&b"example.com"[..])));
    });
    with_scan("escnull", |m| assert_eq!(m.to.user, Some(&b"null-%00-null"[..])));
    with_scan("esc01", |m| assert!(m.ruri_user.is_some_and(|u| u.contains(&b'%'))));
    with_scan("ltgtruri", |m| assert_eq!(m.ruri_user, Some(&b"user"[..])));
    with_scan("unkscm", |m| assert_eq!((m.ruri_user, m.ruri_domain), (None, None)));
    with_scan("unksm2", |m| {
        assert_eq!((m.to.user, m.to.domain), (None, None));
        assert_eq!(m.from.tag, Some(&b"3234233"[..]));
    });
    with_scan("badaspec", |m| {
        assert_eq!((m.to.display, m.to.user), (Some(&b"Watson, Thomas"[..]), Some(&b"t.watson"[..])));
    });
    with_scan("baddn", |m| assert_eq!(m.from.display, Some(&b"Bell, Alexander"[..])));
    with_scan("quotbal", |m| assert_eq!((m.to.display, m.to.user), (None, Some(&b"j.user"[..]))));
}

#[test]
fn odd_values_are_best_effort() {
    with_scan("scalar02", |m| assert_eq!(m.cseq, Some(CSeq { seq: u32::MAX, method: b"REGISTER" })));
    with_scan("ncl", |m| assert_eq!(m.content_length, None));
    with_scan("clerr", |m| assert_eq!((m.content_length, m.body.len() < 9999), (Some(9999), true)));
    with_scan("badbranch", |m| assert_eq!(m.via_branch, Some(&b"z9hG4bK"[..])));
    with_scan("transports", |m| assert_eq!(m.via_branch, Some(&b"z9hG4bKkdjuw"[..])));
    with_scan("multi01", |m| {
        assert_eq!(m.call_id, Some(&b"multi01.98asdh@192.0.2.1"[..]));
        assert_eq!(m.cseq.map(|c| c.seq), Some(5));
    });
    with_scan("mcl01", |m| assert_eq!(m.content_length, Some(13)));
    with_scan("insuf", |m| assert_eq!((m.call_id, m.from, m.to), (None, NameAddr::default(), NameAddr::default())));
    with_scan("mpart01", |m| {
        assert!(m.content_type.is_some_and(|t| t.starts_with(b"multipart/mixed")));
        assert_eq!(m.sdp, None);
    });
    assert_eq!(scan(&load("bigcode")), Err(ScanError::BadStartLine));
    // reSIProcate's sample has no SIP version in its request line; frame() refuses it too.
    assert_eq!(scan(&load("test")), Err(ScanError::BadStartLine));
}
