//! The modern-only DDL (TTL, skip indexes, codecs) and the API's queries on a modern
//! ClickHouse: chDB, ClickHouse 26.x in-process from Python (PyPI `chdb`, installed by
//! `scripts/install-python-deps.sh`). Debian's 18.16 server, which the other tests use,
//! never sees `schema/modern/`, so without this test that path would run first in
//! production.
//!
//! This side renders exactly what the collector would send: every schema statement
//! after substitution ([`schema::render`]) and the read queries with their values bound
//! (the store's query builders, via `sql_display()`). `modern_schema.py` applies them
//! to chDB, inserts three calls and checks the answers.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use collector::config::Config;
use collector::store::clickhouse::ClickHouseStore;
use collector::store::schema::{self, BASE, MODERN};
use collector::store::{CallFilter, InviteEnd};
use serde_json::{json, Value};

const MICROS: u64 = 1_000_000;
const DAY: u64 = 86_400;
const RETENTION_DAYS: u32 = 30;

#[test]
fn modern_schema_and_api_queries_run_on_chdb() {
    // Yesterday 00:00 UTC: recent enough for a 30-day TTL, and a call can cross into today.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let day0 = (now / DAY - 1) * DAY;
    // Call A: answered, seen by lb1 and lb2. Call B: rejected (486), lb1 only.
    // Call C: answered, starts a second before midnight and ends after it.
    let a = ("modern-a@test.example", "+15551230001", "+16667770002", day0 + 10 * 3600);
    let b = ("modern-b@test.example", "+15551239999", "+16667770002", day0 + 11 * 3600);
    let c = ("modern-c@test.example", "+15554440003", "+16668880004", day0 + DAY - 1);
    let window = (day0 * MICROS, (day0 + 2 * DAY) * MICROS);

    let store = ClickHouseStore::new(&ClickHouseStore::server_client(&Config::default()), "sip");
    let sql = |q: clickhouse::query::Query| q.sql_display().to_string();
    let search = |f: CallFilter| {
        let limit = if f.limit == 0 { 100 } else { f.limit };
        sql(store.search_query(&CallFilter { from_us: window.0, to_us: window.1, limit, ..f }))
    };
    let mut queries = serde_json::Map::new();
    let mut add = |name: &str, text: String| {
        assert!(!text.contains('?'), "{name}: unbound placeholder in {text}");
        queries.insert(name.into(), Value::String(text));
    };
    add("call_a", sql(store.call_query(a.0)));
    add("call_c", sql(store.call_query(c.0)));
    add("call_missing", sql(store.call_query("no-such-call")));
    let span = |call: (&str, &str, &str, u64)| (call.3 * MICROS, (call.3 + 31) * MICROS);
    let ids = |call: (&str, &str, &str, u64)| vec![call.0.to_owned()];
    add("flow_a", sql(store.flow_query(&ids(a), span(a), 10_000, false)));
    add("flow_raw_a", sql(store.flow_query(&ids(a), span(a), 10_000, true)));
    add("flow_c", sql(store.flow_query(&ids(c), span(c), 10_000, false)));
    add("flow_a_b", sql(store.flow_query(&[a.0.to_owned(), b.0.to_owned()], (a.3 * MICROS, window.1), 10_000, false)));
    // Correlation and failover analysis (collector/src/correlate).
    let callers = vec!["10.0.0.1".to_owned()];
    let callees = vec!["10.0.0.2".to_owned()];
    add("header_refs_a", sql(store.header_refs_query(a.0, window)));
    add("invites_from_caller", sql(store.invites_query(&callers, InviteEnd::From, window)));
    add("invites_to_callee", sql(store.invites_query(&callees, InviteEnd::To, window)));
    add("relays_all", sql(store.relays_query(&[], window)));
    add("relays_only", sql(store.relays_query(&callers, window)));
    add("activity_caller", sql(store.activity_query(&callers, window)));
    add("net_events", sql(store.net_events_query(window)));
    add("backend_probes", sql(store.backend_transactions_query(&callees, true, window)));
    add("backend_transactions", sql(store.backend_transactions_query(&callees, false, window)));
    add("probed", sql(store.probed_query(window)));
    add("activity_of_calls", sql(store.activity_of_calls_query(&callees, window, window)));
    add("message_3", sql(store.message_query(3)));
    add("search_all", search(CallFilter::default()));
    add("search_number_suffix", search(CallFilter { number: Some("0002".into()), ..CallFilter::default() }));
    add("search_caller", search(CallFilter { number: Some("5554440003".into()), ..CallFilter::default() }));
    add(
        "search_node_status",
        search(CallFilter { node: Some("lb2".into()), status: Some(200), ..CallFilter::default() }),
    );
    add("search_status_486", search(CallFilter { status: Some(486), ..CallFilter::default() }));
    add("search_call_id", search(CallFilter { call_id: Some(b.0.into()), ..CallFilter::default() }));
    add("search_page_2", search(CallFilter { limit: 1, offset: 1, ..CallFilter::default() }));
    add("search_injection", search(CallFilter { number: Some("1' OR '1'='1".into()), ..CallFilter::default() }));

    let statements = |files, days| -> Vec<Value> {
        schema::render(files, days).into_iter().map(|(name, stmt)| json!({"file": name, "sql": stmt})).collect()
    };
    let spec = json!({
        "base": statements(BASE, None),
        "modern": statements(MODERN, Some(RETENTION_DAYS)),
        "retention_days": RETENTION_DAYS,
        "calls": [
            {"call_id": a.0, "caller": a.1, "callee": a.2, "start": a.3, "final": 200, "nodes": ["lb1", "lb2"]},
            {"call_id": b.0, "caller": b.1, "callee": b.2, "start": b.3, "final": 486, "nodes": ["lb1"]},
            {"call_id": c.0, "caller": c.1, "callee": c.2, "start": c.3, "final": 200, "nodes": ["lb1"]},
        ],
        "queries": queries,
    });
    assert!(spec["modern"].as_array().unwrap().len() >= 2, "schema/modern rendered to nothing");

    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let spec_path = dir.join(format!("modern_schema-{}.json", std::process::id()));
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/modern_schema.py");
    let out = Command::new("python3").arg(script).arg(&spec_path).output();
    if std::env::var_os("KEEP_SPEC").is_none() {
        let _ = std::fs::remove_file(&spec_path);
    }
    let out = out.expect("running python3 (needed for the chDB check of the modern schema)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "modern schema check on chDB failed (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    println!("{stdout}");
}
