#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): set up everything the tests need,
# then lint, type-check and run the whole suite, browser tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
# Debian's Chromium drives the browser tests (never `playwright install`).
if [ ! -x /usr/bin/chromium ] || ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk >/dev/null
  fi
fi
# node + npm run IAB's reference TCF/GPP implementations for the signal tests (tests/node).
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || true
fi
# PostgreSQL server binaries for the PostgreSQL ledger tests (the tests start their own server).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || true
  fi
fi
echo "== ruff"; .venv/bin/ruff check middleware tests examples bench
echo "== mypy --strict"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
# The pure-Python scanner is the reference and the fallback: the rewriter and ASGI suites also
# run without the C accelerator (skipped when arguments select other tests).
if [ "$#" -eq 0 ]; then
  echo "== pytest, CONSENT_GATE_PURE_PYTHON=1 (rewriter + ASGI)"
  CONSENT_GATE_PURE_PYTHON=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_rewrite.py tests/test_rewrite_fetch.py tests/test_rewrite_properties.py \
    tests/test_rewrite_html5lib.py tests/test_memo.py \
    tests/test_hosts.py tests/test_asgi.py
fi
