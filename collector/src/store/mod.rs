//! Storage: writing batches of rows and reading calls back.
//!
//! The batcher and the API see two small traits, so the retry policy and the HTTP
//! handlers do not depend on ClickHouse details (and a second backend or a test double
//! would slot in). [`clickhouse`] implements both; [`schema`] creates the tables.

pub mod clickhouse;
pub mod schema;

use std::future::Future;

use serde::Serialize;

use crate::decode::MessageRow;

/// What became of one insert attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored.
    Ok,
    /// A transient failure (network, overload): try the same batch again later.
    Retry(String),
    /// The server rejected the data itself: retrying cannot help.
    GiveUp(String),
}

/// Writes batches of message rows.
pub trait MessageSink: Send + Sync + 'static {
    /// Inserts `rows` as one batch.
    fn insert(&self, rows: &[MessageRow]) -> impl Future<Output = InsertOutcome> + Send;
}

/// Call search filter (already validated by the API layer).
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Earliest call start, microseconds since the epoch.
    pub from_us: u64,
    /// Latest call start, microseconds since the epoch.
    pub to_us: u64,
    /// Caller or callee user ends with this.
    pub number: Option<String>,
    /// Exact Call-ID.
    pub call_id: Option<String>,
    /// Capture node name seen in the call.
    pub node: Option<String>,
    /// Final status.
    pub status: Option<u16>,
    /// Page size.
    pub limit: u32,
    /// Rows skipped.
    pub offset: u32,
}

/// One call, as kept by the `sip_calls` summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ::clickhouse::Row, serde::Deserialize)]
// `clickhouse` here would name the sibling module, not the crate.
#[clickhouse(crate = "::clickhouse")]
pub struct CallSummary {
    /// Call-ID.
    pub call_id: String,
    /// First message, microseconds since the epoch.
    pub first_us: u64,
    /// Last message, microseconds since the epoch.
    pub last_us: u64,
    /// Rows stored for the call (every sighting counts).
    pub messages: u64,
    /// From user of the first INVITE.
    pub caller: String,
    /// To user of the first INVITE.
    pub callee: String,
    /// Final response status (0: none yet).
    pub final_status: u16,
    /// Capture nodes that saw the call.
    pub nodes: Vec<String>,
    /// Methods seen (requests and the CSeq methods of responses).
    pub methods: Vec<String>,
    /// A-leg id header value, when a message carried one.
    pub aleg_id: String,
}

/// One stored SIP row of a call, as flows, correlation and pcap export need it. `raw`
/// is read only when asked for (it is the one wide column).
#[derive(Debug, Clone, Default, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct FlowRow {
    /// Message id.
    pub id: u64,
    /// Capture time, microseconds since the epoch.
    pub time_us: u64,
    /// Capture node.
    pub node_name: String,
    /// IP protocol.
    pub transport: u8,
    /// Source address.
    pub src_ip: String,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst_ip: String,
    /// Destination port.
    pub dst_port: u16,
    /// 1 for requests.
    pub is_request: u8,
    /// Request method.
    pub method: String,
    /// Response status.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// CSeq number.
    pub cseq_num: u32,
    /// CSeq method.
    pub cseq_method: String,
    /// Hash of the raw bytes: equal hashes close in time are one message seen twice.
    pub msg_hash: u64,
    /// Call-ID.
    pub call_id: String,
    /// From user part.
    pub from_user: String,
    /// To user part.
    pub to_user: String,
    /// A-leg id header value (X-CID family), if any.
    pub aleg_id: String,
    /// HEP correlation id, if any.
    pub correlation_id: String,
    /// The captured bytes (empty unless asked for).
    #[serde(deserialize_with = "clickhouse::byte_buf")]
    pub raw: Vec<u8>,
}

impl FlowRow {
    /// An INVITE request.
    pub fn is_invite(&self) -> bool {
        self.is_request == 1 && self.method == "INVITE"
    }
}

/// A call that names another one: its A-leg header or HEP correlation id (for the
/// header links of the correlation).
#[derive(Debug, Clone, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct HeaderRef {
    /// The naming call.
    pub call_id: String,
    /// Its A-leg header value.
    pub aleg_id: String,
    /// Its HEP correlation id.
    pub correlation_id: String,
}

/// The first INVITE of a call sent from or to some addresses (heuristic leg candidates).
#[derive(Debug, Clone, Default, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct InviteStart {
    /// Call-ID.
    pub call_id: String,
    /// Time of that INVITE, microseconds since the epoch.
    pub time_us: u64,
    /// From user.
    pub from_user: String,
    /// To user.
    pub to_user: String,
    /// Source address.
    pub src_ip: String,
    /// Destination address.
    pub dst_ip: String,
}

/// Which end of the INVITE [`CallQueries::invites`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteEnd {
    /// INVITEs sent from the addresses.
    From,
    /// INVITEs sent to the addresses.
    To,
}

/// An address a capture node saw relaying (sending to two peers within one call).
#[derive(Debug, Clone, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct Relay {
    /// Capture node.
    pub node_name: String,
    /// The relaying address.
    pub src_ip: String,
    /// Calls it relayed.
    pub calls: u64,
}

/// One second of messages sent from an address, as one capture node saw them.
#[derive(Debug, Clone, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct ActivitySecond {
    /// Capture node.
    pub node_name: String,
    /// Source address.
    pub src_ip: String,
    /// First row in the second, microseconds since the epoch.
    pub first_us: u64,
    /// Last row in the second.
    pub last_us: u64,
    /// Rows.
    pub rows: u64,
}

/// A network event row (gratuitous ARP or VRRP advertisement, HEP payload type 112).
#[derive(Debug, Clone, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct NetEventRow {
    /// Capture time, microseconds since the epoch.
    pub time_us: u64,
    /// Capture node.
    pub node_name: String,
    /// The agent's JSON description.
    pub raw: String,
}

/// One transaction towards a backend (request to it, responses from it).
#[derive(Debug, Clone, Default, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct BackendTransaction {
    /// Call-ID.
    pub call_id: String,
    /// CSeq method.
    pub method: String,
    /// The backend address.
    pub backend: String,
    /// Who sent the request (the prober, for OPTIONS).
    pub sender: String,
    /// First sighting of the request.
    pub request_us: u64,
    /// First response from the backend (0: none).
    pub response_us: u64,
    /// Highest status the backend answered (0: no answer at all).
    pub status: u16,
}

/// An address probed with OPTIONS, and the capture nodes that saw the probes.
#[derive(Debug, Clone, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct Probed {
    /// The probed address.
    pub addr: String,
    /// Capture nodes.
    pub nodes: Vec<String>,
}

/// What the failover analysis needs to know about one call, aggregated in ClickHouse.
#[derive(Debug, Clone, Default, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "::clickhouse")]
pub struct CallActivity {
    /// Call-ID.
    pub call_id: String,
    /// First row.
    pub first_us: u64,
    /// Last row.
    pub last_us: u64,
    /// Last final response to an INVITE (0: none).
    pub invite_status: u16,
    /// A BYE was sent.
    pub bye_sent: u8,
    /// A BYE got a 2xx.
    pub bye_ok: u8,
    /// A BYE got a final error (408, 481, ...).
    pub bye_failed: u8,
    /// Capture nodes.
    pub nodes: Vec<String>,
    /// Addresses INVITEs were sent to.
    pub invite_targets: Vec<String>,
    /// Rows of a packet some node had already captured (retransmissions).
    pub repeats: u64,
}

/// Read side of the store, for the API. Errors are messages for the log and a 500.
/// Time ranges are microseconds since the epoch, inclusive.
pub trait CallQueries: Send + Sync + 'static {
    /// Calls matching `filter`, newest first.
    fn search(&self, filter: &CallFilter) -> impl Future<Output = Result<Vec<CallSummary>, String>> + Send;
    /// The summary of one call.
    fn call(&self, call_id: &str) -> impl Future<Output = Result<Option<CallSummary>, String>> + Send;
    /// Every SIP row of these calls within `[from_us, to_us]`, in capture order, at most
    /// `limit`; with `raw`, the captured bytes too.
    fn flow(
        &self,
        call_ids: &[String],
        range: (u64, u64),
        limit: u32,
        raw: bool,
    ) -> impl Future<Output = Result<Vec<FlowRow>, String>> + Send;
    /// One message by id (with its bytes).
    fn message(&self, id: u64) -> impl Future<Output = Result<Option<FlowRow>, String>> + Send;
    /// Calls in the range whose A-leg header or HEP correlation id is `call_id`.
    fn header_refs(
        &self,
        call_id: &str,
        range: (u64, u64),
    ) -> impl Future<Output = Result<Vec<HeaderRef>, String>> + Send;
    /// The first INVITE in the range of each call sent from (or to) one of `addrs`.
    fn invites(
        &self,
        addrs: &[String],
        end: InviteEnd,
        range: (u64, u64),
    ) -> impl Future<Output = Result<Vec<InviteStart>, String>> + Send;
    /// Addresses seen relaying, per capture node (`only`: these addresses; empty: all).
    fn relays(&self, only: &[String], range: (u64, u64)) -> impl Future<Output = Result<Vec<Relay>, String>> + Send;
    /// Per second, node and source address: the rows sent from `addrs`.
    fn activity(
        &self,
        addrs: &[String],
        range: (u64, u64),
    ) -> impl Future<Output = Result<Vec<ActivitySecond>, String>> + Send;
    /// Gratuitous ARP and VRRP rows.
    fn net_events(&self, range: (u64, u64)) -> impl Future<Output = Result<Vec<NetEventRow>, String>> + Send;
    /// Transactions towards `backends` (`options_only`: the probes), in request order.
    fn backend_transactions(
        &self,
        backends: &[String],
        options_only: bool,
        range: (u64, u64),
    ) -> impl Future<Output = Result<Vec<BackendTransaction>, String>> + Send;
    /// Addresses that received OPTIONS in the range, with the capture nodes that saw them.
    fn probed(&self, range: (u64, u64)) -> impl Future<Output = Result<Vec<Probed>, String>> + Send;
    /// Calls with messages from or to `addrs` in `touch`, aggregated over `range`.
    fn activity_of_calls(
        &self,
        addrs: &[String],
        touch: (u64, u64),
        range: (u64, u64),
    ) -> impl Future<Output = Result<Vec<CallActivity>, String>> + Send;
}
