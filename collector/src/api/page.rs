//! The HTML call page (`.../flow.html`): call summary, the SVG ladder inline, and a
//! table of the messages. Self-contained: no external resources, and a few lines of
//! script only to show a raw message in place (every arrow and row also links to it).
//!
//! The page is `flow.html` with `{{name}}` slots filled in one pass, so a value that
//! happens to contain `{{rows}}` is printed, never expanded. Every value is escaped.

use std::fmt::Write as _;

use super::calls::call_state;
use super::flow::{Flow, FlowMessage};
use super::ladder::{self, esc};
use crate::store::CallSummary;
use crate::timeutil::format_rfc3339;

/// The page template.
const TEMPLATE: &str = include_str!("flow.html");

/// Content-Security-Policy of the page: its own inline style and script, fetches to this
/// origin, nothing loaded from anywhere else.
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                       connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/// The whole page for a call.
pub fn render(summary: &CallSummary, flow: &Flow) -> String {
    let truncated = if flow.truncated {
        "<p class=\"warn\">This call has more messages than a flow shows; only the first ones are drawn.</p>"
    } else {
        ""
    };
    fill(
        TEMPLATE,
        &[
            ("call_id", esc(&flow.call_id)),
            ("summary", summary_list(summary, flow)),
            ("truncated", truncated.to_owned()),
            ("ladder", ladder::svg(flow)),
            ("count", flow.messages.len().to_string()),
            ("rows", rows(flow)),
        ],
    )
}

/// Replaces each `{{name}}` of `template` by its value, in one left-to-right pass.
/// Unknown names stay as they are.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let value =
            after.find("}}").and_then(|close| Some((values.iter().find(|(k, _)| *k == &after[..close])?, close)));
        match value {
            Some(((_, v), close)) => {
                out.push_str(v);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The summary as a definition list: who, outcome, when, where.
fn summary_list(s: &CallSummary, flow: &Flow) -> String {
    let (status, class) = match s.final_status {
        0 => ("no final response".to_owned(), "st-none"),
        code @ 100..=399 => (code.to_string(), "st-ok"),
        code => (code.to_string(), "st-err"),
    };
    let nodes = if s.nodes.is_empty() { "-".to_owned() } else { s.nodes.join(", ") };
    let mut out = String::from("<dl>");
    let mut item = |name: &str, value: &str, class: &str| {
        let _ = write!(out, "<div><dt>{name}</dt><dd class=\"{class}\">{}</dd></div>", esc(value));
    };
    item("Caller", &s.caller, "");
    item("Callee", &s.callee, "");
    item("Status", &format!("{status} \u{b7} {}", call_state(s.final_status, &s.methods)), class);
    item("Start", &readable_time(s.first_us), "");
    item("End", &readable_time(s.last_us), "");
    item("Duration", &format!("{:.3} s", s.last_us.saturating_sub(s.first_us) as f64 / 1e6), "");
    item("Messages", &format!("{} ({} captures)", flow.messages.len(), s.messages), "");
    item("Nodes", &nodes, "");
    for l in &flow.legs {
        item(&format!("Leg {}", l.tag), &format!("{} ({} messages)", l.call_id, l.messages), "");
    }
    for l in &flow.links {
        item("Link", &format!("{} \u{2192} {}: {}", l.a_leg, l.b_leg, l.explanation), "");
    }
    out.push_str("</dl>");
    out
}

/// `2025-11-22 02:53:20.123 UTC`: the summary needs milliseconds, not microseconds.
fn readable_time(us: u64) -> String {
    let t = format_rfc3339(us);
    format!("{} {} UTC", &t[..10], &t[11..23])
}

/// One table row per message, each carrying the message id for the script.
fn rows(flow: &Flow) -> String {
    let start = flow.messages.first().map_or(0, |m| m.time_us);
    let mut out = String::with_capacity(flow.messages.len() * 400);
    for (i, m) in flow.messages.iter().enumerate() {
        row(&mut out, i + 1, m, start);
    }
    out
}

fn row(out: &mut String, n: usize, m: &FlowMessage, start_us: u64) {
    let id = esc(&m.id);
    let clock = m.time.get(11..).unwrap_or(&m.time);
    let nodes: Vec<String> = m
        .sightings
        .iter()
        .map(|s| if s.delay_us == 0 { s.node.clone() } else { format!("{} +{} us", s.node, s.delay_us) })
        .collect();
    let _ = writeln!(
        out,
        "<tr class=\"{}\" data-id=\"{id}\"><td class=\"n\">{n}</td><td class=\"mono\">{}</td>\
         <td class=\"mono\" title=\"{}\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td>\
         <td><a href=\"/api/v1/messages/{id}?format=raw\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ladder::kind_class(m),
        ladder::since(ladder::millis_since(m, start_us)),
        esc(&m.time),
        esc(clock),
        esc(&endpoint(&m.src_host, &m.src)),
        esc(&endpoint(&m.dst_host, &m.dst)),
        esc(&m.label),
        esc(&m.cseq),
        esc(&m.transport),
        esc(&nodes.join(", ")),
    );
}

/// `host addr`, or the address alone when it has no name.
fn endpoint(host: &str, addr: &str) -> String {
    if host == addr {
        addr.to_owned()
    } else {
        format!("{host} {addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::flow::build_single;
    use crate::store::FlowRow;

    fn summary(call_id: &str) -> CallSummary {
        CallSummary {
            call_id: call_id.into(),
            first_us: 1_000_000_000,
            last_us: 1_002_500_000,
            messages: 2,
            caller: "<b>1001</b>".into(),
            callee: "2002 & co".into(),
            final_status: 486,
            nodes: vec!["lb1".into()],
            methods: vec!["INVITE".into()],
            aleg_id: String::new(),
        }
    }

    fn flow(call_id: &str) -> Flow {
        let row = FlowRow {
            id: 11,
            time_us: 1_000_000_000,
            node_name: "lb1".into(),
            transport: 17,
            src_ip: "10.0.0.1".into(),
            src_port: 5060,
            dst_ip: "10.0.0.2".into(),
            dst_port: 5060,
            is_request: 1,
            method: "INVITE".into(),
            status: 0,
            reason: String::new(),
            cseq_num: 1,
            cseq_method: "INVITE".into(),
            msg_hash: 1,
            call_id: call_id.into(),
            ..FlowRow::default()
        };
        let busy = FlowRow {
            id: 12,
            time_us: 1_002_500_000,
            is_request: 0,
            method: String::new(),
            status: 486,
            reason: "Busy <script>alert(1)</script> {{rows}}".into(),
            msg_hash: 2,
            ..row.clone()
        };
        build_single(call_id, vec![row, busy])
    }

    #[test]
    fn page_has_summary_ladder_and_rows() {
        let html = render(&summary("c1@x"), &flow("c1@x"));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.replace("{{rows}}", "").contains("{{"), "every slot filled");
        assert!(html.contains("<dt>Caller</dt><dd class=\"\">&lt;b&gt;1001&lt;/b&gt;</dd>"), "{html}");
        assert!(html.contains("<dd class=\"st-err\">486 \u{b7} failed</dd>"));
        assert!(html.contains("<dd class=\"\">2.500 s</dd>"));
        assert!(html.contains("<dd class=\"\">1970-01-01 00:16:42.500 UTC</dd>"), "end time");
        assert_eq!(html.matches("<svg ").count(), 1);
        assert_eq!(html.matches("<a class=\"arrow ").count(), 2);
        assert_eq!(html.matches("<tr class=").count(), 2);
        assert!(html.contains("<tr class=\"err\" data-id=\"12\">"));
        assert!(html.contains("<td class=\"mono\">+2500.0 ms</td>"));
    }

    #[test]
    fn page_escapes_and_loads_nothing_external() {
        let html = render(&summary("<script>&"), &flow("<script>&"));
        assert_eq!(html.matches("<script>").count(), 1, "only the page's own script");
        assert!(html.contains("<title>Call &lt;script&gt;&amp;</title>"));
        assert!(html.contains("486 Busy &lt;script&gt;alert(1)&lt;/script&gt; {{rows}}"), "printed, not expanded");
        for external in ["http://", "https://", "src=", "@import", "url("] {
            let found = html.replace("http://www.w3.org/2000/svg", "");
            assert!(!found.contains(external), "{external}");
        }
    }

    #[test]
    fn fill_is_one_pass() {
        let out = fill("a{{x}}b{{y}}c{{z}}{{", &[("x", "{{y}}".into()), ("y", "Y".into())]);
        assert_eq!(out, "a{{y}}bYc{{z}}{{");
    }
}
