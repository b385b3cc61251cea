//! The ladder diagram as SVG, drawn server-side from a [`Flow`] (no script needed to see it).
//!
//! One lifeline per host (a host map name, a learned capture node name, or the bare
//! address; at most [`MAX_LIFELINES`], the rest share an "other" lifeline), one arrow per message in time order, each a link to the raw message. Every
//! SIP value is attacker-controlled text: it only reaches the output through [`esc`].

use std::fmt::Write as _;

use super::flow::{Flow, FlowMessage};

/// Most lifelines drawn; with more addresses, the last one is "other".
pub const MAX_LIFELINES: usize = 24;
/// Most characters of a label (reason phrases are free text).
const MAX_LABEL_CHARS: usize = 32;
/// Most capture node names listed under a lifeline.
const MAX_NODE_NAMES: usize = 3;

/// Geometry, in pixels.
const GUTTER: u32 = 92;
const COL_W: u32 = 230;
const HEAD_H: u32 = 64;
const ROW_H: u32 = 42;
const MARGIN: u32 = 16;
const HEAD_SIZE: u32 = 9;

/// The ladder's columns: lifeline labels and the capture nodes seen on each.
#[derive(Debug, Default)]
struct Lifelines {
    /// Host names, and the label drawn for each.
    addrs: Vec<String>,
    labels: Vec<String>,
    nodes: Vec<Vec<String>>,
    /// Addresses folded into the last lifeline.
    others: usize,
}

impl Lifelines {
    fn new(flow: &Flow) -> Self {
        let mut l = Self::default();
        let keep = if flow.hosts.len() > MAX_LIFELINES { MAX_LIFELINES - 1 } else { flow.hosts.len() };
        l.addrs = flow.hosts[..keep].to_vec();
        l.labels = l.addrs.iter().map(|h| host_label(h, flow.host_addresses.get(h))).collect();
        l.others = flow.hosts.len() - keep;
        let columns = keep + usize::from(l.others > 0);
        l.nodes = vec![Vec::new(); columns];
        for m in &flow.messages {
            let cols = [l.column(&m.src_host), l.column(&m.dst_host)];
            for s in &m.sightings {
                for c in cols {
                    if !l.nodes[c].contains(&s.node) {
                        l.nodes[c].push(s.node.clone());
                    }
                }
            }
        }
        l
    }

    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The column of an address: its own, or the "other" one.
    fn column(&self, addr: &str) -> usize {
        self.addrs.iter().position(|a| a == addr).unwrap_or(self.addrs.len()).min(self.len().saturating_sub(1))
    }

    fn x(column: usize) -> u32 {
        GUTTER + column as u32 * COL_W + COL_W / 2
    }

    fn label(&self, column: usize) -> String {
        match self.labels.get(column) {
            Some(a) => a.clone(),
            None => format!("other ({} hosts)", self.others),
        }
    }
}

/// A lifeline's title: the name, with its address when the name is not the address.
fn host_label(name: &str, addrs: Option<&Vec<String>>) -> String {
    match addrs.map(Vec::as_slice) {
        Some([only]) if only != name => format!("{name} {only}"),
        Some(many) if many.len() > 1 => format!("{name} ({} addresses)", many.len()),
        _ => name.to_owned(),
    }
}

/// What kind of message an arrow is: it sets the colour and the line style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
    Redirect,
    Error,
    NotSip,
}

impl Kind {
    fn of(m: &FlowMessage) -> Self {
        match m.status {
            0 if m.method.is_empty() => Self::NotSip,
            0 => Self::Request,
            100..=299 => Self::Response,
            300..=399 => Self::Redirect,
            _ => Self::Error,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Request => "req",
            Self::Response => "resp",
            Self::Redirect => "redir",
            Self::Error => "err",
            Self::NotSip => "other",
        }
    }
}

/// Colours per [`Kind`], and text styles. Class names carry an `ld-` prefix so the
/// SVG can sit inline in a page without clashing with its CSS.
const STYLE: &str = "\
text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}\
.ld-addr{font:600 13px ui-monospace,'DejaVu Sans Mono',monospace;fill:#111827}\
.ld-nodes{font-size:11px;fill:#6b7280}\
.ld-box{fill:#f3f4f6;stroke:#d1d5db}\
.ld-life{stroke:#9ca3af;stroke-dasharray:4 4}\
.ld-time{font:11px ui-monospace,'DejaVu Sans Mono',monospace;fill:#6b7280}\
.ld-label{font-size:13px;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}\
.ld-note{font-size:11px;font-style:italic;fill:#6b7280;paint-order:stroke;stroke:#fff;stroke-width:3px}\
.ld-hit{fill:transparent}\
.arrow:hover .ld-hit{fill:#f1f5f9}\
.arrow.sel .ld-hit{fill:#fef3c7}\
.req line,.req path{stroke:#1d4ed8}.req polygon,.req .ld-label{fill:#1d4ed8}\
.resp line,.resp path{stroke:#15803d}.resp polygon,.resp .ld-label{fill:#15803d}\
.redir line,.redir path{stroke:#b45309}.redir polygon,.redir .ld-label{fill:#b45309}\
.err line,.err path{stroke:#b91c1c}.err polygon,.err .ld-label{fill:#b91c1c}\
.other line,.other path{stroke:#6b7280}.other polygon,.other .ld-label{fill:#6b7280}\
.arrow line,.arrow path{stroke-width:1.6px;fill:none}\
.resp line,.redir line,.err line{stroke-dasharray:7 3}";

/// The ladder of `flow` as a standalone SVG document.
pub fn svg(flow: &Flow) -> String {
    let lanes = Lifelines::new(flow);
    let width = GUTTER + lanes.len().max(1) as u32 * COL_W + MARGIN;
    let height = HEAD_H + (flow.messages.len() as u32 + 1) * ROW_H + if flow.truncated { ROW_H } else { 0 };
    let mut out = String::with_capacity(2048 + flow.messages.len() * 700);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ladder\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"SIP ladder of call {}\">\
         <style>{STYLE}</style><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>",
        esc(&flow.call_id)
    );
    for c in 0..lanes.len() {
        lifeline(&mut out, &lanes, c, height);
    }
    let start = flow.messages.first().map_or(0, |m| m.time_us);
    for (i, m) in flow.messages.iter().enumerate() {
        let y = HEAD_H + (i as u32 + 1) * ROW_H;
        arrow(&mut out, m, [lanes.column(&m.src_host), lanes.column(&m.dst_host)], y, start);
    }
    if flow.truncated {
        let y = HEAD_H + (flow.messages.len() as u32 + 1) * ROW_H;
        let _ = write!(out, "<text class=\"ld-note\" x=\"{GUTTER}\" y=\"{y}\">(flow cut at its row limit)</text>");
    }
    out.push_str("</svg>");
    out
}

/// A lifeline: its address box, the capture nodes seen, and the dashed line down.
fn lifeline(out: &mut String, lanes: &Lifelines, c: usize, height: u32) {
    let x = Lifelines::x(c);
    let names = &lanes.nodes[c];
    let mut nodes = names.iter().take(MAX_NODE_NAMES).map(String::as_str).collect::<Vec<_>>().join(", ");
    if names.len() > MAX_NODE_NAMES {
        let _ = write!(nodes, " +{}", names.len() - MAX_NODE_NAMES);
    }
    let (box_x, box_w) = (x - COL_W / 2 + 8, COL_W - 16);
    let _ = write!(
        out,
        "<g class=\"ld-lane\"><rect class=\"ld-box\" x=\"{box_x}\" y=\"{MARGIN}\" width=\"{box_w}\" height=\"40\" rx=\"6\"/>\
         <text class=\"ld-addr\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text class=\"ld-nodes\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <line class=\"ld-life\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/></g>",
        MARGIN + 17,
        esc(&lanes.label(c)),
        MARGIN + 33,
        esc(&nodes),
        MARGIN + 40,
        height - MARGIN / 2,
    );
}

/// One message: a link around a hover band, the time, the arrow, its label and a note.
fn arrow(out: &mut String, m: &FlowMessage, [from, to]: [usize; 2], y: u32, start_us: u64) {
    let kind = Kind::of(m);
    let ms = millis_since(m, start_us);
    let id = esc(&m.id);
    let _ = write!(
        out,
        "<a class=\"arrow {}\" href=\"/api/v1/messages/{id}?format=raw\" data-id=\"{id}\">\
         <title>{}</title><rect class=\"ld-hit\" x=\"0\" y=\"{}\" width=\"100%\" height=\"{ROW_H}\"/>\
         <text class=\"ld-time\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        kind.class(),
        esc(&tooltip(m, ms)),
        y - ROW_H / 2 - 4,
        GUTTER - 10,
        y + 4,
        since(ms),
    );
    let (x1, x2) = (Lifelines::x(from), Lifelines::x(to));
    let label_x = if from == to { shaft_loop(out, x1, y) } else { shaft(out, x1, x2, y) };
    let _ = write!(
        out,
        "<text class=\"ld-label\" x=\"{label_x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        y - 7,
        esc(&shorten(&m.label))
    );
    let note = note(m);
    if !note.is_empty() {
        let _ = write!(
            out,
            "<text class=\"ld-note\" x=\"{label_x}\" y=\"{}\" text-anchor=\"middle\">{note}</text>",
            y + 15
        );
    }
    out.push_str("</a>");
}

/// The CSS class of a message's kind: `req`, `resp`, `redir`, `err` or `other`.
pub fn kind_class(m: &FlowMessage) -> &'static str {
    Kind::of(m).class()
}

/// Milliseconds from the flow's first message (`start_us`) to `m`.
pub fn millis_since(m: &FlowMessage, start_us: u64) -> f64 {
    m.time_us.saturating_sub(start_us) as f64 / 1000.0
}

/// A relative time as the ladder prints it: `+12.3 ms`.
pub fn since(ms: f64) -> String {
    format!("+{ms:.1} ms")
}

/// A straight arrow from `x1` to `x2`; returns where its label goes.
fn shaft(out: &mut String, x1: u32, x2: u32, y: u32) -> u32 {
    let tip = if x2 > x1 { x2 - HEAD_SIZE } else { x2 + HEAD_SIZE };
    let _ = write!(
        out,
        "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{tip}\" y2=\"{y}\"/><polygon points=\"{x2},{y} {tip},{} {tip},{}\"/>",
        y - HEAD_SIZE / 2,
        y + HEAD_SIZE / 2
    );
    (x1 + x2) / 2
}

/// A message from an address to itself (or within "other"): a small loop on the lifeline.
fn shaft_loop(out: &mut String, x: u32, y: u32) -> u32 {
    let (right, low) = (x + 36, y + 10);
    let _ = write!(
        out,
        "<path d=\"M{x},{} H{right} V{low} H{}\"/><polygon points=\"{x},{low} {},{} {},{}\"/>",
        y - 6,
        x + HEAD_SIZE,
        x + HEAD_SIZE,
        low - HEAD_SIZE / 2,
        x + HEAD_SIZE,
        low + HEAD_SIZE / 2
    );
    x + COL_W / 2
}

/// The small print under an arrow: extra sightings and retransmissions (plain text).
fn note(m: &FlowMessage) -> String {
    let mut parts = Vec::new();
    if m.retransmission {
        parts.push("retransmission".to_owned());
    }
    if m.sightings.len() > 1 {
        parts.push(format!("\u{d7}{} sightings", m.sightings.len()));
    }
    parts.join(" \u{b7} ")
}

/// The hover text of an arrow: everything the arrow abbreviates.
fn tooltip(m: &FlowMessage, ms: f64) -> String {
    let nodes: Vec<String> = m
        .sightings
        .iter()
        .map(|s| if s.delay_us == 0 { s.node.clone() } else { format!("{} (+{} us)", s.node, s.delay_us) })
        .collect();
    format!(
        "{}\n{} \u{2192} {} ({})\nCSeq {}\n{} (+{ms:.3} ms)\nseen by {}",
        m.label,
        format_args!("{} ({})", m.src, m.src_host),
        format_args!("{} ({})", m.dst, m.dst_host),
        m.transport,
        m.cseq,
        m.time,
        nodes.join(", ")
    )
}

/// At most [`MAX_LABEL_CHARS`] characters, with an ellipsis when cut.
fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_LABEL_CHARS {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(MAX_LABEL_CHARS - 1).collect();
    cut.push('\u{2026}');
    cut
}

/// Text made safe for XML and HTML content and quoted attributes. Characters XML 1.0
/// forbids (most C0 controls) become U+FFFD, so one odd byte cannot break the document.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::flow::build_single;
    use crate::store::FlowRow;

    /// A row from `src` to `dst` (last octets); status 0 makes it a request.
    fn row(id: u64, ms: u64, (src, dst): (u8, u8), method: &str, status: u16, reason: &str) -> FlowRow {
        FlowRow {
            id,
            time_us: 1_000_000_000 + ms * 1000,
            node_name: "lb1".into(),
            transport: 17,
            src_ip: format!("10.0.0.{src}"),
            src_port: 5060,
            dst_ip: format!("10.0.0.{dst}"),
            dst_port: 5060,
            is_request: u8::from(status == 0),
            method: method.into(),
            status,
            reason: reason.into(),
            cseq_num: 1,
            cseq_method: "INVITE".into(),
            msg_hash: id,
            call_id: "c".into(),
            ..FlowRow::default()
        }
    }

    fn basic() -> Flow {
        let rows = vec![
            row(1, 0, (1, 2), "INVITE", 0, ""),
            row(2, 10, (2, 1), "", 100, "Trying"),
            row(3, 100, (2, 1), "", 180, "Ringing"),
            row(4, 2000, (2, 1), "", 486, "Busy Here"),
            row(5, 2010, (1, 2), "ACK", 0, ""),
        ];
        build_single("c1@test", rows)
    }

    fn texts<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let open = format!("<text class=\"{class}\"");
        svg.split(open.as_str()).skip(1).map(|t| &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()]).collect()
    }

    #[test]
    fn one_arrow_per_message_in_order_with_links_and_times() {
        let svg = svg(&basic());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert_eq!(svg.matches("<a class=\"arrow ").count(), 5);
        assert_eq!(texts(&svg, "ld-label"), ["INVITE", "100 Trying", "180 Ringing", "486 Busy Here", "ACK"]);
        assert_eq!(texts(&svg, "ld-time"), ["+0.0 ms", "+10.0 ms", "+100.0 ms", "+2000.0 ms", "+2010.0 ms"]);
        assert!(svg.contains("href=\"/api/v1/messages/4?format=raw\""));
        assert!(svg.contains("<a class=\"arrow err\" href=\"/api/v1/messages/4"), "486 is drawn as an error");
        assert!(svg.contains("<a class=\"arrow req\" href=\"/api/v1/messages/5"));
        assert!(svg.contains("<a class=\"arrow resp\" href=\"/api/v1/messages/3"));
    }

    #[test]
    fn lifelines_are_labelled_with_address_and_nodes() {
        let mut rows = vec![row(1, 0, (1, 2), "OPTIONS", 0, "")];
        rows.push(FlowRow { id: 2, time_us: rows[0].time_us + 200, node_name: "ast1".into(), ..rows[0].clone() });
        let svg = svg(&build_single("c", rows));
        assert_eq!(texts(&svg, "ld-addr"), ["10.0.0.1:5060", "10.0.0.2:5060"]);
        assert_eq!(texts(&svg, "ld-nodes"), ["lb1, ast1", "lb1, ast1"]);
        assert_eq!(texts(&svg, "ld-note"), ["\u{d7}2 sightings"]);
    }

    #[test]
    fn retransmissions_are_noted() {
        let mut rows = vec![row(1, 0, (1, 2), "INVITE", 0, "")];
        rows.push(FlowRow { id: 2, time_us: rows[0].time_us + 500_000, ..rows[0].clone() });
        let svg = svg(&build_single("c", rows));
        assert_eq!(svg.matches("<a class=\"arrow ").count(), 2);
        assert_eq!(texts(&svg, "ld-note"), ["retransmission"]);
    }

    #[test]
    fn attacker_text_is_escaped() {
        let rows = vec![
            row(1, 0, (1, 2), "<script>alert(1)</script>", 0, ""),
            row(2, 5, (2, 1), "", 599, "a & b <img src=x onerror=alert(1)> \"q\" \u{1}"),
        ];
        let svg = svg(&build_single("<x>&\"", rows));
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{svg}");
        assert!(svg.contains("599 a &amp; b &lt;img src=x onerror=alert(1)&gt; &quot;q&quot; \u{fffd}"), "{svg}");
        assert!(svg.contains("aria-label=\"SIP ladder of call &lt;x&gt;&amp;&quot;\""));
        assert!(!svg.contains('\u{1}'));
    }

    #[test]
    fn lifelines_are_capped_with_an_other_column() {
        let rows: Vec<FlowRow> =
            (0..40u8).map(|i| row(u64::from(i), u64::from(i), (1, i + 2), "MESSAGE", 0, "")).collect();
        let flow = build_single("c", rows);
        assert_eq!(flow.hosts.len(), 41);
        let svg = svg(&flow);
        let addrs = texts(&svg, "ld-addr");
        assert_eq!(addrs.len(), MAX_LIFELINES);
        assert_eq!(addrs[MAX_LIFELINES - 1], "other (18 hosts)");
        assert_eq!(svg.matches("<a class=\"arrow ").count(), 40, "messages to other addresses still drawn");
        let width: u32 = svg.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert_eq!(width, GUTTER + MAX_LIFELINES as u32 * COL_W + MARGIN);
    }

    #[test]
    fn long_labels_are_shortened_and_empty_flows_render() {
        assert_eq!(shorten(&"x".repeat(100)).chars().count(), MAX_LABEL_CHARS);
        let svg = svg(&build_single("empty", Vec::new()));
        assert!(svg.ends_with("</svg>") && !svg.contains("class=\"arrow"));
    }
}
