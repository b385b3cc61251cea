//! Field extraction from one whole SIP message.

use std::fmt;

use super::frame::{strip_prefix_ignore_case, trim_cr};

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD request-uri SIP/2.0`.
    Request {
        /// Method token as written (extension methods allowed).
        method: &'a [u8],
        /// The request URI as written.
        uri: &'a [u8],
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// Status code (100..=699 in valid SIP; any three digits accepted).
        code: u16,
        /// Reason phrase (may be empty or non-UTF-8).
        reason: &'a [u8],
    },
}

/// `CSeq: 1 INVITE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number (saturates at `u32::MAX` on overlarge values).
    pub seq: u32,
    /// Method.
    pub method: &'a [u8],
}

/// The parts of a From/To/P-Asserted-Identity header we store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name without quotes, if any.
    pub display: Option<&'a [u8]>,
    /// URI user part (`alice` in `sip:alice@example.com`), or the number of a `tel:` URI.
    pub user: Option<&'a [u8]>,
    /// URI host part (`example.com`), without port.
    pub domain: Option<&'a [u8]>,
    /// `tag` parameter (outside the `<...>`).
    pub tag: Option<&'a [u8]>,
}

/// What we keep from an SDP body, for media-based correlation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sdp<'a> {
    /// Session or first media connection address (`c=IN IP4 192.0.2.1` gives `192.0.2.1`).
    pub connection: Option<&'a [u8]>,
    /// Port of the first `m=audio` line (or first `m=` line if there is no audio).
    pub media_port: Option<u16>,
}

/// The fields of one SIP message, borrowed from it. Header values are trimmed; a value
/// that spans folded lines is returned as written (with the CRLF and whitespace inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipMessage<'a> {
    /// Request or status line.
    pub start: StartLine<'a>,
    /// `Call-ID` / `i`.
    pub call_id: Option<&'a [u8]>,
    /// `CSeq`.
    pub cseq: Option<CSeq<'a>>,
    /// `From` / `f`.
    pub from: NameAddr<'a>,
    /// `To` / `t`.
    pub to: NameAddr<'a>,
    /// User part of the request URI (requests only).
    pub ruri_user: Option<&'a [u8]>,
    /// Host part of the request URI (requests only).
    pub ruri_domain: Option<&'a [u8]>,
    /// `branch` parameter of the top-most `Via` / `v`.
    pub via_branch: Option<&'a [u8]>,
    /// `User-Agent` (requests) or `Server` (responses) value.
    pub user_agent: Option<&'a [u8]>,
    /// User part of `P-Asserted-Identity`.
    pub pai_user: Option<&'a [u8]>,
    /// Value of the first header in [`ScanConfig::aleg_headers`] present (e.g. `X-CID`).
    pub aleg_id: Option<&'a [u8]>,
    /// `Content-Length` / `l`, when present and numeric.
    pub content_length: Option<usize>,
    /// `Content-Type` / `c`.
    pub content_type: Option<&'a [u8]>,
    /// The body (after the blank line, cut to `Content-Length` when that is shorter).
    pub body: &'a [u8],
    /// SDP fields when the body is SDP.
    pub sdp: Option<Sdp<'a>>,
}

/// Scanner options.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Header names (any case) that carry the A-leg Call-ID on a B2BUA's outbound leg,
    /// in order of preference.
    pub aleg_headers: Vec<Vec<u8>>,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self { aleg_headers: vec![b"X-CID".to_vec(), b"X-Call-ID".to_vec()] }
    }
}

/// Why a message could not be scanned at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanError {
    /// The first line is neither a request line nor a status line.
    BadStartLine,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadStartLine => f.write_str("not a SIP request or status line"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Scans `msg` (one whole message, e.g. as cut by [`super::frame`]) with the default
/// A-leg header list.
pub fn scan(msg: &[u8]) -> Result<SipMessage<'_>, ScanError> {
    scan_with(msg, &ScanConfig::default())
}

/// Scans `msg` with the given options. Missing or malformed headers leave their field
/// `None`; only an unusable start line is an error.
///
/// One pass over the header lines, no allocation. When a header occurs more than once,
/// the first occurrence with a non-empty value counts (the top-most `Via`, the first
/// `Content-Length`). Leading CR/LF before the start line (RFC 3261 section 7.5) is skipped.
pub fn scan_with<'a>(msg: &'a [u8], config: &ScanConfig) -> Result<SipMessage<'a>, ScanError> {
    let start_at = msg.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(msg.len());
    let (first_line, headers_at) = line_at(msg, start_at);
    let start = parse_start_line(first_line).ok_or(ScanError::BadStartLine)?;
    let mut headers = Headers { msg, pos: headers_at, body_at: msg.len() };
    let mut raw = RawHeaders::default();
    for (name, value) in &mut headers {
        raw.record(name, value, config);
    }
    Ok(raw.finish(start, &msg[headers.body_at..]))
}

/// The few fields a capture agent needs for each message, from [`peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek<'a> {
    /// Request or status line.
    pub start: StartLine<'a>,
    /// `Call-ID` / `i`.
    pub call_id: Option<&'a [u8]>,
    /// `CSeq`.
    pub cseq: Option<CSeq<'a>>,
    /// Value of the most preferred header in [`ScanConfig::aleg_headers`] present.
    pub aleg_id: Option<&'a [u8]>,
}

/// The start line, Call-ID, CSeq and A-leg id of `msg`, with the same rules as
/// [`scan_with`] but nothing else parsed: it stops at the first header line by which all
/// of them are known, so the rest of the headers and the body are never read. This is
/// what the agent needs per packet (correlation id, method filters) at line rate.
pub fn peek<'a>(msg: &'a [u8], config: &ScanConfig) -> Result<Peek<'a>, ScanError> {
    let start_at = msg.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(msg.len());
    let (first_line, headers_at) = line_at(msg, start_at);
    let start = parse_start_line(first_line).ok_or(ScanError::BadStartLine)?;
    let mut raw = RawHeaders::default();
    for (name, value) in (Headers { msg, pos: headers_at, body_at: msg.len() }) {
        if value.is_empty() {
            continue;
        }
        if let Some(kind @ (Known::CallId | Known::CSeq)) = known_header(name) {
            let slot = raw.slot(kind);
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        raw.record_aleg(name, value, config);
        let aleg_done = config.aleg_headers.is_empty() || raw.aleg.is_some_and(|(rank, _)| rank == 0);
        if raw.call_id.is_some() && raw.cseq.is_some() && aleg_done {
            break;
        }
    }
    Ok(Peek { start, call_id: raw.call_id, cseq: raw.cseq.and_then(parse_cseq), aleg_id: raw.aleg.map(|(_, v)| v) })
}

/// The line starting at `pos`, without its CRLF or LF, and where the next line starts.
fn line_at(msg: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = msg.get(pos..).unwrap_or_default();
    match memchr::memchr(b'\n', rest) {
        Some(nl) => (trim_cr(&rest[..nl]), pos + nl + 1),
        None => (trim_cr(rest), msg.len()),
    }
}

// ---------------------------------------------------------------------------------------
// Start line

/// `SIP/2.0 200 OK` or `METHOD uri SIP/2.0`. Lenient about extra whitespace between the
/// parts and about the version number, strict enough to refuse HTTP and binary junk.
fn parse_start_line(line: &[u8]) -> Option<StartLine<'_>> {
    let line = line.trim_ascii();
    match strip_prefix_ignore_case(line, b"SIP/") {
        Some(rest) => parse_status_line(rest),
        None => parse_request_line(line),
    }
}

/// `rest` is the status line after `SIP/`: version, whitespace, three-digit code, reason.
fn parse_status_line(rest: &[u8]) -> Option<StartLine<'_>> {
    let sp = rest.iter().position(|&b| is_lws(b))?;
    let after = rest[sp..].trim_ascii_start();
    let code = after.get(..3)?;
    // A fourth digit means an overlarge code (RFC 4475 bigcode), not a 3-digit prefix.
    if !code.iter().all(u8::is_ascii_digit) || after.get(3).is_some_and(|&b| !is_lws(b)) {
        return None;
    }
    let code = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    Some(StartLine::Response { code, reason: after[3..].trim_ascii() })
}

fn parse_request_line(line: &[u8]) -> Option<StartLine<'_>> {
    let sp = line.iter().position(|&b| is_lws(b))?;
    let (method, rest) = line.split_at(sp);
    // The version is the last word; the URI is what lies between (it may hold LWS in
    // malformed traffic, RFC 4475 lwsruri).
    let last_sp = rest.iter().rposition(|&b| is_lws(b))?;
    let version = &rest[last_sp + 1..];
    let uri = rest[..last_sp].trim_ascii();
    let usable = !method.is_empty()
        && method.iter().all(|&b| is_token_char(b))
        && !uri.is_empty()
        && strip_prefix_ignore_case(version, b"SIP/").is_some_and(|v| !v.is_empty());
    usable.then_some(StartLine::Request { method, uri })
}

/// RFC 3261 `token` characters (methods are tokens).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Linear whitespace inside one line.
fn is_lws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

// ---------------------------------------------------------------------------------------
// Header lines

/// Iterates `(name, value)` over the header section. A field's value runs over folded
/// continuation lines (lines starting with SP or HT) and is trimmed at both ends. Lines
/// without a colon are skipped. After the iterator ends, `body_at` is where the body
/// starts (the end of `msg` when there is no blank line).
struct Headers<'a> {
    msg: &'a [u8],
    pos: usize,
    body_at: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    // Inlined into the scan loop: a call per header line costs more than its body.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let msg = self.msg;
        while self.pos < msg.len() {
            let field_at = self.pos;
            let (line, mut next) = line_at(msg, field_at);
            if line.is_empty() {
                self.body_at = next;
                self.pos = msg.len();
                return None;
            }
            let mut end = field_at + line.len();
            while matches!(msg.get(next), Some(b' ' | b'\t')) {
                let (cont, after) = line_at(msg, next);
                end = next + cont.len();
                next = after;
            }
            self.pos = next;
            if let Some(header) = split_field(&msg[field_at..end]) {
                return Some(header);
            }
        }
        None
    }
}

/// `Name : value` into trimmed name and value. `None` for lines without a colon or with
/// no name (e.g. a continuation line right after the start line).
fn split_field(field: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', field)?;
    let name = field[..colon].trim_ascii_end();
    if name.is_empty() || is_lws(field[0]) {
        return None;
    }
    Some((name, field[colon + 1..].trim_ascii()))
}

/// Headers we extract something from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    CallId,
    CSeq,
    From,
    To,
    Via,
    UserAgent,
    Server,
    Pai,
    ContentLength,
    ContentType,
}

/// Classifies a header name without lowercasing it: dispatch on length, then one
/// case-insensitive compare. Compact forms we have no field for (m, s, k, e) fall
/// through with all other headers.
fn known_header(name: &[u8]) -> Option<Known> {
    let is = |full: &[u8]| name.eq_ignore_ascii_case(full);
    let kind = match name.len() {
        1 => return compact_header(name[0]),
        2 if is(b"to") => Known::To,
        3 if is(b"via") => Known::Via,
        4 if is(b"from") => Known::From,
        4 if is(b"cseq") => Known::CSeq,
        6 if is(b"server") => Known::Server,
        7 if is(b"call-id") => Known::CallId,
        10 if is(b"user-agent") => Known::UserAgent,
        12 if is(b"content-type") => Known::ContentType,
        14 if is(b"content-length") => Known::ContentLength,
        19 if is(b"p-asserted-identity") => Known::Pai,
        _ => return None,
    };
    Some(kind)
}

/// RFC 3261 section 7.3.3 compact header names.
fn compact_header(letter: u8) -> Option<Known> {
    Some(match letter.to_ascii_lowercase() {
        b'i' => Known::CallId,
        b'f' => Known::From,
        b't' => Known::To,
        b'v' => Known::Via,
        b'l' => Known::ContentLength,
        b'c' => Known::ContentType,
        _ => return None,
    })
}

/// Raw values of the headers we use, as seen in the single pass. They are parsed only
/// once, after the pass, so repeated headers cost no parsing.
#[derive(Default)]
struct RawHeaders<'a> {
    call_id: Option<&'a [u8]>,
    cseq: Option<&'a [u8]>,
    from: Option<&'a [u8]>,
    to: Option<&'a [u8]>,
    via: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    server: Option<&'a [u8]>,
    pai: Option<&'a [u8]>,
    content_length: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    /// Best A-leg header so far: (index in `ScanConfig::aleg_headers`, value).
    aleg: Option<(usize, &'a [u8])>,
}

impl<'a> RawHeaders<'a> {
    fn record(&mut self, name: &[u8], value: &'a [u8], config: &ScanConfig) {
        if value.is_empty() {
            return;
        }
        if let Some(kind) = known_header(name) {
            let slot = self.slot(kind);
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        self.record_aleg(name, value, config);
    }

    fn slot(&mut self, kind: Known) -> &mut Option<&'a [u8]> {
        match kind {
            Known::CallId => &mut self.call_id,
            Known::CSeq => &mut self.cseq,
            Known::From => &mut self.from,
            Known::To => &mut self.to,
            Known::Via => &mut self.via,
            Known::UserAgent => &mut self.user_agent,
            Known::Server => &mut self.server,
            Known::Pai => &mut self.pai,
            Known::ContentLength => &mut self.content_length,
            Known::ContentType => &mut self.content_type,
        }
    }

    /// Keeps the value of the most preferred A-leg header seen. Only names ranked above
    /// the current best are compared, so once the first choice is found this is free.
    fn record_aleg(&mut self, name: &[u8], value: &'a [u8], config: &ScanConfig) {
        let limit = self.aleg.map_or(config.aleg_headers.len(), |(rank, _)| rank);
        let wanted = config.aleg_headers.get(..limit).unwrap_or_default();
        if let Some(rank) = wanted.iter().position(|h| h.eq_ignore_ascii_case(name)) {
            self.aleg = Some((rank, value));
        }
    }

    fn finish(self, start: StartLine<'a>, rest: &'a [u8]) -> SipMessage<'a> {
        let content_length = self.content_length.and_then(parse_decimal);
        let body = match content_length {
            Some(n) if n < rest.len() => &rest[..n],
            _ => rest,
        };
        let ruri = match start {
            StartLine::Request { uri, .. } => parse_uri(strip_angle_brackets(uri)),
            StartLine::Response { .. } => UriParts::default(),
        };
        SipMessage {
            start,
            call_id: self.call_id,
            cseq: self.cseq.and_then(parse_cseq),
            from: self.from.map(parse_name_addr).unwrap_or_default(),
            to: self.to.map(parse_name_addr).unwrap_or_default(),
            ruri_user: ruri.user,
            ruri_domain: ruri.host,
            via_branch: self.via.and_then(|v| find_param(v, b"branch")),
            user_agent: self.user_agent.or(self.server),
            pai_user: self.pai.and_then(|v| parse_name_addr(v).user),
            aleg_id: self.aleg.map(|(_, value)| value),
            content_length,
            content_type: self.content_type,
            body,
            sdp: is_sdp(self.content_type, body).then(|| parse_sdp(body)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Header values

/// `0009\r\n  INVITE`: leading digits (saturating), then the method token.
fn parse_cseq(value: &[u8]) -> Option<CSeq<'_>> {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let seq = value[..digits].iter().fold(0u32, |n, &d| n.saturating_mul(10).saturating_add(u32::from(d - b'0')));
    let rest = value[digits..].trim_ascii_start();
    let method_len = rest.iter().position(u8::is_ascii_whitespace).unwrap_or(rest.len());
    Some(CSeq { seq, method: &rest[..method_len] })
}

/// A whole value of decimal digits (saturating). Anything else (sign, junk) is `None`.
fn parse_decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0usize, |n, &d| n.saturating_mul(10).saturating_add(usize::from(d - b'0'))))
}

/// From, To, P-Asserted-Identity: `"Display" <uri>;params`, `token <uri>;params` or a
/// bare `uri;params` (whose `;params` then belong to the header, RFC 3261 section 20).
/// Of a list (PAI may hold a SIP and a tel URI) the first value counts.
fn parse_name_addr(value: &[u8]) -> NameAddr<'_> {
    let (display, rest) = split_display(value.trim_ascii_start());
    let (uri, params) = split_uri(rest.trim_ascii_start());
    let parts = parse_uri(uri);
    NameAddr { display, user: parts.user, domain: parts.host, tag: find_param(params, b"tag") }
}

/// Splits off a display name: quoted (escapes kept as written) or the tokens before `<`.
/// An empty name (`""`) is no name. An unterminated quote yields no display name; the
/// URI is then looked for after it.
fn split_display(value: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if let Some(quoted) = value.strip_prefix(b"\"") {
        return match closing_quote(quoted) {
            Some(end) => (non_empty(&quoted[..end]), &quoted[end + 1..]),
            None => (None, quoted),
        };
    }
    match memchr::memchr(b'<', value) {
        Some(lt) => (non_empty(value[..lt].trim_ascii()), &value[lt..]),
        None => (None, value),
    }
}

/// `<uri>params` or bare `uri;params`. A missing `>` takes the rest as the URI.
fn split_uri(rest: &[u8]) -> (&[u8], &[u8]) {
    if let Some(inner) = rest.strip_prefix(b"<").or_else(|| memchr::memchr(b'<', rest).map(|lt| &rest[lt + 1..])) {
        return match memchr::memchr(b'>', inner) {
            Some(gt) => (&inner[..gt], &inner[gt + 1..]),
            None => (inner, &[]),
        };
    }
    let end = memchr::memchr2(b';', b',', rest).unwrap_or(rest.len());
    rest.split_at(end)
}

/// Index of the `"` closing a quoted string whose opening quote was already consumed.
fn closing_quote(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        i += memchr::memchr2(b'"', b'\\', s.get(i..)?)?;
        if s[i] == b'"' {
            return Some(i);
        }
        i += 2; // skip the escaped octet
    }
}

/// The value of parameter `want` (any case) in a `;name=value` list, stopping at the
/// first `,` outside quotes (the end of the first value of a list header such as Via).
/// Text before the first `;` (a Via's sent-by) is skipped. Empty values count as absent.
fn find_param<'a>(list: &'a [u8], want: &[u8]) -> Option<&'a [u8]> {
    let mut rest = list;
    loop {
        let delim = find_unquoted(rest, b';', b',')?;
        if rest[delim] == b',' {
            return None;
        }
        rest = &rest[delim + 1..];
        let end = find_unquoted(rest, b';', b',').unwrap_or(rest.len());
        let param = &rest[..end];
        let (name, value) = match memchr::memchr(b'=', param) {
            Some(eq) => (&param[..eq], &param[eq + 1..]),
            None => (param, &param[param.len()..]),
        };
        if name.trim_ascii().eq_ignore_ascii_case(want) {
            return non_empty(value.trim_ascii());
        }
    }
}

/// First `a` or `b` in `s` that is not inside a quoted string.
fn find_unquoted(s: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut i = 0;
    loop {
        i += memchr::memchr3(a, b, b'"', s.get(i..)?)?;
        if s[i] != b'"' {
            return Some(i);
        }
        // An unterminated quote hides the rest of the list.
        i += 1 + closing_quote(&s[i + 1..])? + 1;
    }
}

fn non_empty(s: &[u8]) -> Option<&[u8]> {
    (!s.is_empty()).then_some(s)
}

// ---------------------------------------------------------------------------------------
// URIs

/// User and host of a URI.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct UriParts<'a> {
    user: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
}

/// `sip:`/`sips:` give user (without password) and host (without port or IPv6
/// brackets); `tel:` gives the number as user. Other schemes give nothing.
fn parse_uri(uri: &[u8]) -> UriParts<'_> {
    let uri = uri.trim_ascii();
    let Some(colon) = memchr::memchr(b':', uri) else {
        return UriParts::default();
    };
    let (scheme, rest) = (&uri[..colon], &uri[colon + 1..]);
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        sip_uri_parts(rest)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        let end = memchr::memchr2(b';', b'?', rest).unwrap_or(rest.len());
        UriParts { user: non_empty(rest[..end].trim_ascii()), host: None }
    } else {
        UriParts::default()
    }
}

/// `user:password@host:port;params?headers` after the scheme. The user part ends at the
/// first `@`: it may hold `;` (RFC 4475 semiuri) and escapes, kept as written.
fn sip_uri_parts(rest: &[u8]) -> UriParts<'_> {
    let (user, hostport) = match memchr::memchr(b'@', rest) {
        Some(at) => {
            let userinfo = &rest[..at];
            let user_end = memchr::memchr(b':', userinfo).unwrap_or(userinfo.len());
            (non_empty(&userinfo[..user_end]), &rest[at + 1..])
        }
        None => (None, rest),
    };
    UriParts { user, host: host_of(hostport) }
}

/// Host of `host[:port][;params][?headers]`; the inside of `[...]` for IPv6 references.
fn host_of(hostport: &[u8]) -> Option<&[u8]> {
    let hostport = hostport.trim_ascii_start();
    if let Some(v6) = hostport.strip_prefix(b"[") {
        let end = memchr::memchr(b']', v6)?;
        return non_empty(&v6[..end]);
    }
    let end = hostport.iter().position(|&b| matches!(b, b':' | b';' | b'?' | b'>' | b',') || b.is_ascii_whitespace());
    non_empty(&hostport[..end.unwrap_or(hostport.len())])
}

/// `<sip:...>` as a request URI is invalid (RFC 4475 ltgtruri) but its meaning is clear.
fn strip_angle_brackets(uri: &[u8]) -> &[u8] {
    match uri.strip_prefix(b"<") {
        Some(inner) => inner.strip_suffix(b">").unwrap_or(inner),
        None => uri,
    }
}

// ---------------------------------------------------------------------------------------
// SDP

/// SDP by content type or, when the type is missing or generic, by its first line.
/// Multipart bodies start with a boundary, so they are not taken for SDP.
fn is_sdp(content_type: Option<&[u8]>, body: &[u8]) -> bool {
    if body.is_empty() {
        return false;
    }
    let media_type = |ct: &[u8]| -> bool {
        let end = memchr::memchr(b';', ct).unwrap_or(ct.len());
        ct[..end].trim_ascii().eq_ignore_ascii_case(b"application/sdp")
    };
    content_type.is_some_and(media_type) || body.starts_with(b"v=0")
}

/// Connection address (session level, else the first media level one) and the port of
/// the first audio stream (else of the first stream).
fn parse_sdp(body: &[u8]) -> Sdp<'_> {
    let mut session_c = None;
    let mut media_c = None;
    let mut in_media = false;
    let mut audio_port = None;
    let mut first_port = None;
    let mut line_at = 0;
    for nl in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        let line = trim_cr(&body[line_at..nl]);
        line_at = nl + 1;
        if let Some(c) = line.strip_prefix(b"c=") {
            let slot = if in_media { &mut media_c } else { &mut session_c };
            if slot.is_none() {
                *slot = connection_address(c);
            }
        } else if let Some(m) = line.strip_prefix(b"m=") {
            in_media = true;
            let (media, port) = media_port(m);
            first_port = first_port.or(port);
            if audio_port.is_none() && media.eq_ignore_ascii_case(b"audio") {
                audio_port = port;
            }
        }
        // An audio port means we are past the session part, so a connection address
        // found by now is final: the rest of a long SDP (codecs, ICE) is not needed.
        if audio_port.is_some() && (session_c.is_some() || media_c.is_some()) {
            break;
        }
    }
    Sdp { connection: session_c.or(media_c), media_port: audio_port.or(first_port) }
}

/// `IN IP4 224.2.1.1/127` gives `224.2.1.1`: the TTL/count suffix is not part of the address.
fn connection_address(c: &[u8]) -> Option<&[u8]> {
    let addr = c.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty()).nth(2)?;
    let end = memchr::memchr(b'/', addr).unwrap_or(addr.len());
    non_empty(&addr[..end])
}

/// `audio 49170/2 RTP/AVP 0` gives (`audio`, 49170).
fn media_port(m: &[u8]) -> (&[u8], Option<u16>) {
    let mut words = m.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty());
    let media = words.next().unwrap_or_default();
    let port = words.next().and_then(|p| {
        let digits = p.iter().take_while(|b| b.is_ascii_digit()).count();
        parse_decimal(&p[..digits]).and_then(|n| u16::try_from(n).ok())
    });
    (media, port)
}

#[cfg(test)]
mod peek_tests {
    use super::*;

    #[test]
    fn peek_agrees_with_scan() {
        let msg = b"SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP h;branch=z9\r\nCSeq: 7 INVITE\r\ni: abc\r\n\
                    X-Other: 1\r\nX-Call-ID: second\r\nX-CID: first\r\nContent-Length: 0\r\n\r\n";
        let config = ScanConfig::default();
        let full = scan_with(msg, &config).unwrap();
        let p = peek(msg, &config).unwrap();
        assert_eq!((p.start, p.call_id, p.cseq, p.aleg_id), (full.start, full.call_id, full.cseq, full.aleg_id));
        assert_eq!(p.aleg_id, Some(&b"first"[..]));
        let none = ScanConfig { aleg_headers: vec![] };
        assert_eq!(peek(msg, &none).unwrap().aleg_id, None);
        assert_eq!(peek(b"GET / HTTP/1.1\r\n\r\n", &none), Err(ScanError::BadStartLine));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:+4930123456;npdi@gw.example.com:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-524287-1---a1b2c3,SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKold\r\n\
Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKsecond\r\n\
Max-Forwards: 69\r\n\
From: \"Alice \\\"A\\\" Smith\" <sip:alice:secret@atlanta.example.com;user=phone>;tag=1928301774\r\n\
To: <sip:+4930123456@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
P-Asserted-Identity: \"Alice\" <sip:+4940999@atlanta.example.com>, <tel:+4940999>\r\n\
X-CID: aleg-call-id@sbc\r\n\
User-Agent: Acme SoftPhone 1.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 166\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=video 51372 RTP/AVP 31\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\nNEXT MESSAGE";

    #[test]
    fn invite_with_sdp() {
        let m = scan(INVITE).unwrap();
        assert_eq!(
            m.start,
            StartLine::Request { method: b"INVITE", uri: b"sip:+4930123456;npdi@gw.example.com:5060;transport=udp" }
        );
        assert_eq!(m.ruri_user, Some(&b"+4930123456;npdi"[..]));
        assert_eq!(m.ruri_domain, Some(&b"gw.example.com"[..]));
        assert_eq!(m.call_id, Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..]));
        assert_eq!(m.cseq, Some(CSeq { seq: 314159, method: b"INVITE" }));
        assert_eq!(
            m.from,
            NameAddr {
                display: Some(br#"Alice \"A\" Smith"#),
                user: Some(b"alice"),
                domain: Some(b"atlanta.example.com"),
                tag: Some(b"1928301774"),
            }
        );
        assert_eq!(
            m.to,
            NameAddr { display: None, user: Some(b"+4930123456"), domain: Some(b"biloxi.example.com"), tag: None }
        );
        assert_eq!(m.via_branch, Some(&b"z9hG4bK-524287-1---a1b2c3"[..]));
        assert_eq!(m.pai_user, Some(&b"+4940999"[..]));
        assert_eq!(m.aleg_id, Some(&b"aleg-call-id@sbc"[..]));
        assert_eq!(m.user_agent, Some(&b"Acme SoftPhone 1.2"[..]));
        assert_eq!(m.content_type, Some(&b"application/sdp"[..]));
        assert_eq!(m.content_length, Some(166));
        assert_eq!(m.body.len(), 166);
        assert!(m.body.starts_with(b"v=0\r\n") && m.body.ends_with(b"PCMU/8000\r\n"));
        assert_eq!(m.sdp, Some(Sdp { connection: Some(b"192.0.2.10"), media_port: Some(49170) }));
    }

    #[test]
    fn ok_response_uses_server_header() {
        let msg = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;received=192.0.2.10\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Server: Kamailio (5.6.3 (x86_64/linux))\r\n\
Content-Length: 0\r\n\r\n";
        let m = scan(msg).unwrap();
        assert_eq!(m.start, StartLine::Response { code: 200, reason: b"OK" });
        assert_eq!((m.ruri_user, m.ruri_domain), (None, None));
        assert_eq!(m.to.display, Some(&b"Bob"[..]));
        assert_eq!(m.to.tag, Some(&b"a6c85cf"[..]));
        assert_eq!(m.from.tag, Some(&b"1928301774"[..]));
        assert_eq!(m.user_agent, Some(&b"Kamailio (5.6.3 (x86_64/linux))"[..]));
        assert_eq!(m.via_branch, Some(&b"z9hG4bK776asdhds"[..]));
        assert_eq!((m.content_length, m.body, m.sdp), (Some(0), &b""[..], None));
    }

    #[test]
    fn compact_forms_and_lf_only() {
        let msg = b"BYE sip:bob@192.0.2.4 SIP/2.0\n\
v: SIP/2.0/TCP client.example.com;branch=z9hG4bKnashds7\n\
f: <sip:alice@example.com>;tag=88\n\
t : sip:bob@example.com;tag=99\n\
i: compact-1@example.com\n\
CSEQ: 2 BYE\n\
m: <sip:alice@client.example.com>\n\
s: subject\n\
k: timer\n\
c: text/plain\n\
l: 5\n\
\n\
helloEXTRA";
        let m = scan(msg).unwrap();
        assert_eq!(m.call_id, Some(&b"compact-1@example.com"[..]));
        assert_eq!(m.cseq, Some(CSeq { seq: 2, method: b"BYE" }));
        assert_eq!((m.from.user, m.from.tag), (Some(&b"alice"[..]), Some(&b"88"[..])));
        assert_eq!(
            (m.to.user, m.to.domain, m.to.tag),
            (Some(&b"bob"[..]), Some(&b"example.com"[..]), Some(&b"99"[..]))
        );
        assert_eq!(m.via_branch, Some(&b"z9hG4bKnashds7"[..]));
        assert_eq!(m.content_type, Some(&b"text/plain"[..]));
        assert_eq!((m.content_length, m.body, m.sdp), (Some(5), &b"hello"[..], None));
    }

    #[test]
    fn folded_headers_span_lines() {
        let msg = b"OPTIONS sip:x@example.com SIP/2.0\r\n\
Call-ID:\r\n  folded-id\r\n\
Subject: first\r\n\tsecond  \r\n\
CSeq: 7\r\n OPTIONS\r\n\
From: <sip:a@example.com>\r\n ;tag=t1\r\n\
Via: SIP/2.0/UDP h;branch=\r\n z9hG4bKfold\r\n\
\r\n";
        let m = scan(msg).unwrap();
        assert_eq!(m.call_id, Some(&b"folded-id"[..]));
        assert_eq!(m.cseq, Some(CSeq { seq: 7, method: b"OPTIONS" }));
        assert_eq!(m.from.tag, Some(&b"t1"[..]));
        assert_eq!(m.via_branch, Some(&b"z9hG4bKfold"[..]));
        let mut h = Headers { msg, pos: 0, body_at: 0 };
        let subject = h.by_ref().find(|(n, _)| *n == b"Subject").map(|(_, v)| v);
        assert_eq!(subject, Some(&b"first\r\n\tsecond"[..]));
        assert_eq!(h.by_ref().count(), 3);
        assert_eq!(h.body_at, msg.len());
    }

    #[test]
    fn tel_uri_and_bare_params() {
        let msg = b"INVITE tel:+1-201-555-0123;phone-context=example.com SIP/2.0\r\n\
From: tel:+12015550100;tag=abc\r\n\
To: \"Bob\" <tel:+1-201-555-0123>\r\n\
Call-ID: tel-1\r\nCSeq: 1 INVITE\r\n\r\n";
        let m = scan(msg).unwrap();
        assert_eq!((m.ruri_user, m.ruri_domain), (Some(&b"+1-201-555-0123"[..]), None));
        assert_eq!((m.from.user, m.from.domain, m.from.tag), (Some(&b"+12015550100"[..]), None, Some(&b"abc"[..])));
        assert_eq!((m.to.display, m.to.user), (Some(&b"Bob"[..]), Some(&b"+1-201-555-0123"[..])));
    }

    #[test]
    fn ipv6_hosts() {
        let msg = b"REGISTER sips:[2001:db8::10]:5061 SIP/2.0\r\n\
Via: SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKv6\r\n\
From: <sip:carol@[2001:db8::9]:5061>;tag=v6\r\n\
To: sip:carol@[2001:db8::9]\r\n\
Call-ID: v6@[2001:db8::9]\r\nCSeq: 9 REGISTER\r\nContent-Type: application/sdp\r\n\r\n\
v=0\r\nc=IN IP6 2001:db8::9\r\nm=audio 4000 RTP/AVP 0\r\n";
        let m = scan(msg).unwrap();
        assert_eq!((m.ruri_user, m.ruri_domain), (None, Some(&b"2001:db8::10"[..])));
        assert_eq!((m.from.user, m.from.domain), (Some(&b"carol"[..]), Some(&b"2001:db8::9"[..])));
        assert_eq!(m.to.domain, Some(&b"2001:db8::9"[..]));
        assert_eq!(m.via_branch, Some(&b"z9hG4bKv6"[..]));
        assert_eq!(m.sdp, Some(Sdp { connection: Some(b"2001:db8::9"), media_port: Some(4000) }));
    }

    #[test]
    fn aleg_header_follows_config_order() {
        let msg = b"INVITE sip:b@x SIP/2.0\r\nX-Call-ID: second-choice\r\nx-cid: first-choice\r\n\r\n";
        assert_eq!(scan(msg).unwrap().aleg_id, Some(&b"first-choice"[..]));
        let only_second = b"INVITE sip:b@x SIP/2.0\r\nX-CALL-ID: second-choice\r\n\r\n";
        assert_eq!(scan(only_second).unwrap().aleg_id, Some(&b"second-choice"[..]));
        let config = ScanConfig { aleg_headers: vec![b"X-Leg".to_vec()] };
        assert_eq!(scan_with(msg, &config).unwrap().aleg_id, None);
        let none = ScanConfig { aleg_headers: Vec::new() };
        assert_eq!(scan_with(msg, &none).unwrap().aleg_id, None);
    }

    #[test]
    fn pai_with_tel_only() {
        let msg = b"INVITE sip:b@x SIP/2.0\r\nP-Asserted-Identity: tel:+4940999;verstat=TN-Validation-Passed\r\n\r\n";
        assert_eq!(scan(msg).unwrap().pai_user, Some(&b"+4940999"[..]));
    }

    #[test]
    fn first_occurrence_wins_and_empty_values_are_absent() {
        let msg = b"MESSAGE sip:b@x SIP/2.0\r\nCall-ID:\r\nCall-ID: real\r\nCall-ID: dup\r\nContent-Length: 2\r\nl: 9\r\n\r\nabcdef";
        let m = scan(msg).unwrap();
        assert_eq!(m.call_id, Some(&b"real"[..]));
        assert_eq!((m.content_length, m.body), (Some(2), &b"ab"[..]));
    }

    #[test]
    fn odd_numbers() {
        let big = b"SIP/2.0 503 Busy\r\nCSeq: 36893488147419103232 INVITE\r\nContent-Length: -5\r\n\r\nxyz";
        let m = scan(big).unwrap();
        assert_eq!(m.cseq, Some(CSeq { seq: u32::MAX, method: b"INVITE" }));
        assert_eq!((m.content_length, m.body), (None, &b"xyz"[..]));
        let no_number = b"SIP/2.0 503 Busy\r\nCSeq: INVITE\r\n\r\n";
        assert_eq!(scan(no_number).unwrap().cseq, None);
        let long_body = b"SIP/2.0 200 OK\r\nContent-Length: 99999\r\n\r\nshort";
        assert_eq!(scan(long_body).unwrap().body, b"short");
    }

    #[test]
    fn sdp_details() {
        let body = b"v=0\r\nc=IN IP4 224.2.1.1/127/3\r\nm=video 5000 RTP/AVP 31\r\nc=IN IP4 192.0.2.9\r\n";
        assert_eq!(parse_sdp(body), Sdp { connection: Some(b"224.2.1.1"), media_port: Some(5000) });
        let media_c_only = b"v=0\nm=audio 70000 RTP/AVP 0\nc=IN IP4 192.0.2.9\nm=audio 6000/2 RTP/AVP 0\n";
        assert_eq!(parse_sdp(media_c_only), Sdp { connection: Some(b"192.0.2.9"), media_port: Some(6000) });
        assert!(is_sdp(Some(b"Application/SDP ; charset=x"), b"x"));
        assert!(is_sdp(None, b"v=0\r\n"));
        assert!(!is_sdp(Some(b"multipart/mixed;boundary=b"), b"--b\r\n"));
        assert!(!is_sdp(Some(b"application/sdp"), b""));
    }

    #[test]
    fn start_lines() {
        let ok = |l: &'static [u8]| parse_start_line(l);
        assert_eq!(ok(b"SIP/2.0 100 "), Some(StartLine::Response { code: 100, reason: b"" }));
        assert_eq!(ok(b"SIP/2.0 180"), Some(StartLine::Response { code: 180, reason: b"" }));
        assert_eq!(ok(b"sip/2.0  486 Busy Here "), Some(StartLine::Response { code: 486, reason: b"Busy Here" }));
        assert_eq!(ok(b"INVITE  sip:a@b  SIP/2.0 "), Some(StartLine::Request { method: b"INVITE", uri: b"sip:a@b" }));
        for bad in [
            &b""[..],
            b"SIP/2.0 4294967301 Big",
            b"SIP/2.0 2x0 OK",
            b"SIP/2.0",
            b"GET / HTTP/1.1",
            b"INVITE sip:a@b",
            b"INVITE SIP/2.0",
            b"INV\xffITE sip:a@b SIP/2.0",
            b"INVITE sip:a@b SIP/",
        ] {
            assert_eq!(ok(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(scan(b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\n\r\n").map(|m| m.start).ok(), ok(b"OPTIONS sip:x SIP/2.0"));
        assert_eq!(scan(b"HTTP/1.1 200 OK\r\n\r\n"), Err(ScanError::BadStartLine));
        assert_eq!(scan(b""), Err(ScanError::BadStartLine));
    }

    #[test]
    fn uris() {
        let p = |u: &'static [u8]| {
            let parts = parse_uri(u);
            (parts.user, parts.host)
        };
        assert_eq!(p(b"sip:user:pw@host.example:5060;lr"), (Some(&b"user"[..]), Some(&b"host.example"[..])));
        assert_eq!(p(b"SIPS:host.example?subject=x"), (None, Some(&b"host.example"[..])));
        assert_eq!(p(b"sip:%61lice@h"), (Some(&b"%61lice"[..]), Some(&b"h"[..])));
        assert_eq!(p(b"sip:@h"), (None, Some(&b"h"[..])));
        assert_eq!(p(b"sip:u@[::1"), (Some(&b"u"[..]), None));
        assert_eq!(p(b"mailto:u@h"), (None, None));
        assert_eq!(p(b"nocolon"), (None, None));
        assert_eq!(strip_angle_brackets(b"<sip:a@b>"), b"sip:a@b");
    }

    #[test]
    fn name_addr_forms() {
        let na = parse_name_addr(b"caller<sip:caller@example.com>;tag=323");
        assert_eq!((na.display, na.user, na.tag), (Some(&b"caller"[..]), Some(&b"caller"[..]), Some(&b"323"[..])));
        // Unterminated quote: no display name, but the URI is still found.
        let na = parse_name_addr(b"\"Mr. J. User <sip:j.user@example.com>");
        assert_eq!((na.display, na.user), (None, Some(&b"j.user"[..])));
        // A quoted parameter value may hold ';' and ','.
        let na = parse_name_addr(b"<sip:a@b>;x=\"1;2,3\";TAG=t");
        assert_eq!(na.tag, Some(&b"t"[..]));
        let na = parse_name_addr(b"\"\" <sip:a@b>;tag");
        assert_eq!((na.display, na.tag), (None, None));
        assert_eq!(parse_name_addr(b""), NameAddr::default());
    }
}
