//! Field extraction from one whole SIP message.

use std::fmt;

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
        Self {
            aleg_headers: vec![b"X-CID".to_vec(), b"X-Call-ID".to_vec()],
        }
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
pub fn scan_with<'a>(msg: &'a [u8], config: &ScanConfig) -> Result<SipMessage<'a>, ScanError> {
    let _ = (msg, config);
    unimplemented!("sip::scan_with")
}
