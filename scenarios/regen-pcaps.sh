#!/bin/bash
# Regenerate the shipped scenario captures and ground truth in pcaps/scenarios/ (needs root).
# Keeps the pcaps, truth.json, summary.txt and the small logs truth.json is derived from.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=$(dirname "$HERE")/pcaps/scenarios
rc=0
for s in plain plain-noxcid lb-failover backend-crash backend-drain; do
	"$HERE/run.sh" "$s" "$DEST/$s" || rc=1
	rm -f "$DEST/$s"/logs/{kamailio-*.log,itsp.out,phones.out,tcpdump-*.log}
done
du -sh "$DEST"
exit $rc
