#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. release build (build/) + every test under ctest (unit, golden, black-box);
#   2. ASan+UBSan build (build-asan/, warnings are errors) + every test again;
#   3. libFuzzer targets (build-fuzz/, clang) run briefly each.
# Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
FUZZ_RUNS=${FUZZ_RUNS:-300000}   # per target, with a fixed seed: the same run every time
FUZZ_SECONDS=${FUZZ_SECONDS:-60} # and a time cap

bash scripts/deps.sh

echo "== release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS" -- --no-print-directory >/dev/null
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
(cd build && ctest --output-on-failure -j"$JOBS" --timeout 300) | tee -a "$LOG"

echo "== ASan+UBSan build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKITH_SANITIZE=ON -DKITH_WERROR=ON >/dev/null
cmake --build build-asan -j"$JOBS" -- --no-print-directory >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j"$JOBS" --timeout 600) | tee -a "$LOG"

echo "== fuzz targets (${FUZZ_RUNS} runs each, seed 1, at most ${FUZZ_SECONDS}s)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DKITH_FUZZ=ON \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
cmake --build build-fuzz -j"$JOBS" -- --no-print-directory >/dev/null
shopt -s nullglob
fuzzers=0
for f in build-fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus="fuzz/corpus/${name#fuzz_}"
  mkdir -p "build-fuzz/corpus-$name"
  dirs=("build-fuzz/corpus-$name")
  [ -d "$corpus" ] && dirs+=("$corpus")
  echo "-- $name"
  "$f" -seed=1 -runs="$FUZZ_RUNS" -max_total_time="$FUZZ_SECONDS" -max_len=8192 -timeout=10 \
    "${dirs[@]}" 2>&1 | tail -n 3
  fuzzers=$((fuzzers + 1))
done
# One closing line for the whole run: ctest tests of both builds plus the fuzz runs.
total=$(grep -Eo 'tests failed out of [0-9]+' "$LOG" | awk '{s += $5} END {print s + 0}')
echo "== all stages passed"
echo "kith: $((total + fuzzers)) passed, 0 failed"
