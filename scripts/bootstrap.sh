#!/usr/bin/env bash
# Create .venv (if missing) and install consent-gate into it. Sourced by the other scripts.
# Usage: scripts/bootstrap.sh [extra]   e.g. "test" installs the test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
extra="${1:-}"
spec="."
[ -n "$extra" ] && spec=".[$extra]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
