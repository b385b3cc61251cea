//! A BPF-like filter evaluated on decoded flows.
//!
//! Kernel BPF sees the outer packet: a port-only BPF drops non-first IP fragments and
//! misses SIP inside tunnels. This filter runs after decoding, on the innermost addresses
//! of reassembled datagrams and streams, with the primitives people already type:
//!
//! ```text
//! expr  := term { ("or" | "||") term }
//! term  := factor { ("and" | "&&") factor }
//! factor:= ("not" | "!") factor | "(" expr ")" | prim
//! prim  := [src|dst] host IP | [src|dst] net CIDR | [src|dst] port N
//!        | [src|dst] portrange A-B | udp | tcp | sctp | ip | ip6 | vlan [N]
//! ```
//!
//! It selects SIP (and relayed HEP) flows. Network events (gratuitous ARP, VRRP
//! advertisements) are not subject to it: an ARP packet has no port or transport for
//! `udp and port 5060` to match, and a filter meant to narrow the SIP captured should not
//! hide a VIP failover. `--no-net-events` turns those off.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::flow::{Flow, Proto};

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Expr);

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Prim(Dir, Prim),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dir {
    Either,
    Src,
    Dst,
}

#[derive(Debug, Clone, PartialEq)]
enum Prim {
    Net(IpAddr, u8),
    Ports(u16, u16),
    Proto(Proto),
    Ipv4,
    Ipv6,
    Vlan(Option<u16>),
}

impl Filter {
    /// True when the flow passes the filter.
    pub fn matches(&self, flow: &Flow) -> bool {
        self.0.eval(flow)
    }
}

impl Expr {
    fn eval(&self, f: &Flow) -> bool {
        match self {
            Self::Or(a, b) => a.eval(f) || b.eval(f),
            Self::And(a, b) => a.eval(f) && b.eval(f),
            Self::Not(a) => !a.eval(f),
            Self::Prim(dir, prim) => match prim {
                Prim::Net(net, bits) => dir.any(|src| in_net(if src { f.src } else { f.dst }, *net, *bits)),
                Prim::Ports(lo, hi) => dir.any(|src| (*lo..=*hi).contains(&if src { f.src_port } else { f.dst_port })),
                Prim::Proto(p) => f.proto == *p,
                Prim::Ipv4 => f.src.is_ipv4(),
                Prim::Ipv6 => f.src.is_ipv6(),
                Prim::Vlan(id) => id.map_or(f.vlan.is_some(), |id| f.vlan == Some(id)),
            },
        }
    }
}

impl Dir {
    /// Applies `test` to the source (`true`) and/or destination side.
    fn any(self, test: impl Fn(bool) -> bool) -> bool {
        match self {
            Self::Either => test(true) || test(false),
            Self::Src => test(true),
            Self::Dst => test(false),
        }
    }
}

fn in_net(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Why a filter expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

impl FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, FilterError> {
        let spaced = s.replace('(', " ( ").replace(')', " ) ").replace("!", " ! ");
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let mut p = Parser { tokens: &tokens, pos: 0 };
        let expr = p.expr()?;
        match p.peek() {
            None => Ok(Self(expr)),
            Some(t) => Err(FilterError(format!("unexpected {t:?}"))),
        }
    }
}

struct Parser<'a> {
    tokens: &'a [&'a str],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<&'a str, FilterError> {
        let t = self.peek().ok_or_else(|| FilterError("unexpected end of filter".into()))?;
        self.pos += 1;
        Ok(t)
    }

    fn eat(&mut self, words: &[&str]) -> bool {
        let hit = self.peek().is_some_and(|t| words.iter().any(|w| t.eq_ignore_ascii_case(w)));
        self.pos += usize::from(hit);
        hit
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.term()?;
        while self.eat(&["or", "||"]) {
            left = Expr::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.factor()?;
        while self.eat(&["and", "&&"]) {
            left = Expr::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, FilterError> {
        if self.eat(&["not", "!"]) {
            return Ok(Expr::Not(Box::new(self.factor()?)));
        }
        if self.eat(&["("]) {
            let e = self.expr()?;
            return if self.eat(&[")"]) { Ok(e) } else { Err(FilterError("missing )".into())) };
        }
        self.prim()
    }

    fn prim(&mut self) -> Result<Expr, FilterError> {
        let dir = if self.eat(&["src"]) {
            Dir::Src
        } else if self.eat(&["dst"]) {
            Dir::Dst
        } else {
            Dir::Either
        };
        let word = self.next()?.to_ascii_lowercase();
        let prim = match word.as_str() {
            "host" => {
                let ip = self.next()?;
                let ip: IpAddr = ip.parse().map_err(|_| FilterError(format!("bad address {ip:?}")))?;
                Prim::Net(ip, if ip.is_ipv4() { 32 } else { 128 })
            }
            "net" => parse_net(self.next()?)?,
            "port" => {
                let p = parse_port(self.next()?)?;
                Prim::Ports(p, p)
            }
            "portrange" => {
                let r = self.next()?;
                let (a, b) = r.split_once('-').ok_or_else(|| FilterError(format!("bad port range {r:?}: use A-B")))?;
                let (a, b) = (parse_port(a)?, parse_port(b)?);
                if a > b {
                    return Err(FilterError(format!("bad port range {r:?}: {a} > {b}")));
                }
                Prim::Ports(a, b)
            }
            "udp" => Prim::Proto(Proto::Udp),
            "tcp" => Prim::Proto(Proto::Tcp),
            "sctp" => Prim::Proto(Proto::Sctp),
            "ip" => Prim::Ipv4,
            "ip6" => Prim::Ipv6,
            "vlan" => match self.peek().map(str::parse::<u16>) {
                Some(Ok(id)) => {
                    self.pos += 1;
                    Prim::Vlan(Some(id))
                }
                _ => Prim::Vlan(None),
            },
            other => return Err(FilterError(format!("unknown filter word {other:?}"))),
        };
        let directional = matches!(prim, Prim::Net(..) | Prim::Ports(..));
        if dir != Dir::Either && !directional {
            return Err(FilterError(format!("src/dst cannot qualify {word:?}")));
        }
        Ok(Expr::Prim(dir, prim))
    }
}

fn parse_port(s: &str) -> Result<u16, FilterError> {
    s.parse().map_err(|_| FilterError(format!("bad port {s:?}")))
}

fn parse_net(s: &str) -> Result<Prim, FilterError> {
    let bad = || FilterError(format!("bad network {s:?}: use ADDR/BITS"));
    let (addr, bits) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    if bits > if addr.is_ipv4() { 32 } else { 128 } {
        return Err(bad());
    }
    Ok(Prim::Net(addr, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(src: &str, sport: u16, dst: &str, dport: u16, proto: Proto, vlan: Option<u16>) -> Flow {
        Flow { src: src.parse().unwrap(), dst: dst.parse().unwrap(), src_port: sport, dst_port: dport, proto, vlan }
    }

    fn m(expr: &str, f: &Flow) -> bool {
        expr.parse::<Filter>().unwrap().matches(f)
    }

    #[test]
    fn primitives() {
        let f = flow("10.0.0.1", 40000, "192.0.2.9", 5060, Proto::Udp, Some(100));
        assert!(m("port 5060", &f));
        assert!(m("dst port 5060", &f));
        assert!(!m("src port 5060", &f));
        assert!(m("portrange 5060-5090", &f));
        assert!(m("host 10.0.0.1", &f));
        assert!(m("net 192.0.2.0/24 and udp", &f));
        assert!(!m("src net 192.0.2.0/24", &f));
        assert!(m("vlan 100 && !tcp", &f));
        assert!(!m("vlan 200", &f));
        assert!(m("ip and not ip6", &f));
        assert!(m("tcp or (udp and port 5060)", &f));
        let v6 = flow("2001:db8::1", 5060, "2001:db8::2", 5060, Proto::Tcp, None);
        assert!(m("net 2001:db8::/32 and ip6 and tcp", &v6));
        assert!(!m("vlan", &v6));
    }

    #[test]
    fn precedence_and_over_or() {
        let f = flow("10.0.0.1", 1, "10.0.0.2", 2, Proto::Tcp, None);
        assert!(m("tcp or udp and port 9", &f));
        assert!(!m("(tcp or udp) and port 9", &f));
    }

    #[test]
    fn errors_name_the_problem() {
        for (expr, msg) in [
            ("port banana", "bad port"),
            ("portrange 9-1", "9 > 1"),
            ("net 10.0.0.0/33", "bad network"),
            ("(udp", "missing )"),
            ("udp tcp", "unexpected"),
            ("frobnicate", "unknown filter word"),
            ("src udp", "cannot qualify"),
            ("", "end of filter"),
        ] {
            let err = expr.parse::<Filter>().unwrap_err().to_string();
            assert!(err.contains(msg), "{expr:?}: {err}");
        }
    }
}
