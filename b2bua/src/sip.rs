//! Just enough SIP for a B2BUA on UDP: an owned message (start line, ordered headers, body),
//! header lookup with compact forms, and builders for the messages the B2BUA sends.
//! Lenient on input (LF-only lines, folded headers, compact names); strict CRLF on output.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// One parsed SIP message. Header names are stored in their long form.
#[derive(Debug, Clone)]
pub struct Msg {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn long_name(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "f" => "From",
        "t" => "To",
        "v" => "Via",
        "m" => "Contact",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "k" => "Supported",
        _ => name,
    }
}

/// Headers whose values may carry several comma-separated entries.
fn is_list_header(name: &str) -> bool {
    ["Via", "Record-Route", "Route"].iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Split a header value at commas that are outside `<...>` and quotes.
fn split_list(value: &str) -> Vec<String> {
    let (mut out, mut cur, mut angle, mut quote) = (Vec::new(), String::new(), false, false);
    for ch in value.chars() {
        match ch {
            '"' if !angle => quote = !quote,
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            ',' if !angle && !quote => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

impl Msg {
    /// Parse one datagram. Returns `None` for keep-alives and anything without a SIP start line.
    pub fn parse(data: &[u8]) -> Option<Msg> {
        let (head_end, body_start) = match find(data, b"\r\n\r\n") {
            Some(i) => (i, i + 4),
            None => match find(data, b"\n\n") {
                Some(i) => (i, i + 2),
                None => (data.len(), data.len()),
            },
        };
        let head = std::str::from_utf8(&data[..head_end]).ok()?;
        let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
        let start = lines.next()?.trim().to_string();
        if !(start.starts_with("SIP/2.0 ") || start.ends_with(" SIP/2.0")) {
            return None;
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let Some((name, value)) = line.split_once(':') else { continue };
            let name = long_name(name.trim()).to_string();
            if is_list_header(&name) {
                for v in split_list(value) {
                    headers.push((name.clone(), v));
                }
            } else {
                headers.push((name, value.trim().to_string()));
            }
        }
        let mut body = data[body_start.min(data.len())..].to_vec();
        let msg = Msg { start, headers, body: Vec::new() };
        if let Some(len) = msg.header("Content-Length").and_then(|l| l.parse::<usize>().ok()) {
            body.truncate(len);
        }
        Some(Msg { body, ..msg })
    }

    pub fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/2.0 ")
    }

    /// Request method (requests only).
    pub fn method(&self) -> &str {
        if self.is_request() {
            self.start.split(' ').next().unwrap_or("")
        } else {
            ""
        }
    }

    /// Request-URI (requests only).
    pub fn ruri(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    /// Status code (responses only).
    pub fn status(&self) -> u16 {
        if self.is_request() {
            0
        } else {
            self.start.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or("")
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> (u32, &str) {
        let v = self.header("CSeq").unwrap_or("");
        let mut it = v.split_whitespace();
        let n = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (n, it.next().unwrap_or(""))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        out.push_str(&self.start);
        out.push_str("\r\n");
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            let _ = write!(out, "{n}: {v}\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Value of a `;name=value` parameter of a header value (outside the `<...>` part).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let tail = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    tail.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn tag(value: &str) -> Option<&str> {
    param(value, "tag")
}

/// The URI of a name-addr (`"x" <sip:a@b>;tag=1` -> `sip:a@b`) or addr-spec (`sip:a@b;tag=1`).
pub fn uri_of(value: &str) -> &str {
    if let (Some(s), Some(e)) = (value.find('<'), value.rfind('>')) {
        if s < e {
            return &value[s + 1..e];
        }
    }
    value.split(';').next().unwrap_or(value).trim()
}

/// User part of a SIP URI (`sip:alice@host` -> `alice`), empty when there is none.
pub fn uri_user(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user),
        None => "",
    }
}

/// Socket address of a SIP URI with a numeric host (`sip:u@10.0.0.1:5070;lr` -> 10.0.0.1:5070).
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?', '>']).next()?;
    host_port(hostport, 5060)
}

fn host_port(hostport: &str, default_port: u16) -> Option<SocketAddr> {
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, default_port),
    };
    Some(SocketAddr::new(host.trim().parse::<IpAddr>().ok()?, port))
}

/// Where a response to a request with this top Via goes (RFC 3261 18.2.2 and RFC 3581).
pub fn via_dest(via: &str) -> Option<SocketAddr> {
    let sent_by = via.split_whitespace().nth(1)?.split(';').next()?;
    let mut addr = host_port(sent_by, 5060)?;
    if let Some(ip) = param(via, "received").and_then(|r| r.parse().ok()) {
        addr.set_ip(ip);
    }
    if let Some(port) = param(via, "rport").and_then(|r| r.parse().ok()) {
        addr.set_port(port);
    }
    Some(addr)
}

/// A response to `req`: Via, From, To (with `to_tag` added when To has none), Call-ID and CSeq
/// copied, then `extra` headers and `body`.
pub fn response(
    req: &Msg,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
    body: &[u8],
) -> Msg {
    let mut headers = Vec::new();
    for (n, v) in &req.headers {
        let keep = ["Via", "From", "Call-ID", "CSeq"].iter().any(|h| h.eq_ignore_ascii_case(n));
        if keep {
            headers.push((n.clone(), v.clone()));
        } else if n.eq_ignore_ascii_case("To") {
            let mut to = v.clone();
            if let (None, Some(t)) = (tag(v), to_tag) {
                let _ = write!(to, ";tag={t}");
            }
            headers.push((n.clone(), to));
        }
    }
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.clone())));
    Msg { start: format!("SIP/2.0 {code} {reason}"), headers, body: body.to_vec() }
}

/// Rewrite the media addresses of an SDP body (`c=` and `o=` lines) to `ip`, the way a
/// B2BUA that anchors media presents itself to each side.
pub fn rewrite_sdp(body: &[u8], ip: &str) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(body) else { return body.to_vec() };
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let (content, eol) = match line.strip_suffix("\r\n") {
            Some(c) => (c, "\r\n"),
            None => line.strip_suffix('\n').map_or((line, ""), |c| (c, "\n")),
        };
        let at = content.rfind("IN IP4 ").filter(|_| content.starts_with("c=") || content.starts_with("o="));
        if let Some(at) = at {
            let _ = write!(out, "{}IN IP4 {ip}{eol}", &content[..at]);
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// Parameters of a new outgoing leg.
pub struct NewLeg<'a> {
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub branch: &'a str,
    pub local: SocketAddr,
    pub next_hop: SocketAddr,
    /// A-leg Call-ID to put in `X-CID`, if the B2BUA is configured to.
    pub xcid: Option<&'a str>,
}

/// The B-leg INVITE for an A-leg INVITE: same caller and callee users, new Call-ID, tags,
/// branch, CSeq and Contact; SDP anchored at the B2BUA; optional `X-CID: <A-leg Call-ID>`.
pub fn b_leg_invite(a: &Msg, leg: &NewLeg<'_>) -> Msg {
    let callee = uri_user(a.ruri());
    let from = a.header("From").unwrap_or("");
    let caller = uri_user(uri_of(from));
    let display = from.split('<').next().map(str::trim).filter(|d| d.starts_with('"')).unwrap_or("");
    let (local, hop) = (leg.local, leg.next_hop);
    let mut h: Vec<(String, String)> = vec![
        ("Via".into(), format!("SIP/2.0/UDP {local};rport;branch={}", leg.branch)),
        ("Max-Forwards".into(), "70".into()),
        ("From".into(), format!("{display}{}<sip:{caller}@{}>;tag={}", sp(display), local.ip(), leg.from_tag)),
        ("To".into(), format!("<sip:{callee}@{hop}>")),
        ("Contact".into(), format!("<sip:{caller}@{local}>")),
        ("Call-ID".into(), leg.call_id.into()),
        ("CSeq".into(), "1 INVITE".into()),
        ("User-Agent".into(), "b2bua".into()),
    ];
    if let Some(x) = leg.xcid {
        h.push(("X-CID".into(), x.into()));
    }
    if let Some(ct) = a.header("Content-Type") {
        h.push(("Content-Type".into(), ct.into()));
    }
    let body = rewrite_sdp(&a.body, &local.ip().to_string());
    Msg { start: format!("INVITE sip:{callee}@{hop} SIP/2.0"), headers: h, body }
}

fn sp(display: &str) -> &'static str {
    if display.is_empty() {
        ""
    } else {
        " "
    }
}

/// An in-dialog request (BYE, ACK) we originate. `route` is the route set, `target` the
/// remote target (request URI), `cseq` the number for this request.
pub struct InDialog<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub route: &'a [String],
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub branch: &'a str,
    pub local: SocketAddr,
}

pub fn in_dialog(r: &InDialog<'_>) -> Msg {
    let mut h: Vec<(String, String)> =
        vec![("Via".into(), format!("SIP/2.0/UDP {};rport;branch={}", r.local, r.branch))];
    h.extend(r.route.iter().map(|v| ("Route".to_string(), v.clone())));
    h.push(("Max-Forwards".into(), "70".into()));
    h.push(("From".into(), r.from.into()));
    h.push(("To".into(), r.to.into()));
    h.push(("Call-ID".into(), r.call_id.into()));
    h.push(("CSeq".into(), format!("{} {}", r.cseq, r.method)));
    Msg { start: format!("{} {} SIP/2.0", r.method, r.target), headers: h, body: Vec::new() }
}

/// Where an in-dialog request goes: the first route entry if there is one, else the target.
pub fn next_hop_of(route: &[String], target: &str) -> Option<SocketAddr> {
    match route.first() {
        Some(r) => uri_addr(uri_of(r)),
        None => uri_addr(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_INVITE: &str = "INVITE sip:2000@10.77.0.21:5060 SIP/2.0\r\n\
Record-Route: <sip:10.77.0.100;lr>\r\n\
Via: SIP/2.0/UDP 10.77.0.11;branch=z9hG4bKlb.1, SIP/2.0/UDP 10.77.0.10:5060;branch=z9hG4bK-itsp-1\r\n\
f: \"Alice\" <sip:1000@10.77.0.10:5060>;tag=abc\r\n\
t: <sip:2000@10.77.0.100:5060>\r\n\
i: itsp-1-99@10.77.0.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1000@10.77.0.10:5060>\r\n\
Content-Type: application/sdp\r\n\
l: 53\r\n\
\r\n\
v=0\r\no=- 1 1 IN IP4 10.77.0.10\r\nc=IN IP4 10.77.0.10\r\nextra-beyond-length";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_compact_and_list_headers() {
        let m = Msg::parse(A_INVITE.as_bytes()).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), "INVITE");
        assert_eq!(m.call_id(), "itsp-1-99@10.77.0.10");
        assert_eq!(m.headers_all("Via").len(), 2);
        assert_eq!(m.cseq(), (1, "INVITE"));
        assert_eq!(m.body.len(), 53);
        assert_eq!(tag(m.header("From").unwrap()), Some("abc"));
        assert_eq!(via_dest(m.header("Via").unwrap()), Some(addr("10.77.0.11:5060")));
        assert_eq!(via_dest("SIP/2.0/UDP 1.2.3.4:5070;rport=7000;received=5.6.7.8"), Some(addr("5.6.7.8:7000")));
        assert_eq!(uri_addr("sip:10.77.0.100;lr"), Some(addr("10.77.0.100:5060")));
    }

    #[test]
    fn b_leg_has_new_identity_and_optional_xcid() {
        let a = Msg::parse(A_INVITE.as_bytes()).unwrap();
        let leg = NewLeg {
            call_id: "b-leg-1",
            from_tag: "t1",
            branch: "z9hG4bK-b1",
            local: addr("10.77.0.21:5060"),
            next_hop: addr("10.77.0.30:5060"),
            xcid: Some(a.call_id()),
        };
        let b = Msg::parse(&b_leg_invite(&a, &leg).to_bytes()).unwrap();
        assert_eq!(b.start, "INVITE sip:2000@10.77.0.30:5060 SIP/2.0");
        assert_eq!(b.call_id(), "b-leg-1");
        assert_eq!(b.header("X-CID"), Some("itsp-1-99@10.77.0.10"));
        assert_eq!(b.headers_all("Via"), vec!["SIP/2.0/UDP 10.77.0.21:5060;rport;branch=z9hG4bK-b1"]);
        assert!(b.header("Record-Route").is_none());
        assert_eq!(b.header("From"), Some("\"Alice\" <sip:1000@10.77.0.21>;tag=t1"));
        assert_eq!(tag(b.header("To").unwrap()), None);
        let sdp = String::from_utf8(b.body.clone()).unwrap();
        assert!(sdp.contains("c=IN IP4 10.77.0.21\r\n") && sdp.contains("o=- 1 1 IN IP4 10.77.0.21\r\n"));
        assert!(!sdp.contains("10.77.0.10"));

        let no_x = b_leg_invite(&a, &NewLeg { xcid: None, ..leg });
        assert!(no_x.header("X-CID").is_none());
    }

    #[test]
    fn response_copies_transaction_headers_and_adds_to_tag() {
        let a = Msg::parse(A_INVITE.as_bytes()).unwrap();
        let rr: Vec<(&str, String)> = vec![("Record-Route", "<sip:10.77.0.100;lr>".into())];
        let r = Msg::parse(&response(&a, 180, "Ringing", Some("ours"), &rr, b"").to_bytes()).unwrap();
        assert_eq!(r.status(), 180);
        assert_eq!(r.headers_all("Via").len(), 2);
        assert_eq!(r.header("To"), Some("<sip:2000@10.77.0.100:5060>;tag=ours"));
        assert_eq!(r.header("Record-Route"), Some("<sip:10.77.0.100;lr>"));
        assert_eq!(r.cseq(), (1, "INVITE"));
    }

    #[test]
    fn in_dialog_bye_goes_to_first_route() {
        let route = vec!["<sip:10.77.0.100;lr>".to_string()];
        let bye = in_dialog(&InDialog {
            method: "BYE",
            target: "sip:1000@10.77.0.10:5060",
            route: &route,
            from: "<sip:2000@10.77.0.100>;tag=ours",
            to: "<sip:1000@10.77.0.10>;tag=abc",
            call_id: "itsp-1",
            cseq: 2,
            branch: "z9hG4bK-x",
            local: addr("10.77.0.21:5060"),
        });
        let text = String::from_utf8(bye.to_bytes()).unwrap();
        assert!(text.starts_with("BYE sip:1000@10.77.0.10:5060 SIP/2.0\r\n"));
        assert!(text.contains("\r\nRoute: <sip:10.77.0.100;lr>\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        assert_eq!(next_hop_of(&route, "sip:1000@10.77.0.10:5060"), Some(addr("10.77.0.100:5060")));
    }
}
