#!/usr/bin/env bash
# The benchmark harness: `make bench` calls `bench/run.sh BUILD_DIR`.
#
# Starts BUILD_DIR/kithd on a temporary data dir and a free loopback port, runs BUILD_DIR/bench/loadgen
# against it (it creates its own schemas, datasets and inlet), prints the figures and a Markdown row
# for docs/BENCHMARKS.md, and stops kithd. Nothing outlives the script.
#
# Env:
#   SMOKE=1            a 3-second run with a small population (the test suite uses it)
#   CLIENTS, BATCH, DURATION, LOOKUP_CLIENTS, PEOPLE, SEED   override the loadgen parameters
#   KITHD_ARGS         extra kithd options (e.g. a durability mode)
#   KEEP=1             keep the temporary data dir and kithd log
set -euo pipefail

BUILD=${1:-build}
[ -x "$BUILD/kithd" ] || { echo "bench: $BUILD/kithd not found; run 'make build'" >&2; exit 1; }
[ -x "$BUILD/bench/loadgen" ] || { echo "bench: $BUILD/bench/loadgen not found" >&2; exit 1; }

if [ "${SMOKE:-0}" = 1 ]; then
  : "${CLIENTS:=2}" "${BATCH:=50}" "${DURATION:=3}" "${LOOKUP_CLIENTS:=1}" "${PEOPLE:=1000}"
else
  : "${CLIENTS:=4}" "${BATCH:=100}" "${DURATION:=20}" "${LOOKUP_CLIENTS:=2}" "${PEOPLE:=10000}"
fi
: "${SEED:=1}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kith-bench.XXXXXX")
KEY="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port: bind port 0 and read what the kernel chose (a tiny race, fine on a dev machine).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"

# shellcheck disable=SC2086
KITH_ADMIN_KEY=$KEY "$BUILD/kithd" --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" \
  ${KITHD_ARGS:-} >"$WORK/kithd.log" 2>&1 &
PID=$!
for _ in $(seq 1 150); do
  curl -sf -o /dev/null --max-time 1 "$URL/readyz" && break
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "bench: kithd exited during start-up:" >&2
    tail -20 "$WORK/kithd.log" >&2
    exit 1
  fi
  sleep 0.2
done
curl -sf -o /dev/null --max-time 1 "$URL/readyz" || { echo "bench: kithd not ready after 30 s" >&2; exit 1; }

echo "== kith bench$([ "${SMOKE:-0}" = 1 ] && echo ' (smoke)') =="
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
  "$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || uname -s), kernel $(uname -r)"
COMMIT=$(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "commit:  $COMMIT"
echo "kithd:   $BUILD/kithd --data-dir $WORK/data --listen 127.0.0.1:$PORT ${KITHD_ARGS:-}"
echo

set +e
"$BUILD/bench/loadgen" --url "$URL" --key "$KEY" --setup --clients "$CLIENTS" --batch "$BATCH" \
  --duration "$DURATION" --lookup-clients "$LOOKUP_CLIENTS" --people "$PEOPLE" --seed "$SEED" |
  tee "$WORK/loadgen.out"
rc=${PIPESTATUS[0]}
set -e

if ! kill -0 "$PID" 2>/dev/null; then
  echo "bench: kithd died during the run:" >&2
  tail -20 "$WORK/kithd.log" >&2
  rc=1
fi

RESULT=$(grep '^RESULT ' "$WORK/loadgen.out" | tail -1 || true)
if [ -n "$RESULT" ]; then
  get() { printf '%s\n' "$RESULT" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  echo
  echo "| date | commit | clients x batch | events/s | req p50 / p99 (ms) | lookups/s | lookup p50 / p99 (ms) | errors |"
  echo "|---|---|---|---|---|---|---|---|"
  ms() { awk -v us="$(get "$1")" 'BEGIN { printf "%.2f", us / 1000 }'; }
  printf '| %s | %s | %s x %s (+%s lookup) | %s | %s / %s | %s | %s / %s | %s |\n' \
    "$(date -u +%Y-%m-%d)" "$COMMIT" \
    "$CLIENTS" "$BATCH" "$LOOKUP_CLIENTS" "$(get events_per_s)" "$(ms ingest_p50_us)" \
    "$(ms ingest_p99_us)" "$(get lookups_per_s)" "$(ms lookup_p50_us)" "$(ms lookup_p99_us)" \
    "$(get errors)"
fi

if [ "$rc" -ne 0 ]; then
  echo "bench: loadgen failed (status $rc); kithd log: $WORK/kithd.log" >&2
  KEEP=1
fi
exit "$rc"
