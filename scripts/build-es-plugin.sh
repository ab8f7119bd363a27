#!/usr/bin/env bash
# Build the XLIR Elasticsearch plugin zip from es-plugin/ with Maven and print its path.
# Idempotent: an up-to-date zip is rebuilt quickly; Maven runs offline once its repository holds
# every dependency (first run: online, Maven Central only).
#   XLIR_PLUGIN_TESTS=1  also runs the plugin's Java unit tests (skipped by default)
#   JAVA_HOME            a JDK 21+ (default: Temurin 25 when installed, else the machine's java)
set -euo pipefail
cd "$(dirname "$0")/../es-plugin"

if [ -z "${JAVA_HOME:-}" ]; then
  for candidate in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64; do
    if [ -x "$candidate/bin/javac" ]; then JAVA_HOME="$candidate"; break; fi
  done
fi
if [ -n "${JAVA_HOME:-}" ]; then export JAVA_HOME; fi
command -v mvn >/dev/null || { echo "build-es-plugin: Maven (mvn) is required" >&2; exit 1; }

skip=(-DskipTests)
if [ "${XLIR_PLUGIN_TESTS:-0}" = "1" ]; then skip=(); fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# offline first (no network round trips); online when something is not in ~/.m2 yet
if ! mvn -B -q -o "${skip[@]}" package >"$log" 2>&1; then
  if ! mvn -B -q "${skip[@]}" package >"$log" 2>&1; then
    grep -v '^WARNING: ' "$log" >&2 || cat "$log" >&2
    echo "build-es-plugin: Maven build failed" >&2
    exit 1
  fi
fi
zip="$(ls -t "$PWD"/target/xlir-es-plugin-*.zip | head -n 1)"
echo "$zip"
