//! ClickHouse over HTTP (`clickhouse` crate, RowBinary), portable to 18.16: schema
//! validation off (18.16 lacks `RowBinaryWithNamesAndTypes`) and client-side `.bind()`
//! for every value (18.16 lacks `{name:Type}` parameters). `bind` escapes, so no input
//! reaches SQL unquoted.

use clickhouse::error::Error;
use clickhouse::query::Query;
use clickhouse::Client;
use serde::{Deserialize, Deserializer};

use super::{CallFilter, CallQueries, CallSummary, FlowRow, InsertOutcome, MessageSink, StoredMessage};
use crate::config::Config;
use crate::decode::MessageRow;
use crate::timeutil::{date_string, MICROS};

/// The message table.
pub const MESSAGES_TABLE: &str = "sip_messages";

/// ClickHouse error codes that mean "this data is wrong": retrying the same batch
/// would fail the same way (parse errors, type mismatch, unknown column/table/database,
/// incorrect data, too large string).
const DATA_ERROR_CODES: &[u32] = &[6, 16, 26, 27, 33, 38, 41, 53, 60, 62, 69, 70, 72, 81, 117, 131];

/// Both store traits over one HTTP client (cheap to clone: it shares a connection pool).
#[derive(Clone)]
pub struct ClickHouseStore {
    client: Client,
}

impl ClickHouseStore {
    /// A client for the configured URL and credentials, without a database (for the
    /// schema step, which may have to create it).
    pub fn server_client(config: &Config) -> Client {
        let mut client = Client::default().with_url(&config.clickhouse_url).with_validation(false);
        if let Some(user) = &config.clickhouse_user {
            client = client.with_user(user);
        }
        if let Some(password) = &config.clickhouse_password {
            client = client.with_password(password);
        }
        client
    }

    /// A store on `database`.
    pub fn new(server: &Client, database: &str) -> Self {
        Self { client: server.clone().with_database(database) }
    }

    async fn try_insert(&self, rows: &[MessageRow]) -> Result<(), Error> {
        let mut insert = self.client.insert::<MessageRow>(MESSAGES_TABLE).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }
}

/// Transient errors are retried; data errors and client-side failures are not.
pub fn classify(err: &Error) -> InsertOutcome {
    let text = err.to_string();
    match err {
        Error::Network(_) | Error::TimedOut => InsertOutcome::Retry(text),
        Error::BadResponse(msg) => match error_code(msg) {
            Some(code) if DATA_ERROR_CODES.contains(&code) => InsertOutcome::GiveUp(text),
            _ => InsertOutcome::Retry(text),
        },
        _ => InsertOutcome::GiveUp(text),
    }
}

/// The `N` of `Code: N` in a ClickHouse exception text (18.16 writes `Code: 53, e.displayText()...`,
/// newer servers `Code: 53. DB::Exception...`).
fn error_code(msg: &str) -> Option<u32> {
    let rest = &msg[msg.find("Code: ")? + 6..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl MessageSink for ClickHouseStore {
    async fn insert(&self, rows: &[MessageRow]) -> InsertOutcome {
        match self.try_insert(rows).await {
            Ok(()) => InsertOutcome::Ok,
            Err(e) => classify(&e),
        }
    }
}

/// Finalises the `sip_calls` aggregate states; the call filter goes in `{where}` (per
/// partition row) and `{having}` (on the merged call).
const SUMMARY_SELECT: &str = "SELECT call_id, minMerge(first_us) AS f_us, maxMerge(last_us) AS l_us, \
    countMerge(messages) AS n, argMinMerge(caller) AS a, argMinMerge(callee) AS b, \
    argMaxMerge(final_status) AS st, groupUniqArrayMerge(nodes) AS ns, \
    groupUniqArrayMerge(methods) AS ms, maxMerge(aleg_id) AS al \
    FROM sip_calls";

const FLOW_COLUMNS: &str = "id, toUInt64(ts) * 1000000 + ts_us, node_name, transport, src_ip, src_port, \
    dst_ip, dst_port, is_request, method, status, reason, cseq_num, cseq_method, msg_hash";

/// The read queries, with every value bound (client-side, escaped). Public so tests can
/// run the exact SQL text elsewhere (`sql_display()`), e.g. on a modern server in chDB.
impl ClickHouseStore {
    /// Call search, newest first.
    pub fn search_query(&self, f: &CallFilter) -> Query {
        let mut sql = format!("{SUMMARY_SELECT} WHERE date >= toDate(?) AND date <= toDate(?)");
        if f.call_id.is_some() {
            sql.push_str(" AND call_id = ?");
        }
        // Merging every call's aggregate states in the window costs seconds at millions of
        // calls. A merged caller, callee or node always comes from one of the call's rows,
        // so a scan of two or three columns of sip_messages gives a superset of the
        // matching Call-IDs first, and only those are merged and checked exactly below.
        if f.number.is_some() {
            sql.push_str(
                " AND call_id IN (SELECT call_id FROM sip_messages WHERE date >= toDate(?) AND date <= toDate(?)",
            );
            sql.push_str(" AND (endsWith(from_user, ?) OR endsWith(to_user, ?)))");
        }
        if f.node.is_some() {
            sql.push_str(
                " AND call_id IN (SELECT call_id FROM sip_messages WHERE date >= toDate(?) AND date <= toDate(?)",
            );
            sql.push_str(" AND node_name = ?)");
        }
        sql.push_str(" GROUP BY call_id HAVING f_us >= ? AND f_us <= ?");
        if f.number.is_some() {
            sql.push_str(" AND (endsWith(a, ?) OR endsWith(b, ?))");
        }
        if f.node.is_some() {
            sql.push_str(" AND has(ns, ?)");
        }
        if f.status.is_some() {
            sql.push_str(" AND st = ?");
        }
        sql.push_str(" ORDER BY f_us DESC, call_id LIMIT ?, ?");
        let (from_date, to_date) = (date_string(f.from_us), date_string(f.to_us));
        let mut q = self.client.query(&sql).bind(&from_date).bind(&to_date);
        if let Some(id) = &f.call_id {
            q = q.bind(id);
        }
        if let Some(n) = &f.number {
            q = q.bind(&from_date).bind(&to_date).bind(n).bind(n);
        }
        if let Some(node) = &f.node {
            q = q.bind(&from_date).bind(&to_date).bind(node);
        }
        q = q.bind(f.from_us).bind(f.to_us);
        if let Some(n) = &f.number {
            q = q.bind(n).bind(n);
        }
        if let Some(node) = &f.node {
            q = q.bind(node);
        }
        if let Some(st) = f.status {
            q = q.bind(st);
        }
        q.bind(f.offset).bind(f.limit)
    }

    /// One call's summary.
    pub fn call_query(&self, call_id: &str) -> Query {
        self.client.query(&format!("{SUMMARY_SELECT} WHERE call_id = ? GROUP BY call_id")).bind(call_id)
    }

    /// A call's SIP rows in capture order ([`FlowRow`] columns; with `raw`, Call-ID and
    /// raw bytes follow).
    pub fn flow_query(&self, call_id: &str, from_us: u64, to_us: u64, limit: u32, raw: bool) -> Query {
        let extra = if raw { ", call_id, raw" } else { "" };
        let sql = format!(
            "SELECT {FLOW_COLUMNS}{extra} FROM {MESSAGES_TABLE} WHERE call_id = ? AND date >= toDate(?) \
             AND date <= toDate(?) AND payload_type = 1 ORDER BY ts, ts_us, id LIMIT ?"
        );
        self.client
            .query(&sql)
            .bind(call_id)
            .bind(date_string(from_us))
            .bind(date_string(to_us.saturating_add(MICROS)))
            .bind(limit)
    }

    /// One message by id.
    pub fn message_query(&self, id: u64) -> Query {
        self.client
            .query(&format!("SELECT {FLOW_COLUMNS}, call_id, raw FROM {MESSAGES_TABLE} WHERE id = ? LIMIT 1"))
            .bind(id)
    }
}

impl CallQueries for ClickHouseStore {
    async fn search(&self, f: &CallFilter) -> Result<Vec<CallSummary>, String> {
        self.search_query(f).fetch_all().await.map_err(|e| format!("call search: {e}"))
    }

    async fn call(&self, call_id: &str) -> Result<Option<CallSummary>, String> {
        self.call_query(call_id).fetch_optional().await.map_err(|e| format!("call summary: {e}"))
    }

    async fn flow(&self, call_id: &str, from_us: u64, to_us: u64, limit: u32) -> Result<Vec<FlowRow>, String> {
        self.flow_query(call_id, from_us, to_us, limit, false).fetch_all().await.map_err(|e| format!("call flow: {e}"))
    }

    async fn flow_raw(
        &self,
        call_id: &str,
        from_us: u64,
        to_us: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, String> {
        let rows: Vec<MessageFetch> = self
            .flow_query(call_id, from_us, to_us, limit, true)
            .fetch_all()
            .await
            .map_err(|e| format!("call messages: {e}"))?;
        Ok(rows.into_iter().map(MessageFetch::into_stored).collect())
    }

    async fn message(&self, id: u64) -> Result<Option<StoredMessage>, String> {
        let found: Option<MessageFetch> =
            self.message_query(id).fetch_optional().await.map_err(|e| format!("message: {e}"))?;
        Ok(found.map(MessageFetch::into_stored))
    }
}

/// [`FlowRow`] plus Call-ID and raw bytes (the derive has no flattening).
#[derive(clickhouse::Row, Deserialize)]
struct MessageFetch {
    id: u64,
    time_us: u64,
    node_name: String,
    transport: u8,
    src_ip: String,
    src_port: u16,
    dst_ip: String,
    dst_port: u16,
    is_request: u8,
    method: String,
    status: u16,
    reason: String,
    cseq_num: u32,
    cseq_method: String,
    msg_hash: u64,
    call_id: String,
    #[serde(deserialize_with = "byte_buf")]
    raw: Vec<u8>,
}

impl MessageFetch {
    fn into_stored(self) -> StoredMessage {
        StoredMessage {
            row: FlowRow {
                id: self.id,
                time_us: self.time_us,
                node_name: self.node_name,
                transport: self.transport,
                src_ip: self.src_ip,
                src_port: self.src_port,
                dst_ip: self.dst_ip,
                dst_port: self.dst_port,
                is_request: self.is_request,
                method: self.method,
                status: self.status,
                reason: self.reason,
                cseq_num: self.cseq_num,
                cseq_method: self.cseq_method,
                msg_hash: self.msg_hash,
            },
            call_id: self.call_id,
            raw: self.raw,
        }
    }
}

/// Reads a `String` column as bytes: the raw message need not be UTF-8.
fn byte_buf<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    d.deserialize_byte_buf(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_are_not_retried() {
        let old = Error::BadResponse("Code: 53, e.displayText() = DB::Exception: Type mismatch".into());
        assert!(matches!(classify(&old), InsertOutcome::GiveUp(_)));
        let new = Error::BadResponse("Code: 117. DB::Exception: Incorrect data".into());
        assert!(matches!(classify(&new), InsertOutcome::GiveUp(_)));
        let overload = Error::BadResponse("Code: 252. DB::Exception: Too many parts".into());
        assert!(matches!(classify(&overload), InsertOutcome::Retry(_)));
        assert!(matches!(classify(&Error::TimedOut), InsertOutcome::Retry(_)));
    }
}
