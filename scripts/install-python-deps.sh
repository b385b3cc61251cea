#!/usr/bin/env bash
# Python packages the tests need, installed only when missing (quick when present):
#   chdb   in-process ClickHouse 26.x, for the modern-schema test (collector/tests/modern_schema.rs)
# PyPI only, through pip. Meant to be called from scripts/install-deps.sh.
set -euo pipefail

command -v python3 >/dev/null || { echo "install-python-deps.sh: python3 not found" >&2; exit 1; }

# find_spec: no need to load the 200 MB library just to see that it is there.
if python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("chdb") is None)' 2>/dev/null; then
  exit 0
fi

echo "installing Python package: chdb (large wheel, about a minute)"
pip_cmd=(python3 -m pip)
python3 -m pip --version >/dev/null 2>&1 || {
  # Debian's python3 may come without pip.
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -qq python3-pip >/dev/null 2>&1 || {
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq python3-pip
  }
}
# Debian's own python3 refuses system-wide pip installs (PEP 668) unless told otherwise.
extra=()
if "${pip_cmd[@]}" install --help 2>/dev/null | grep -q -- --break-system-packages; then
  python3 -c 'import sys; sys.exit(0 if sys.prefix == sys.base_prefix else 1)' && \
    [ -e "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ] && \
    extra+=(--break-system-packages)
fi
"${pip_cmd[@]}" install --quiet --disable-pip-version-check "${extra[@]}" chdb
python3 -c 'import chdb' || { echo "install-python-deps.sh: chdb installed but not importable" >&2; exit 1; }
