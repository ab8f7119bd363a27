#!/usr/bin/env bash
# Set up XLIR on this machine: one virtual environment per machine, reused by every checkout,
# linked into the checkout as .venv. Idempotent: a second run only re-checks what is installed.
#   bash scripts/setup.sh         serving only: onnxruntime, onnx, tokenizers, elasticsearch,
#                                 opensearch-py (no torch); enough for `xlir demo|index|search`;
#                                 `xlir eval` also needs the [eval] extra (ranx, matplotlib):
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
# The in-engine plugins (plugins/: core + one adapter per engine; Java 21+, Maven), built from
# source; each zip is rebuilt only when plugins/pom.xml, core or its adapter is newer than it.
# `xlir es start` and the tests' nodes install them (xlir_plugin/testing/plugin_zips.py).
# XLIR_SKIP_ES_PLUGIN=1 / XLIR_SKIP_OS_PLUGIN=1 skip one.
for engine in elasticsearch opensearch; do
  skip=XLIR_SKIP_ES_PLUGIN
  if [ "$engine" = opensearch ]; then skip=XLIR_SKIP_OS_PLUGIN; fi
  if [ "${!skip:-0}" = "1" ]; then continue; fi
  zip="$(ls -t plugins/$engine/target/xlir-$engine-*.zip 2>/dev/null | head -n 1 || true)"
  if [ -n "$zip" ] && [ -z "$(find plugins/pom.xml plugins/core/pom.xml plugins/core/src "plugins/$engine/pom.xml" "plugins/$engine/src" -newer "$zip" -print -quit)" ]; then
    echo "$engine plugin: up to date ($zip)"
    continue
  fi
  if ! command -v mvn >/dev/null && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing Maven (apt-get) to build plugins/"
    apt-get install -y -q maven >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q maven >/dev/null; }
  fi
  echo "$engine plugin: building $(bash scripts/build-plugin.sh --engine "$engine")"
done
echo "ready: $(.venv/bin/python --version), xlir at .venv/bin/xlir"
