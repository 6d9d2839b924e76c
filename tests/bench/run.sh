#!/usr/bin/env bash
# Run benchmarks against a Release build: tests/bench/run.sh [NAME...]
# (default: every tests/bench/*.lua). Each benchmark is a `scimgate test`
# script that starts the gateway, seeds data and drives wrk; results go to
# stdout. Benchmarks are never part of the test run: timing is not a test.
# Each gateway runs with limits.tenant_rps = 0: a benchmark drives one tenant
# far above the per-tenant rate limit, which would otherwise answer 429.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/deps.sh
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo;
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2; }
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DSG_TESTS=ON >/dev/null
cmake --build build/bench -j "$(nproc)" --target scimgate bare_http >/dev/null
export SG_BARE_HTTP=$PWD/build/bench/tests/bare_http
# A throw-away PostgreSQL cluster for the benchmarks that compare stores.
pgdir=/tmp/scimgate-pg-bench
SG_PG_DSN=$(tests/pg.sh start "$pgdir")
export SG_PG_DSN
trap 'tests/pg.sh stop "$pgdir"' EXIT
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(cd tests/bench && ls *.lua | sed 's/\.lua$//'))
for n in "${names[@]}"; do
  echo "== $n"
  build/bench/scimgate test "tests/bench/$n.lua"
done
