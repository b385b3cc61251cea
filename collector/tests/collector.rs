//! End-to-end tests of the collector library against a real ClickHouse (started by
//! `scripts/clickhouse.sh`): schema, UDP/TCP ingest, the call summary view, the API,
//! auth, framing errors, shutdown flush and retention.

mod common;

use std::time::Duration;

use collector::store::schema;
use common::*;
use serde_json::Value;

fn now_secs() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32
}

#[derive(clickhouse::Row, serde::Deserialize, Debug)]
struct Fields {
    node_name: String,
    node_id: u32,
    src_ip: String,
    dst_port: u16,
    is_request: u8,
    method: String,
    status: u16,
    reason: String,
    cseq_num: u32,
    cseq_method: String,
    from_user: String,
    from_tag: String,
    to_user: String,
    ruri_user: String,
    via_branch: String,
    user_agent: String,
    sdp_addr: String,
    sdp_port: u16,
    ts_us: u32,
    hash_ok: u8,
}

#[tokio::test]
async fn schema_applies_twice() {
    let server = fresh_db("t_schema").await;
    let first = schema::apply(&server, "t_schema", 30).await.unwrap();
    let second = schema::apply(&server, "t_schema", 30).await.unwrap();
    assert_eq!(first.statements, second.statements);
    assert!(!first.server_version.is_empty());
    let tables: Vec<String> = server
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind("t_schema")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(tables, vec!["sip_calls", "sip_calls_mv", "sip_messages"]);
}

#[tokio::test]
async fn udp_and_tcp_ingest_store_the_fields() {
    let c = TestCollector::start(test_config("t_ingest")).await;
    let start = now_secs() - 3600;
    let call = basic_call("ingest-1@test", "1001", "5551234");
    let packets = hep_for(&call, start, (7, "lb1"), 250, None);
    // INVITE over UDP, the rest over one TCP stream cut into small writes.
    c.send_udp(&packets[..1]).await;
    c.send_tcp(&packets[1..]).await;
    assert_eq!(c.wait_rows("call_id = 'ingest-1@test'", 7).await, 7);

    let rows: Vec<Fields> = client(&c.db)
        .query(
            "SELECT node_name, node_id, src_ip, dst_port, is_request, method, status, reason, \
             cseq_num, cseq_method, from_user, from_tag, to_user, ruri_user, via_branch, user_agent, \
             sdp_addr, sdp_port, ts_us, msg_hash = cityHash64(raw) \
             FROM sip_messages WHERE call_id = ? ORDER BY ts, ts_us",
        )
        .bind("ingest-1@test")
        .fetch_all()
        .await
        .unwrap();
    let invite = &rows[0];
    assert_eq!((invite.node_name.as_str(), invite.node_id, invite.src_ip.as_str()), ("lb1", 7, "10.0.0.1"));
    assert_eq!((invite.is_request, invite.method.as_str(), invite.dst_port), (1, "INVITE", 5060));
    assert_eq!((invite.cseq_num, invite.cseq_method.as_str()), (1, "INVITE"));
    assert_eq!((invite.from_user.as_str(), invite.from_tag.as_str()), ("1001", "caller1"));
    assert_eq!((invite.to_user.as_str(), invite.ruri_user.as_str()), ("5551234", "5551234"));
    assert_eq!(invite.via_branch, "z9hG4bK-ingest-1@test");
    assert_eq!(invite.user_agent, "test-agent");
    assert_eq!((invite.sdp_addr.as_str(), invite.sdp_port), ("10.0.0.1", 40000));
    assert_eq!(invite.ts_us, 250);
    assert_eq!(invite.hash_ok, 1);
    let ringing = &rows[2];
    assert_eq!((ringing.is_request, ringing.status, ringing.reason.as_str()), (0, 180, "Ringing"));
    assert_eq!(c.metric("collector_hep_received_packets_total{transport=\"udp\"}").await, 1);
    assert_eq!(c.metric("collector_hep_received_packets_total{transport=\"tcp\"}").await, 6);
    c.stop().await;
}

#[tokio::test]
async fn call_summary_search_and_flow() {
    let c = TestCollector::start(test_config("t_api")).await;
    let start = now_secs() - 3600;
    let call = basic_call("api-1@test", "1001", "4915551234");
    // Seen by two capture points: lb1 at the time, ast1 300 us later.
    c.send_udp(&hep_for(&call, start, (1, "lb1"), 0, None)).await;
    c.send_udp(&hep_for(&call, start, (2, "ast1"), 300, None)).await;
    let other = basic_call("api-2@test", "2002", "777");
    c.send_udp(&hep_for(&other[..1], start + 5, (1, "lb1"), 0, None)).await;
    assert_eq!(c.wait_rows("1", 15).await, 15);
    assert_eq!(c.wait_summary(15).await, 15);

    let (status, body) = c.get(&format!("/api/v1/calls?from={}&to={}&number=1234", start - 10, start + 60)).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{body}");
    let s = &calls[0];
    assert_eq!(s["call_id"], "api-1@test");
    assert_eq!((s["caller"].as_str(), s["callee"].as_str()), (Some("1001"), Some("4915551234")));
    assert_eq!(s["messages"], 14);
    assert_eq!(s["final_status"], 200);
    assert_eq!(s["state"], "completed");
    assert_eq!(s["nodes"], serde_json::json!(["ast1", "lb1"]));
    assert_eq!(s["duration_ms"], 30_010);

    // Other filters: node, status, call_id, paging.
    let search = |q: String| {
        let c = &c;
        async move {
            let (st, body) = c.get(&format!("/api/v1/calls?from={}&to={}&{q}", start - 10, start + 60)).await;
            assert_eq!(st, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            v["calls"].as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(search("node=ast1".into()).await, vec!["api-1@test"]);
    assert_eq!(search("status=200".into()).await, vec!["api-1@test"]);
    assert_eq!(search("call_id=api-2@test".into()).await, vec!["api-2@test"]);
    assert_eq!(search("limit=1".into()).await, vec!["api-2@test"], "newest first");
    assert_eq!(search("limit=1&offset=1".into()).await, vec!["api-1@test"]);
    assert!(search("number=9999".into()).await.is_empty());

    let (status, body) = c.get("/api/v1/calls/api-1@test").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["messages"], 14);

    let (status, body) = c.get("/api/v1/calls/api-1@test/flow").await;
    assert_eq!(status, 200, "{body}");
    let flow: Value = serde_json::from_str(&body).unwrap();
    let msgs = flow["messages"].as_array().unwrap();
    let labels: Vec<&str> = msgs.iter().map(|m| m["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["INVITE", "100 Trying", "180 Ringing", "200 OK", "ACK", "BYE", "200 OK"]);
    for m in msgs {
        let nodes: Vec<&str> = m["sightings"].as_array().unwrap().iter().map(|s| s["node"].as_str().unwrap()).collect();
        assert_eq!(nodes, ["lb1", "ast1"], "{m}");
        assert_eq!(m["sightings"][1]["delay_us"], 300);
    }
    assert_eq!((msgs[0]["src"].as_str(), msgs[0]["dst"].as_str()), (Some("10.0.0.1:5060"), Some("10.0.0.2:5060")));

    let (status, text) = c.get("/api/v1/calls/api-1@test/flow?format=text").await;
    assert_eq!(status, 200);
    assert!(text.contains("10.0.0.1:5060") && text.contains("10.0.0.2:5060"), "{text}");
    assert!(text.contains("--INVITE--") && text.contains("[lb1,ast1]"), "{text}");
    assert!(text.contains("<--") && text.contains("180 Ringing"), "{text}");
    println!("{text}");

    let (status, svg) = c.get("/api/v1/calls/api-1@test/flow?format=svg").await;
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert_eq!(svg.matches("<a class=\"arrow ").count(), 7);
    assert!(svg.contains("\u{d7}2 sightings") && svg.contains("lb1, ast1"), "{svg}");
    let (status, html) = c.get("/api/v1/calls/api-1@test/flow.html").await;
    assert_eq!(status, 200);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg "), "{html}");
    assert_eq!(c.get("/api/v1/calls/nope@test/flow.html").await.0, 404);

    let id = msgs[0]["id"].as_str().unwrap();
    let (status, body) = c.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let m: Value = serde_json::from_str(&body).unwrap();
    assert!(m["raw"].as_str().unwrap().starts_with("INVITE sip:4915551234@10.0.0.2:5060 SIP/2.0\r\n"));
    let (status, raw) = c.get(&format!("/api/v1/messages/{id}?format=raw")).await;
    assert_eq!(status, 200);
    assert!(raw.ends_with("m=audio 40000 RTP/AVP 0\r\n"));

    // pcap: 7 messages once each, or all 14 sightings.
    for (q, n) in [("", 7), ("?sightings=all", 14)] {
        let (status, pcap) = c.get_bytes(&format!("/api/v1/calls/api-1@test/pcap{q}")).await;
        assert_eq!(status, 200);
        assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
        assert_eq!(pcap_records(&pcap), n);
    }

    let (status, doc) = c.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&doc).unwrap()["paths"]["/api/v1/calls/{call_id}/flow"].is_object());

    assert_eq!(c.get("/api/v1/calls/nope@test").await.0, 404);
    assert_eq!(c.get("/api/v1/calls/nope@test/flow").await.0, 404);
    assert_eq!(c.get("/api/v1/messages/1").await.0, 404);
    c.stop().await;
}

/// Counts records, checking each SIP payload starts where the headers say.
fn pcap_records(mut p: &[u8]) -> usize {
    p = &p[24..];
    let mut n = 0;
    while p.len() >= 16 {
        let len = u32::from_le_bytes(p[8..12].try_into().unwrap()) as usize;
        let payload = &p[16 + 42..16 + len];
        assert!(
            payload.starts_with(b"INVITE ")
                || payload.starts_with(b"SIP/2.0 ")
                || payload.starts_with(b"ACK ")
                || payload.starts_with(b"BYE ")
        );
        p = &p[16 + len..];
        n += 1;
    }
    n
}

#[tokio::test]
async fn wrong_auth_key_is_dropped_and_counted() {
    let mut config = test_config("t_auth");
    config.auth_key = Some("s3cret".into());
    let c = TestCollector::start(config).await;
    let start = now_secs() - 3600;
    let call = basic_call("auth-1@test", "1", "2");
    c.send_udp(&hep_for(&call[..1], start, (1, "lb1"), 0, Some("wrong"))).await;
    c.send_udp(&hep_for(&call[1..2], start, (1, "lb1"), 0, None)).await;
    c.send_udp(&hep_for(&call[2..3], start, (1, "lb1"), 0, Some("s3cret"))).await;
    assert_eq!(c.wait_rows("call_id = 'auth-1@test'", 1).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.wait_rows("1", 1).await, 1, "only the packet with the right key is stored");
    assert_eq!(c.metric("collector_dropped_packets_total{reason=\"auth\"}").await, 2);
    c.stop().await;
}

#[tokio::test]
async fn bad_params_give_400_with_a_json_message() {
    let c = TestCollector::start(test_config("t_params")).await;
    for path in [
        "/api/v1/calls?from=yesterday",
        "/api/v1/calls?limit=0",
        "/api/v1/calls?limit=100000",
        "/api/v1/calls?status=abc",
        "/api/v1/calls?number=1'%20OR%201=1",
        "/api/v1/calls?from=2025-11-22T00:00:00Z&to=2025-11-21T00:00:00Z",
        "/api/v1/calls?bogus=1",
        "/api/v1/calls/x/flow?format=pdf",
        "/api/v1/messages/abc",
    ] {
        let (status, body) = c.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(!v["error"].as_str().unwrap().is_empty(), "{path}");
    }
    // A quote in a Call-ID is data, not SQL.
    assert_eq!(c.get("/api/v1/calls/a'b%5C").await.0, 404);
    c.stop().await;
}

#[tokio::test]
async fn tcp_framing_error_closes_only_that_connection() {
    let c = TestCollector::start(test_config("t_frame")).await;
    let start = now_secs() - 3600;
    let call = basic_call("frame-1@test", "1", "2");
    let good = hep_for(&call, start, (1, "lb1"), 0, None);
    // A good packet, then garbage: the connection is closed after the first packet.
    let mut bad = good[0].clone();
    bad.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    c.send_tcp(&[bad]).await;
    c.send_tcp(&good[1..]).await;
    assert_eq!(c.wait_rows("call_id = 'frame-1@test'", 7).await, 7);
    assert_eq!(c.metric("collector_tcp_frame_errors_total").await, 1);
    c.stop().await;
}

#[tokio::test]
async fn non_sip_payloads_are_stored_and_countable() {
    let c = TestCollector::start(test_config("t_other")).await;
    let report = br#"{"type":200,"ssrc":1}"#;
    let p = Hep3 { payload_type: 5, correlation_id: Some("rtcp-call@test"), payload: report, ..Hep3::default() };
    c.send_udp(&[p.encode()]).await;
    assert_eq!(c.wait_rows("payload_type = 5 AND call_id = 'rtcp-call@test'", 1).await, 1);
    let calls: u64 = client(&c.db).query("SELECT count() FROM sip_calls").fetch_one().await.unwrap();
    assert_eq!(calls, 0, "non-SIP rows make no call");
    c.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_the_last_batch() {
    let mut config = test_config("t_flush");
    // Nothing would flush for a minute: only shutdown can write these rows.
    config.batch.max_age = Duration::from_secs(60);
    let c = TestCollector::start(config).await;
    let start = now_secs() - 3600;
    let call = basic_call("flush-1@test", "1", "2");
    c.send_tcp(&hep_for(&call, start, (1, "lb1"), 0, None)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = c.db.clone();
    c.stop().await;
    let n: u64 = client(&db).query("SELECT count() FROM sip_messages").fetch_one().await.unwrap();
    assert_eq!(n, 7);
}

#[tokio::test]
async fn retention_drops_old_partitions() {
    let server = fresh_db("t_retention").await;
    schema::apply(&server, "t_retention", 30).await.unwrap();
    let db = client("t_retention");
    db.query("INSERT INTO sip_messages (ts, call_id, payload_type) VALUES (1577836800, 'old', 1), (?, 'new', 1)")
        .bind(now_secs())
        .execute()
        .await
        .unwrap();
    let today = collector::timeutil::date_string(u64::from(now_secs()) * 1_000_000);
    let dropped = schema::drop_expired_partitions(&server, "t_retention", 30, &today).await.unwrap();
    assert_eq!(dropped, 2, "the 2020 partition of sip_messages and of sip_calls");
    let left: Vec<String> = db.query("SELECT call_id FROM sip_messages").fetch_all().await.unwrap();
    assert_eq!(left, vec!["new"]);
}
