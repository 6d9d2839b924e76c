#!/usr/bin/env bash
# Run the admin portal's browser test (portal.test.mjs) against a scimgate
# binary: playwright-core is installed as package-lock.json pins it, with
# `npm ci`, into OUTDIR (the build tree; the source tree stays clean), then
# Debian's chromium runs headless. Screenshots land in OUTDIR/screenshots.
#   tests/browser/run.sh SCIMGATE_BINARY OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
out=$2
command -v node >/dev/null || { echo "the browser test needs node (tests/deps.sh)" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "the browser test needs node 20 or later (playwright-core); this is $(node --version)" >&2
  exit 1
fi
[ -x "${SG_CHROMIUM:-/usr/bin/chromium}" ] || { echo "no chromium: tests/deps.sh installs it" >&2; exit 1; }
mkdir -p "$out"
cp "$here/package.json" "$here/package-lock.json" "$here/portal.test.mjs" "$out/"
cd "$out"
# npm ci only when the lock changed since the last install.
if ! cmp -s package-lock.json node_modules/.sg-installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.sg-installed-lock
fi
exec node portal.test.mjs "$bin" "$out"
