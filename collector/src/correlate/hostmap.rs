//! Logical host names for addresses: configured (`vip`, `lb1`, `ast1` for an IP, an
//! IP:port or a CIDR) and learned from the agents' node names.
//!
//! Learning uses what each agent captured: a host's own address is in (nearly) every
//! packet its agent sees, as source or destination. A node whose rows share exactly one
//! such address owns it; a node that only ever talks to one peer has two, and keeps the
//! one no other node owns. An address owned by several nodes over time (a VIP that
//! moved) is named after all of them (`lb1/lb2`); an address nobody owns keeps its
//! number. Capture times are not used, so clock skew between hosts cannot mislead it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::store::FlowRow;

/// What an entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// One address and port.
    Socket(IpAddr, u16),
    /// One address, any port.
    Addr(IpAddr),
    /// A network.
    Net(IpAddr, u8),
}

impl Pattern {
    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((net, len)) = s.split_once('/') {
            let ip: IpAddr = net.parse().map_err(|_| format!("`{s}`: not an address/prefix"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len: u8 = len.parse().ok().filter(|l| *l <= max).ok_or_else(|| format!("`{s}`: bad prefix length"))?;
            return Ok(Self::Net(ip, len));
        }
        if let Ok(ip) = s.parse() {
            return Ok(Self::Addr(ip));
        }
        let sa: std::net::SocketAddr = s.parse().map_err(|_| format!("`{s}`: expected IP, IP:port or CIDR"))?;
        Ok(Self::Socket(sa.ip(), sa.port()))
    }

    /// How specific a match is: a port beats an address beats a longer prefix.
    fn matches(&self, ip: IpAddr, port: u16) -> Option<u32> {
        match *self {
            Self::Socket(a, p) => (a == ip && p == port).then_some(1000),
            Self::Addr(a) => (a == ip).then_some(500),
            Self::Net(net, len) => in_net(ip, net, len).then_some(u32::from(len)),
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The configured names.
#[derive(Debug, Clone, Default)]
pub struct HostMap {
    entries: Vec<(Pattern, String)>,
}

impl HostMap {
    /// Builds the map from `name -> [address, ...]`.
    pub fn new(spec: &BTreeMap<String, Vec<String>>) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (name, addrs) in spec {
            if name.is_empty() || name.len() > 64 {
                return Err(format!("host name `{name}` must be 1 to 64 bytes"));
            }
            for a in addrs {
                entries.push((Pattern::parse(a).map_err(|e| format!("host {name}: {e}"))?, name.clone()));
            }
        }
        Ok(Self { entries })
    }

    /// Parses `name=addr[,addr...]` (the command-line form).
    pub fn parse_arg(arg: &str) -> Result<(String, Vec<String>), String> {
        let (name, addrs) = arg.split_once('=').ok_or_else(|| format!("`{arg}`: expected NAME=ADDR[,ADDR...]"))?;
        let addrs: Vec<String> = addrs.split(',').map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
        if addrs.is_empty() {
            return Err(format!("`{arg}`: no address"));
        }
        Ok((name.trim().to_owned(), addrs))
    }

    /// The configured name of `ip:port`, most specific entry first.
    pub fn lookup(&self, ip: &str, port: u16) -> Option<&str> {
        let ip: IpAddr = ip.parse().ok()?;
        self.entries
            .iter()
            .filter_map(|(p, name)| p.matches(ip, port).map(|score| (score, name)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, name)| name.as_str())
    }

    /// The exact addresses (no networks) configured under `name`.
    pub fn addresses_of(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, n)| n == name)
            .filter_map(|(p, _)| match p {
                Pattern::Socket(ip, _) | Pattern::Addr(ip) => Some(ip.to_string()),
                Pattern::Net(..) => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Names for the addresses of one set of rows: configured first, then learned.
#[derive(Debug, Default)]
pub struct Naming {
    configured: HostMap,
    /// Address -> nodes that sent from it or received on it.
    learned: HashMap<String, BTreeSet<String>>,
}

/// Share of a node's rows an address must be in to be that node's own.
const OWN_SHARE: f64 = 0.95;

impl Naming {
    /// Learns from `rows` on top of `configured`.
    pub fn learn(configured: &HostMap, rows: &[FlowRow]) -> Self {
        // Per node: rows, and rows per address.
        let mut seen: BTreeMap<&str, (usize, BTreeMap<&str, usize>)> = BTreeMap::new();
        for r in rows.iter().filter(|r| !r.node_name.is_empty()) {
            let (total, per) = seen.entry(&r.node_name).or_default();
            *total += 1;
            *per.entry(&r.src_ip).or_default() += 1;
            if r.dst_ip != r.src_ip {
                *per.entry(&r.dst_ip).or_default() += 1;
            }
        }
        let mut candidates: BTreeMap<&str, BTreeSet<&str>> = seen
            .iter()
            .map(|(node, (total, per))| {
                let own = per.iter().filter(|(_, n)| **n as f64 >= OWN_SHARE * *total as f64).map(|(a, _)| *a);
                (*node, own.collect())
            })
            .collect();
        let mut learned: HashMap<String, BTreeSet<String>> = HashMap::new();
        // Settle nodes with one candidate, drop settled addresses from the others, repeat.
        loop {
            let settled: Vec<(&str, &str)> = candidates
                .iter()
                .filter(|(_, c)| c.len() == 1)
                .filter_map(|(node, c)| c.first().map(|a| (*node, *a)))
                .collect();
            if settled.is_empty() {
                break;
            }
            for (node, addr) in &settled {
                learned.entry((*addr).to_owned()).or_default().insert((*node).to_owned());
                candidates.remove(node);
            }
            for c in candidates.values_mut() {
                c.retain(|a| !learned.contains_key(*a));
            }
        }
        Self { configured: configured.clone(), learned }
    }

    /// The host name of `ip:port`: configured, learned (`a/b` when several nodes claim
    /// it), or the address itself.
    pub fn name(&self, ip: &str, port: u16) -> String {
        if let Some(n) = self.configured.lookup(ip, port) {
            return n.to_owned();
        }
        match self.learned.get(ip) {
            Some(nodes) => nodes.iter().cloned().collect::<Vec<_>>().join("/"),
            None => super::addr(ip, port),
        }
    }

    /// Every address with the same name as `ip` (configured or learned), `ip` included.
    pub fn addresses_like(&self, ip: &str, port: u16) -> Vec<String> {
        let mut out = vec![ip.to_owned()];
        if let Some(n) = self.configured.lookup(ip, port) {
            out.extend(self.configured.addresses_of(n));
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &[&str])]) -> HostMap {
        HostMap::new(&pairs.iter().map(|(n, a)| (n.to_string(), a.iter().map(|s| s.to_string()).collect())).collect())
            .unwrap()
    }

    #[test]
    fn most_specific_entry_wins() {
        let m = map(&[("lan", &["10.0.0.0/8"]), ("ast1", &["10.0.0.21"]), ("ast1-ws", &["10.0.0.21:8088"])]);
        assert_eq!(m.lookup("10.0.0.21", 5060), Some("ast1"));
        assert_eq!(m.lookup("10.0.0.21", 8088), Some("ast1-ws"));
        assert_eq!(m.lookup("10.9.9.9", 5060), Some("lan"));
        assert_eq!(m.lookup("192.168.1.1", 5060), None);
        assert_eq!(m.lookup("not an ip", 5060), None);
        let v6 = map(&[("core", &["2001:db8::/32"])]);
        assert_eq!(v6.lookup("2001:db8::1", 5060), Some("core"));
        assert!(HostMap::new(&[("x".to_string(), vec!["10.0.0.1/33".to_string()])].into()).is_err());
        assert_eq!(HostMap::parse_arg("vip=10.0.0.100, 10.0.0.101").unwrap().1, vec!["10.0.0.100", "10.0.0.101"]);
        assert!(HostMap::parse_arg("vip").is_err());
    }

    fn row(node: &str, src: &str, dst: &str) -> FlowRow {
        FlowRow {
            node_name: node.into(),
            src_ip: src.into(),
            dst_ip: dst.into(),
            src_port: 5060,
            dst_port: 5060,
            ..FlowRow::default()
        }
    }

    #[test]
    fn nodes_own_the_address_in_all_their_rows() {
        // ITSP -> VIP (lb1, later lb2) -> ast1 -> phones, each host capturing its own traffic.
        let (itsp, vip, ast1, phones) = ("10.0.0.10", "10.0.0.100", "10.0.0.21", "10.0.0.30");
        let rows = vec![
            row("itsp", itsp, vip),
            row("itsp", vip, itsp),
            row("lb1", itsp, vip),
            row("lb1", vip, ast1),
            row("lb1", ast1, vip),
            row("lb2", vip, itsp),
            row("lb2", vip, ast1),
            row("ast1", vip, ast1),
            row("ast1", ast1, phones),
            row("phones", ast1, phones),
        ];
        let n = Naming::learn(&HostMap::default(), &rows);
        assert_eq!(n.name(vip, 5060), "lb1/lb2", "a moved VIP is named after both owners");
        assert_eq!(n.name(itsp, 5060), "itsp", "the ITSP's other address is the VIP, owned by the LBs");
        assert_eq!(n.name(ast1, 5060), "ast1");
        assert_eq!(n.name(phones, 5060), "phones");
        let configured = map(&[("vip", &[vip])]);
        assert_eq!(Naming::learn(&configured, &rows).name(vip, 5060), "vip");
        // Two nodes that both see the same two addresses: nothing can be told apart.
        let pair = vec![row("a", "10.0.0.1", "10.0.0.2"), row("b", "10.0.0.1", "10.0.0.2")];
        assert_eq!(Naming::learn(&HostMap::default(), &pair).name("10.0.0.1", 5060), "10.0.0.1:5060");
    }
}
