//! The capture agent: reads packets, decodes them down to SIP, sends HEPv3.
//!
//! Stages, each a synchronous function of its input plus the capture time the caller
//! passes in (so replays are deterministic):
//! - [`source`]: packets from pcap/pcapng files; [`live`]: packets from network
//!   interfaces through libpcap;
//! - [`packet`]: link layer, VLANs, tunnels, IPv4/IPv6, defragmentation, UDP/TCP/SCTP;
//! - [`tcp`]: TCP stream reassembly and message framing (SIP, SIP over WebSocket, HEP);
//! - [`pipeline`]: classification, filters, dedup and HEP encoding of each message;
//! - [`net_event`]: gratuitous ARP and VRRP advertisements as HEP (payload type 0x70);
//! - [`sender`]: delivery of HEP batches to one or more collectors.
//!
//! [`chain`] strings decode, reassembly and the SIP stage together behind one per-packet
//! entry point, used by [`replay`] and [`live`] alike.
//!
//! [`config`] resolves flags, environment and config file into [`config::Settings`].

pub mod chain;
pub mod config;
pub mod dedup;
pub mod filter;
pub mod flow;
pub mod hash;
pub mod live;
pub mod net_event;
pub mod packet;
pub mod pipeline;
pub mod replay;
pub mod sender;
pub mod signals;
pub mod source;
pub mod summary;
pub mod tcp;
