//! Cutting a reassembled byte stream into messages: kind detection, SIP and HEP framing,
//! resynchronisation after junk or lost bytes.
//!
//! The framer sees only contiguous, in-order bytes and keeps no copy of them: each
//! [`Framer::step`] looks at the start of the bytes it is given and says what is there
//! (a whole message, bytes to skip, or that it needs more). Buffering is the caller's
//! job ([`super::stream`]), as in a check-then-parse network protocol reader.

use memchr::memmem;
use wire::sip::{Frame, FrameError};

use super::websocket::{self, Probe, WebSocket};
use super::{Counters, MessageKind};

/// A stream that has not produced a single message after this much junk is not SIP
/// (capture started late on a TLS or binary connection): stop looking.
const NOT_SIP_AFTER_JUNK: usize = 64 * 1024;

/// What is at the start of the bytes given to [`Framer::step`].
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// A whole message, `consumed` bytes long on the stream. `bytes` borrows either the
    /// input or the framer's own buffer (unmasked or joined WebSocket payloads).
    Message {
        /// How the stream is framed.
        kind: MessageKind,
        /// The message.
        bytes: &'a [u8],
        /// Stream bytes used up (the message, or its final WebSocket frame).
        consumed: usize,
        /// True when the message began in an earlier step ([`Step::MessageStart`]).
        continued: bool,
    },
    /// The first fragment of a message that later steps will finish: remember its time.
    MessageStart(usize),
    /// Bytes to drop (keep-alives, junk, handshakes, control frames), already counted.
    /// Never zero.
    Skip(usize),
    /// More bytes are needed; the total from the current position, when known.
    NeedMore(Option<usize>),
    /// The stream is not one we frame: ignore the rest of it.
    NotOurs,
}

/// Framing state of one direction.
#[derive(Debug)]
pub(crate) enum Framer {
    /// No bytes seen yet (or only keep-alives): decide the kind from the first bytes.
    Detect {
        /// The SYN was seen, so the first byte is the start of the stream: anything
        /// that is not SIP, HEP or a WebSocket upgrade means the stream is not ours.
        clean_start: bool,
        /// Bytes skipped while looking for a message start (late capture start).
        junk: usize,
    },
    /// SIP framed by `Content-Length`.
    Sip(SipState),
    /// HEPv3 framed by its length field.
    Hep {
        /// False after lost bytes: look for the next `HEP3` magic.
        synced: bool,
    },
    /// SIP over WebSocket.
    Ws(WebSocket),
    /// Not a stream we frame.
    Ignored,
}

/// SIP framing state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SipState {
    /// At a message boundary (false after junk or lost bytes).
    synced: bool,
    /// While not synced: the next byte starts a line, so it may start a message.
    line_start: bool,
    /// At least one message came out of this stream.
    confirmed: bool,
    /// Junk skipped before the first message.
    junk: usize,
}

impl Framer {
    /// State for a new direction.
    pub(crate) fn new(clean_start: bool) -> Self {
        Framer::Detect { clean_start, junk: 0 }
    }

    /// True once the stream was found not to be ours.
    pub(crate) fn is_ignored(&self) -> bool {
        matches!(self, Framer::Ignored)
    }

    /// Bytes the framer itself holds (joined WebSocket fragments).
    pub(crate) fn buffered(&self) -> usize {
        match self {
            Framer::Ws(ws) => ws.buffered(),
            _ => 0,
        }
    }

    /// Bytes were lost before the next ones: forget the message boundary. The next
    /// bytes may well start a message (segments often do), so they are checked first.
    /// Returns true when an unfinished message held by the framer was dropped.
    pub(crate) fn lose_sync(&mut self) -> bool {
        match self {
            Framer::Detect { clean_start, .. } => *clean_start = false,
            Framer::Sip(sip) => {
                sip.synced = false;
                sip.line_start = true;
            }
            Framer::Hep { synced } => *synced = false,
            Framer::Ws(ws) => return ws.lose_sync(),
            Framer::Ignored => {}
        }
        false
    }

    /// Looks at the start of `data` (never empty).
    pub(crate) fn step<'a>(&'a mut self, data: &'a [u8], counters: &mut Counters) -> Step<'a> {
        if let Framer::Detect { clean_start, junk } = self {
            match detect(*clean_start, junk, data, counters) {
                Ok(kind) => *self = kind,
                Err(step) => return step,
            }
        }
        match self {
            Framer::Sip(sip) => sip_step(sip, data, counters),
            Framer::Hep { synced } => hep_step(synced, data, counters),
            Framer::Ws(ws) => ws.step(data, counters),
            Framer::Detect { .. } | Framer::Ignored => Step::NotOurs,
        }
    }
}

/// Decides a stream's kind from its first bytes: `Ok` with the framer to use, or `Err`
/// with a step to return without deciding yet.
fn detect(clean_start: bool, junk: &mut usize, data: &[u8], counters: &mut Counters) -> Result<Framer, Step<'static>> {
    if let Some(step) = keepalive(data, counters) {
        return Err(step);
    }
    for (magic, kind) in [(b"HEP3".as_slice(), Kind::Hep), (b"GET ", Kind::Upgrade), (b"HTTP/", Kind::Upgrade)] {
        let n = data.len().min(magic.len());
        if data[..n] == magic[..n] {
            if n < magic.len() {
                return Err(Step::NeedMore(None));
            }
            return Ok(match kind {
                Kind::Hep => Framer::Hep { synced: true },
                Kind::Upgrade => Framer::Ws(WebSocket::handshake()),
            });
        }
    }
    if is_tls_record(data) {
        return Err(Step::NotOurs);
    }
    if !clean_start {
        return detect_midstream(junk, data, counters);
    }
    match wire::sip::frame(data) {
        Err(FrameError::NotSip) => Err(Step::NotOurs),
        _ => Ok(Framer::Sip(SipState { synced: true, line_start: true, confirmed: false, junk: 0 })),
    }
}

enum Kind {
    Hep,
    Upgrade,
}

/// A TLS record header: content type 20-23, version 3.x. Decides TLS on the SIP port
/// (SIPS, or a capture that started late on one) without scanning for junk.
fn is_tls_record(data: &[u8]) -> bool {
    matches!(data, [20..=23, 3, 0..=4, ..])
}

/// The capture started mid-connection, perhaps inside a message: find the first
/// message start of any kind and frame from there; the earliest candidate wins. The
/// first byte is treated as a line start (segments often begin with a message).
fn detect_midstream(junk: &mut usize, data: &[u8], counters: &mut Counters) -> Result<Framer, Step<'static>> {
    let sip = find_sip_start(data, true);
    let hep = memmem::find(data, b"HEP3");
    let ws_probe = websocket::find_frame_start(data);
    let ws = match ws_probe {
        Probe::Found(at) | Probe::NeedMore(at) => Some(at),
        Probe::NotFound => None,
    };
    let unsynced_sip = Framer::Sip(SipState { synced: false, line_start: true, confirmed: false, junk: *junk });
    match [sip, hep, ws].into_iter().flatten().min() {
        // Commit to WebSocket only on a checked frame: a stray 0x81 byte in a text
        // stream must not turn it into one.
        Some(at) if Some(at) == ws => match ws_probe {
            Probe::Found(_) => Ok(Framer::Ws(WebSocket::resyncing())),
            _ if at == 0 => Err(Step::NeedMore(None)),
            _ => Err(midstream_junk(junk, at, counters)),
        },
        Some(at) if Some(at) == hep => Ok(Framer::Hep { synced: false }),
        Some(_) => Ok(unsynced_sip),
        None if data.len() <= RESYNC_TAIL => Err(Step::NeedMore(None)),
        None => Err(midstream_junk(junk, data.len() - RESYNC_TAIL, counters)),
    }
}

/// Skips `n` bytes before any message start was found; gives up on the stream after
/// [`NOT_SIP_AFTER_JUNK`].
fn midstream_junk(junk: &mut usize, n: usize, counters: &mut Counters) -> Step<'static> {
    *junk += n;
    counters.junk_bytes += n as u64;
    if *junk > NOT_SIP_AFTER_JUNK {
        return Step::NotOurs;
    }
    Step::Skip(n)
}

/// Skips a run of CR/LF at a message boundary: an RFC 5626 keep-alive.
fn keepalive(data: &[u8], counters: &mut Counters) -> Option<Step<'static>> {
    let run = data.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    (run > 0).then(|| {
        counters.keepalives += 1;
        Step::Skip(run)
    })
}

fn sip_step<'a>(sip: &mut SipState, data: &'a [u8], counters: &mut Counters) -> Step<'a> {
    if !sip.synced {
        match find_sip_start(data, sip.line_start) {
            Some(0) => sip.synced = true,
            Some(at) => {
                sip.synced = true;
                return sip_junk(sip, at, counters);
            }
            // Keep a tail: it may hold the beginning of a start line.
            None if data.len() <= RESYNC_TAIL => return Step::NeedMore(None),
            None => {
                sip.line_start = false;
                return sip_junk(sip, data.len() - RESYNC_TAIL, counters);
            }
        }
    }
    if let Some(step) = keepalive(data, counters) {
        return step;
    }
    match wire::sip::frame(data) {
        Ok(Frame::Complete { len, .. }) => {
            sip.confirmed = true;
            Step::Message { kind: MessageKind::Sip, bytes: &data[..len], consumed: len, continued: false }
        }
        Ok(Frame::Incomplete { needed }) => Step::NeedMore(needed),
        Err(FrameError::NotSip) => {
            sip.synced = false;
            sip.line_start = false;
            sip_step(sip, data, counters)
        }
        // A start line, but headers without end or a bad length: drop the start line
        // and look for the next message.
        Err(_) => {
            sip.synced = false;
            sip.line_start = true;
            let line = memchr::memchr(b'\n', data).map_or(data.len(), |nl| nl + 1);
            sip_junk(sip, line, counters)
        }
    }
}

/// Counts `n` junk bytes; a stream that never produced SIP gets only so many.
fn sip_junk(sip: &mut SipState, n: usize, counters: &mut Counters) -> Step<'static> {
    counters.junk_bytes += n as u64;
    if !sip.confirmed {
        sip.junk += n;
        if sip.junk > NOT_SIP_AFTER_JUNK {
            return Step::NotOurs;
        }
    }
    Step::Skip(n)
}

/// SIP methods a resynchronising search recognises in the middle of a line (after a
/// body that did not end with CRLF). Longest first, so `PRACK` wins over `ACK`.
const METHODS: [&[u8]; 14] = [
    b"SUBSCRIBE",
    b"REGISTER",
    b"OPTIONS",
    b"MESSAGE",
    b"PUBLISH",
    b"INVITE",
    b"CANCEL",
    b"NOTIFY",
    b"UPDATE",
    b"PRACK",
    b"REFER",
    b"INFO",
    b"BYE",
    b"ACK",
];

/// Bytes kept at the end of junk with no message start in it: a start line cut by the
/// segment boundary may still complete. Longer than realistic request lines.
const RESYNC_TAIL: usize = 1024;

/// Offset of the first SIP message start in `data`: a status line (`SIP/2.0 nnn`) or a
/// request line (`METHOD uri SIP/2.0`), found by their `SIP/2.0` and checked by the
/// framer. Offset 0 counts only when `line_start` says the previous byte ended a line.
///
/// Guessing where a message starts inside arbitrary bytes is stricter than framing a
/// stream known to be in sync: a request line must start a line with an upper-case
/// method, or, mid-line (a body not ending in CRLF), end with a well-known method name.
pub(crate) fn find_sip_start(data: &[u8], line_start: bool) -> Option<usize> {
    memmem::find_iter(data, b"SIP/2.0").find_map(|at| {
        let candidate = match data.get(at + 7) {
            Some(b' ') => Some(at),
            Some(b'\r' | b'\n') => request_line_start(data, at, line_start),
            None => request_line_start(data, at, line_start).or(Some(at)),
            Some(_) => None,
        }?;
        let acceptable =
            (candidate > 0 || line_start) && !matches!(wire::sip::frame(&data[candidate..]), Err(FrameError::NotSip));
        acceptable.then_some(candidate)
    })
}

/// Start of the request line whose `SIP/2.0` is at `version_at`, if the bytes before it
/// are ` uri ` preceded by a method (see [`find_sip_start`]).
fn request_line_start(data: &[u8], version_at: usize, line_start: bool) -> Option<usize> {
    let before = data[..version_at].strip_suffix(b" ")?;
    let method_end = memchr::memrchr(b' ', before)?;
    let uri = &before[method_end + 1..];
    if uri.is_empty() || uri.contains(&b'\n') {
        return None;
    }
    let method_start = before[..method_end].iter().rposition(|b| !b.is_ascii_uppercase()).map_or(0, |i| i + 1);
    if method_start == method_end {
        return None;
    }
    let starts_line = match method_start {
        0 => line_start,
        _ => data[method_start - 1] == b'\n',
    };
    if starts_line {
        return Some(method_start);
    }
    let run = &data[method_start..method_end];
    METHODS.iter().find(|m| run.ends_with(m)).map(|m| method_end - m.len())
}
fn hep_step<'a>(synced: &mut bool, data: &'a [u8], counters: &mut Counters) -> Step<'a> {
    if !*synced {
        let at = hep_magic_at(data, 0);
        if at > 0 {
            counters.junk_bytes += at as u64;
            return Step::Skip(at);
        }
        *synced = true;
    }
    match wire::hep::frame_len(data) {
        Ok(Some(len)) if data.len() >= len => {
            Step::Message { kind: MessageKind::Hep, bytes: &data[..len], consumed: len, continued: false }
        }
        Ok(Some(len)) => Step::NeedMore(Some(len)),
        Ok(None) => Step::NeedMore(None),
        Err(_) => {
            *synced = false;
            let at = hep_magic_at(data, 1);
            counters.junk_bytes += at as u64;
            Step::Skip(at)
        }
    }
}

/// First offset from `from` where `HEP3` starts, or where a prefix of it runs to the end
/// of `data` (it may complete with the next bytes); `data.len()` when there is neither.
fn hep_magic_at(data: &[u8], from: usize) -> usize {
    if let Some(at) = memmem::find(&data[from.min(data.len())..], b"HEP3") {
        return from + at;
    }
    let tail_from = data.len().saturating_sub(3).max(from);
    (tail_from..data.len()).find(|&at| b"HEP3".starts_with(&data[at..])).unwrap_or(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn finds_sip_start_after_junk() {
        let mut data = b"tail of a body\r\nv=0\r\n".to_vec();
        data.extend_from_slice(OPTIONS);
        assert_eq!(find_sip_start(&data, false), Some(21));
        assert_eq!(find_sip_start(OPTIONS, true), Some(0));
        assert_eq!(find_sip_start(OPTIONS, false), None);
        // A body without a final CRLF: the next message starts mid-line.
        assert_eq!(find_sip_start(b"xxxxOPTIONS sip:x SIP/2.0\r\n", true), Some(4));
        assert_eq!(find_sip_start(b"xxxxSIP/2.0 200 OK\r\n", true), Some(4));
        assert_eq!(find_sip_start(b"xxxxFOO sip:x SIP/2.0\r\n", true), None);
        assert_eq!(find_sip_start(b"x\nFOO sip:x SIP/2.0\r\n", false), Some(2));
        assert_eq!(find_sip_start(b"Via: SIP/2.0/TCP a\r\n", true), None);
        assert_eq!(find_sip_start(b"PRACK sip:x SIP/2.0", false), None);
        assert_eq!(find_sip_start(b"\nPRACK sip:x SIP/2.0", false), Some(1));
    }

    #[test]
    fn hep_magic_search_keeps_partial_tail() {
        assert_eq!(hep_magic_at(b"xxHEP3", 0), 2);
        assert_eq!(hep_magic_at(b"xxxxHE", 0), 4);
        assert_eq!(hep_magic_at(b"HEP3", 1), 4);
        assert_eq!(hep_magic_at(b"xyz", 0), 3);
    }

    #[test]
    fn detects_kinds() {
        let mut c = Counters::default();
        let mut f = Framer::new(true);
        assert!(matches!(f.step(b"HE", &mut c), Step::NeedMore(None)));
        assert!(matches!(f.step(b"HEP3\x00\x08ab", &mut c), Step::Message { kind: MessageKind::Hep, .. }));
        let mut f = Framer::new(true);
        assert!(matches!(f.step(b"\x16\x03\x01\x00\x10", &mut c), Step::NotOurs));
        let mut f = Framer::new(true);
        assert!(matches!(f.step(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut c), Step::NotOurs));
        let mut f = Framer::new(false);
        assert!(matches!(f.step(b"dy\r\n", &mut c), Step::NeedMore(None)));
        let mut f = Framer::new(false);
        assert!(matches!(f.step(b"end of body\r\nOPTIONS sip:x SIP/2.0\r\n", &mut c), Step::Skip(13)));
        assert!(matches!(f, Framer::Sip(_)));
    }
}
