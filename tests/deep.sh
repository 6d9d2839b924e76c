#!/usr/bin/env bash
# The slower checks, run by CI after tests/run.sh (about 15 minutes):
#   1. fuzzing: every libFuzzer target of tests/fuzz replays its seed corpus
#      and regression cases, then fuzzes for SG_FUZZ_SECONDS (default 30)
#      under ASan+UBSan (tests/fuzz/run.sh);
#   2. ThreadSanitizer: the integration tests against gateways built with
#      -fsanitize=thread (Criterion aborts under TSan, so the unit tests
#      cannot run there); any "WARNING: ThreadSanitizer" report fails the
#      run. tests/tsan.supp names the races inside third-party libraries;
#   3. valgrind (memcheck) on the unit tests, every test process checked;
#      any error or definite/indirect leak fails the run. tests/valgrind.supp
#      holds third-party noise only.
# Build trees: build/fuzz, build/ci-tsan, build/ci-valgrind. Reports are
# kept under each tree's reports/ directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tests/deps.sh --deep
jobs=$(nproc)
began=$(date +%s)
status=0

configure_build() { # dir, extra cmake args... (then targets after --)
  local dir=$1
  shift
  local args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -eq 0 ] || { shift; targets=("$@"); }
  cmake -S "$root" -B "$dir" -DSG_WERROR=ON "${args[@]}" >/dev/null
  if [ ${#targets[@]} -gt 0 ]; then
    cmake --build "$dir" -j "$jobs" --target "${targets[@]}" >/dev/null
  else
    cmake --build "$dir" -j "$jobs" >/dev/null
  fi
}

reports_of() { # dir pattern: print every report, return 1 when one matches
  local dir=$1 pattern=$2 found=0
  for f in "$dir"/*; do
    [ -e "$f" ] || continue
    if grep -qE "$pattern" "$f"; then
      found=1
      echo "--- $f" >&2
      head -n 80 "$f" >&2
    fi
  done
  return $found
}

echo "== Fuzzing (${SG_FUZZ_SECONDS:-30}s per target after replaying corpus and regressions)"
tests/fuzz/run.sh 0 || status=1
tests/fuzz/run.sh "${SG_FUZZ_SECONDS:-30}" || status=1

echo "== ThreadSanitizer: integration tests"
tsan=$root/build/ci-tsan
configure_build "$tsan" -DCMAKE_BUILD_TYPE=Debug -DSG_TSAN=ON -- scimgate smtp_sink http_sink
reports=$tsan/reports
rm -rf "$reports"
mkdir -p "$reports"
pgdir=/tmp/scimgate-pg-tsan-$(echo "$tsan" | md5sum | cut -c1-12)
tests/pg.sh start "$pgdir" >/dev/null
trap 'tests/pg.sh stop "$pgdir" >/dev/null 2>&1 || true' EXIT
rc=0
SG_SMTP_SINK=$tsan/tests/smtp_sink SG_HTTP_SINK=$tsan/tests/http_sink \
  SG_PG_DSN="$(tests/pg.sh dsn "$pgdir")" \
  TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=0:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp" \
  "$tsan/scimgate" test tests/integration/*.lua >"$tsan/integration.log" 2>&1 || rc=$?
tail -n 1 "$tsan/integration.log"
[ $rc -eq 0 ] || { echo "integration tests under TSan failed (exit $rc): $tsan/integration.log" >&2; status=1; }
reports_of "$reports" "WARNING: ThreadSanitizer" || status=1
tests/pg.sh stop "$pgdir" >/dev/null
trap - EXIT

echo "== valgrind: unit tests"
vg=$root/build/ci-valgrind
configure_build "$vg" -DCMAKE_BUILD_TYPE=Debug -- unit_tests
reports=$vg/reports
rm -rf "$reports"
mkdir -p "$reports"
# Criterion runs each test in a child process: valgrind follows them (not
# the SMTP and HTTP sinks or the system tools some tests start), as many at
# once as there are cores. A child's errors do not reach Criterion's
# verdict, so the logs are what counts. The pushdown property test runs its
# full length in the other builds.
rc=0
SG_PROPERTY_ITERATIONS=200 valgrind --trace-children=yes --trace-children-skip='/usr/*,/bin/*,*_sink' \
  --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --error-exitcode=1 --num-callers=40 \
  --suppressions="$root/tests/valgrind.supp" --log-file="$reports/vg.%p" \
  "$vg/tests/unit_tests" --jobs "$jobs" >"$vg/unit.log" 2>&1 || rc=$?
tail -n 1 "$vg/unit.log"
[ $rc -eq 0 ] || { echo "unit tests under valgrind failed (exit $rc): $vg/unit.log" >&2; status=1; }
reports_of "$reports" "ERROR SUMMARY: [1-9]" || status=1

echo "deep checks took $(($(date +%s) - began))s"
[ $status -eq 0 ] && echo "deep checks passed (fuzzing, tsan, valgrind)"
exit $status
