#!/bin/bash
# Regenerate the shipped scenario captures and ground truth in pcaps/scenarios/ (needs root).
# Keeps the pcaps, truth.json, summary.txt and the small logs truth.json is derived from.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=$(dirname "$HERE")/pcaps/scenarios
rc=0
# Each scenario can also be regenerated alone: scenarios/regen-pcaps.sh lb-failover-vrrp
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(plain plain-noxcid lb-failover lb-failover-vrrp backend-crash backend-drain)
for s in "${SCENARIOS[@]}"; do
	"$HERE/run.sh" "$s" "$DEST/$s" || rc=1
	rm -f "$DEST/$s"/logs/{kamailio-*.log,keepalived-*.log,itsp.out,phones.out,tcpdump-*.log}
done
du -sh "$DEST"
exit $rc
