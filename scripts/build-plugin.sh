#!/usr/bin/env bash
# Build one XLIR engine plugin zip from plugins/ (Maven multi-module: core + the engine's
# adapter) and print its path. An engine loads only a plugin built for its exact version, so
# the version is a flag and part of the artifact name:
#   scripts/build-plugin.sh --engine elasticsearch [--version 9.3.2]
#     -> plugins/elasticsearch/target/xlir-elasticsearch-<plugin ver>-es<version>.zip
#   scripts/build-plugin.sh --engine opensearch [--version 3.5.0]
#     -> plugins/opensearch/target/xlir-opensearch-<plugin ver>-os<version>.zip
# Without --version: the version in the engine's pom.xml (the tested one).
# Idempotent: offline first (no network round trips), online when ~/.m2 lacks a dependency
# (Maven Central only).
#   XLIR_PLUGIN_TESTS=1  also runs the Java unit tests of core and the adapter (skipped by default)
#   JAVA_HOME            a JDK 21+ (default: Temurin 25 when installed, else the machine's java)
set -euo pipefail
engine=""
version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine="${2:-}"; shift 2 ;;
    --version) version="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "build-plugin: unknown argument $1 (--engine elasticsearch|opensearch [--version X])" >&2; exit 2 ;;
  esac
done
case "$engine" in
  elasticsearch) property=elasticsearch.version; tag=es ;;
  opensearch) property=opensearch.version; tag=os ;;
  *) echo "build-plugin: --engine elasticsearch|opensearch is required" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../plugins"

if [ -z "${JAVA_HOME:-}" ]; then
  for candidate in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64; do
    if [ -x "$candidate/bin/javac" ]; then JAVA_HOME="$candidate"; break; fi
  done
fi
if [ -n "${JAVA_HOME:-}" ]; then export JAVA_HOME; fi
command -v mvn >/dev/null || { echo "build-plugin: Maven (mvn) is required" >&2; exit 1; }

args=(-B -q -pl "$engine" -am)
if [ "${XLIR_PLUGIN_TESTS:-0}" != "1" ]; then args+=(-DskipTests); fi
if [ -n "$version" ]; then args+=("-D$property=$version"); fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! mvn -o "${args[@]}" package >"$log" 2>&1; then
  if ! mvn "${args[@]}" package >"$log" 2>&1; then
    grep -v '^WARNING: ' "$log" >&2 || cat "$log" >&2
    echo "build-plugin: Maven build of the $engine plugin failed" >&2
    exit 1
  fi
fi
if [ -z "$version" ]; then
  version="$(sed -n "s:.*<$property>\(.*\)</$property>.*:\1:p" "$engine/pom.xml" | head -n 1)"
fi
zip="$(ls -t "$PWD/$engine"/target/xlir-"$engine"-*-"$tag$version".zip | head -n 1)"
echo "$zip"
