//! Wire formats shared by the capture agent and the collector.
//!
//! - [`hep`]: HEP (Homer Encapsulation Protocol) v1/v2/v3 decoding and v3 encoding.
//! - [`sip`]: a lenient, zero-copy SIP scanner: message framing ([`sip::frame`]) and
//!   extraction of the fields we store ([`sip::scan`]).
//!
//! Nothing here does I/O, reads a clock or logs: every function is a pure transformation
//! of bytes, so both binaries share one tested, fuzzed codec. Parsers never panic on any
//! input; they return a small error that says why the bytes were rejected.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod hep;
pub mod sip;
