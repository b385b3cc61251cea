#!/bin/bash
# Build the HA SIP topology in network namespaces, run one scenario, write one pcap per host
# and the ground truth. Needs root. See scenarios/README.md.
#
#   scenarios/run.sh SCENARIO OUTDIR
#   SCENARIO: plain | plain-noxcid | lb-failover | lb-failover-vrrp | backend-crash | backend-drain
#
# Tunables (environment): N=10 calls, RATE=4 calls/s, RING_MS=1000, TALK_MS=3000,
# EVENT_AT=2.0 (s after the first INVITE), FAILOVER_GAP=1.0 (s without a VIP owner),
# B2BUA_BIN (default: built with cargo into $CARGO_TARGET_DIR or target/).
set -euo pipefail

usage() {
	echo "usage: $0 plain|plain-noxcid|lb-failover|lb-failover-vrrp|backend-crash|backend-drain OUTDIR" >&2
	exit 2
}
[ $# -eq 2 ] || usage
SCEN=$1
case "$SCEN" in plain | plain-noxcid | lb-failover | lb-failover-vrrp | backend-crash | backend-drain) ;; *) usage ;; esac
OUT=$(realpath -m "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
N=${N:-10}
RATE=${RATE:-4}
RING_MS=${RING_MS:-1000}
TALK_MS=${TALK_MS:-3000}
EVENT_AT=${EVENT_AT:-2.0}
FAILOVER_GAP=${FAILOVER_GAP:-1.0}
LIMIT=100 # seconds: hard bound on every process we start

[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (network namespaces)" >&2; exit 2; }

log() { printf '%s [%s] %s\n' "$(date +%T.%3N)" "$SCEN" "$*" >&2; }
now() { date +%s.%3N; }

# --- tools -------------------------------------------------------------------------------
missing=()
for pair in kamailio:kamailio sipp:sip-tester tcpdump:tcpdump ip:iproute2 arping:iputils-arping tshark:tshark \
	python3:python3 keepalived:keepalived; do
	command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y "${missing[@]}" >&2
fi
if [ -z "${B2BUA_BIN:-}" ]; then
	(cd "$ROOT" && timeout 600 cargo build -q -p b2bua)
	B2BUA_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/b2bua
fi
[ -x "$B2BUA_BIN" ] || { echo "run.sh: no b2bua binary at $B2BUA_BIN" >&2; exit 2; }

# --- topology ----------------------------------------------------------------------------
HOSTS=(itsp lb1 lb2 ast1 ast2 phones)
declare -A IP=([itsp]=10.77.0.10 [lb1]=10.77.0.11 [lb2]=10.77.0.12 [ast1]=10.77.0.21 [ast2]=10.77.0.22
	[phones]=10.77.0.30)
VIP=10.77.0.100
PFX="vt$$" # namespace prefix, unique per run
SW="$PFX-sw"
ns() { echo "$PFX-$1"; }
nsx() { local h=$1; shift; ip netns exec "$(ns "$h")" "$@"; }

rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/run"
RUN="$OUT/run"
EVENTS="$OUT/logs/events.jsonl"
: >"$EVENTS"
event() { echo "{\"t\":$(now),\"event\":\"$1\"${2:+,$2}}" >>"$EVENTS"; }

BGPIDS=()
cleanup() {
	set +e
	for p in "${BGPIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for h in "${HOSTS[@]}" sw; do
		local n
		n=$(ns "$h")
		ip netns list | grep -qw "$n" || continue
		for p in $(ip netns pids "$n"); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$n"
	done
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$SW"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
for h in "${HOSTS[@]}"; do
	n=$(ns "$h")
	ip netns add "$n"
	nsx "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip link add eth0 netns "$n" type veth peer name "p-$h" netns "$SW"
	ip -n "$SW" link set "p-$h" master br0 up
	ip -n "$n" addr add "${IP[$h]}/24" dev eth0
	ip -n "$n" link set lo up
	ip -n "$n" link set eth0 up
done
for h in lb1 lb2; do nsx "$h" sysctl -qw net.ipv4.ip_nonlocal_bind=1; done
# The VIP starts on lb1: added here, or by keepalived once the captures run (below).
[ "$SCEN" = lb-failover-vrrp ] || ip -n "$(ns lb1)" addr add "$VIP/24" dev eth0
event topology "\"hosts\":{$(for h in "${HOSTS[@]}"; do printf '"%s":"%s",' "$h" "${IP[$h]}"; done | sed 's/,$//')},\"vip\":\"$VIP\",\"vip_owner\":\"lb1\""

# One capture per host, as an agent on that host would see it.
for h in "${HOSTS[@]}"; do
	nsx "$h" timeout $LIMIT tcpdump -i eth0 -n -s 0 -U -w "$OUT/$h.pcap" 2>"$OUT/logs/tcpdump-$h.log" &
	BGPIDS+=($!)
done
for h in "${HOSTS[@]}"; do
	for _ in $(seq 50); do [ -s "$OUT/$h.pcap" ] && break; sleep 0.1; done
done

# keepalived owns the VIP (lb-failover-vrrp): lb1 master (priority 150), lb2 backup (100),
# unicast adverts every second between the LB addresses. notify_master appends the instant
# an LB became master to the events log (epoch, ms), the ground truth of the takeover.
if [ "$SCEN" = lb-failover-vrrp ]; then
	cat >"$RUN/notify-master.sh" <<-EOF
		#!/bin/sh
		echo "{\"t\":\$(date +%s.%3N),\"event\":\"vrrp_master\",\"host\":\"\$1\"}" >>"$EVENTS"
	EOF
	chmod 755 "$RUN/notify-master.sh"
	declare -A KA_STATE=([lb1]=MASTER [lb2]=BACKUP) KA_PRIO=([lb1]=150 [lb2]=100) KA_PEER=([lb1]=lb2 [lb2]=lb1)
	for h in lb1 lb2; do
		sed -e "s#@NAME@#$h#g; s#@OWN@#${IP[$h]}#g; s#@PEER@#${IP[${KA_PEER[$h]}]}#g; s#@VIP@#$VIP#g" \
			-e "s#@STATE@#${KA_STATE[$h]}#g; s#@PRIO@#${KA_PRIO[$h]}#g; s#@NOTIFY@#$RUN/notify-master.sh#g" \
			"$HERE/keepalived-lb.conf.in" >"$RUN/keepalived-$h.conf"
		# -P: VRRP only; -n -l -G: stay in the foreground, log to our file, not to syslog;
		# own pid files, so nothing is written under /run.
		nsx "$h" timeout $LIMIT keepalived -P -n -l -D -G -f "$RUN/keepalived-$h.conf" \
			-p "$RUN/keepalived-$h.pid" -r "$RUN/keepalived-vrrp-$h.pid" >"$OUT/logs/keepalived-$h.log" 2>&1 &
		BGPIDS+=($!)
	done
	for _ in $(seq 100); do
		ip -n "$(ns lb1)" -4 addr show dev eth0 | grep -q " $VIP/" && break
		sleep 0.1
	done
	ip -n "$(ns lb1)" -4 addr show dev eth0 | grep -q " $VIP/" || { log "keepalived did not put the VIP on lb1"; exit 1; }
	log "keepalived: VIP $VIP on lb1"
fi

# Phones (sipp UAS), the two B2BUAs, the two load balancers.
nsx phones timeout $LIMIT sipp -sf "$HERE/sipp/phones-uas.xml" -i "${IP[phones]}" -p 5060 -d "$RING_MS" \
	-nostdin -trace_err -error_file "$OUT/logs/phones-errors.log" >"$OUT/logs/phones.out" 2>&1 &
UAS_PID=$!
BGPIDS+=($UAS_PID)
XCID=--xcid
[ "$SCEN" = plain-noxcid ] && XCID=
for h in ast1 ast2; do
	nsx "$h" timeout $LIMIT "$B2BUA_BIN" --listen "${IP[$h]}:5060" --next-hop "${IP[phones]}:5060" $XCID \
		--node "$h" --legs-log "$OUT/logs/legs-$h.jsonl" --max-calls 200 --call-timeout 60 \
		--drain-file "$RUN/drain-$h" --stop-file "$RUN/stop" >"$OUT/logs/b2bua-$h.log" 2>&1 &
	BGPIDS+=($!)
done
sed -e "s#@AST1@#${IP[ast1]}#; s#@AST2@#${IP[ast2]}#" "$HERE/dispatcher.list.in" >"$RUN/dispatcher.list"
for h in lb1 lb2; do
	sed -e "s#@NAME@#$h#g; s#@OWN@#${IP[$h]}#g; s#@VIP@#$VIP#g; s#@DIR@#$RUN#g" "$HERE/kamailio-lb.cfg.in" \
		>"$RUN/kamailio-$h.cfg"
	nsx "$h" timeout $LIMIT kamailio -DD -E -f "$RUN/kamailio-$h.cfg" -P "$RUN/kamailio-$h.pid" \
		-Y "$RUN/kam-$h-runtime" >"$OUT/logs/kamailio-$h.log" 2>&1 &
	BGPIDS+=($!)
done
# Destinations start active; one probe round lets both LBs see both backends answer.
sleep 1.2

# kill -9 every process named $2 in host $1's namespace (processes this script started there).
kill_in() {
	local p
	for p in $(ip netns pids "$(ns "$1")"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && kill -9 "$p" 2>/dev/null
	done
	return 0
}

# Like kill_in, but every such process is stopped first: keepalived's VRRP child gets
# SIGTERM when its parent dies and would then resign cleanly (priority 0 advert, VIP
# removed), which is not what a dying host does.
freeze_kill_in() {
	local p pids=()
	for p in $(ip netns pids "$(ns "$1")"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && pids+=("$p")
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -STOP "${pids[@]}" 2>/dev/null
	kill -9 "${pids[@]}" 2>/dev/null
	return 0
}

scenario_event() {
	sleep "$EVENT_AT"
	case "$SCEN" in
	lb-failover)
		kill_in lb1 kamailio
		ip -n "$(ns lb1)" addr del "$VIP/24" dev eth0
		event lb_killed '"host":"lb1"'
		sleep "$FAILOVER_GAP"
		ip -n "$(ns lb2)" addr add "$VIP/24" dev eth0
		event vip_moved '"from":"lb1","to":"lb2"'
		nsx lb2 timeout 5 arping -q -U -c 2 -I eth0 "$VIP" || true
		;;
	lb-failover-vrrp)
		# The host dies: Kamailio and keepalived killed. keepalived killed with -9 leaves
		# the VIP on eth0, and a dead host answers no ARP and no SIP for it: the VIP goes
		# too, as in lb-failover. (Downing lb1's switch port instead makes the bridge flood
		# every frame still sent to lb1's MAC to all hosts, noise in every capture.) lb2's
		# keepalived takes over after 3 missed adverts and sends gratuitous ARP itself.
		kill_in lb1 kamailio
		freeze_kill_in lb1 keepalived
		ip -n "$(ns lb1)" addr del "$VIP/24" dev eth0
		event lb_killed '"host":"lb1"'
		;;
	backend-crash)
		kill_in ast1 b2bua
		event backend_crashed '"host":"ast1"'
		;;
	backend-drain)
		touch "$RUN/drain-ast1"
		event backend_drained '"host":"ast1"'
		;;
	esac
}

log "calls: $N at $RATE/s, ring ${RING_MS} ms, talk ${TALK_MS} ms"
event uac_start
scenario_event &
EV_PID=$!
BGPIDS+=($EV_PID)
set +e
nsx itsp timeout 80 sipp -sf "$HERE/sipp/itsp-uac.xml" "$VIP:5060" -i "${IP[itsp]}" -p 5060 -m "$N" -r "$RATE" \
	-d "$TALK_MS" -recv_timeout 15000 -nostdin -cid_str 'itsp-%u-%p@%s' \
	-trace_logs -log_file "$OUT/logs/itsp-calls.log" -trace_err -error_file "$OUT/logs/itsp-errors.log" \
	>"$OUT/logs/itsp.out" 2>&1
UAC_RC=$?
set -e
event uac_end "\"rc\":$UAC_RC"
wait "$EV_PID" 2>/dev/null || true
log "sipp UAC exit code $UAC_RC"

# Wind down: B2BUAs log what is still open, then everything else stops; captures last.
sleep 0.5
touch "$RUN/stop"
sleep 0.2
kill "$UAS_PID" 2>/dev/null || true
for h in lb1 lb2; do kill_in "$h" kamailio; done
sleep 0.3
for h in "${HOSTS[@]}"; do
	for p in $(ip netns pids "$(ns "$h")"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = tcpdump ] && kill -INT "$p" || true
	done
done
sleep 0.5
event done

python3 "$HERE/truth.py" "$SCEN" "$OUT" >"$OUT/truth.json"
python3 "$HERE/check.py" "$SCEN" "$OUT" "$UAC_RC"
