#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need, if it is missing.
# Debian packages only (the machine reaches Debian's mirrors and crates.io, nothing else).
set -euo pipefail

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in clickhouse-server clickhouse-client libpcap-dev time chromium; do
  have "$pkg" || need+=("$pkg")
done

if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq "${need[@]}"
  }
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

# Python side of the tests (chDB for the modern-ClickHouse checks).
"$(dirname "$0")/install-python-deps.sh"
