#!/usr/bin/env bash
# The README's first command: set up and serve the Japan Talk example wrapped by consent-gate
# on http://127.0.0.1:8000 with embedded defaults (SQLite ledger, an insecure DEV key - loud warning).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export CONSENT_GATE_DEV="${CONSENT_GATE_DEV:-1}"
exec .venv/bin/consent-gate run examples.japan_talk.app:app \
  --config examples/japan_talk/partners.toml --host 127.0.0.1 --port "${PORT:-8000}" "$@"
