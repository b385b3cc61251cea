//! The capture agent: reads packets, decodes them down to SIP, sends HEPv3.
//!
//! Stages, each a synchronous function of its input plus the capture time the caller
//! passes in (so replays are deterministic):
//! - [`source`]: packets from pcap/pcapng files;
//! - [`packet`]: link layer, VLANs, tunnels, IPv4/IPv6, defragmentation, UDP/TCP/SCTP;
//! - [`tcp`]: TCP stream reassembly and message framing (SIP, SIP over WebSocket, HEP);
//! - [`pipeline`]: classification, filters, dedup and HEP encoding of each message;
//! - [`sender`]: delivery of HEP batches to one or more collectors.
//!
//! [`config`] resolves flags, environment and config file into [`config::Settings`].

pub mod config;
pub mod dedup;
pub mod filter;
pub mod flow;
pub mod hash;
pub mod packet;
pub mod pipeline;
pub mod replay;
pub mod sender;
pub mod source;
pub mod summary;
pub mod tcp;
