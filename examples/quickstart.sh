#!/usr/bin/env bash
# Set up and run scimgate on its embedded default (SQLite in ./data):
# installs the Debian packages, builds a Release binary, creates a tenant
# named "demo" (once) and a fresh secret token, prints both, and serves on
# 127.0.0.1:8080 (override with SCIMGATE_LISTEN, SCIMGATE_PUBLIC_URL, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/deps.sh --runtime
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DSG_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" >/dev/null
sg=build/release/scimgate
export SCIMGATE_DATA=${SCIMGATE_DATA:-$PWD/data}

tenant=$("$sg" tenant list 2>/dev/null | awk '$2 == "demo" {print $1}')
if [ -z "$tenant" ]; then
  "$sg" tenant create demo >/dev/null 2>&1
  tenant=$("$sg" tenant list 2>/dev/null | awk '$2 == "demo" {print $1}')
fi
public=${SCIMGATE_PUBLIC_URL:-http://${SCIMGATE_LISTEN:-127.0.0.1:8080}}
# A new token on every run; the previous demo tokens stop working now.
token=$("$sg" token generate "$tenant" --expires-old-in 0s 2>/dev/null | tail -n 1)

cat <<MSG

  Tenant URL:   $public/scim/v2/$tenant
  Secret token: $token

  Try Entra's "Test connection":
    curl -H "Authorization: Bearer $token" \\
      "$public/scim/v2/$tenant/Users?filter=userName+eq+%22nobody%22"

  Serving now (Ctrl-C stops). Data: $SCIMGATE_DATA
MSG
exec "$sg" serve
