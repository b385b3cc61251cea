#!/usr/bin/env bash
# Benchmarks that print figures next to their baselines, measured in the same run.
#   ./run bench            agent replay + per-stage figures
# Timing goes here, never into tests: a busy machine makes timed tests flaky.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --release -p capture-agent --bins --example make_bench_pcap
R="$CARGO_TARGET_DIR/release"
dir=.run/bench
mkdir -p "$dir"
[ -s "$dir/calls80k.pcap" ] || "$R/examples/make_bench_pcap" "$dir/calls80k.pcap" 80000
[ -s "$dir/calls40k.pcap" ] || "$R/examples/make_bench_pcap" "$dir/calls40k.pcap" 40000
big="$dir/calls80k.pcap"
packets=560000

# measure LABEL CMD...: wall, CPU seconds and peak RSS of CMD (GNU time).
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time.out" "$@" >/dev/null 2>"$dir/cmd.err" || { cat "$dir/cmd.err"; exit 1; }
  read -r wall user sys rss < "$dir/time.out"
  awk -v l="$label" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v n="$packets" 'BEGIN {
    cpu = u + s; if (w < 0.001) w = 0.001; if (cpu < 0.001) cpu = 0.001;
    printf "  %-38s %7.2f s %7.2f CPU-s %9.0f k pkt/s %9.0f k pkt/CPU-s %7.1f MB\n", l, w, cpu, n / w / 1000, n / cpu / 1000, r / 1024 }'
}

# with_sink TRANSPORT: agent -> hep-sink over TRANSPORT; prints what the sink counted.
with_sink() {
  local transport=$1 file=$2 label=$3
  coproc SINK { "$R/hep-sink" --listen 127.0.0.1:0 --count-only --idle-exit-ms 300; }
  local line; read -r line <&"${SINK[0]}"
  measure "$label" "$R/capture-agent" --no-progress -r "$file" --hep-server "${line##*on }" --transport "$transport"
  exec {SINK[1]}>&-
  local got; got=$(cat <&"${SINK[0]}"); wait "$SINK_PID" 2>/dev/null || true
  echo "      sink received: $got"
}

cat "$big" > /dev/null   # page cache, so every row reads from memory
echo "Agent replay of $big ($packets SIP packets, $(du -m "$big" | cut -f1) MB, 80k calls), release build, 2-core machine:"
printf "  %-38s %9s %11s %15s %19s %10s\n" "" wall CPU "rate (wall)" "rate (per CPU-s)" "peak RSS"
measure "floor: read the file (cat)" cat "$big"
measure "agent --dry-run (decode, no send)" "$R/capture-agent" --no-progress --dry-run -r "$big"
with_sink tcp "$big" "agent -> HEP/TCP loopback sink"
with_sink udp "$big" "agent -> HEP/UDP loopback sink"
packets=280000 with_sink tcp "$dir/calls40k.pcap" "same, half the file (memory flat?)"
echo "  baseline (FACTS.md, same kind of machine, 551k-packet file): heplify 86-126 k pkt/s, 6.5-9 CPU-s,"
echo "  270 MB peak RSS, loses up to 0.4 % at end of file; captagent 20-30 k pkt/s."
echo "  target: >= 1 M SIP messages/s per core over TCP, >= 10x heplify, memory flat as the file grows."
echo
cargo bench --quiet -p capture-agent --bench stages 2>/dev/null

echo
# Collector: sustained ingest into ClickHouse, delay until queryable, flow query time at
# 10 M rows (ROWS=... for a shorter run).
scripts/bench-collector.sh
