#!/usr/bin/env bash
# The main job on one machine: a local ClickHouse and collector, the shipped captures
# replayed through the agent, and the calls they hold.
#   ./run demo         start (or restart) everything and show the calls
#   ./run demo stop    stop the collector and the ClickHouse this demo started
# Ports: DEMO_CLICKHOUSE_PORT (18123), DEMO_HEP_LISTEN (127.0.0.1:9060),
#        DEMO_API_LISTEN (127.0.0.1:9080).
set -euo pipefail
cd "$(dirname "$0")/.."
run=.run/demo
ch_port=${DEMO_CLICKHOUSE_PORT:-18123}
hep=${DEMO_HEP_LISTEN:-127.0.0.1:9060}
api=${DEMO_API_LISTEN:-127.0.0.1:9080}
db=sip_demo
mkdir -p "$run"

stop_collector() {
  if [ -s "$run/collector.pid" ] && kill -0 "$(cat "$run/collector.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$run/collector.pid")"
    while kill -0 "$(cat "$run/collector.pid")" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$run/collector.pid"
}

if [ "${1:-}" = stop ]; then
  stop_collector
  scripts/clickhouse.sh stop --dir "$run/clickhouse"
  exit 0
fi

scripts/install-deps.sh
echo "== building (debug profile, shared with the tests)"
cargo build --quiet -p capture-agent -p collector --bins
bin="${CARGO_TARGET_DIR:-target}/debug"

echo "== ClickHouse on 127.0.0.1:$ch_port (data in $run/clickhouse)"
scripts/clickhouse.sh status --dir "$run/clickhouse" >/dev/null 2>&1 ||
  scripts/clickhouse.sh start --port-http "$ch_port" --dir "$run/clickhouse"
ch() { curl -sS --fail-with-body "http://127.0.0.1:$ch_port/" --data-binary "$1"; }
stop_collector
ch "DROP DATABASE IF EXISTS $db" # every demo starts from the shipped captures alone

echo "== collector: HEP on $hep (UDP+TCP), API on http://$api"
# The host map names the scenario's addresses (the HA topology of pcaps/scenarios/);
# without it, names are learned from the agents' node names.
hosts=(--host vip=10.77.0.100 --host itsp=10.77.0.10 --host lb1=10.77.0.11 --host lb2=10.77.0.12
  --host ast1=10.77.0.21 --host ast2=10.77.0.22 --host phones=10.77.0.30)
"$bin/collector" --clickhouse-url "http://127.0.0.1:$ch_port" --clickhouse-database "$db" \
  --hep-listen "$hep" --api-listen "$api" --batch-max-age-ms 200 "${hosts[@]}" >"$run/collector.log" 2>&1 &
echo $! >"$run/collector.pid"
for _ in $(seq 100); do curl -sf "http://$api/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://$api/healthz" >/dev/null || { cat "$run/collector.log"; exit 1; }

# replay FILE NODE: one agent run; prints what it sent and adds it to $sent (rows to wait for).
sent=0
replay() {
  local out m e
  out=$("$bin/capture-agent" --no-progress -r "$1" --hep-server "$hep" --transport tcp --node-name "$2" 2>&1)
  read -r m e < <(echo "$out" |
    sed -n 's/.*sip_messages=\([0-9]*\) hep_relayed=\([0-9]*\) net_events=\([0-9]*\).*/\1 \2 \3/p' |
    awk '{print $1 + $2, $3}') || true
  printf "   %-45s %5d messages%s\n" "$2" "$m" "$([ "$e" -gt 0 ] && echo ", $e network events (GARP/VRRP)")"
  sent=$((sent + m + e))
}

echo "== agent: replaying pcaps/ (each file as its own capture node)"
for f in pcaps/*.pcap*; do
  replay "$f" "$(basename "$f" | sed 's/\.pcap.*//')"
done

echo "== agent: the lb-failover scenario, one capture per host (pcaps/scenarios/lb-failover)"
for f in pcaps/scenarios/lb-failover/*.pcap; do
  replay "$f" "$(basename "$f" .pcap)"
done

echo "== waiting until ClickHouse holds all $sent messages"
for _ in $(seq 100); do
  stored=$(ch "SELECT count() FROM $db.sip_messages")
  [ "$stored" -ge "$sent" ] && break
  sleep 0.1
done
echo "   stored: $stored"

echo "== calls (GET http://$api/api/v1/calls?limit=8)"
curl -sf "http://$api/api/v1/calls?limit=8" | python3 -c '
import json, sys
calls = json.load(sys.stdin)["calls"]
print("   %-44s %-16s %-16s %6s %5s  %s" % ("call_id", "caller", "callee", "status", "msgs", "nodes"))
for c in calls:
    print("   %-44.44s %-16.16s %-16.16s %6s %5s  %s" % (c["call_id"], c.get("caller") or "-", c.get("callee") or "-",
          c.get("final_status") or "-", c["messages"], ",".join(c.get("nodes", []))))'

# A call seen on several hops of the load-balancer topology, and the oversized INVITE.
show=$(ch "SELECT call_id FROM $db.sip_messages WHERE node_name = 'topology_lb_b2bua_sip_only' AND method = 'INVITE' ORDER BY ts, ts_us LIMIT 1")
enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$show")
echo
echo "== one call's flow (GET http://$api/api/v1/calls/$enc/flow?format=text)"
curl -sf "http://$api/api/v1/calls/$enc/flow?format=text"
# A call that was in progress when lb1 died (scenario ground truth): its INVITE went
# through lb1, its BYE through lb2 after the VIP moved; the B2BUA gave it a second leg.
failover=$(python3 -c 'import json; t = json.load(open("pcaps/scenarios/lb-failover/truth.json")); print(t["events"][0]["calls_in_progress"][-1])')
fenc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$failover")
echo
echo "== a call across the lb1 -> lb2 failover, both legs, seen by every host (GET .../flow?format=text)"
curl -sf "http://$api/api/v1/calls/$fenc/flow?format=text"
window=$(python3 -c 'import json; t = json.load(open("pcaps/scenarios/lb-failover/truth.json")); print("from=%d&to=%d" % (t["t_start"] - 5, t["t_end"] + 30))')
echo
echo "== what the failover did (GET http://$api/api/v1/failovers?$window)"
curl -sf "http://$api/api/v1/failovers?$window" | python3 -c '
import json, sys
from collections import Counter
for e in json.load(sys.stdin)["events"]:
    move = " %s -> %s" % (e["from"], e["to"]) if e.get("from") else ""
    print("   %s  %-15s %s%s" % (e["time"], e["kind"], e["address"], move))
    for line in e["evidence"]:
        print("        - " + line)
    impacts = Counter(c["impact"] for c in e["calls"])
    if impacts:
        print("        calls: " + ", ".join("%d %s" % (n, i) for i, n in sorted(impacts.items())))'
echo
echo "== the call's own summary says what became of it (GET .../calls/{call_id})"
curl -sf "http://$api/api/v1/calls/$fenc" | python3 -c '
import json, sys
f = json.load(sys.stdin)["failover"]
print("   spanned a failover: %s, impact: %s" % (f["spanned"], f["impact"]))
for e in f["events"]:
    print("   - %s %s at %s: %s" % (e["kind"], e["address"], e["time"], e["explanation"]))'
echo
echo "== the VIP move on the wire: lb2's gratuitous ARP, as each host captured it (HEP payload type 112)"
ch "SELECT node_name, toUInt32(ts), ts_us, raw FROM $db.sip_messages WHERE payload_type = 112 AND method = 'GARP'
    ORDER BY ts, ts_us, node_name LIMIT 6 FORMAT TSV" |
  awk -F'\t' '{ printf "   %-7s %d.%06d  %s\n", $1, $2, $3, $4 }'
echo
echo "Look further:"
echo "   failover call ladder: http://$api/api/v1/calls/$fenc/flow.html   (one leg: ?legs=single)"
echo "   ladder in a browser:  http://$api/api/v1/calls/$enc/flow.html"
echo "   flow as JSON:         http://$api/api/v1/calls/$enc/flow"
echo "   call as pcap:         curl -o call.pcap http://$api/api/v1/calls/$enc/pcap"
echo "   search by number:     http://$api/api/v1/calls?number=1234"
echo "   failover events:      http://$api/api/v1/failovers?$window"
echo "   API description:      http://$api/api/v1/openapi.json     metrics: http://$api/metrics"
echo "The collector and ClickHouse keep running; stop them with: ./run demo stop"
