//! Message framing: where does the SIP message at the start of a buffer end?

use std::fmt;

/// Longest header section we wait for. A stream that sends more without a blank line is
/// not SIP we can use (and must not make us buffer without bound).
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Largest `Content-Length` we accept. Real SIP bodies (SDP, multipart) are a few KiB.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// Longest start line we wait for before deciding a buffer is not SIP.
const MAX_START_LINE: usize = 8 * 1024;

/// Outcome of [`frame`] on a buffer that starts with a SIP start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of `len` bytes is buffered.
    Complete {
        /// Message length: headers, blank line and body.
        len: usize,
        /// Length of the start line and headers including the blank line.
        header_len: usize,
        /// The `Content-Length` value, if the header was present.
        content_length: Option<usize>,
    },
    /// More bytes are needed. `header_len` is known once the blank line was seen.
    Incomplete {
        /// Total bytes needed, when the header section is complete.
        needed: Option<usize>,
    },
}

/// Why a buffer cannot start a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The first line is neither a request line nor a status line.
    NotSip,
    /// No blank line within [`MAX_HEADER_LEN`] bytes.
    HeadersTooLong,
    /// `Content-Length` is not a number, negative, or above [`MAX_BODY_LEN`].
    BadContentLength,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotSip => "not a SIP start line",
            Self::HeadersTooLong => "SIP header section longer than 64 KiB",
            Self::BadContentLength => "invalid SIP Content-Length",
        })
    }
}

impl std::error::Error for FrameError {}

/// Finds the extent of the SIP message at the start of `buf`.
///
/// A missing `Content-Length` means an empty body (RFC 3261 requires the header on
/// streams; on datagrams the caller takes the whole datagram anyway).
pub fn frame(buf: &[u8]) -> Result<Frame, FrameError> {
    match start_line_kind(buf) {
        StartLine::Sip => {}
        StartLine::NeedMore => return Ok(Frame::Incomplete { needed: None }),
        StartLine::NotSip => return Err(FrameError::NotSip),
    }
    let mut content_length = None;
    let mut pos = 0;
    loop {
        let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) else {
            return if buf.len() > MAX_HEADER_LEN {
                Err(FrameError::HeadersTooLong)
            } else {
                Ok(Frame::Incomplete { needed: None })
            };
        };
        let line = trim_cr(&buf[pos..pos + nl]);
        let next = pos + nl + 1;
        if next > MAX_HEADER_LEN {
            return Err(FrameError::HeadersTooLong);
        }
        if line.is_empty() && pos > 0 {
            let len = next.checked_add(content_length.unwrap_or(0)).ok_or(FrameError::BadContentLength)?;
            return Ok(if buf.len() >= len {
                Frame::Complete { len, header_len: next, content_length }
            } else {
                Frame::Incomplete { needed: Some(len) }
            });
        }
        // A continuation line (leading SP/HT) belongs to the previous header's value,
        // even when its text looks like `l: 5`. The first Content-Length counts, as in
        // `scan`, so framing and the stored fields agree.
        if pos > 0 && content_length.is_none() && !matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(value) = content_length_value(line) {
                content_length = Some(parse_length(value)?);
            }
        }
        pos = next;
    }
}

/// True for RFC 5626 keep-alives: a datagram or segment made only of CR and LF.
pub fn is_keepalive(buf: &[u8]) -> bool {
    !buf.is_empty() && buf.iter().all(|&b| b == b'\r' || b == b'\n')
}

/// True when `buf` starts with a SIP request line or status line. Decides by content,
/// not by port: HTTP on 5060 is rejected, SIP on 6060 accepted.
pub fn looks_like_sip(buf: &[u8]) -> bool {
    start_line_kind(buf) == StartLine::Sip
}

#[derive(Debug, PartialEq, Eq)]
enum StartLine {
    Sip,
    NeedMore,
    NotSip,
}

fn start_line_kind(buf: &[u8]) -> StartLine {
    let Some(nl) = memchr::memchr(b'\n', &buf[..buf.len().min(MAX_START_LINE)]) else {
        // Decide early on a prefix that can never become SIP, so junk is not buffered.
        if buf.len() >= MAX_START_LINE || !prefix_can_be_sip(buf) {
            return StartLine::NotSip;
        }
        return StartLine::NeedMore;
    };
    if is_start_line(trim_cr(&buf[..nl])) {
        StartLine::Sip
    } else {
        StartLine::NotSip
    }
}

/// `SIP/2.0 200 OK` or `METHOD request-uri SIP/2.0`.
fn is_start_line(line: &[u8]) -> bool {
    if let Some(rest) = strip_prefix_ignore_case(line, b"SIP/") {
        // Status line: version, space, three-digit code.
        let Some(sp) = memchr::memchr(b' ', rest) else {
            return false;
        };
        let code = &rest[sp + 1..];
        return code.len() >= 3 && code[..3].iter().all(u8::is_ascii_digit) && code.get(3).is_none_or(|&b| b == b' ');
    }
    let Some(sp1) = memchr::memchr(b' ', line) else {
        return false;
    };
    let method = &line[..sp1];
    let Some(sp2) = memchr::memrchr(b' ', line) else {
        return false;
    };
    sp2 > sp1 + 1
        && !method.is_empty()
        && method.iter().all(|&b| is_token_char(b))
        && strip_prefix_ignore_case(&line[sp2 + 1..], b"SIP/").is_some_and(|v| !v.is_empty())
}

/// Could `buf` (no line end yet) still grow into a start line?
fn prefix_can_be_sip(buf: &[u8]) -> bool {
    let first_word = buf.split(|&b| b == b' ').next().unwrap_or(buf);
    first_word.iter().all(|&b| is_token_char(b) || b == b'/')
}

/// RFC 3261 `token` characters (methods are tokens).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// The value of a `Content-Length` or compact `l` header line, if `line` is one.
fn content_length_value(line: &[u8]) -> Option<&[u8]> {
    let colon = memchr::memchr(b':', line)?;
    let name = trim(&line[..colon]);
    (name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")).then(|| trim(&line[colon + 1..]))
}

fn parse_length(value: &[u8]) -> Result<usize, FrameError> {
    if value.is_empty() || value.len() > 7 || !value.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::BadContentLength);
    }
    let n = value.iter().fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
    if n > MAX_BODY_LEN {
        return Err(FrameError::BadContentLength);
    }
    Ok(n)
}

pub(crate) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

pub(crate) fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_message_with_body() {
        let m = b"INVITE sip:b@x SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 4\r\n\r\nabcdNEXT";
        assert_eq!(
            frame(m),
            Ok(Frame::Complete { len: m.len() - 4, header_len: m.len() - 8, content_length: Some(4) })
        );
    }

    #[test]
    fn compact_length_and_lf_only() {
        let m = b"SIP/2.0 200 OK\nl: 2\n\nok";
        assert_eq!(frame(m), Ok(Frame::Complete { len: m.len(), header_len: m.len() - 2, content_length: Some(2) }));
    }

    #[test]
    fn incomplete_until_body_arrives() {
        let m = b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(frame(m), Ok(Frame::Incomplete { needed: Some(m.len() - 3 + 10) }));
        assert_eq!(frame(b"SIP/2.0 200 OK\r\nVia: x"), Ok(Frame::Incomplete { needed: None }));
        assert_eq!(frame(b"REGIS"), Ok(Frame::Incomplete { needed: None }));
    }

    #[test]
    fn rejects_http_and_junk() {
        assert_eq!(frame(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Err(FrameError::NotSip));
        assert_eq!(frame(b"\x16\x03\x01\x02\x00"), Err(FrameError::NotSip));
        assert!(!looks_like_sip(b"HTTP/1.1 200 OK\r\n"));
        assert!(looks_like_sip(b"OPTIONS sip:x SIP/2.0\r\n"));
        assert!(looks_like_sip(b"SIP/2.0 100 \r\n"));
    }

    #[test]
    fn bad_lengths() {
        let neg = b"SIP/2.0 200 OK\r\nContent-Length: -999\r\n\r\n";
        assert_eq!(frame(neg), Err(FrameError::BadContentLength));
        let huge = b"SIP/2.0 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n";
        assert_eq!(frame(huge), Err(FrameError::BadContentLength));
    }

    #[test]
    fn header_section_is_bounded() {
        let mut m = b"SIP/2.0 200 OK\r\n".to_vec();
        while m.len() <= MAX_HEADER_LEN {
            m.extend_from_slice(b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(frame(&m), Err(FrameError::HeadersTooLong));
    }

    #[test]
    fn continuation_line_is_not_a_header() {
        let m = b"SIP/2.0 200 OK\r\nSubject: a\r\n\tl: x\r\nl: 1\r\n\r\nz";
        assert_eq!(frame(m), Ok(Frame::Complete { len: m.len(), header_len: m.len() - 1, content_length: Some(1) }));
    }

    #[test]
    fn keepalives() {
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(is_keepalive(b"\r\n"));
        assert!(!is_keepalive(b""));
        assert!(!is_keepalive(b"\r\nx"));
    }
}
