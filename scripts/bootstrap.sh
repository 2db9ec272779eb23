#!/usr/bin/env bash
# Create .venv (if missing) and install consent-gate into it, once. Called by the other scripts.
# Usage: scripts/bootstrap.sh [extra]   e.g. "test" installs the test extra.
#
# The install is stamped with a hash of what it was built from (pyproject.toml, setup.py,
# middleware/_speedups.c) and the extra; while they are unchanged and the venv is complete,
# nothing is installed again, so a ready venv starts without the package index.
# CONSENT_GATE_REINSTALL=1 forces a reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
extra="${1:-}"
stamp=.venv/.consent-gate-install
hash="$(cat pyproject.toml setup.py middleware/_speedups.c | sha256sum | cut -d' ' -f1)"

installed() {
  # Stamp lines are "HASH EXTRA"; the test extra includes the plain install.
  [ -f "$stamp" ] && [ -x .venv/bin/python ] && [ -x .venv/bin/consent-gate ] || return 1
  if [ -z "$extra" ]; then
    grep -q "^$hash " "$stamp"
  else
    grep -qx "$hash $extra" "$stamp"
  fi
}

if [ "${CONSENT_GATE_REINSTALL:-}" != 1 ] && installed; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
spec="."
[ -n "$extra" ] && spec=".[$extra]"
# The C accelerator is optional (setup.py): a failed build still installs. Remove the old build
# first, so that a failed one falls back to pure Python instead of silently loading a stale
# extension that no longer matches middleware/_speedups.c, and say so loudly.
rm -f middleware/_speedups.*.so middleware/_speedups.so
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
if ! ls middleware/_speedups.*.so >/dev/null 2>&1 && ! ls middleware/_speedups.so >/dev/null 2>&1; then
  echo "!! consent-gate: the C accelerator (middleware/_speedups.c) did not build; running pure" >&2
  echo "!! Python (same behaviour, slower). See the compiler's errors with" >&2
  echo "!!   .venv/bin/python setup.py build_ext --inplace   (then rerun this script)" >&2
fi
# Keep only stamps of this hash: an older build no longer counts.
{ [ -f "$stamp" ] && grep "^$hash " "$stamp" || true; echo "$hash $extra"; } | sort -u > "$stamp.new"
mv "$stamp.new" "$stamp"
