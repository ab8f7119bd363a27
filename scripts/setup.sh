#!/usr/bin/env bash
# Set up XLIR on this machine: one virtual environment per machine (torch is large, so it is
# installed once and reused by every checkout), linked into the checkout as .venv.
# Idempotent: a second run only re-checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${XLIR_VENV:-${XLIR_CACHE:-$HOME/.cache/xlir}/venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
"$VENV/bin/pip" install -q -e ".[all]"
if [ ! -e .venv ] || [ "$(readlink .venv)" != "$VENV" ]; then
  rm -rf .venv && ln -s "$VENV" .venv
fi
echo "ready: $(.venv/bin/python --version), xlir at .venv/bin/xlir"
