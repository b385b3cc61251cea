//! SIP over WebSocket (RFC 7118): skip the HTTP upgrade, then cut RFC 6455 frames.
//!
//! Each text or binary data message carries one SIP message. Client frames are masked,
//! so their payload is unmasked into a per-flow buffer that is reused from message to
//! message; server frames are not masked and are passed on borrowed from the stream.
//! Fragmented messages are joined in the same buffer, bounded by [`MAX_MESSAGE_LEN`].
//! Control frames (close, ping, pong) are counted and skipped.

use memchr::memmem;

use super::framer::Step;
use super::{Counters, MessageKind};

/// Longest HTTP upgrade request or response we wait for before giving up on a stream.
const MAX_HANDSHAKE_LEN: usize = 16 * 1024;

/// Largest WebSocket message (all fragments joined) we keep; above any SIP message.
pub(crate) const MAX_MESSAGE_LEN: usize = 256 * 1024;

/// Bytes of a candidate frame's payload unmasked to check that it starts a SIP message
/// when looking for a frame boundary. Long enough for any realistic start line.
const PROBE_LEN: usize = 256;

/// Shortest SIP message a probe accepts (`SIP/2.0 100 \r\n` plus a blank line).
const MIN_SIP_LEN: u64 = 16;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// Framing state of one direction of a WebSocket connection.
#[derive(Debug)]
pub(crate) struct WebSocket {
    state: State,
    /// Unmasked payload of the current message; reused so steady traffic does not
    /// allocate.
    scratch: Vec<u8>,
    fragments: Fragments,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the end of the HTTP upgrade request or `101` response.
    Handshake,
    /// At a frame boundary.
    Frames,
    /// Lost the frame boundary (hole in the capture, late start): looking for a frame
    /// that carries a SIP start line.
    Resync,
}

/// Where we are in a fragmented message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fragments {
    None,
    /// Joining fragments in `scratch`.
    Collecting,
    /// The message outgrew [`MAX_MESSAGE_LEN`]: dropping fragments until the final one.
    Discarding,
}

/// The fixed part of a frame.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    /// RSV1-3: nonzero means an extension (e.g. permessage-deflate) we cannot decode.
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Header length including the extended length and masking key.
    len: usize,
    payload_len: u64,
}

impl Header {
    /// Whole frame length, saturating: a length past `usize` can never be buffered anyway.
    fn frame_len(&self) -> usize {
        usize::try_from(self.payload_len).ok().and_then(|p| p.checked_add(self.len)).unwrap_or(usize::MAX)
    }
}

impl WebSocket {
    /// A direction that starts with the HTTP upgrade (`GET` or `HTTP/1.1 101`).
    pub(crate) fn handshake() -> Self {
        Self { state: State::Handshake, scratch: Vec::new(), fragments: Fragments::None }
    }

    /// A direction joined mid-connection: find a frame boundary first.
    pub(crate) fn resyncing() -> Self {
        Self { state: State::Resync, scratch: Vec::new(), fragments: Fragments::None }
    }

    /// Bytes held for an unfinished fragmented message.
    pub(crate) fn buffered(&self) -> usize {
        if self.fragments == Fragments::Collecting {
            self.scratch.len()
        } else {
            0
        }
    }

    /// Forgets the frame boundary (bytes were lost) and any unfinished message.
    /// Returns true when an unfinished message was dropped.
    pub(crate) fn lose_sync(&mut self) -> bool {
        let had_partial = self.fragments == Fragments::Collecting;
        self.fragments = Fragments::None;
        self.scratch.clear();
        if self.state != State::Handshake {
            self.state = State::Resync;
        }
        had_partial
    }

    /// Frames the start of `data` (never empty).
    pub(crate) fn step<'a>(&'a mut self, data: &'a [u8], counters: &mut Counters) -> Step<'a> {
        match self.state {
            State::Handshake => self.skip_handshake(data),
            State::Resync => match find_frame_start(data) {
                Probe::Found(0) => {
                    self.state = State::Frames;
                    self.frame(data, counters)
                }
                Probe::Found(at) => {
                    self.state = State::Frames;
                    counters.junk_bytes += at as u64;
                    Step::Skip(at)
                }
                Probe::NeedMore(0) => Step::NeedMore(None),
                Probe::NeedMore(at) => {
                    counters.junk_bytes += at as u64;
                    Step::Skip(at)
                }
                Probe::NotFound => {
                    counters.junk_bytes += data.len() as u64;
                    Step::Skip(data.len())
                }
            },
            State::Frames => self.frame(data, counters),
        }
    }

    fn skip_handshake(&mut self, data: &[u8]) -> Step<'static> {
        match handshake_len(data) {
            Ok(Some(len)) => {
                self.state = State::Frames;
                Step::Skip(len)
            }
            Ok(None) => Step::NeedMore(None),
            Err(()) => Step::NotOurs,
        }
    }

    fn frame<'a>(&'a mut self, data: &'a [u8], counters: &mut Counters) -> Step<'a> {
        let Some(header) = parse_header(data) else {
            return Step::NeedMore(None);
        };
        let total = header.frame_len();
        if data.len() < total {
            return Step::NeedMore(Some(total));
        }
        let payload = &data[header.len..total];
        match (header.opcode, header.rsv) {
            (OP_CLOSE | OP_PING | OP_PONG, _) => {
                counters.websocket_control_frames += 1;
                Step::Skip(total)
            }
            (OP_TEXT | OP_BINARY, 0) => self.data_frame(header, payload, total, counters),
            (OP_CONTINUATION, 0) => self.continuation(header, payload, total, counters),
            // Reserved opcodes, compressed or otherwise extended frames: nothing we can read.
            _ => {
                counters.junk_bytes += total as u64;
                Step::Skip(total)
            }
        }
    }

    fn data_frame<'a>(&'a mut self, h: Header, payload: &'a [u8], total: usize, counters: &mut Counters) -> Step<'a> {
        if self.fragments == Fragments::Collecting {
            // A new message before the last one finished: the old one cannot complete.
            counters.truncated_messages += 1;
        }
        self.fragments = Fragments::None;
        if !h.fin {
            self.scratch.clear();
            unmask_into(&mut self.scratch, payload, h.mask);
            self.fragments = Fragments::Collecting;
            return Step::MessageStart(total);
        }
        let bytes = match h.mask {
            None => payload,
            Some(_) => {
                self.scratch.clear();
                unmask_into(&mut self.scratch, payload, h.mask);
                &self.scratch
            }
        };
        message(bytes, total, false, counters)
    }

    fn continuation<'a>(&'a mut self, h: Header, payload: &[u8], total: usize, counters: &mut Counters) -> Step<'a> {
        match self.fragments {
            Fragments::None => {
                counters.junk_bytes += total as u64;
                Step::Skip(total)
            }
            Fragments::Discarding => {
                counters.bytes_dropped += payload.len() as u64;
                if h.fin {
                    self.fragments = Fragments::None;
                }
                Step::Skip(total)
            }
            Fragments::Collecting if self.scratch.len() + payload.len() > MAX_MESSAGE_LEN => {
                counters.bytes_dropped += (self.scratch.len() + payload.len()) as u64;
                counters.truncated_messages += 1;
                self.scratch.clear();
                self.fragments = if h.fin { Fragments::None } else { Fragments::Discarding };
                Step::Skip(total)
            }
            Fragments::Collecting => {
                unmask_into(&mut self.scratch, payload, h.mask);
                if !h.fin {
                    return Step::Skip(total);
                }
                self.fragments = Fragments::None;
                message(&self.scratch, total, true, counters)
            }
        }
    }
}

/// A finished data message, unless it is only a CRLF keep-alive.
fn message<'a>(bytes: &'a [u8], consumed: usize, continued: bool, counters: &mut Counters) -> Step<'a> {
    if bytes.is_empty() || wire::sip::is_keepalive(bytes) {
        counters.keepalives += 1;
        return Step::Skip(consumed);
    }
    Step::Message { kind: MessageKind::WebSocketSip, bytes, consumed, continued }
}

/// Length of the HTTP upgrade at the start of `data`; `Ok(None)` while incomplete,
/// `Err` when it is HTTP but not a WebSocket upgrade (or not HTTP at all).
fn handshake_len(data: &[u8]) -> Result<Option<usize>, ()> {
    let window = &data[..data.len().min(MAX_HANDSHAKE_LEN)];
    let Some(end) = memmem::find(window, b"\r\n\r\n") else {
        return if data.len() >= MAX_HANDSHAKE_LEN { Err(()) } else { Ok(None) };
    };
    let head = &data[..end];
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let is_upgrade_line = first.starts_with(b"GET ") || is_101_status(first);
    if is_upgrade_line && lines.any(is_websocket_upgrade_header) {
        Ok(Some(end + 4))
    } else {
        Err(())
    }
}

/// `HTTP/1.x 101` with or without a reason phrase.
fn is_101_status(line: &[u8]) -> bool {
    line.starts_with(b"HTTP/1.")
        && line.get(8..12) == Some(b" 101".as_slice())
        && line.get(12).is_none_or(|&b| b == b' ')
}

fn is_websocket_upgrade_header(line: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', line) else {
        return false;
    };
    line[..colon].trim_ascii().eq_ignore_ascii_case(b"upgrade")
        && line[colon + 1..].windows(9).any(|w| w.eq_ignore_ascii_case(b"websocket"))
}

/// Parses a frame header; `None` until all of it is buffered.
fn parse_header(data: &[u8]) -> Option<Header> {
    let (&b0, &b1) = (data.first()?, data.get(1)?);
    let (payload_len, mut len) = match b1 & 0x7f {
        126 => (u64::from(u16::from_be_bytes(data.get(2..4)?.try_into().ok()?)), 4),
        127 => (u64::from_be_bytes(data.get(2..10)?.try_into().ok()?), 10),
        short => (u64::from(short), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = data.get(len..len + 4)?.try_into().ok()?;
        len += 4;
        Some(key)
    } else {
        None
    };
    Some(Header { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0x7, opcode: b0 & 0x0f, mask, len, payload_len })
}

/// Appends `payload` to `out`, unmasked with `mask` when the frame was masked.
fn unmask_into(out: &mut Vec<u8>, payload: &[u8], mask: Option<[u8; 4]>) {
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3])),
    }
}

/// Result of looking for a frame boundary in bytes that may start anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A data frame starting a SIP message begins at this offset.
    Found(usize),
    /// A candidate at this offset needs more bytes to be checked.
    NeedMore(usize),
    /// No candidate in these bytes.
    NotFound,
}

/// Finds the first complete-header data frame whose payload starts with a SIP start line.
///
/// Frame headers carry no magic, so a boundary is recognised by what follows: FIN plus
/// text/binary opcode, a plausible length, and an (unmasked) payload that looks like SIP.
pub(crate) fn find_frame_start(data: &[u8]) -> Probe {
    for at in memchr::memchr2_iter(0x80 | OP_TEXT, 0x80 | OP_BINARY, data) {
        match starts_sip_frame(&data[at..]) {
            Some(true) => return Probe::Found(at),
            Some(false) => {}
            None => return Probe::NeedMore(at),
        }
    }
    Probe::NotFound
}

/// Does `data` start with a data frame carrying SIP? `None`: need more bytes to say.
fn starts_sip_frame(data: &[u8]) -> Option<bool> {
    let header = parse_header(data)?;
    if !(MIN_SIP_LEN..=MAX_MESSAGE_LEN as u64).contains(&header.payload_len) {
        return Some(false);
    }
    let probe_len = (header.payload_len as usize).min(PROBE_LEN);
    let payload = data.get(header.len..header.len + probe_len)?;
    let mut unmasked = [0u8; PROBE_LEN];
    for (i, (out, b)) in unmasked.iter_mut().zip(payload).enumerate() {
        *out = b ^ header.mask.map_or(0, |key| key[i & 3]);
    }
    Some(wire::sip::looks_like_sip(&unmasked[..probe_len]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one frame (test helper; the tests under `tests/` have their own).
    fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![u8::from(fin) << 7 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(key) = mask {
            f.extend_from_slice(&key);
        }
        unmask_into(&mut f, payload, mask);
        f
    }

    const SIP: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn header_lengths() {
        let h = parse_header(&frame(true, OP_TEXT, None, &[b'x'; 300])).unwrap();
        assert_eq!((h.len, h.payload_len, h.fin), (4, 300, true));
        let h = parse_header(&frame(false, OP_BINARY, Some([1, 2, 3, 4]), &[b'x'; 70_000])).unwrap();
        assert_eq!((h.len, h.payload_len, h.fin, h.mask), (14, 70_000, false, Some([1, 2, 3, 4])));
        assert!(parse_header(&[0x81, 0xfe, 0x01]).is_none());
    }

    #[test]
    fn masked_frame_is_unmasked_and_control_skipped() {
        let mut ws = WebSocket { state: State::Frames, scratch: Vec::new(), fragments: Fragments::None };
        let mut c = Counters::default();
        let ping = frame(true, OP_PING, Some([9, 9, 9, 9]), b"hi");
        assert!(matches!(ws.step(&ping, &mut c), Step::Skip(n) if n == ping.len()));
        let f = frame(true, OP_TEXT, Some([0xde, 0xad, 0xbe, 0xef]), SIP);
        match ws.step(&f, &mut c) {
            Step::Message { bytes, consumed, .. } => assert_eq!((bytes, consumed), (SIP, f.len())),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.websocket_control_frames, 1);
    }

    #[test]
    fn handshake_needs_upgrade_header() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(handshake_len(req), Ok(Some(req.len())));
        assert_eq!(handshake_len(&req[..20]), Ok(None));
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\r\n";
        assert_eq!(handshake_len(resp), Ok(Some(resp.len())));
        assert_eq!(handshake_len(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"), Err(()));
        assert_eq!(handshake_len(b"HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n\r\n"), Err(()));
        let bare = b"HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(handshake_len(bare), Ok(Some(bare.len())));
        assert_eq!(handshake_len(b"HTTP/1.1 1010 x\r\nUpgrade: websocket\r\n\r\n"), Err(()));
    }

    #[test]
    fn probe_finds_sip_frame_after_junk() {
        let mut data = b"\x81\x05hello tail of something".to_vec();
        let at = data.len();
        data.extend(frame(true, OP_TEXT, Some([1, 2, 3, 4]), SIP));
        assert_eq!(find_frame_start(&data), Probe::Found(at));
        assert_eq!(find_frame_start(&data[..at + 10]), Probe::NeedMore(at));
        assert_eq!(find_frame_start(b"no frames here"), Probe::NotFound);
    }
}
