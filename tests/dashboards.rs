//! The Grafana dashboards in `dashboards/`, tested without a Grafana server.
//!
//! 1. Structure: every dashboard parses; a `datasource` variable of type datasource for
//!    `grafana-clickhouse-datasource` exists and every datasource reference (panels, targets,
//!    query variables) uses `${datasource}`, never a fixed uid; panel types are Grafana's own;
//!    every target is a raw SQL target (`editorType: sql`, `rawSql`) whose format matches its
//!    panel; data links open the collector's `flow.html` under `${collector_url}`.
//! 2. SQL: corpus captures are replayed by the real `capture-agent` into the real `collector`,
//!    which stores them in a real ClickHouse 18.16 (database `sip`, the dashboards' default).
//!    Every query (variables and panels) is expanded as Grafana and the plugin would do it
//!    ([`expand`]) for several variable settings, run on 18.16, and its columns checked against
//!    what its panel needs (timeseries: a `time` column, numbers, string labels, sorted by
//!    time; table: the named columns; stat: one number).
//! 3. The same expanded SQL runs on modern ClickHouse (chDB 26.x, in-process, through
//!    `dashboards/test/chdb_queries.py`) on the same rows, with the same checks and the same
//!    row counts.
//! 4. The links: the URL a row's data link gives, filled in like Grafana does, is fetched from
//!    the running collector and answers the call's HTML ladder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use e2e::{agent, clickhouse, corpus, eventually, http, repo, sent_by, sql, wait_for_rows, Collector};
use serde_json::{json, Value};

/// The plugin id FACTS.md gives; the only datasource type the dashboards may use.
const PLUGIN: &str = "grafana-clickhouse-datasource";
const DS_UID: &str = "${datasource}";
/// The database every dashboard defaults to, and the one this test fills.
const DB: &str = "sip";

/// Grafana's built-in panel types (10.x / 11.x).
const PANEL_TYPES: &[&str] = &[
    "timeseries",
    "table",
    "stat",
    "gauge",
    "bargauge",
    "barchart",
    "piechart",
    "text",
    "row",
    "logs",
    "heatmap",
    "histogram",
    "state-timeline",
    "status-history",
    "xychart",
    "trend",
    "candlestick",
    "nodeGraph",
    "traces",
    "flamegraph",
    "geomap",
    "canvas",
    "news",
    "dashlist",
    "alertlist",
    "annolist",
    "datagrid",
];

/// Columns each table panel must return, in order: (file, panel title, columns).
const TABLE_COLUMNS: &[(&str, &str, &[&str])] = &[
    ("sip-overview.json", "Top failure codes", &["status", "reason", "calls", "example_call_id"]),
    ("sip-overview.json", "Busiest SIP hosts (addresses)", &["host", "sent", "received", "total"]),
    (
        "sip-call-search.json",
        "Calls",
        &[
            "started",
            "call_id",
            "caller",
            "callee",
            "status",
            "outcome",
            "duration_s",
            "messages",
            "capture_nodes",
            "methods_seen",
        ],
    ),
];

/// Captures replayed, each under its own capture node name.
const CAPTURES: &[(&str, &str)] = &[
    ("gen/topology_lb_b2bua_sip_only.pcap", "lb1"),
    ("gen/sipp_basic.pcap", "edge1"),
    ("pcap/sipnab/sip-routing-error.pcapng", "pbx-a"),
    ("pcap/sipnab/sip-488-codec-reject.pcapng", "pbx-b"),
    // HEP mirrors keep their sender's node id; this one also carries an RTCP report.
    ("gen/synthetic/hep3_udp_variants.pcap", "relay"),
];

// ---------------------------------------------------------------------------------------
// Expansion: what Grafana's frontend and the plugin's backend do to a rawSql before
// ClickHouse sees it. Only what the dashboards use is implemented; anything else is an error,
// so a dashboard cannot silently depend on an untested feature.
// ---------------------------------------------------------------------------------------

/// A template variable's current value.
#[derive(Clone, Debug)]
enum Var {
    /// A single value (textbox, constant, single-value custom or query variable).
    One(String),
    /// Some values of a multi-value variable.
    Many(Vec<String>),
    /// "All" of a multi-value variable (no custom all value): Grafana sends every option.
    All(Vec<String>),
}

/// The dashboard time range and the interval Grafana computes for it.
#[derive(Clone, Copy, Debug)]
struct Range {
    /// Unix seconds.
    from: i64,
    to: i64,
    /// `$__interval_s`: like Grafana with 1000 data points (range / 1000, at least 1 s; Grafana
    /// also rounds to a "nice" step, which changes bucket sizes, not query shapes).
    interval_s: i64,
}

impl Range {
    fn new(from: i64, to: i64) -> Self {
        Self { from, to, interval_s: ((to - from) / 1000).max(1) }
    }
}

/// Expands `raw` in Grafana's order: the plugin's `$__conditionalAll` (frontend, on the raw
/// text), template variables (frontend), then the plugin's backend macros.
fn expand(raw: &str, vars: &BTreeMap<String, Var>, range: Range) -> Result<String, String> {
    let sql = conditional_all(raw, vars)?;
    let sql = interpolate(&sql, vars)?;
    let sql = backend_macros(&sql, range)?;
    if sql.contains('$') {
        return Err(format!("`$` left after expansion:\n{sql}"));
    }
    Ok(sql)
}

/// The arguments of a macro call starting at `open` (the index of its `(`), split on
/// top-level commas and trimmed, and the index just past its `)`.
fn macro_args(s: &str, open: usize) -> Result<(Vec<String>, usize), String> {
    let bytes = s.as_bytes();
    let (mut depth, mut start, mut args) = (0usize, open + 1, Vec::new());
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    args.push(s[start..i].trim().to_string());
                    return Ok((args, i + 1));
                }
            }
            b',' if depth == 1 => {
                args.push(s[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    Err(format!("unbalanced parentheses after {}", &s[..open]))
}

/// `$__conditionalAll(condition, $var)`: `1=1` when `var` is "All" or empty, else the
/// condition (the plugin's frontend, CHDatasource.applyConditionalAll, innermost-last first).
fn conditional_all(raw: &str, vars: &BTreeMap<String, Var>) -> Result<String, String> {
    const MACRO: &str = "$__conditionalAll";
    let mut s = raw.to_string();
    while let Some(at) = s.rfind(MACRO) {
        let open = at + MACRO.len();
        if s.as_bytes().get(open) != Some(&b'(') {
            return Err("$__conditionalAll without arguments".into());
        }
        let (args, end) = macro_args(&s, open)?;
        let [cond, var] = args.as_slice() else {
            return Err(format!("$__conditionalAll takes 2 arguments, got {args:?}"));
        };
        let name = var.trim_start_matches('$').trim_start_matches('{').trim_end_matches('}');
        let all = match vars.get(name) {
            Some(Var::All(_)) => true,
            Some(Var::One(v)) => v.is_empty(),
            Some(Var::Many(v)) => v.is_empty(),
            None => return Err(format!("$__conditionalAll on unknown variable `{name}`")),
        };
        let phrase = if all { "1=1".to_string() } else { cond.clone() };
        s.replace_range(at..end, &phrase);
    }
    Ok(s)
}

/// Grafana's template interpolation for `$name`, `${name}` and `${name:format}`. Names
/// starting with `__` are Grafana built-ins or plugin macros and stay as they are.
/// Formats: none (the plugin's default: a list becomes `'a','b'`, a single value is inserted
/// as is), `singlequote` (`'a','b'`, `'` escaped as `\'`), `sqlstring` (`'a','b'`, `'`
/// doubled).
fn interpolate(sql: &str, vars: &BTreeMap<String, Var>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, format, len) = if let Some(inner) = after.strip_prefix('{') {
            let close = inner.find('}').ok_or("unclosed ${")?;
            let body = &inner[..close];
            let (name, format) = body.split_once(':').map_or((body, None), |(n, f)| (n, Some(f)));
            (name, format, close + 2)
        } else {
            let n = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..n], None, n)
        };
        if name.is_empty() || name.starts_with("__") {
            out.push('$');
            rest = after;
            continue;
        }
        let var = vars.get(name).ok_or_else(|| format!("variable `{name}` is not defined by the dashboard"))?;
        let values: Vec<&str> = match var {
            Var::One(v) => vec![v.as_str()],
            Var::Many(v) | Var::All(v) => v.iter().map(String::as_str).collect(),
        };
        let quoted = |esc: &dyn Fn(&str) -> String| values.iter().map(|v| format!("'{}'", esc(v))).collect::<Vec<_>>();
        let text = match (format, var) {
            (None, Var::One(v)) => v.clone(),
            (None, _) => quoted(&|v| v.to_string()).join(","),
            (Some("singlequote"), _) => quoted(&|v| v.replace('\'', "\\'")).join(","),
            (Some("sqlstring"), _) => quoted(&|v| v.replace('\'', "''")).join(","),
            (Some(f), _) => return Err(format!("format `{f}` of `{name}` is not implemented by this test")),
        };
        out.push_str(&text);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The plugin's backend macros (pkg/macros in grafana/clickhouse-datasource 4.x), all in
/// UTC seconds: `$__timeFilter(c)`, `$__dateFilter(c)`, `$__timeInterval(c)`, `$__fromTime`,
/// `$__toTime`, `$__interval_s`.
fn backend_macros(sql: &str, range: Range) -> Result<String, String> {
    let date = |t: i64| format!("toDate('{}')", civil_date(t));
    let mut s = sql.to_string();
    let mut search_from = 0;
    while let Some(rel) = s[search_from..].find("$__") {
        let at = search_from + rel;
        let name_len = s[at + 3..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len() - at - 3);
        let name = s[at + 3..at + 3 + name_len].to_string();
        let mut end = at + 3 + name_len;
        let mut args = Vec::new();
        if s.as_bytes().get(end) == Some(&b'(') {
            (args, end) = macro_args(&s, end)?;
        }
        let one = |args: &[String]| match args {
            [col] => Ok(col.clone()),
            _ => Err(format!("$__{name} takes one argument, got {args:?}")),
        };
        let text = match name.as_str() {
            "timeFilter" => {
                let c = one(&args)?;
                format!("{c} >= toDateTime({}) AND {c} <= toDateTime({})", range.from, range.to)
            }
            "dateFilter" => {
                let c = one(&args)?;
                format!("{c} >= {} AND {c} <= {}", date(range.from), date(range.to))
            }
            "timeInterval" => {
                format!("toStartOfInterval(toDateTime({}), INTERVAL {} second)", one(&args)?, range.interval_s)
            }
            "fromTime" => format!("toDateTime({})", range.from),
            "toTime" => format!("toDateTime({})", range.to),
            "interval_s" => range.interval_s.to_string(),
            other => return Err(format!("macro $__{other} is not implemented by this test")),
        };
        s.replace_range(at..end, &text);
        search_from = at + text.len();
    }
    Ok(s)
}

/// `YYYY-MM-DD` (UTC) of a Unix time (days-to-civil, proleptic Gregorian).
fn civil_date(t: i64) -> String {
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Grafana's `percentencode` (encodeURIComponent, plus `!'()*`).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn expansion_follows_the_plugin() {
    let vars: BTreeMap<String, Var> = [
        ("database", Var::One("sip".into())),
        ("node", Var::Many(vec!["a".into(), "o'b".into()])),
        ("all", Var::All(vec!["x".into(), "y".into()])),
        ("empty", Var::One(String::new())),
        ("text", Var::One("it's".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let range = Range::new(1_700_000_000, 1_700_003_600);
    let ok = |s: &str| expand(s, &vars, range).unwrap();
    assert_eq!(ok("$__timeFilter(ts)"), "ts >= toDateTime(1700000000) AND ts <= toDateTime(1700003600)");
    assert_eq!(ok("$__dateFilter(date)"), "date >= toDate('2023-11-14') AND date <= toDate('2023-11-14')");
    assert_eq!(ok("$__timeInterval(ts)"), "toStartOfInterval(toDateTime(ts), INTERVAL 3 second)");
    assert_eq!(ok("$__fromTime, $__toTime, $__interval_s"), "toDateTime(1700000000), toDateTime(1700003600), 3");
    assert_eq!(ok("FROM ${database}.t, $database.u"), "FROM sip.t, sip.u");
    assert_eq!(ok("IN (${node:singlequote})"), r"IN ('a','o\'b')");
    assert_eq!(ok("IN ($node)"), "IN ('a','o'b')", "the plugin's default format does not escape");
    assert_eq!(ok("= ${text:sqlstring}"), "= 'it''s'");
    assert_eq!(ok("$__conditionalAll(n IN (${node:singlequote}), $node)"), r"n IN ('a','o\'b')");
    assert_eq!(ok("$__conditionalAll(n IN (${all:singlequote}), $all) AND x"), "1=1 AND x");
    assert_eq!(ok("$__conditionalAll((f(a, ${empty:sqlstring}) OR b), $empty)"), "1=1");
    assert_eq!(ok("IN (${all:singlequote})"), "IN ('x','y')", "All without $__conditionalAll sends every option");
    assert!(expand("${nope}", &vars, range).is_err());
    assert!(expand("$__timeGroup(ts)", &vars, range).is_err());
    assert!(expand("${node:regex}", &vars, range).is_err());
    assert_eq!(civil_date(0), "1970-01-01");
    assert_eq!(civil_date(1_795_312_000), "2026-11-22");
    assert_eq!(percent_encode("a1@b.c/d e"), "a1%40b.c%2Fd%20e");
}

// ---------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------

struct Dashboard {
    file: String,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    let dir = repo().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "dashboards/*.json: expected the overview and the call search, found {files:?}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            Dashboard { file: p.file_name().unwrap().to_string_lossy().into_owned(), json }
        })
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn variables(d: &Value) -> &[Value] {
    d["templating"]["list"].as_array().map_or(&[], Vec::as_slice)
}

fn panels(d: &Value) -> Vec<&Value> {
    // Rows may hold collapsed panels.
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Every datasource reference anywhere in the JSON, with its path.
fn datasource_refs<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if k == "datasource" && !child.is_null() {
                    out.push((p.clone(), child));
                }
                datasource_refs(child, p, out);
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| datasource_refs(c, format!("{path}[{i}]"), out)),
        _ => {}
    }
}

/// Data links of a panel: (field the link is attached to, or "" for all fields; URL).
fn data_links(panel: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let fc = &panel["fieldConfig"];
    for l in fc["defaults"]["links"].as_array().into_iter().flatten() {
        out.push((String::new(), str_of(l, "url").to_string()));
    }
    for o in fc["overrides"].as_array().into_iter().flatten() {
        let field = str_of(&o["matcher"], "options").to_string();
        for prop in o["properties"].as_array().into_iter().flatten().filter(|p| p["id"] == "links") {
            for l in prop["value"].as_array().into_iter().flatten() {
                out.push((field.clone(), str_of(l, "url").to_string()));
            }
        }
    }
    out
}

/// Structural problems of one dashboard.
fn structure_errors(d: &Dashboard) -> Vec<String> {
    let mut errs = Vec::new();
    let mut err = |m: String| errs.push(format!("{}: {m}", d.file));
    let j = &d.json;
    if str_of(j, "uid").is_empty() || str_of(j, "title").is_empty() {
        err("needs a uid and a title".into());
    }
    let schema = j["schemaVersion"].as_i64().unwrap_or(0);
    if !(37..=41).contains(&schema) {
        err(format!("schemaVersion {schema} is not Grafana 10/11's (37..=41)"));
    }
    if j.get("__inputs").is_some() || j.to_string().contains("${DS_") {
        err("exported-for-sharing placeholders (__inputs / ${DS_...}) instead of the datasource variable".into());
    }
    // Variables.
    let vars = variables(j);
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    match var("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == PLUGIN => {}
        _ => err(format!("no `datasource` variable of type datasource for {PLUGIN}")),
    }
    match var("database") {
        Some(v) if v["current"]["value"] == DB => {}
        _ => err(format!("no `database` variable defaulting to `{DB}`")),
    }
    match var("node") {
        Some(v) if v["type"] == "query" && v["multi"] == true && v["includeAll"] == true => {}
        _ => err("no multi-value `node` query variable with All".into()),
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let q = &v["query"];
        if q["editorType"] != "sql" || str_of(q, "rawSql").is_empty() {
            err(format!("variable {}: query must be {{editorType: sql, rawSql}}", v["name"]));
        }
    }
    // Datasource references.
    let mut refs = Vec::new();
    datasource_refs(j, String::new(), &mut refs);
    for (path, r) in refs {
        if r.get("type").and_then(Value::as_str) != Some(PLUGIN) || r.get("uid").and_then(Value::as_str) != Some(DS_UID)
        {
            err(format!("{path} = {r}: must be {{type: {PLUGIN}, uid: {DS_UID}}}"));
        }
    }
    // Panels.
    let mut ids = std::collections::HashSet::new();
    for p in panels(j) {
        let (title, ptype) = (str_of(p, "title"), str_of(p, "type"));
        if !ids.insert(p["id"].as_i64().unwrap_or(-1)) {
            err(format!("panel `{title}`: duplicate or missing id"));
        }
        if !PANEL_TYPES.contains(&ptype) {
            err(format!("panel `{title}`: type `{ptype}` is not a Grafana panel type"));
        }
        if p["gridPos"]["w"].as_i64().unwrap_or(0) == 0 || p["gridPos"]["h"].as_i64().unwrap_or(0) == 0 {
            err(format!("panel `{title}`: no gridPos"));
        }
        let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if matches!(ptype, "text" | "row") {
            if !targets.is_empty() {
                err(format!("panel `{title}`: a {ptype} panel has no queries"));
            }
            continue;
        }
        if targets.is_empty() {
            err(format!("panel `{title}`: no targets"));
        }
        if p["datasource"]["uid"] != DS_UID {
            err(format!("panel `{title}`: panel datasource must be {DS_UID}"));
        }
        let (want_format, want_type) = if ptype == "timeseries" { (0, "timeseries") } else { (1, "table") };
        for t in targets {
            if t["editorType"] != "sql" || str_of(t, "rawSql").trim().is_empty() || str_of(t, "refId").is_empty() {
                err(format!("panel `{title}`: each target needs editorType sql, rawSql and refId"));
            }
            if t["format"] != want_format || t["queryType"] != want_type {
                err(format!("panel `{title}`: a {ptype} target needs format {want_format}, queryType {want_type}"));
            }
        }
        if ptype == "table" && !TABLE_COLUMNS.iter().any(|(f, t, _)| *f == d.file && *t == title) {
            err(format!("table `{title}`: list its columns in TABLE_COLUMNS"));
        }
        for (field, url) in data_links(p) {
            let want = format!("${{collector_url}}/api/v1/calls/${{__data.fields.{field}:percentencode}}/flow.html");
            if url != want {
                err(format!("panel `{title}`: link `{url}` should be `{want}`"));
            }
        }
    }
    if d.file == "sip-call-search.json" {
        match var("collector_url") {
            Some(v)
                if matches!(v["type"].as_str(), Some("textbox" | "constant"))
                    && v["query"] == "http://127.0.0.1:9080" => {}
            _ => err("no `collector_url` textbox/constant defaulting to http://127.0.0.1:9080".into()),
        }
        let linked =
            panels(j).iter().any(|p| p["type"] == "table" && data_links(p).iter().any(|(f, _)| f == "call_id"));
        if !linked {
            err("the calls table has no data link on call_id to the collector's flow.html".into());
        }
        for name in ["number", "call_id", "status"] {
            if var(name).is_none() {
                err(format!("no `{name}` filter variable"));
            }
        }
    }
    errs
}

#[test]
fn dashboards_are_well_formed() {
    let errs: Vec<String> = dashboards().iter().flat_map(structure_errors).collect();
    assert!(errs.is_empty(), "{} problem(s):\n{}", errs.len(), errs.join("\n"));
}

/// The provisioning examples (no YAML parser here: the lines that matter, uncommented).
#[test]
fn provisioning_examples_name_the_plugin_and_the_dashboards_folder() {
    let read = |f: &str| {
        let text = std::fs::read_to_string(repo().join("dashboards/provisioning").join(f)).unwrap();
        text.lines()
            .map(|l| l.split('#').next().unwrap().trim().to_string())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    };
    let ds = read("datasources/clickhouse.yaml");
    for want in ["apiVersion: 1", &format!("type: {PLUGIN}"), &format!("defaultDatabase: {DB}")] {
        assert!(ds.iter().any(|l| l == want), "datasources/clickhouse.yaml lacks `{want}`: {ds:?}");
    }
    assert!(ds.iter().any(|l| l.starts_with("password: $")), "the password comes from the environment: {ds:?}");
    let dash = read("dashboards/sip.yaml");
    for want in ["apiVersion: 1", "type: file"] {
        assert!(dash.iter().any(|l| l == want), "dashboards/sip.yaml lacks `{want}`: {dash:?}");
    }
    assert!(dash.iter().any(|l| l.starts_with("path: /")), "dashboards/sip.yaml needs options.path: {dash:?}");
}

// ---------------------------------------------------------------------------------------
// Running the SQL
// ---------------------------------------------------------------------------------------

/// What a query's result must look like.
#[derive(Clone, Debug)]
enum Shape {
    /// A template variable: one column of values.
    Variable,
    /// A `time` column first, then numbers and string labels; sorted by time.
    TimeSeries,
    /// These columns, in this order.
    Table(Vec<String>),
    /// One row, one number.
    Stat,
}

/// One expanded query to run on both servers.
#[derive(Clone, Debug)]
struct Job {
    /// `file / pass / panel`.
    key: String,
    sql: String,
    shape: Shape,
    /// Columns some data link or override refers to.
    linked: Vec<String>,
    /// Whether this pass must return rows.
    needs_rows: bool,
}

/// A result: column names and types, row count, rows as JSON objects.
#[derive(Debug, Clone)]
struct Answer {
    meta: Vec<(String, String)>,
    rows: Vec<Value>,
}

fn unwrap_type(t: &str) -> &str {
    let t = t.strip_prefix("Nullable(").and_then(|t| t.strip_suffix(')')).unwrap_or(t);
    t.strip_prefix("LowCardinality(").and_then(|t| t.strip_suffix(')')).unwrap_or(t)
}

fn is_numeric(t: &str) -> bool {
    let t = unwrap_type(t);
    ["Int", "UInt", "Float", "Decimal"].iter().any(|p| t.starts_with(p))
}

fn is_time(t: &str) -> bool {
    let t = unwrap_type(t);
    t.starts_with("DateTime") || t == "Date"
}

fn is_label(t: &str) -> bool {
    let t = unwrap_type(t);
    t == "String" || t.starts_with("FixedString")
}

/// Whether `answer` fits `job`'s panel.
fn shape_error(job: &Job, a: &Answer) -> Option<String> {
    if job.needs_rows && a.rows.is_empty() {
        return Some("no rows".into());
    }
    let names: Vec<&str> = a.meta.iter().map(|(n, _)| n.as_str()).collect();
    for l in &job.linked {
        if !names.contains(&l.as_str()) {
            return Some(format!("column `{l}` (used by a link or override) missing from {names:?}"));
        }
    }
    match &job.shape {
        Shape::Variable => (a.meta.len() != 1 || !is_label(&a.meta[0].1))
            .then(|| format!("a variable query returns one string column, not {:?}", a.meta)),
        Shape::Stat => {
            if a.rows.len() != 1 || a.meta.len() != 1 || !is_numeric(&a.meta[0].1) {
                Some(format!("a stat needs one row with one number, got {} row(s) of {:?}", a.rows.len(), a.meta))
            } else {
                None
            }
        }
        Shape::Table(cols) => (names != *cols).then(|| format!("columns {names:?}, the panel shows {cols:?}")),
        Shape::TimeSeries => {
            let (first, rest) = a.meta.split_first()?;
            if first.0 != "time" || !is_time(&first.1) {
                return Some(format!("a timeseries starts with a `time` DateTime column, not {first:?}"));
            }
            if !rest.iter().any(|(_, t)| is_numeric(t)) || rest.iter().any(|(_, t)| !is_numeric(t) && !is_label(t)) {
                return Some(format!("a timeseries needs numbers (and string labels only): {:?}", a.meta));
            }
            let times: Vec<&str> = a.rows.iter().map(|r| r["time"].as_str().unwrap_or("")).collect();
            (!times.windows(2).all(|w| w[0] <= w[1])).then(|| "rows are not sorted by time".into())
        }
    }
}

/// Runs a query on the 18.16 server.
fn run_1816(sql: &str) -> Result<Answer, String> {
    let (status, body) = http("POST", clickhouse(), "/", format!("{sql}\nFORMAT JSON").as_bytes());
    let text = String::from_utf8_lossy(&body);
    if status != 200 {
        return Err(text.trim().to_string());
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("answer is not JSON ({e})"))?;
    Ok(answer(&v))
}

fn answer(v: &Value) -> Answer {
    let meta = v["meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let pair = |n: &str, i: usize| m.get(n).or_else(|| m.get(i)).and_then(Value::as_str).unwrap().to_string();
            (pair("name", 0), pair("type", 1))
        })
        .collect();
    Answer { meta, rows: v["data"].as_array().cloned().unwrap_or_default() }
}

/// A number from a JSON cell (64-bit integers come quoted).
fn num(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(f64::NAN)
}

/// Variable values for a pass: each variable's dashboard default, then `overrides`.
/// Query variables get their options by running their own SQL on 18.16.
fn pass_vars(d: &Dashboard, range: Range, overrides: &[(&str, Var)]) -> Result<BTreeMap<String, Var>, String> {
    let mut vars = BTreeMap::new();
    for v in variables(&d.json) {
        let name = str_of(v, "name").to_string();
        let current = &v["current"]["value"];
        let value = match str_of(v, "type") {
            "datasource" => continue,
            "textbox" | "constant" => Var::One(str_of(v, "query").to_string()),
            "custom" | "query" => {
                let options: Vec<String> = if v["type"] == "custom" {
                    str_of(v, "query").split(',').map(|s| s.trim().to_string()).collect()
                } else {
                    let sql = expand(str_of(&v["query"], "rawSql"), &vars, range)?;
                    let a = run_1816(&sql).map_err(|e| format!("variable {name}: {e}"))?;
                    a.rows.iter().map(|r| r[&a.meta[0].0].as_str().unwrap_or("").to_string()).collect()
                };
                match current {
                    Value::Array(a) if a.iter().any(|x| x == "$__all") => Var::All(options),
                    Value::Array(a) => Var::Many(a.iter().map(|x| x.as_str().unwrap().to_string()).collect()),
                    Value::String(s) => Var::One(s.clone()),
                    other => return Err(format!("variable {name}: current value {other}")),
                }
            }
            other => return Err(format!("variable {name}: type {other} not handled by this test")),
        };
        vars.insert(name, value);
    }
    for (k, v) in overrides {
        assert!(vars.contains_key(*k), "{}: no variable {k}", d.file);
        vars.insert(k.to_string(), v.clone());
    }
    Ok(vars)
}

/// The jobs of one dashboard for one pass.
fn jobs(d: &Dashboard, pass: &str, vars: &BTreeMap<String, Var>, range: Range, needs_rows: bool) -> Vec<Job> {
    let mut out = Vec::new();
    let mut push = |title: &str, raw: &str, shape: Shape, linked: Vec<String>| {
        let key = format!("{} / {pass} / {title}", d.file);
        let sql = expand(raw, vars, range).unwrap_or_else(|e| panic!("{key}: {e}"));
        out.push(Job { key, sql, shape, linked, needs_rows });
    };
    for v in variables(&d.json).iter().filter(|v| v["type"] == "query") {
        push(&format!("variable {}", str_of(v, "name")), str_of(&v["query"], "rawSql"), Shape::Variable, vec![]);
    }
    for p in panels(&d.json) {
        let title = str_of(p, "title");
        let shape = match str_of(p, "type") {
            "timeseries" => Shape::TimeSeries,
            "stat" => Shape::Stat,
            "table" => {
                let cols = TABLE_COLUMNS.iter().find(|(f, t, _)| *f == d.file && *t == title).map(|c| c.2);
                Shape::Table(cols.unwrap_or_default().iter().map(|c| c.to_string()).collect())
            }
            _ => continue,
        };
        let mut linked: Vec<String> = data_links(p).into_iter().map(|(f, _)| f).filter(|f| !f.is_empty()).collect();
        for o in p["fieldConfig"]["overrides"].as_array().into_iter().flatten() {
            if o["matcher"]["id"] == "byName" {
                linked.push(str_of(&o["matcher"], "options").to_string());
            }
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            push(title, str_of(t, "rawSql"), shape.clone(), linked.clone());
        }
    }
    out
}

fn replay(collector: &Collector) -> u64 {
    let mut sent = 0;
    for (file, node) in CAPTURES {
        let path = corpus().join(file);
        let out = agent(&["-r", path.to_str().unwrap(), "-hs", &collector.hep, "-nt", "tcp", "--node-name", node]);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        sent += sent_by(&out);
    }
    sent
}

/// Runs the jobs on chDB over a copy of the rows stored in 18.16.
fn run_chdb(jobs: &[Job], tmp: &std::path::Path) -> Value {
    let tsv = tmp.join("sip_messages.tsv");
    let (status, body) =
        http("POST", clickhouse(), "/", format!("SELECT * FROM {DB}.sip_messages FORMAT TabSeparated").as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    std::fs::write(&tsv, body).unwrap();
    // The collector's DDL as it applies it to a modern server; retention (the TTL file) is
    // off, as it would drop these old captures.
    let schema: Vec<String> = ["001_sip_messages.sql", "002_sip_calls.sql", "modern/102_indexes.sql"]
        .iter()
        .map(|f| repo().join("schema").join(f).to_string_lossy().into_owned())
        .collect();
    let queries: serde_json::Map<String, Value> = jobs.iter().map(|j| (j.key.clone(), json!(j.sql))).collect();
    let job = json!({"database": DB, "schema": schema, "messages_tsv": tsv, "queries": queries});
    let job_file = tmp.join("job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();
    let script = repo().join("dashboards/test/chdb_queries.py");
    let out = Command::new("python3").arg(&script).arg(&job_file).env("TZ", "UTC").output().unwrap_or_else(|e| {
        panic!(
            "cannot run python3 ({e}): install Python 3 and chDB (`pip install chdb`) for the modern-ClickHouse check"
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(3),
        "python3 cannot import chdb, needed to run the dashboards' SQL on modern ClickHouse: run `pip install chdb` \
         (or scripts/install-python-deps.sh)\n{stderr}"
    );
    assert!(out.status.success(), "{} failed:\n{stderr}", script.display());
    serde_json::from_slice(&out.stdout).expect("chdb_queries.py prints JSON")
}

#[test]
fn every_panel_query_runs_on_clickhouse_18_16_and_on_modern_clickhouse() {
    let started = std::time::Instant::now();
    let collector = Collector::start(DB);
    let sent = replay(&collector);
    assert_eq!(wait_for_rows(DB, sent), sent, "every message sent is stored");
    let summarised = format!("SELECT countMerge(messages) FROM {DB}.sip_calls");
    let want = sql(&format!("SELECT count() FROM {DB}.sip_messages WHERE payload_type = 1 AND call_id != ''"));
    assert!(eventually(|| sql(&summarised) == want), "the call summary catches up with the messages");
    let bounds = sql(&format!("SELECT toUInt32(min(ts)), toUInt32(max(ts)) FROM {DB}.sip_messages"));
    let b: Vec<i64> = bounds.split_whitespace().map(|x| x.parse().unwrap()).collect();
    // The captures span 2016..2026: one range over all of them, as a user zoomed out would see.
    let range = Range::new(b[0] - 60, b[1] + 60);

    let boards = dashboards();
    let board = |f: &str| boards.iter().find(|d| d.file == f).unwrap_or_else(|| panic!("dashboards/{f} missing"));
    let (overview, search) = (board("sip-overview.json"), board("sip-call-search.json"));
    let mut r = Runner::default();

    // Pass 1: every dashboard with its default variables (database sip, every node, no
    // filter). Every query must return rows.
    let mut defaults = BTreeMap::new();
    for d in &boards {
        let vars = pass_vars(d, range, &[]).unwrap_or_else(|e| panic!("{}: {e}", d.file));
        defaults.extend(r.run(jobs(d, "defaults", &vars, range, true)));
    }
    let calls = defaults
        .get("sip-call-search.json / defaults / Calls")
        .unwrap_or_else(|| panic!("the call search failed on 18.16:\n{}", r.failures.join("\n")))
        .rows
        .clone();
    // A failed call and an answered one, from the search itself.
    let pick = |outcome: &str| {
        calls
            .iter()
            .find(|r| r["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} call in {calls:?}"))
            .clone()
    };
    let (failed, answered) = (pick("failed"), pick("answered"));
    let first_node = |r: &Value| str_of(r, "capture_nodes").split(", ").next().unwrap().to_string();
    let nodes = Var::Many(vec![first_node(&failed), first_node(&answered)]);

    // Pass 2: the overview on two chosen nodes (multi-value IN lists); rows everywhere.
    let vars = pass_vars(overview, range, &[("node", nodes.clone())]).unwrap();
    r.run(jobs(overview, "two nodes", &vars, range, true));

    // Pass 3: the search narrowed to the failed call by every filter at once.
    let call_id = str_of(&failed, "call_id").to_string();
    let callee = str_of(&failed, "callee");
    let needle = &call_id[call_id.len() / 4..call_id.len() * 3 / 4];
    let narrowed = [
        ("call_id", Var::One(needle.to_string())),
        ("number", Var::One(callee[callee.len().saturating_sub(3)..].to_string())),
        ("node", Var::Many(vec![first_node(&failed)])),
        ("status", Var::Many(vec!["failed".into(), "busy".into()])),
        ("kind", Var::One("all".into())),
    ];
    let vars = pass_vars(search, range, &narrowed).unwrap();
    let one = r.run(jobs(search, "one call", &vars, range, true));
    if let Some(a) = one.get("sip-call-search.json / one call / Calls") {
        let ids: Vec<&str> = a.rows.iter().map(|r| str_of(r, "call_id")).collect();
        assert_eq!(ids, [call_id.as_str()], "narrowing the search to {call_id} by all filters");
    }
    // Pass 4: a number nobody has: the table is empty and the count is 0 (filters filter).
    let vars = pass_vars(search, range, &[("number", Var::One("no-such-number".into()))]).unwrap();
    let none = r.run(jobs(search, "no match", &vars, range, false));
    if let Some(a) = none.get("sip-call-search.json / no match / Calls") {
        assert!(a.rows.is_empty(), "an unknown number matches nothing: {:?}", a.rows);
    }
    if let Some(a) = none.get("sip-call-search.json / no match / Matching calls") {
        assert_eq!(num(&a.rows[0]["calls"]), 0.0);
    }

    // The links: fill each data link from the first row as Grafana would, fetch it.
    for d in &boards {
        for p in panels(&d.json) {
            for (field, url) in data_links(p) {
                let key = format!("{} / defaults / {}", d.file, str_of(p, "title"));
                let Some(row) = defaults.get(&key).and_then(|a| a.rows.first()) else { continue };
                let value = str_of(row, &field);
                let href = url
                    .replace("${collector_url}", &format!("http://{}", collector.api))
                    .replace(&format!("${{__data.fields.{field}:percentencode}}"), &percent_encode(value));
                let path = href.strip_prefix(&format!("http://{}", collector.api)).unwrap();
                let (status, body) = http("GET", &collector.api, path, b"");
                let body = String::from_utf8_lossy(&body);
                if status != 200 || !body.contains("<svg") || !body.contains(&html_escape(value)) {
                    r.failures.push(format!("{key}: link {href} answered {status}:\n{}", &body[..body.len().min(300)]));
                }
            }
        }
    }
    drop(collector);

    // The same SQL on modern ClickHouse, over the same rows.
    let tmp = std::env::temp_dir().join(format!("dashboards-chdb-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let modern = run_chdb(&r.jobs, &tmp);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(modern["rows_loaded"].as_u64(), Some(sent), "chDB loaded every stored row");
    assert_eq!(modern["summary_messages"].to_string(), want.trim(), "chDB's materialized view summarised them all");
    let version = modern["version"].as_str().unwrap_or("?");
    assert!(version.split('.').next().and_then(|m| m.parse::<u32>().ok()).unwrap_or(0) >= 23, "chDB {version}");
    let mut failures = std::mem::take(&mut r.failures);
    for job in &r.jobs {
        let res = &modern["results"][&job.key];
        if let Some(e) = res.get("error") {
            failures.push(format!("[chDB {version}] {}: {e}\n{}", job.key, job.sql));
            continue;
        }
        let a = answer(res);
        if let Some(e) = shape_error(job, &a) {
            failures.push(format!("[chDB {version}] {}: {e}", job.key));
        }
        if let Some(old) = r.rows_1816.get(&job.key).filter(|&&n| n != a.rows.len()) {
            failures.push(format!("{}: {old} row(s) on 18.16, {} on chDB {version}", job.key, a.rows.len()));
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
    eprintln!("{} queries checked on 18.16 and chDB {version} in {:?}", r.jobs.len(), started.elapsed());
}

/// Runs jobs on 18.16 and keeps what the chDB run needs.
#[derive(Default)]
struct Runner {
    jobs: Vec<Job>,
    failures: Vec<String>,
    rows_1816: BTreeMap<String, usize>,
}

impl Runner {
    fn run(&mut self, jobs: Vec<Job>) -> BTreeMap<String, Answer> {
        let mut answers = BTreeMap::new();
        for job in jobs {
            match run_1816(&job.sql) {
                Ok(a) => {
                    if let Some(e) = shape_error(&job, &a) {
                        self.failures.push(format!("[18.16] {}: {e}\n{}", job.key, job.sql));
                    }
                    self.rows_1816.insert(job.key.clone(), a.rows.len());
                    answers.insert(job.key.clone(), a);
                }
                Err(e) => self.failures.push(format!("[18.16] {}: {e}\n{}", job.key, job.sql)),
            }
            self.jobs.push(job);
        }
        answers
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
