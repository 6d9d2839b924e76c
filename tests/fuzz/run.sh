#!/usr/bin/env bash
# Build the libFuzzer targets (build/fuzz, clang, ASan+UBSan) and run each
# for SECONDS (default 60); 0 only replays the seed corpus and the
# regression cases. Fails on any crash, leak, timeout or UB report.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     targets: filter patch resource lua_json router
#
# Each target starts from tests/fuzz/corpus/<target>/ and
# tests/fuzz/regressions/<target>/ (both read-only here); the inputs it finds
# go to build/fuzz/work/<target>/, a finding to build/fuzz/artifacts/<target>/,
# its output to build/fuzz/logs/<target>.log. A finding is fixed in the core
# and its input copied into tests/fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(filter patch resource lua_json router)
build=$root/build/fuzz

# -O1: several times the executions of -O0 and still readable stacks.
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DSG_FUZZ=ON -DSG_TESTS=OFF -DSG_WERROR=ON >/dev/null
cmake --build "$build" --target fuzz_all -j "$(nproc)" >/dev/null

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
total=0
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "no such target: $t" >&2; exit 2; }
  work=$build/work/$t
  art=$build/artifacts/$t
  log=$build/logs/$t.log
  mkdir -p "$work" "$art" "$build/logs" "$root/tests/fuzz/regressions/$t"
  args=(-timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1
        -artifact_prefix="$art/" -dict="$root/tests/fuzz/dict/$t.dict")
  if [ "$secs" -eq 0 ]; then
    # Replay only: every file once, no mutation.
    args+=(-runs=0 "$root/tests/fuzz/corpus/$t" "$root/tests/fuzz/regressions/$t")
  else
    args+=(-max_total_time="$secs" "$work" "$root/tests/fuzz/corpus/$t"
           "$root/tests/fuzz/regressions/$t")
  fi
  rc=0
  "$bin" "${args[@]}" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  runs=${runs:-0}
  total=$((total + runs))
  if [ $rc -ne 0 ] || grep -aqE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|oracle failed" "$log"; then
    echo "FAIL $t: exit $rc, $runs executions; see $log" >&2
    grep -aE "ERROR:|runtime error|oracle failed|SUMMARY|Test unit written" "$log" | head -n 20 >&2
    status=1
  elif [ "$secs" -eq 0 ]; then
    echo "ok   $t: replayed $runs inputs"
  else
    echo "ok   $t: $runs executions in ${secs}s, $(find "$work" -type f | wc -l) inputs in $work"
  fi
done
echo "total executions: $total"
exit $status
