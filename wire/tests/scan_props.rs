//! Property tests for the SIP framer and scanner: no panics on any input, every borrowed
//! field lies inside the message, and generated messages scan back to their fields.

use proptest::prelude::*;
use proptest::sample::select;

use wire::sip::{frame, scan, scan_with, CSeq, Frame, NameAddr, ScanConfig, Sdp, SipMessage, StartLine};

/// Pieces that steer random input into the scanner's branches.
const PIECES: &[&str] = &[
    "\r\n",
    "\n",
    "\r",
    " ",
    "\t",
    ":",
    ";",
    ",",
    "<",
    ">",
    "\"",
    "\\",
    "@",
    "[",
    "]",
    "=",
    "/",
    "0",
    "7",
    "99999999999",
    "sip:",
    "sips:",
    "tel:",
    "tag=",
    "branch=",
    "Via:",
    "v:",
    "From:",
    "f:",
    "To:",
    "t:",
    "Call-ID:",
    "i:",
    "CSeq:",
    "Content-Length:",
    "l:",
    "Content-Type:",
    "c:",
    "application/sdp",
    "P-Asserted-Identity:",
    "X-CID:",
    "Server:",
    "User-Agent:",
    "v=0",
    "c=IN IP4 ",
    "m=audio ",
    "m=video ",
    "\r\n\r\n",
    "\u{0}",
    "\u{ff}",
];

const START_LINES: &[&str] = &["INVITE sip:bob@example.com SIP/2.0\r\n", "SIP/2.0 180 Ringing\r\n", "X sip:x SIP/2\n"];

fn sip_ish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![select(PIECES).prop_map(|p| p.as_bytes().to_vec()), any::<u8>().prop_map(|b| vec![b])],
        0..200,
    )
    .prop_map(|parts| parts.concat())
}

/// Every slice in `m` must point into `msg`: the scanner borrows, never invents.
fn assert_borrowed(msg: &[u8], m: &SipMessage<'_>) {
    let range = msg.as_ptr_range();
    let inside = |s: &[u8]| {
        let r = s.as_ptr_range();
        range.start <= r.start && r.end <= range.end
    };
    let mut all = vec![m.call_id, m.ruri_user, m.ruri_domain, m.via_branch, m.user_agent, m.pai_user, m.aleg_id];
    all.extend([m.content_type, Some(m.body), m.cseq.map(|c| c.method)]);
    for n in [m.from, m.to] {
        all.extend([n.display, n.user, n.domain, n.tag]);
    }
    all.extend(m.sdp.map_or([None, None], |s| [s.connection, None]));
    match m.start {
        StartLine::Request { method, uri } => all.extend([Some(method), Some(uri)]),
        StartLine::Response { reason, .. } => all.push(Some(reason)),
    }
    for s in all.into_iter().flatten() {
        assert!(inside(s), "slice outside the message");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        let _ = frame(&bytes);
        if let Ok(m) = scan(&bytes) {
            assert_borrowed(&bytes, &m);
        }
    }

    #[test]
    fn junk_after_a_start_line_never_panics(start in select(START_LINES), junk in sip_ish()) {
        let msg = [start.as_bytes(), &junk].concat();
        let _ = frame(&msg);
        let config = ScanConfig { aleg_headers: vec![b"X-CID".to_vec(), b"i".to_vec(), Vec::new()] };
        let m = scan_with(&msg, &config).expect("start line is valid");
        assert_borrowed(&msg, &m);
    }
}

/// Field values for one generated message.
#[derive(Debug, Clone)]
struct Fields {
    method: String,
    ruri_user: String,
    host: String,
    call_id: String,
    seq: u32,
    from_display: String,
    from_user: String,
    from_tag: String,
    to_user: String,
    to_tag: Option<String>,
    branch: String,
    user_agent: String,
    pai_user: String,
    aleg: String,
    media_addr: String,
    media_port: u16,
}

fn fields() -> impl Strategy<Value = Fields> {
    let token = "[A-Za-z0-9.!%*_+`'~-]{1,16}";
    let user = "[A-Za-z0-9._+%-]{1,16}";
    let host = "[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,3}";
    let word = "[A-Za-z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,24}(@[a-z0-9.]{1,12})?";
    let texty = "[A-Za-z0-9]([ -~]{0,24}[A-Za-z0-9])?";
    (
        (token, user, host, word, any::<u32>(), "[A-Za-z0-9][A-Za-z0-9 ]{0,12}", user, token),
        (user, prop::option::of(token), "z9hG4bK[A-Za-z0-9.-]{1,16}", texty, "\\+?[0-9]{1,14}", word),
        ("(192\\.0\\.2\\.[0-9]{1,3})|(2001:db8::[0-9a-f]{1,4})", any::<u16>()),
    )
        .prop_map(|(a, b, c)| Fields {
            method: a.0,
            ruri_user: a.1,
            host: a.2,
            call_id: a.3,
            seq: a.4,
            from_display: a.5,
            from_user: a.6,
            from_tag: a.7,
            to_user: b.0,
            to_tag: b.1,
            branch: b.2,
            user_agent: b.3,
            pai_user: b.4,
            aleg: b.5,
            media_addr: c.0,
            media_port: c.1,
        })
}

/// How each header is written: name spelling and separator whitespace, line ends.
#[derive(Debug, Clone)]
struct Style {
    compact: bool,
    upper: bool,
    space_before_colon: bool,
    fold: bool,
    lf_only: bool,
    trailing: Vec<u8>,
}

fn style() -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(compact, upper, space_before_colon, fold, lf_only, trailing)| Style {
            compact,
            upper,
            space_before_colon,
            fold,
            lf_only,
            trailing,
        })
}

fn b(s: &str) -> Option<&[u8]> {
    Some(s.as_bytes())
}

fn build(f: &Fields, s: &Style, order: &[usize]) -> (Vec<u8>, usize) {
    let eol = if s.lf_only { "\n" } else { "\r\n" };
    let name = |long: &str, short: &str| {
        let n = if s.compact && !short.is_empty() { short.to_owned() } else { long.to_owned() };
        let n = if s.upper { n.to_uppercase() } else { n };
        if s.space_before_colon {
            format!("{n} :")
        } else {
            format!("{n}:")
        }
    };
    // A fold puts the value's first part on a continuation line.
    let fold = if s.fold { format!("{eol}\t") } else { " ".to_owned() };
    let body = format!(
        "v=0{eol}o=- 1 1 IN IP4 {a}{eol}s=-{eol}c=IN {t} {a}{eol}t=0 0{eol}m=audio {p} RTP/AVP 0{eol}",
        a = f.media_addr,
        t = if f.media_addr.contains(':') { "IP6" } else { "IP4" },
        p = f.media_port,
    );
    let to_tag = f.to_tag.as_ref().map(|t| format!(";tag={t}")).unwrap_or_default();
    let headers = [
        format!("{}{fold}SIP/2.0/UDP {};branch={}", name("Via", "v"), f.host, f.branch),
        format!("{} \"{}\" <sip:{}@{}>;tag={}", name("From", "f"), f.from_display, f.from_user, f.host, f.from_tag),
        format!("{}{fold}sip:{}@[2001:db8::1]:5060{to_tag}", name("To", "t"), f.to_user),
        format!("{}{fold}{}", name("Call-ID", "i"), f.call_id),
        format!("{} {}{fold}{}", name("CSeq", ""), f.seq, f.method),
        format!("{} {}", name("User-Agent", ""), f.user_agent),
        format!("{} <tel:{};npdi>", name("P-Asserted-Identity", ""), f.pai_user),
        format!("{} {}", name("X-CID", ""), f.aleg),
        format!("{} application/sdp", name("Content-Type", "c")),
        format!("{} {}", name("Content-Length", "l"), body.len()),
    ];
    let mut msg = format!("{} sip:{}:pw@{}:5060;transport=tcp SIP/2.0{eol}", f.method, f.ruri_user, f.host);
    for &i in order {
        msg.push_str(&headers[i]);
        msg.push_str(eol);
    }
    msg.push_str(eol);
    msg.push_str(&body);
    let len = msg.len();
    let mut bytes = msg.into_bytes();
    bytes.extend_from_slice(&s.trailing);
    (bytes, len)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn generated_messages_scan_back(
        f in fields(),
        s in style(),
        order in Just((0..10).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let (msg, len) = build(&f, &s, &order);
        let framed = matches!(frame(&msg), Ok(Frame::Complete { len: l, .. }) if l == len);
        prop_assert!(framed, "frame() disagrees on the message length");
        let m = scan(&msg).expect("generated message scans");
        let uri = format!("sip:{}:pw@{}:5060;transport=tcp", f.ruri_user, f.host);
        prop_assert_eq!(m.start, StartLine::Request { method: f.method.as_bytes(), uri: uri.as_bytes() });
        prop_assert_eq!((m.ruri_user, m.ruri_domain), (b(&f.ruri_user), b(&f.host)));
        prop_assert_eq!(m.call_id, b(&f.call_id));
        prop_assert_eq!(m.cseq, Some(CSeq { seq: f.seq, method: f.method.as_bytes() }));
        prop_assert_eq!(m.from, NameAddr {
            display: b(&f.from_display),
            user: b(&f.from_user),
            domain: b(&f.host),
            tag: b(&f.from_tag),
        });
        prop_assert_eq!(m.to, NameAddr {
            display: None,
            user: b(&f.to_user),
            domain: Some(b"2001:db8::1"),
            tag: f.to_tag.as_ref().map(|t| t.as_bytes()),
        });
        prop_assert_eq!(m.via_branch, b(&f.branch));
        prop_assert_eq!(m.user_agent, b(&f.user_agent));
        prop_assert_eq!(m.pai_user, b(&f.pai_user));
        prop_assert_eq!(m.aleg_id, b(&f.aleg));
        prop_assert_eq!(m.content_type, Some(&b"application/sdp"[..]));
        prop_assert_eq!(m.body.len(), m.content_length.unwrap());
        prop_assert!(msg[..len].ends_with(m.body));
        prop_assert_eq!(m.sdp, Some(Sdp { connection: b(&f.media_addr), media_port: Some(f.media_port) }));
    }
}
