#!/usr/bin/env python3
"""Runs the dashboards' expanded SQL on modern ClickHouse (chDB, in-process) for tests/dashboards.rs.

Usage: chdb_queries.py JOB.json  (prints one JSON object on stdout)

JOB.json: {"database": "sip",
           "schema": ["schema/001_sip_messages.sql", ...],   # applied in order, as the collector does
           "messages_tsv": "/path/sip_messages.tsv",         # every sip_messages column, TabSeparated
           "queries": {"key": "SELECT ...", ...}}

Output: {"version": "26.x", "rows_loaded": N, "summary_messages": N,
         "results": {"key": {"meta": [[name, type], ...], "rows": N, "data": [{...}, ...]}
                     or {"error": "..."}}}

The schema is applied to a fresh throwaway session, the rows the real collector stored in
ClickHouse 18.16 are loaded into sip_messages (the materialized view fills sip_calls, as on
a server), then every query runs with FORMAT JSON.
"""
import json
import re
import sys
import tempfile

try:
    from chdb import session
except ImportError as e:  # the caller turns this into a test failure with the fix
    sys.stderr.write(f"cannot import chdb ({e}): run `pip install chdb` (or scripts/install-python-deps.sh)\n")
    sys.exit(3)


def statements(sql):
    """Like collector/src/store/schema.rs: drop `--` comment lines, split on `;`."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def main():
    job = json.load(open(sys.argv[1]))
    db = job["database"]
    if not re.fullmatch(r"\w+", db):
        raise SystemExit(f"bad database name {db!r}")
    with tempfile.TemporaryDirectory(prefix="dash-chdb-") as path:
        s = session.Session(path)
        s.query("SET session_timezone = 'UTC'")
        s.query(f"CREATE DATABASE IF NOT EXISTS {db}")
        s.query(f"USE {db}")
        for file in job["schema"]:
            for stmt in statements(open(file).read()):
                s.query(stmt)
        cols = s.query(
            f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'sip_messages' "
            "ORDER BY position", "JSONCompact")
        structure = ", ".join(f"{n} {t}" for n, t in json.loads(cols.bytes())["data"])
        tsv = job["messages_tsv"].replace("'", "\\'")
        s.query(f"INSERT INTO {db}.sip_messages SELECT * FROM file('{tsv}', 'TabSeparated', '{structure}')")
        out = {
            "version": str(s.query("SELECT version()", "TabSeparated").bytes().decode().strip()),
            "rows_loaded": int(s.query(f"SELECT count() FROM {db}.sip_messages", "TabSeparated").bytes()),
            "summary_messages": int(
                s.query(f"SELECT countMerge(messages) FROM {db}.sip_calls", "TabSeparated").bytes()),
            "results": {},
        }
        for key, sql in job["queries"].items():
            try:
                res = json.loads(s.query(sql, "JSON").bytes())
                out["results"][key] = {
                    "meta": [[m["name"], m["type"]] for m in res["meta"]],
                    "rows": res["rows"],
                    "data": res["data"],
                }
            except Exception as e:  # reported per query by the Rust test
                out["results"][key] = {"error": str(e)}
        s.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
