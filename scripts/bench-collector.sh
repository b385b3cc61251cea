#!/usr/bin/env bash
# Collector benchmark, figures next to baselines measured in the same run:
#   (a) sustained ingest: HEP over TCP -> collector -> ClickHouse on this machine, zero loss
#   (b) delay until a message is queryable through the API, on an idle collector
#   (c) flow and search query time with ROWS messages in sip_messages
#   (d) baselines: heplify-server's published figure, and ClickHouse's own insert floor here
#
#   scripts/bench-collector.sh                 10 M messages (a few minutes on 2 cores)
#   ROWS=1000000 scripts/bench-collector.sh    smaller run
# Other knobs: CONNECTIONS (HEP TCP connections = capture nodes, 4), FLOOR_ROWS (rows
# of the floor measurement, 1 M), COLLECTOR_ARGS (extra collector flags), KEEP=1 (leave
# the ClickHouse data dir for inspection; the server is stopped either way).
# Timing goes here, never into tests: a busy machine makes timed tests flaky.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-10000000}
CONNECTIONS=${CONNECTIONS:-4}
FLOOR_ROWS=${FLOOR_ROWS:-1000000}
[ "$FLOOR_ROWS" -le "$ROWS" ] || FLOOR_ROWS=$ROWS
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --release -p collector -p capture-agent --bins --example hep_load
R="$CARGO_TARGET_DIR/release"
dir=.run/bench/collector
chdir="$dir/clickhouse"

collector_pid=""
cleanup() {
  if [ -n "$collector_pid" ] && kill -0 "$collector_pid" 2>/dev/null; then
    kill "$collector_pid" 2>/dev/null || true
    wait "$collector_pid" 2>/dev/null || true
  fi
  scripts/clickhouse.sh stop --dir "$chdir" >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$chdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port P with P and P+1 free (bash's /dev/tcp: a refused connect means nobody listens).
free() { ! { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || { exec 9>&-; return 1; }; }
spare_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    free "$p" && free $((p + 1)) && { echo "$p"; return 0; }
  done
  echo "no spare port" >&2; return 1
}

# cpu_s PID: user + system CPU seconds so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
# peak_mb PID: peak resident set (VmHWM), MB.
peak_mb() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# result MODE KEY FILE: the value of KEY on the `RESULT mode=MODE` line of FILE.
result() { grep "^RESULT mode=$1 " "$3" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ch() { curl -sS --fail-with-body "http://127.0.0.1:$ch_port/" --data-binary @-; }

rm -rf "$chdir"
mkdir -p "$dir"
ch_port=$(spare_port)
scripts/clickhouse.sh start --port-http "$ch_port" --dir "$chdir" >/dev/null
ch_url="http://127.0.0.1:$ch_port"
ch_pid=$(cat "$chdir/clickhouse.pid")
ch_version=$(echo "SELECT version()" | ch)

# (d) first, on an idle server: the database's own insert floor.
floor() {
  local parallel=$1
  echo "DROP DATABASE IF EXISTS floor" | ch
  "$R/examples/hep_load" floor --clickhouse "$ch_url" --database floor --messages "$FLOOR_ROWS" \
    --parallel "$parallel" >"$dir/floor$parallel.out"
  result floor rate "$dir/floor$parallel.out"
}
floor1=$(floor 1)
floor2=$(floor 2)
# Server-side copy: no client, no HTTP, no parsing; still the table's sort, compression
# and the materialized view.
echo "CREATE TABLE floor.copy_src ENGINE = Memory AS SELECT * FROM floor.sip_messages" | ch
echo "TRUNCATE TABLE floor.sip_messages" | ch
t0=$(date +%s.%N)
echo "INSERT INTO floor.sip_messages SELECT * FROM floor.copy_src" | ch
t1=$(date +%s.%N)
floor_server=$(awk -v n="$FLOOR_ROWS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "DROP DATABASE floor" | ch

# The collector, release build, default batching (the figures are for its defaults).
hep_port=$(spare_port)
api_port=$(spare_port)
# shellcheck disable=SC2086 # COLLECTOR_ARGS is a list of flags
"$R/collector" --clickhouse-url "$ch_url" --clickhouse-database sip --hep-listen "127.0.0.1:$hep_port" \
  --api-listen "127.0.0.1:$api_port" --retention-days 0 --log warn ${COLLECTOR_ARGS:-} 2>"$dir/collector.log" &
collector_pid=$!
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null 2>&1 && break
  kill -0 "$collector_pid" 2>/dev/null || { cat "$dir/collector.log" >&2; exit 1; }
  sleep 0.1
done

# (a) sustained ingest.
c0=$(cpu_s "$collector_pid")
s0=$(cpu_s "$ch_pid")
/usr/bin/time -f "%e %U %S %M" -o "$dir/load.time" "$R/examples/hep_load" load --hep "127.0.0.1:$hep_port" \
  --messages "$ROWS" --connections "$CONNECTIONS" --ids-out "$dir/ids.txt" --clickhouse "$ch_url" \
  --database sip >"$dir/load.out"
c1=$(cpu_s "$collector_pid")
s1=$(cpu_s "$ch_pid")
collector_rss=$(peak_mb "$collector_pid")
read -r _ load_user load_sys _ <"$dir/load.time"
sent=$(result load sent "$dir/load.out")
send_s=$(result load send_s "$dir/load.out")
stored=$(result stored stored "$dir/load.out")
stored_s=$(result stored stored_s "$dir/load.out")
summary=$(echo "SELECT countMerge(messages) FROM sip.sip_calls" | ch)

# (b) delay until queryable, (c) query times.
latency_samples=20
"$R/examples/hep_load" latency --hep "127.0.0.1:$hep_port" --api "127.0.0.1:$api_port" --samples "$latency_samples" \
  >"$dir/latency.out"
"$R/examples/hep_load" query --api "127.0.0.1:$api_port" --ids "$dir/ids.txt" --samples 50 \
  --search-samples 10 >"$dir/query.out"
rows_now=$(echo "SELECT count() FROM sip.sip_messages" | ch)
calls_now=$(echo "SELECT uniqExact(call_id) FROM sip.sip_calls" | ch)
metrics=$(curl -sS "http://127.0.0.1:$api_port/metrics")

# Graceful stop: the final flush, then the count must still match.
kill "$collector_pid"
wait "$collector_pid" || true
collector_pid=""
final=$(echo "SELECT count() FROM sip.sip_messages" | ch)
dropped=$(echo "$metrics" | awk '/^collector_dropped_packets_total/ { s += $2 } END { print s + 0 }')

k() { awk -v x="$1" 'BEGIN { printf "%.0f k/s", x / 1000 }'; }
echo
echo "Collector ingest: $sent HEP messages ($((sent / 7)) calls of 7 SIP messages: INVITE/100/180/200/ACK/BYE/200,"
echo "$CONNECTIONS capture nodes, one HEPv3/TCP connection each), release build, ClickHouse $ch_version on the"
echo "same $(nproc)-core machine, collector defaults (batches of 50k rows or 32 MB, ~40k rows here; 1 s max age;"
echo "2 inserts in flight):"
printf "  %-58s %12s %9s %10s %8s %9s\n" "" messages wall "stored/s" CPU-s "peak RSS"
awk -v s="$stored" -v w="$stored_s" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" -v r="$collector_rss" \
  'BEGIN { printf "  %-58s %12d %7.1f s %6.0f k/s %8.1f %6d MB\n", "collector: HEP/TCP -> ClickHouse (sent -> stored)", s, w, s / w / 1000, c, r }'
loss=$((sent - stored))
echo "      sent $sent, stored $stored, loss $loss ($( [ "$loss" -eq 0 ] && echo zero loss || echo LOSS)); sender done after ${send_s} s"
echo "      ($(k "$(result load send_rate "$dir/load.out")") accepted by the collector, TCP backpressure);"
awk -v u="$load_user" -v y="$load_sys" -v a="$s0" -v b="$s1" -v c0="$c0" -v c1="$c1" -v n="$stored" 'BEGIN {
  printf "      CPU per stored message: collector %.1f us, ClickHouse server %.1f us (%.1f CPU-s),", (c1 - c0) * 1e6 / n,
    (b - a) * 1e6 / n, b - a
  printf " load generator %.1f us\n", (u + y) * 1e6 / n }'
echo "      materialized view counted $summary messages; after graceful stop: $final rows, drop counters $dropped"
printf "  %-58s %12d %9s %10s\n" "floor: clickhouse crate, pre-decoded rows, 1 insert at a time" "$FLOOR_ROWS" "" "$(k "$floor1")"
printf "  %-58s %12d %9s %10s\n" "floor: same, 2 inserts in parallel" "$FLOOR_ROWS" "" "$(k "$floor2")"
printf "  %-58s %12d %9s %10s\n" "floor: server-side INSERT SELECT (no client, no parsing)" "$FLOOR_ROWS" "" "$(k "$floor_server")"
printf "  %-58s %12s %9s %10s\n" "baseline: heplify-server on tuned PostgreSQL (published)" "" "" "132 k/s"
echo "  target: >= 200 k/s stored with zero loss"
echo
echo "Delay until queryable (idle collector; one message at a time, API flow polled every 2 ms):"
echo "  $(result latency samples "$dir/latency.out") samples: p50 $(result latency p50_ms "$dir/latency.out") ms," \
  "p95 $(result latency p95_ms "$dir/latency.out") ms (bounded by the batch max age, 1000 ms by default)"
echo
echo "Query time through the API with $rows_now rows in sip_messages ($calls_now calls):"
printf "  %-58s %8s %10s %10s %10s\n" "" samples p50 p95 max
for m in flow search; do
  label="GET /api/v1/calls/{call_id}/flow (random calls)"
  [ "$m" = search ] && label="GET /api/v1/calls?number=... (default 24 h window)"
  printf "  %-58s %8s %7s ms %7s ms %7s ms\n" "$label" "$(result $m samples "$dir/query.out")" \
    "$(result $m p50_ms "$dir/query.out")" "$(result $m p95_ms "$dir/query.out")" "$(result $m max_ms "$dir/query.out")"
done
echo "  target: flow p50 < 100 ms at 10 M rows"
echo "  (floors are 1 M-row inserts into an empty table; at 10 M rows ClickHouse also merges parts in the"
echo "  background, so its CPU per stored row above is the figure to compare)"
[ "$loss" -eq 0 ] && [ "$final" -eq "$((stored + latency_samples))" ] || { echo "bench-collector: message loss" >&2; exit 1; }
