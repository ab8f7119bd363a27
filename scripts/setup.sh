#!/usr/bin/env bash
# Set up XLIR on this machine: one virtual environment per machine, reused by every checkout,
# linked into the checkout as .venv. Idempotent: a second run only re-checks what is installed.
#   bash scripts/setup.sh         serving only: onnxruntime, onnx, tokenizers, elasticsearch
#                                 (no torch); enough for `xlir demo|index|search`; `xlir eval`
#                                 also needs the [eval] extra (ranx, matplotlib):
#                                 .venv/bin/pip install -e '.[eval]' (--dev includes it)
#   bash scripts/setup.sh --dev   + training, export from torch, tests (torch is large: it is
#                                 installed once per machine)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[all]" ;;
    *) echo "usage: bash scripts/setup.sh [--dev]" >&2; exit 2 ;;
  esac
done
VENV="${XLIR_VENV:-${XLIR_CACHE:-$HOME/.cache/xlir}/venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
"$VENV/bin/pip" install -q -e ".$extras"
if [ ! -e .venv ] || [ "$(readlink .venv)" != "$VENV" ]; then
  rm -rf .venv && ln -s "$VENV" .venv
fi
# The in-engine Elasticsearch plugin (es-plugin/, Java 21+, Maven), built from source; rebuilt
# only when pom.xml or src/ is newer than the zip. `xlir es start` and the tests' nodes install
# the zip into Elasticsearch (xlir_plugin/testing/es_plugin.py). XLIR_SKIP_ES_PLUGIN=1 skips it.
if [ "${XLIR_SKIP_ES_PLUGIN:-0}" != "1" ]; then
  zip="$(ls -t es-plugin/target/xlir-es-plugin-*.zip 2>/dev/null | head -n 1 || true)"
  if [ -n "$zip" ] && [ -z "$(find es-plugin/pom.xml es-plugin/src -newer "$zip" -print -quit)" ]; then
    echo "es-plugin: up to date ($zip)"
  else
    if ! command -v mvn >/dev/null && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "installing Maven (apt-get) to build es-plugin/"
      apt-get install -y -q maven >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q maven >/dev/null; }
    fi
    echo "es-plugin: building $(bash scripts/build-es-plugin.sh)"
  fi
fi
echo "ready: $(.venv/bin/python --version), xlir at .venv/bin/xlir"
