#!/usr/bin/env python3
"""Checks the collector's modern DDL and its API queries on chDB (ClickHouse 26.x in-process).

usage: modern_schema.py SPEC.json   (written by collector/tests/modern_schema.rs)

SPEC holds the schema statements exactly as the collector sends them (placeholders
substituted), the read queries with their values bound, and the calls to insert. This
script applies the base and modern statements (twice: the collector applies them at
every start), checks that TTL, skip indexes and codecs took effect, inserts the calls
(two capture nodes for one of them, one call across midnight, one non-SIP row), then
checks the materialized view's call summaries and every query's answer.
"""

import json
import os
import sys
import tempfile

os.environ["TZ"] = "UTC"  # `date DEFAULT toDate(ts)` follows the server's time zone

try:
    from chdb import session as chdb_session
except ImportError as e:
    sys.exit(
        f"modern_schema.py: the Python package `chdb` is not importable ({e}).\n"
        "Install it with scripts/install-python-deps.sh (pip install chdb)."
    )

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


class Db:
    def __init__(self, path):
        self.s = chdb_session.Session(path)

    def run(self, sql):
        try:
            return self.s.query(sql)
        except Exception as e:  # chdb raises its own error types; the message is what matters
            raise RuntimeError(f"{e}\nstatement: {sql}") from None

    def rows(self, sql):
        res = self.s.query(sql, "JSONCompact")
        text = res.data() if hasattr(res, "data") else str(res)
        return json.loads(text)["data"] if text.strip() else []


def messages_of(call):
    """(offset_ms, from_caller, is_request, method, status, reason, cseq_num, cseq_method)."""
    final = call["final"]
    msgs = [
        (0, True, 1, "INVITE", 0, "", 1, "INVITE"),
        (10, False, 0, "", 100, "Trying", 1, "INVITE"),
        (100, False, 0, "", 180, "Ringing", 1, "INVITE"),
        (2000, False, 0, "", final, "OK" if final == 200 else "Busy Here", 1, "INVITE"),
        (2010, True, 1, "ACK", 0, "", 1, "ACK"),
    ]
    if final == 200:
        msgs += [(30000, True, 1, "BYE", 0, "", 2, "BYE"), (30010, False, 0, "", 200, "OK", 2, "BYE")]
    return msgs


def quote(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def insert_call(db, call, next_id):
    cols = (
        "ts, ts_us, id, node_id, node_name, payload_type, transport, src_ip, src_port, dst_ip, dst_port, "
        "is_request, method, status, reason, call_id, cseq_num, cseq_method, from_user, from_domain, "
        "to_user, to_domain, raw"
    )
    values = []
    for n, node in enumerate(call["nodes"]):
        delay_us = 150 * n
        for off_ms, from_caller, is_req, method, status, reason, cseq, cseq_m in messages_of(call):
            t_us = call["start"] * 1_000_000 + off_ms * 1000 + delay_us
            src, dst = ("10.0.0.1", "10.0.0.2") if from_caller else ("10.0.0.2", "10.0.0.1")
            first = f"{method} sip:{call['callee']}@example.com SIP/2.0" if is_req else f"SIP/2.0 {status} {reason}"
            raw = f"{first}\r\nCall-ID: {call['call_id']}\r\nCSeq: {cseq} {cseq_m}\r\nContent-Length: 0\r\n\r\n"
            values.append(
                f"({t_us // 1_000_000}, {t_us % 1_000_000}, {next_id}, {100 + n}, {quote(node)}, 1, 17, "
                f"{quote(src)}, 5060, {quote(dst)}, 5060, {is_req}, {quote(method)}, {status}, {quote(reason)}, "
                f"{quote(call['call_id'])}, {cseq}, {quote(cseq_m)}, {quote(call['caller'])}, 'example.com', "
                f"{quote(call['callee'])}, 'example.com', {quote(raw)})"
            )
            next_id += 1
    db.run(f"INSERT INTO sip_messages ({cols}) VALUES " + ", ".join(values))
    return next_id


def main():
    spec = json.load(open(sys.argv[1]))
    a, b, c = spec["calls"]
    q = spec["queries"]
    with tempfile.TemporaryDirectory(prefix="chdb-modern-") as path:
        db = Db(path)
        version = db.rows("SELECT version()")[0][0]
        print(f"chDB, ClickHouse {version}")
        db.run("CREATE DATABASE IF NOT EXISTS sip")
        db.run("USE sip")

        for round_ in (1, 2):
            for st in spec["base"] + spec["modern"]:
                try:
                    db.run(st["sql"])
                except RuntimeError as e:
                    check(False, f"{st['file']} (round {round_}): {e}")
                    return
        check(True, f"{len(spec['base'])} base + {len(spec['modern'])} modern statements applied, twice")

        indexes = {r[0]: r[1] for r in db.rows(
            "SELECT name, type FROM system.data_skipping_indices WHERE database = 'sip' AND table = 'sip_messages'")}
        check(len(indexes) == 4 and "ngrambf_v1" in indexes.values(), f"skip indexes on sip_messages: {indexes}")
        codec = db.rows("SELECT compression_codec FROM system.columns "
                        "WHERE database = 'sip' AND table = 'sip_messages' AND name = 'raw'")
        check(codec and "ZSTD" in codec[0][0], f"raw column codec: {codec}")
        days = spec["retention_days"]
        for table in ("sip_messages", "sip_calls"):
            ddl = db.rows(f"SELECT create_table_query FROM system.tables WHERE database = 'sip' AND name = '{table}'")
            check(ddl and f"TTL date + toIntervalDay({days})" in ddl[0][0], f"{table} has the {days}-day TTL")

        next_id = 1
        for call in (a, b, c):
            next_id = insert_call(db, call, next_id)
        # A non-SIP row (RTCP report) correlated with call A: stored, but neither in the
        # summary nor in the flow.
        db.run("INSERT INTO sip_messages (ts, ts_us, id, payload_type, call_id, correlation_id, raw) VALUES "
               f"({a['start'] + 5}, 0, 999, 5, {quote(a['call_id'])}, {quote(a['call_id'])}, '{{}}')")
        total = db.rows("SELECT count() FROM sip_messages")[0][0]
        check(int(total) == 14 + 5 + 7 + 1, f"rows stored: {total}")
        parts = db.rows("SELECT count() FROM sip_calls WHERE call_id = " + quote(c["call_id"]))[0][0]
        check(int(parts) == 2, f"the call across midnight has one summary row per day ({parts})")

        # SUMMARY_SELECT columns: call_id, first_us, last_us, messages, caller, callee,
        # final_status, nodes, methods, aleg_id.
        r = db.rows(q["call_a"])
        check(len(r) == 1, "call A has a summary")
        if r:
            cid, f_us, l_us, n, caller, callee, st, nodes, methods, _ = r[0]
            check(cid == a["call_id"] and int(n) == 14, f"call A: 14 messages ({n})")
            check(int(f_us) == a["start"] * 1_000_000, f"call A starts at its INVITE ({f_us})")
            check(int(l_us) == a["start"] * 1_000_000 + 30_010_150, f"call A ends at lb2's last sighting ({l_us})")
            check((caller, callee) == (a["caller"], a["callee"]), f"call A caller/callee: {caller} -> {callee}")
            check(int(st) == 200, f"call A final status 200 ({st})")
            check(sorted(nodes) == ["lb1", "lb2"], f"call A nodes: {nodes}")
            check(sorted(methods) == ["ACK", "BYE", "INVITE"], f"call A methods: {methods}")
        r = db.rows(q["call_c"])
        check(len(r) == 1 and int(r[0][3]) == 7 and int(r[0][6]) == 200 and r[0][4] == c["caller"],
              f"call C (across midnight) merges to one summary: {r}")
        check(db.rows(q["call_missing"]) == [], "an unknown Call-ID has no summary")

        # FLOW_COLUMNS: id, time_us, node_name, transport, src_ip, src_port, dst_ip,
        # dst_port, is_request, method, status, reason, cseq_num, cseq_method, msg_hash,
        # call_id, from_user, to_user, aleg_id, correlation_id, raw.
        r = db.rows(q["flow_a"])
        times = [int(x[1]) for x in r]
        check(len(r) == 14 and times == sorted(times), f"flow A: 14 rows in capture order ({len(r)})")
        if len(r) >= 2:
            check(r[0][9] == "INVITE" and r[0][2] == "lb1" and r[1][2] == "lb2", "flow A starts with INVITE, lb1 then lb2")
            check(r[0][14] == r[1][14], "the two sightings of the INVITE hash the same")
        check(all(x[0] != "999" and int(x[0]) != 999 for x in r), "the non-SIP row is not in the flow")
        r = db.rows(q["flow_raw_a"])
        check(len(r) == 14 and r[0][15] == a["call_id"] and r[0][20].startswith("INVITE sip:"),
              "flow with raw bytes returns Call-ID and the message")
        r = db.rows(q["flow_a_b"])
        check(sorted({x[15] for x in r}) == sorted([a["call_id"], b["call_id"]]) and len(r) == 19,
              f"one flow query reads two legs ({len(r)} rows)")

        # Correlation and failover analysis queries.
        check(db.rows(q["header_refs_a"]) == [], "no call names call A in an A-leg header")
        r = db.rows(q["invites_from_caller"])
        check([x[0] for x in r] == [a["call_id"], b["call_id"], c["call_id"]] and r[0][2] == a["caller"],
              f"first INVITE per call from the caller, in time order: {r}")
        check(len(db.rows(q["invites_to_callee"])) == 3, "first INVITE per call to the callee")
        check(db.rows(q["relays_all"]) == [] and db.rows(q["relays_only"]) == [],
              "endpoints that talk to one peer per call are no relays")
        r = db.rows(q["activity_caller"])
        check(len(r) >= 3 and all(int(x[2]) <= int(x[3]) for x in r), f"per-second activity: {r[:2]}")
        check(db.rows(q["net_events"]) == [] and db.rows(q["probed"]) == [] and db.rows(q["backend_probes"]) == [],
              "no network events and no probes")
        r = db.rows(q["backend_transactions"])
        check(len(r) == 5 and {x[1] for x in r} == {"INVITE", "BYE"}, f"INVITE and BYE transactions: {r}")
        r = {x[0]: x for x in db.rows(q["activity_of_calls"])}
        check(len(r) == 3 and int(r[b["call_id"]][3]) == 486 and int(r[a["call_id"]][5]) == 1,
              f"per-call activity: B failed with 486, A's BYE answered: {r}")
        r = db.rows(q["flow_c"])
        check(len(r) == 7 and r[0][9] == "INVITE", f"flow C spans two daily partitions ({len(r)} rows)")
        r = db.rows(q["message_3"])
        check(len(r) == 1 and int(r[0][0]) == 3 and r[0][10] in (180, "180"), f"message 3 by id: {r[:1]}")

        def ids(name):
            return [x[0] for x in db.rows(q[name])]

        expect = {
            "search_all": [c["call_id"], b["call_id"], a["call_id"]],
            "search_number_suffix": [b["call_id"], a["call_id"]],
            "search_caller": [c["call_id"]],
            "search_node_status": [a["call_id"]],
            "search_status_486": [b["call_id"]],
            "search_call_id": [b["call_id"]],
            "search_page_2": [b["call_id"]],
            "search_injection": [],
        }
        for name, want in expect.items():
            got = ids(name)
            check(got == want, f"{name}: {got}")

    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("\nall modern schema checks passed")


if __name__ == "__main__":
    main()
