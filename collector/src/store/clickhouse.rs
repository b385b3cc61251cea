//! ClickHouse over HTTP (`clickhouse` crate, RowBinary), portable to 18.16: schema
//! validation off (18.16 lacks `RowBinaryWithNamesAndTypes`) and client-side `.bind()`
//! for every value (18.16 lacks `{name:Type}` parameters). `bind` escapes, so no input
//! reaches SQL unquoted.

use clickhouse::error::Error;
use clickhouse::query::Query;
use clickhouse::Client;
use serde::Deserializer;

use super::{
    ActivitySecond, BackendTransaction, CallActivity, CallFilter, CallQueries, CallSummary, FlowRow, HeaderRef,
    InsertOutcome, InviteEnd, InviteStart, MessageSink, NetEventRow, Probed, Relay,
};
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

/// [`FlowRow`]'s columns, `raw` last (`{raw}`: the column or an empty string).
const FLOW_COLUMNS: &str = "id, toUInt64(ts) * 1000000 + ts_us AS t, node_name, transport, src_ip, src_port, \
    dst_ip, dst_port, is_request, method, status, reason, cseq_num, cseq_method, msg_hash, call_id, from_user, \
    to_user, aleg_id, correlation_id";

/// Capture time in microseconds, as a SQL expression.
const T_US: &str = "(toUInt64(ts) * 1000000 + ts_us)";

/// `(?, ?, ...)` for `n` values (`n` >= 1; callers skip empty lists).
fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(2 + 3 * n);
    s.push('(');
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ", ?" });
    }
    s.push(')');
    s
}

/// Binds every value of `values`, in order.
fn bind_all(mut q: Query, values: &[String]) -> Query {
    for v in values {
        q = q.bind(v);
    }
    q
}

/// The `date` and time bounds of a range: `date >= ? AND date <= ? AND t >= ? AND t <= ?`.
fn range_sql() -> String {
    format!("date >= toDate(?) AND date <= toDate(?) AND {T_US} >= ? AND {T_US} <= ?")
}

fn bind_range(q: Query, (from, to): (u64, u64)) -> Query {
    q.bind(date_string(from)).bind(date_string(to)).bind(from).bind(to)
}

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

    /// The SIP rows of some calls in capture order ([`FlowRow`] columns).
    pub fn flow_query(&self, call_ids: &[String], (from, to): (u64, u64), limit: u32, raw: bool) -> Query {
        let raw = if raw { "raw" } else { "''" };
        let sql = format!(
            "SELECT {FLOW_COLUMNS}, {raw} FROM {MESSAGES_TABLE} WHERE call_id IN {} AND date >= toDate(?) \
             AND date <= toDate(?) AND payload_type = 1 ORDER BY ts, ts_us, id LIMIT ?",
            placeholders(call_ids.len())
        );
        bind_all(self.client.query(&sql), call_ids)
            .bind(date_string(from))
            .bind(date_string(to.saturating_add(MICROS)))
            .bind(limit)
    }

    /// One message by id.
    pub fn message_query(&self, id: u64) -> Query {
        self.client.query(&format!("SELECT {FLOW_COLUMNS}, raw FROM {MESSAGES_TABLE} WHERE id = ? LIMIT 1")).bind(id)
    }

    /// Calls naming `call_id` in their A-leg header or HEP correlation id.
    pub fn header_refs_query(&self, call_id: &str, range: (u64, u64)) -> Query {
        let sql = format!(
            "SELECT call_id, any(aleg_id), any(correlation_id) FROM {MESSAGES_TABLE} WHERE {} AND payload_type = 1 \
             AND call_id != ? AND (aleg_id = ? OR correlation_id = ?) GROUP BY call_id ORDER BY call_id LIMIT ?",
            range_sql()
        );
        bind_range(self.client.query(&sql), range).bind(call_id).bind(call_id).bind(call_id).bind(MAX_LEG_CANDIDATES)
    }

    /// First INVITE per call from (or to) `addrs`.
    pub fn invites_query(&self, addrs: &[String], end: InviteEnd, range: (u64, u64)) -> Query {
        let column = match end {
            InviteEnd::From => "src_ip",
            InviteEnd::To => "dst_ip",
        };
        let sql = format!(
            "SELECT call_id, min({T_US}) AS first_t, argMin(from_user, {T_US}), argMin(to_user, {T_US}), \
             argMin(src_ip, {T_US}), argMin(dst_ip, {T_US}) FROM {MESSAGES_TABLE} WHERE {} AND payload_type = 1 \
             AND is_request = 1 AND method = 'INVITE' AND {column} IN {} GROUP BY call_id ORDER BY first_t LIMIT ?",
            range_sql(),
            placeholders(addrs.len())
        );
        bind_all(bind_range(self.client.query(&sql), range), addrs).bind(MAX_LEG_CANDIDATES)
    }

    /// Per capture node and source address: the calls in which the node saw that address
    /// send to two or more peers (relaying: a proxy forwards a request one way and answers
    /// the other; an endpoint, or a node watching one, sees it talk to one peer per call).
    pub fn relays_query(&self, only: &[String], range: (u64, u64)) -> Query {
        let filter =
            if only.is_empty() { String::new() } else { format!(" AND src_ip IN {}", placeholders(only.len())) };
        let sql = format!(
            "SELECT node_name, src_ip, count() FROM (SELECT node_name, src_ip, call_id FROM {MESSAGES_TABLE} \
             WHERE {} AND payload_type = 1 AND node_name != '' AND call_id != ''{filter} \
             GROUP BY node_name, src_ip, call_id HAVING uniqExact(dst_ip) >= 2) \
             GROUP BY node_name, src_ip ORDER BY node_name, src_ip LIMIT ?",
            range_sql()
        );
        bind_all(bind_range(self.client.query(&sql), range), only).bind(MAX_AGGREGATE_ROWS)
    }

    /// Per second, node and source: rows sent from `addrs`.
    pub fn activity_query(&self, addrs: &[String], range: (u64, u64)) -> Query {
        let sql = format!(
            "SELECT node_name, src_ip, min({T_US}) AS first_t, max({T_US}), count() FROM {MESSAGES_TABLE} \
             WHERE {} AND payload_type = 1 AND src_ip IN {} GROUP BY node_name, src_ip, ts ORDER BY first_t LIMIT ?",
            range_sql(),
            placeholders(addrs.len())
        );
        bind_all(bind_range(self.client.query(&sql), range), addrs).bind(MAX_AGGREGATE_ROWS)
    }

    /// Network events (payload type 112) in time order.
    pub fn net_events_query(&self, range: (u64, u64)) -> Query {
        let sql = format!(
            "SELECT {T_US} AS t, node_name, raw FROM {MESSAGES_TABLE} WHERE {} AND payload_type = 112 \
             ORDER BY t LIMIT ?",
            range_sql()
        );
        bind_range(self.client.query(&sql), range).bind(MAX_AGGREGATE_ROWS)
    }

    /// Transactions towards `backends`: requests to them, responses from them.
    pub fn backend_transactions_query(&self, backends: &[String], options_only: bool, range: (u64, u64)) -> Query {
        let list = placeholders(backends.len());
        let methods = if options_only { "cseq_method = 'OPTIONS'" } else { "cseq_method NOT IN ('ACK', 'OPTIONS')" };
        let sql = format!(
            "SELECT call_id, cseq_method, if(is_request = 1, dst_ip, src_ip) AS backend, \
             anyIf(src_ip, is_request = 1), minIf({T_US}, is_request = 1) AS req_t, minIf({T_US}, is_request = 0), \
             maxIf(status, is_request = 0) FROM {MESSAGES_TABLE} WHERE {} AND payload_type = 1 AND {methods} \
             AND ((is_request = 1 AND dst_ip IN {list}) OR (is_request = 0 AND src_ip IN {list})) \
             GROUP BY call_id, cseq_num, cseq_method, backend HAVING countIf(is_request = 1) > 0 \
             ORDER BY req_t LIMIT ?",
            range_sql()
        );
        let q = bind_range(self.client.query(&sql), range);
        bind_all(bind_all(q, backends), backends).bind(MAX_AGGREGATE_ROWS)
    }

    /// OPTIONS targets and the nodes that captured the probes.
    pub fn probed_query(&self, range: (u64, u64)) -> Query {
        let sql = format!(
            "SELECT dst_ip, groupUniqArray(node_name) FROM {MESSAGES_TABLE} WHERE {} AND payload_type = 1 \
             AND is_request = 1 AND method = 'OPTIONS' GROUP BY dst_ip ORDER BY dst_ip LIMIT ?",
            range_sql()
        );
        bind_range(self.client.query(&sql), range).bind(MAX_AGGREGATE_ROWS)
    }

    /// Calls touching `addrs` during `touch`, aggregated over `range`.
    pub fn activity_of_calls_query(&self, addrs: &[String], touch: (u64, u64), range: (u64, u64)) -> Query {
        let list = placeholders(addrs.len());
        let sql = format!(
            "SELECT call_id, min({T_US}) AS first_t, max({T_US}), \
             argMaxIf(status, {T_US}, is_request = 0 AND cseq_method = 'INVITE' AND status >= 200), \
             countIf(is_request = 1 AND method = 'BYE') > 0, \
             countIf(is_request = 0 AND cseq_method = 'BYE' AND status >= 200 AND status < 300) > 0, \
             countIf(is_request = 0 AND cseq_method = 'BYE' AND status >= 300) > 0, \
             groupUniqArray(node_name), groupUniqArrayIf(dst_ip, is_request = 1 AND method = 'INVITE'), \
             count() - uniqExact(node_name, msg_hash) \
             FROM {MESSAGES_TABLE} WHERE {} AND payload_type = 1 AND call_id != '' AND cseq_method != 'OPTIONS' \
             AND call_id IN (SELECT call_id FROM {MESSAGES_TABLE} WHERE {} AND payload_type = 1 \
             AND cseq_method != 'OPTIONS' AND (src_ip IN {list} OR dst_ip IN {list})) \
             GROUP BY call_id ORDER BY first_t LIMIT ?",
            range_sql(),
            range_sql()
        );
        let q = bind_range(bind_range(self.client.query(&sql), range), touch);
        bind_all(bind_all(q, addrs), addrs).bind(MAX_AGGREGATE_ROWS)
    }
}

/// Most candidate legs one correlation query returns.
pub const MAX_LEG_CANDIDATES: u32 = 200;
/// Most rows an aggregate of the failover analysis returns.
pub const MAX_AGGREGATE_ROWS: u32 = 100_000;

impl CallQueries for ClickHouseStore {
    async fn search(&self, f: &CallFilter) -> Result<Vec<CallSummary>, String> {
        self.search_query(f).fetch_all().await.map_err(|e| format!("call search: {e}"))
    }

    async fn call(&self, call_id: &str) -> Result<Option<CallSummary>, String> {
        self.call_query(call_id).fetch_optional().await.map_err(|e| format!("call summary: {e}"))
    }

    async fn flow(
        &self,
        call_ids: &[String],
        range: (u64, u64),
        limit: u32,
        raw: bool,
    ) -> Result<Vec<FlowRow>, String> {
        if call_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.flow_query(call_ids, range, limit, raw).fetch_all().await.map_err(|e| format!("call flow: {e}"))
    }

    async fn message(&self, id: u64) -> Result<Option<FlowRow>, String> {
        self.message_query(id).fetch_optional().await.map_err(|e| format!("message: {e}"))
    }

    async fn header_refs(&self, call_id: &str, range: (u64, u64)) -> Result<Vec<HeaderRef>, String> {
        self.header_refs_query(call_id, range).fetch_all().await.map_err(|e| format!("header links: {e}"))
    }

    async fn invites(&self, addrs: &[String], end: InviteEnd, range: (u64, u64)) -> Result<Vec<InviteStart>, String> {
        if addrs.is_empty() {
            return Ok(Vec::new());
        }
        self.invites_query(addrs, end, range).fetch_all().await.map_err(|e| format!("leg candidates: {e}"))
    }

    async fn relays(&self, only: &[String], range: (u64, u64)) -> Result<Vec<Relay>, String> {
        self.relays_query(only, range).fetch_all().await.map_err(|e| format!("relays: {e}"))
    }

    async fn activity(&self, addrs: &[String], range: (u64, u64)) -> Result<Vec<ActivitySecond>, String> {
        if addrs.is_empty() {
            return Ok(Vec::new());
        }
        self.activity_query(addrs, range).fetch_all().await.map_err(|e| format!("address activity: {e}"))
    }

    async fn net_events(&self, range: (u64, u64)) -> Result<Vec<NetEventRow>, String> {
        self.net_events_query(range).fetch_all().await.map_err(|e| format!("network events: {e}"))
    }

    async fn backend_transactions(
        &self,
        backends: &[String],
        options_only: bool,
        range: (u64, u64),
    ) -> Result<Vec<BackendTransaction>, String> {
        if backends.is_empty() {
            return Ok(Vec::new());
        }
        let q = self.backend_transactions_query(backends, options_only, range);
        q.fetch_all().await.map_err(|e| format!("backend transactions: {e}"))
    }

    async fn probed(&self, range: (u64, u64)) -> Result<Vec<Probed>, String> {
        self.probed_query(range).fetch_all().await.map_err(|e| format!("probe targets: {e}"))
    }

    async fn activity_of_calls(
        &self,
        addrs: &[String],
        touch: (u64, u64),
        range: (u64, u64),
    ) -> Result<Vec<CallActivity>, String> {
        if addrs.is_empty() {
            return Ok(Vec::new());
        }
        let q = self.activity_of_calls_query(addrs, touch, range);
        q.fetch_all().await.map_err(|e| format!("calls at an event: {e}"))
    }
}

/// Reads a `String` column as bytes: the raw message need not be UTF-8.
pub(crate) fn byte_buf<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
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
