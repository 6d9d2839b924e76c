#!/usr/bin/env bash
# Install the Debian packages scimgate builds, runs and tests with, when any
# is missing. Uses sudo when not run as root. Pass --runtime to install only
# what building and running needs (no test tools), --deep to add what
# tests/deep.sh needs (clang with libFuzzer, llvm-symbolizer, valgrind).
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libcivetweb-dev liblua5.4-dev lua-cjson-dev
            libsqlite3-dev libjansson-dev libssl-dev libcurl4-openssl-dev libpq-dev)
test_pkgs=(libcriterion-dev nginx openssl clang-format curl postgresql-15 chromium nodejs)
# The browser test (tests/browser) needs npm too. A nodejs from outside
# Debian (e.g. NodeSource's, which our machines carry) ships its own npm and
# conflicts with Debian's npm package: ask for the package only when there
# is no npm command.
command -v npm >/dev/null 2>&1 || test_pkgs+=(npm)
deep_pkgs=(clang libclang-rt-14-dev llvm valgrind)

pkgs=("${build_pkgs[@]}")
[ "${1:-}" = "--runtime" ] || pkgs+=("${test_pkgs[@]}")
[ "${1:-}" != "--deep" ] || pkgs+=("${deep_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >&2
