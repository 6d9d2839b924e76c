#!/usr/bin/env bash
# The one command that installs, builds and runs every test:
#   1. Debian packages (tests/deps.sh), and the C sources formatted as
#      .clang-format says;
#   2. a Debug build with warnings as errors: unit tests (Criterion), the
#      storage contract suite and the integration tests (Lua scripts that start
#      the real gateway);
#   3. a Release build with warnings as errors (built, unit tests run);
#   4. an ASan+UBSan build running every test again. Criterion can report a
#      test as passed while LeakSanitizer prints a leak, so sanitizer reports
#      go to files (ASAN_OPTIONS/UBSAN_OPTIONS log_path) and any report fails
#      the run.
# Build trees: build/ci-debug, build/ci-release, build/ci-asan.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tests/deps.sh
jobs=$(nproc)

configure_build() { # dir, extra cmake args...
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -DSG_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

# Tests run side by side (one more than the cores: most of an integration
# script's time is spent waiting on gateways and sockets).
run_ctest() { # dir
  (cd "$1" && ctest --output-on-failure --timeout 600 -j "$((jobs + 1))")
}

echo "== Format (clang-format, .clang-format)"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

echo "== Debug build and tests"
configure_build build/ci-debug -DCMAKE_BUILD_TYPE=Debug
run_ctest build/ci-debug

echo "== Release build"
configure_build build/ci-release -DCMAKE_BUILD_TYPE=Release
(cd build/ci-release && ctest --output-on-failure -R '^unit$')

echo "== ASan+UBSan build and tests"
configure_build build/ci-asan -DCMAKE_BUILD_TYPE=Debug -DSG_SANITIZE=ON
reports=$root/build/ci-asan/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
status=0
run_ctest build/ci-asan || status=$?
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitizer reports:" >&2
  for f in "$reports"/*; do echo "--- $f" >&2; head -n 60 "$f" >&2; done
  if grep -l -E "LeakSanitizer|runtime error|AddressSanitizer" "$reports"/* >/dev/null; then
    status=1
  fi
fi
[ $status -eq 0 ] && echo "all tests passed (debug, release, asan+ubsan)"
exit $status
