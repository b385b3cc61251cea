//! One HEP packet in, one `sip_messages` row (or a counted drop reason) out.
//!
//! Synchronous and clock-free apart from the fallback receive time the caller passes
//! in, so tests can feed bytes and compare rows.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Serialize, Serializer};
use wire::hep::{self, Hep, PayloadType};
use wire::sip::{self, NameAddr, ScanConfig, SipMessage, StartLine};

use crate::metrics::DropReason;

/// Bytes that go to ClickHouse as a `String` column unchanged (captured SIP need not
/// be UTF-8, and `String` in ClickHouse is bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawBytes(pub Vec<u8>);

impl Serialize for RawBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// One row of `sip_messages` (see `schema/001_sip_messages.sql`). Field order is the
/// RowBinary column order; `date` and `msg_hash` are left to their DEFAULT expressions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, clickhouse::Row)]
pub struct MessageRow {
    /// Capture time, seconds since the epoch.
    pub ts: u32,
    /// Microseconds within `ts`.
    pub ts_us: u32,
    /// Unique message id (see [`IdGen`]).
    pub id: u64,
    /// HEP capture agent id.
    pub node_id: u32,
    /// HEP node name, or the capture id as text when the agent sends no name.
    pub node_name: String,
    /// HEP payload type (1 = SIP).
    pub payload_type: u8,
    /// IP protocol of the captured packet (17 UDP, 6 TCP, 132 SCTP).
    pub transport: u8,
    /// Source address.
    pub src_ip: String,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst_ip: String,
    /// Destination port.
    pub dst_port: u16,
    /// 1 for a request, 0 for a response.
    pub is_request: u8,
    /// Request method.
    pub method: String,
    /// Response status.
    pub status: u16,
    /// Response reason phrase.
    pub reason: String,
    /// Call-ID (for non-SIP payloads: the HEP correlation id).
    pub call_id: String,
    /// HEP correlation id (chunk 0x11).
    pub correlation_id: String,
    /// A-leg Call-ID header (X-CID family).
    pub aleg_id: String,
    /// CSeq number.
    pub cseq_num: u32,
    /// CSeq method.
    pub cseq_method: String,
    /// From user.
    pub from_user: String,
    /// From domain.
    pub from_domain: String,
    /// From tag.
    pub from_tag: String,
    /// To user.
    pub to_user: String,
    /// To domain.
    pub to_domain: String,
    /// To tag.
    pub to_tag: String,
    /// Request-URI user.
    pub ruri_user: String,
    /// Request-URI domain.
    pub ruri_domain: String,
    /// Top Via branch.
    pub via_branch: String,
    /// User-Agent or Server.
    pub user_agent: String,
    /// P-Asserted-Identity user.
    pub pai_user: String,
    /// SDP connection address.
    pub sdp_addr: String,
    /// SDP media port.
    pub sdp_port: u16,
    /// The captured payload, unchanged.
    pub raw: RawBytes,
}

impl MessageRow {
    /// Rough encoded size, for the batch byte limit: the payload dominates, the fixed
    /// fields and short strings add about 200 bytes.
    pub fn approx_bytes(&self) -> usize {
        self.raw.0.len() + 200
    }
}

/// Unique message ids without coordination: SplitMix64 over a per-process random seed
/// and a counter. The mix is a bijection, so ids from one collector never collide;
/// across collectors they are 64-bit random.
#[derive(Debug)]
pub struct IdGen {
    seed: u64,
    counter: AtomicU64,
}

impl IdGen {
    /// A generator seeded from `seed` (use [`IdGen::from_entropy`] outside tests).
    pub fn new(seed: u64) -> Self {
        Self { seed, counter: AtomicU64::new(0) }
    }

    /// Seeded from the clock, the process id and a stack address.
    pub fn from_entropy() -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let addr = std::ptr::addr_of!(local) as u64;
        Self::new(mix(nanos ^ u64::from(std::process::id()).rotate_left(32) ^ addr))
    }

    /// The next id.
    pub fn next_id(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        mix(self.seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What decoding needs besides the bytes.
#[derive(Debug)]
pub struct Decoder {
    /// Required auth key, if any.
    pub auth_key: Option<Vec<u8>>,
    /// Scanner options (A-leg headers).
    pub scan: ScanConfig,
    /// Message ids.
    pub ids: IdGen,
}

impl Decoder {
    /// Decodes one HEP packet. `now_us` stands in for a missing capture time (HEPv1).
    pub fn decode(&self, packet: &[u8], now_us: u64) -> Result<MessageRow, DropReason> {
        let hep = hep::decode(packet).map_err(|_| DropReason::Decode)?;
        if let Some(want) = &self.auth_key {
            if hep.auth_key != Some(want.as_slice()) {
                return Err(DropReason::Auth);
            }
        }
        if hep.payload_type == PayloadType::Sip && sip::is_keepalive(&hep.payload) {
            return Err(DropReason::Keepalive);
        }
        let mut row = self.envelope(&hep, now_us);
        match hep.payload_type {
            PayloadType::Sip => {
                if let Ok(msg) = sip::scan_with(&hep.payload, &self.scan) {
                    fill_sip(&mut row, &msg);
                }
            }
            PayloadType::NetEvent => row.method = net_event_method(&hep.payload),
            _ => {}
        }
        if row.call_id.is_empty() {
            row.call_id.clone_from(&row.correlation_id);
        }
        row.raw = RawBytes(hep.payload.into_owned());
        Ok(row)
    }

    /// The HEP-level fields: who captured what, where and when.
    fn envelope(&self, hep: &Hep<'_>, now_us: u64) -> MessageRow {
        let (ts, ts_us) = if hep.ts_sec == 0 {
            ((now_us / 1_000_000) as u32, (now_us % 1_000_000) as u32)
        } else {
            (hep.ts_sec, hep.ts_usec.min(999_999))
        };
        let node_name = match (hep.node_name, hep.capture_id) {
            (Some(name), _) if !name.is_empty() => text(name),
            (_, Some(id)) => id.to_string(),
            _ => String::new(),
        };
        MessageRow {
            ts,
            ts_us,
            id: self.ids.next_id(),
            node_id: hep.capture_id.unwrap_or(0),
            node_name,
            payload_type: hep.payload_type.into(),
            transport: hep.ip_proto,
            src_ip: hep.src_ip.to_string(),
            src_port: hep.src_port,
            dst_ip: hep.dst_ip.to_string(),
            dst_port: hep.dst_port,
            correlation_id: opt_text(hep.correlation_id),
            ..MessageRow::default()
        }
    }
}

/// Whether the payload scanned as SIP: the start line is the only hard requirement.
pub fn is_unparsed_sip(row: &MessageRow) -> bool {
    row.payload_type == 1 && row.method.is_empty() && row.status == 0
}

/// Longest `"event"` value kept as a method (ours are `garp` and `vrrp`).
const MAX_EVENT_NAME: usize = 16;

/// The `method` of a network event (payload type 0x70, JSON from our agent): its
/// `"event"` value in upper case, `GARP` or `VRRP`, so queries select them as they select
/// SIP methods (`payload_type = 112 AND method = 'GARP'`). A cheap look for the one key,
/// not a JSON parse: the payload is a small flat object. Anything that is not a short
/// token (letters, digits, `-`, `_`) gives an empty method; the raw payload is kept anyway.
pub fn net_event_method(payload: &[u8]) -> String {
    event_name(payload)
        .filter(|n| n.len() <= MAX_EVENT_NAME && n.iter().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(b)))
        .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
        .unwrap_or_default()
}

/// The string value of the first `"event"` key.
fn event_name(payload: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"event\"";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)?;
    let rest = payload[at + KEY.len()..].trim_ascii_start().strip_prefix(b":")?;
    let value = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = value.iter().position(|&b| b == b'"')?;
    Some(&value[..end])
}

fn fill_sip(row: &mut MessageRow, msg: &SipMessage<'_>) {
    match msg.start {
        StartLine::Request { method, .. } => {
            row.is_request = 1;
            row.method = text(method);
        }
        StartLine::Response { code, reason } => {
            row.status = code;
            row.reason = text(reason);
        }
    }
    row.call_id = opt_text(msg.call_id);
    if let Some(cseq) = msg.cseq {
        row.cseq_num = cseq.seq;
        row.cseq_method = text(cseq.method);
    }
    (row.from_user, row.from_domain, row.from_tag) = name_addr(&msg.from);
    (row.to_user, row.to_domain, row.to_tag) = name_addr(&msg.to);
    row.ruri_user = opt_text(msg.ruri_user);
    row.ruri_domain = opt_text(msg.ruri_domain);
    row.via_branch = opt_text(msg.via_branch);
    row.user_agent = opt_text(msg.user_agent);
    row.pai_user = opt_text(msg.pai_user);
    row.aleg_id = opt_text(msg.aleg_id);
    if let Some(sdp) = msg.sdp {
        row.sdp_addr = opt_text(sdp.connection);
        row.sdp_port = sdp.media_port.unwrap_or(0);
    }
}

fn name_addr(na: &NameAddr<'_>) -> (String, String, String) {
    (opt_text(na.user), opt_text(na.domain), opt_text(na.tag))
}

/// Header values are stored as UTF-8 (invalid bytes replaced) so every reader can use
/// them as text; only `raw` keeps the exact bytes.
fn text(b: &[u8]) -> String {
    match String::from_utf8_lossy(b) {
        Cow::Borrowed(s) => s.to_owned(),
        Cow::Owned(s) => s,
    }
}

fn opt_text(b: Option<&[u8]>) -> String {
    b.map(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_per_generator() {
        let ids = IdGen::new(42);
        let mut seen: Vec<u64> = (0..10_000).map(|_| ids.next_id()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10_000);
    }

    #[test]
    fn net_event_methods() {
        let garp = br#"{"event":"garp","ip":"10.77.0.100","mac":"02:00:00:00:00:01","op":"request"}"#;
        assert_eq!(net_event_method(garp), "GARP");
        let vrrp = br#"{"event":"vrrp","version":2,"vrid":51,"priority":100,"src":"10.77.0.12","addresses":[]}"#;
        assert_eq!(net_event_method(vrrp), "VRRP");
        assert_eq!(net_event_method(br#"{ "event" : "vrrp" }"#), "VRRP");
        for junk in [&b""[..], b"{", br#"{"event":"#, br#"{"event":"garp"#, br#"{"event":42}"#, br#"{"event":"a b"}"#] {
            assert_eq!(net_event_method(junk), "", "{}", String::from_utf8_lossy(junk));
        }
        assert_eq!(net_event_method(br#"{"event":"averyveryverylongname"}"#), "");
    }

    #[test]
    fn net_event_row() {
        let json = br#"{"event":"garp","ip":"10.77.0.100","mac":"02:00:00:00:00:01","op":"request"}"#;
        let vip: std::net::IpAddr = "10.77.0.100".parse().unwrap();
        let h = Hep {
            ip_proto: 0,
            src_ip: vip,
            dst_ip: vip,
            ts_sec: 1_795_321_827,
            ts_usec: 901_276,
            payload_type: PayloadType::NetEvent,
            capture_id: Some(12),
            node_name: Some(b"lb2"),
            payload: Cow::Borrowed(json),
            ..Hep::default()
        };
        let mut packet = Vec::new();
        hep::encode_v3(&h, &mut packet).unwrap();
        let d = Decoder { auth_key: None, scan: ScanConfig::default(), ids: IdGen::new(1) };
        let row = d.decode(&packet, 0).unwrap();
        assert_eq!((row.payload_type, row.method.as_str(), row.call_id.as_str()), (112, "GARP", ""));
        assert_eq!(
            (row.ts, row.ts_us, row.node_name.as_str(), row.src_ip.as_str()),
            (1_795_321_827, 901_276, "lb2", "10.77.0.100")
        );
        assert_eq!((row.is_request, row.status, &row.raw.0[..]), (0, 0, &json[..]));
        assert!(!is_unparsed_sip(&row));
    }

    #[test]
    fn raw_bytes_serialize_as_bytes() {
        // serde_json renders serialize_bytes as an array of numbers: proves the path.
        let json = serde_json::to_string(&RawBytes(vec![0xff, 0x41])).unwrap();
        assert_eq!(json, "[255,65]");
    }
}
