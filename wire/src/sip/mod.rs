//! A lenient, zero-copy SIP scanner.
//!
//! Captured SIP is often malformed (compact headers, folded lines, LF-only line ends,
//! odd methods, non-UTF-8 bytes), so nothing here insists on RFC 3261 grammar: it finds
//! what a capture pipeline needs and borrows it from the input.
//!
//! Two steps, as in a stream protocol: [`frame`] decides whether a buffer starts with a
//! whole message (start line, headers, blank line, `Content-Length` body) without
//! allocating; [`scan`] then extracts the fields we store from one whole message.

mod frame;
mod scan;

pub use frame::{frame, is_keepalive, looks_like_sip, Frame, FrameError, MAX_BODY_LEN, MAX_HEADER_LEN};
pub use scan::{peek, scan, scan_with, CSeq, NameAddr, Peek, ScanConfig, ScanError, Sdp, SipMessage, StartLine};
