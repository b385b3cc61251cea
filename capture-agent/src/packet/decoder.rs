//! The decoder: walks one frame down the layers and hands out its transport payloads.

use std::net::IpAddr;

use super::defrag::{Defrag, FragKey, Fragment, Reassembled};
use super::ip::{self, proto};
use super::link::{self, ethertype};
use super::sctp::{SctpReassembly, SctpStats};
use super::tunnel::{self, Inner};
use super::{event, transport, Counters, DefragConfig, DefragStats, DropReason, Ignored, Outcome, Segment};
use crate::flow::{Flow, Proto, Timestamp};
use crate::source::LinkType;

/// Tunnel levels we follow (IP-in-IP, GRE, ERSPAN). Real deployments nest one or two;
/// the cap keeps crafted packets from recursing deeply.
const MAX_TUNNELS: u8 = 4;

/// Fragment timeouts are swept at most this often (capture time), so the sweep costs
/// nothing on the per-packet path.
const SWEEP_INTERVAL_US: u64 = 1_000_000;

/// Result of one decode step: `Err` ends the walk early with that outcome.
type Step = Result<Outcome, Outcome>;

impl From<DropReason> for Outcome {
    fn from(reason: DropReason) -> Self {
        Self::Dropped(reason)
    }
}

impl From<Ignored> for Outcome {
    fn from(reason: Ignored) -> Self {
        Self::Ignored(reason)
    }
}

/// What the walk down one frame has learned so far.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    ts: Timestamp,
    /// Innermost VLAN id seen (an inner Ethernet frame's tag replaces the outer one).
    vlan: Option<u16>,
    tunnels: u8,
    /// Some length field ran past the captured bytes.
    truncated: bool,
}

/// Decodes captured frames to transport payloads, reassembling IP fragments on the way.
///
/// One decoder per capture stream (it holds that stream's fragment state and counters);
/// it is `Send` but not meant to be shared. The common path (no fragments) neither
/// allocates nor hashes.
#[derive(Debug)]
pub struct Decoder {
    defrag: Defrag,
    sctp: SctpReassembly,
    counters: Counters,
    next_sweep_us: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the default reassembly limits ([`DefragConfig::default`]).
    pub fn new() -> Self {
        Self::with_config(DefragConfig::default())
    }

    /// A decoder with the given reassembly limits.
    pub fn with_config(cfg: DefragConfig) -> Self {
        Self {
            defrag: Defrag::new(cfg),
            sctp: SctpReassembly::default(),
            counters: Counters::default(),
            next_sweep_us: 0,
        }
    }

    /// What SCTP reassembly rebuilt and abandoned.
    pub fn sctp_stats(&self) -> SctpStats {
        self.sctp.stats
    }

    /// Decodes one frame captured at `ts` on a `link` interface, calling `out` for each
    /// transport payload found (several for SCTP bundles; one for the fragment that
    /// completes a datagram; none for a held fragment). Never panics; the outcome says
    /// what happened and is also counted in [`Decoder::counters`].
    ///
    /// `ts` also advances fragment timeouts: pass capture times in (roughly) increasing
    /// order.
    pub fn decode(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        frame: &[u8],
        out: &mut impl FnMut(Segment<'_>),
    ) -> Outcome {
        self.counters.frames += 1;
        self.maybe_expire(ts);
        let mut ctx = Ctx { ts, vlan: None, tunnels: 0, truncated: false };
        let outcome = link::split(link, frame, &mut ctx.vlan)
            .map_err(Outcome::from)
            .and_then(|(ty, data)| self.ethertype(&mut ctx, ty, data, out))
            .unwrap_or_else(|early| early);
        if ctx.truncated {
            self.counters.truncated += 1;
        }
        self.counters.record(&outcome);
        outcome
    }

    /// Totals of everything decoded so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Reassembly totals (completed, timed out, evicted...).
    pub fn defrag_stats(&self) -> DefragStats {
        self.defrag.stats
    }

    /// Datagrams being reassembled, and the bytes they hold.
    pub fn fragments_in_flight(&self) -> (usize, usize) {
        (self.defrag.len(), self.defrag.bytes())
    }

    /// Discards incomplete datagrams older than the timeout at `now`. `decode` does this
    /// by itself once per second of capture time; call it when input pauses (live
    /// capture idle, end of file) to release the memory.
    pub fn expire_fragments(&mut self, now: Timestamp) {
        self.defrag.expire(now.as_micros());
        self.next_sweep_us = now.as_micros().saturating_add(SWEEP_INTERVAL_US);
    }

    fn maybe_expire(&mut self, ts: Timestamp) {
        if self.defrag.len() > 0 && ts.as_micros() >= self.next_sweep_us {
            self.expire_fragments(ts);
        }
    }

    fn ethertype<F: FnMut(Segment<'_>)>(&mut self, ctx: &mut Ctx, ty: u16, data: &[u8], out: &mut F) -> Step {
        match ty {
            ethertype::IPV4 => self.ipv4(ctx, data, out),
            ethertype::IPV6 => self.ipv6(ctx, data, out),
            ethertype::ARP => Ok(event::arp(data, ctx.vlan)),
            _ => Err(Ignored::OtherEtherType.into()),
        }
    }

    fn ipv4<F: FnMut(Segment<'_>)>(&mut self, ctx: &mut Ctx, data: &[u8], out: &mut F) -> Step {
        let ip = ip::ipv4(data)?;
        ctx.truncated |= ip.truncated;
        let (src, dst) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
        if !ip.is_fragment() {
            return self.upper(ctx, src, dst, ip.proto, ip.payload, out);
        }
        let key = FragKey { src, dst, id: u32::from(ip.id), proto: ip.proto, vlan: ctx.vlan };
        let frag = Fragment { offset: ip.frag_offset, more: ip.more_fragments, proto: ip.proto, data: ip.payload };
        let Some(done) = self.reassemble(ctx, key, frag)? else {
            return Ok(Outcome::FragmentHeld);
        };
        self.upper(ctx, src, dst, done.proto, &done.data, out)
    }

    fn ipv6<F: FnMut(Segment<'_>)>(&mut self, ctx: &mut Ctx, data: &[u8], out: &mut F) -> Step {
        let ip = ip::ipv6(data)?;
        ctx.truncated |= ip.truncated;
        let (src, dst) = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
        let Some(f) = ip.frag else {
            return self.upper(ctx, src, dst, ip.next, ip.payload, out);
        };
        let key = FragKey { src, dst, id: f.id, proto: 0, vlan: ctx.vlan };
        let frag = Fragment { offset: f.offset, more: f.more, proto: ip.next, data: ip.payload };
        let Some(done) = self.reassemble(ctx, key, frag)? else {
            return Ok(Outcome::FragmentHeld);
        };
        // The reassembled part may start with more extension headers, never another
        // fragment header.
        let (next, payload, nested) = ip::ext_headers(done.proto, &done.data)?;
        if nested.is_some() {
            return Err(DropReason::FragmentMalformed.into());
        }
        self.upper(ctx, src, dst, next, payload, out)
    }

    /// Adds a fragment; `Ok(None)` while the datagram is incomplete.
    fn reassemble(&mut self, ctx: &Ctx, key: FragKey, frag: Fragment<'_>) -> Result<Option<Reassembled>, Outcome> {
        self.counters.fragments += 1;
        if ctx.truncated {
            // Its end is unknown: storing it would make a datagram with a hole of zeros.
            return Err(DropReason::FragmentMalformed.into());
        }
        Ok(self.defrag.insert(ctx.ts.as_micros(), key, frag)?)
    }

    /// Dispatches on the IP protocol number.
    fn upper<F: FnMut(Segment<'_>)>(
        &mut self,
        ctx: &mut Ctx,
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        payload: &[u8],
        out: &mut F,
    ) -> Step {
        let flow = |proto, (src_port, dst_port)| Flow { src, dst, src_port, dst_port, proto, vlan: ctx.vlan };
        match protocol {
            proto::UDP => {
                let (ports, data, truncated) = transport::udp(payload)?;
                ctx.truncated |= truncated;
                if data.is_empty() {
                    return Err(Ignored::EmptyUdp.into());
                }
                let flow = flow(Proto::Udp, (ports.src, ports.dst));
                self.counters.udp += 1;
                out(Segment { ts: ctx.ts, flow, payload: data, tcp: None, truncated: ctx.truncated });
                Ok(Outcome::Delivered(1))
            }
            proto::TCP => {
                let (ports, info, data) = transport::tcp(payload)?;
                let flow = flow(Proto::Tcp, (ports.src, ports.dst));
                self.counters.tcp += 1;
                out(Segment { ts: ctx.ts, flow, payload: data, tcp: Some(info), truncated: ctx.truncated });
                Ok(Outcome::Delivered(1))
            }
            proto::SCTP => self.sctp(ctx, src, dst, payload, out),
            proto::IPV4 => self.enter_tunnel(ctx).and_then(|()| self.ipv4(ctx, payload, out)),
            proto::IPV6 => self.enter_tunnel(ctx).and_then(|()| self.ipv6(ctx, payload, out)),
            proto::GRE => self.enter_tunnel(ctx).and_then(|()| self.gre(ctx, payload, out)),
            proto::VRRP => Ok(event::vrrp(payload, src, dst, ctx.vlan)),
            _ => Err(Ignored::OtherIpProto.into()),
        }
    }

    fn sctp<F: FnMut(Segment<'_>)>(
        &mut self,
        ctx: &mut Ctx,
        src: IpAddr,
        dst: IpAddr,
        payload: &[u8],
        out: &mut F,
    ) -> Step {
        let (ts, vlan, truncated) = (ctx.ts, ctx.vlan, ctx.truncated);
        let reassembly = &mut self.sctp;
        let mut found = 0;
        transport::sctp(payload, |ports, piece| {
            let flow = Flow { src, dst, src_port: ports.src, dst_port: ports.dst, proto: Proto::Sctp, vlan };
            if let Some((ts, message)) = reassembly.push(ts, flow, piece) {
                found += 1;
                out(Segment { ts, flow, payload: message, tcp: None, truncated });
            }
        })?;
        self.counters.sctp += found as u64;
        match u32::try_from(found) {
            Ok(0) => Err(Ignored::SctpNoData.into()),
            Ok(n) => Ok(Outcome::Delivered(n)),
            Err(_) => Ok(Outcome::Delivered(u32::MAX)),
        }
    }

    fn gre<F: FnMut(Segment<'_>)>(&mut self, ctx: &mut Ctx, payload: &[u8], out: &mut F) -> Step {
        match tunnel::gre(payload)? {
            Inner::Ip(ty, packet) => self.ethertype(ctx, ty, packet, out),
            Inner::Ethernet(frame) => {
                let (ty, data) = link::ethernet(frame, &mut ctx.vlan)?;
                self.ethertype(ctx, ty, data, out)
            }
        }
    }

    fn enter_tunnel(&mut self, ctx: &mut Ctx) -> Result<(), Outcome> {
        ctx.tunnels += 1;
        if ctx.tunnels > MAX_TUNNELS {
            return Err(DropReason::TooDeep.into());
        }
        Ok(())
    }
}
