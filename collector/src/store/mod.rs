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

/// One stored row of a call, as the flow view needs it.
#[derive(Debug, Clone, PartialEq, Eq, ::clickhouse::Row, serde::Deserialize)]
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
}

/// A stored message with its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The flow fields.
    pub row: FlowRow,
    /// Call-ID.
    pub call_id: String,
    /// The captured bytes.
    pub raw: Vec<u8>,
}

/// Read side of the store, for the API. Errors are messages for the log and a 500.
pub trait CallQueries: Send + Sync + 'static {
    /// Calls matching `filter`, newest first.
    fn search(&self, filter: &CallFilter) -> impl Future<Output = Result<Vec<CallSummary>, String>> + Send;
    /// The summary of one call.
    fn call(&self, call_id: &str) -> impl Future<Output = Result<Option<CallSummary>, String>> + Send;
    /// Every SIP row of a call within `[from_us, to_us]`, in capture order, at most `limit`.
    fn flow(
        &self,
        call_id: &str,
        from_us: u64,
        to_us: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FlowRow>, String>> + Send;
    /// Like [`CallQueries::flow`], with Call-ID and raw bytes (for pcap export).
    fn flow_raw(
        &self,
        call_id: &str,
        from_us: u64,
        to_us: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, String>> + Send;
    /// One message by id.
    fn message(&self, id: u64) -> impl Future<Output = Result<Option<StoredMessage>, String>> + Send;
}
