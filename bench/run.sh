#!/usr/bin/env bash
# The benchmark harness: `make bench` calls `bench/run.sh BUILD_DIR`.
#
# The suite, in order, then ONE summary table (machine, commands, figures):
#  1. ingest + lookups under concurrent ingestion: BUILD_DIR/kithd on a temporary data dir and a free
#     loopback port, BUILD_DIR/bench/loadgen against it (it creates its own schemas, datasets, inlet);
#  2. identity operations in process: BUILD_DIR/bench/identity;
#  1b. streaming segmentation over HTTP on the same kithd: bench/segstream_http.py (SS_SEGMENTS
#     segments, event -> membership change latency read from the change stream);
#  3. batch segmentation in process: BUILD_DIR/bench/segbatch (a population, M segments, job times);
#  3b. streaming segmentation in process: BUILD_DIR/bench/segments (ingest rate and evaluation cost
#     per event with 0/100/1,000 segments and with 10,000, event -> change latency);
#  4. the PostgreSQL 15 comparison: bench/pg/compare.sh (skipped by SMOKE=1 or PG=0, "n/a" when
#     PostgreSQL 15 is not installed; `make bench` installs it).
# Nothing outlives the script. The Markdown row for docs/BENCHMARKS.md's history is printed too.
#
# Env:
#   SMOKE=1            a 3-second run with a small population, no PostgreSQL (the test suite uses it)
#   CLIENTS, BATCH, DURATION, LOOKUP_CLIENTS, PEOPLE, SEED   override the loadgen parameters
#   ID_IDENTITIES, ID_LINKS, ID_LOOKUPS                      bench/identity sizes
#   SB_PEOPLE, SB_SEGMENTS, SB_EVENTS                        bench/segbatch sizes
#   SG_PEOPLE, SG_EVENTS, SG_SEGMENTS, SG_EVENTS_10K (0: skip), SS_SEGMENTS, SS_DURATION
#                                                            bench/segments, segstream_http.py
#   PG=0; PG_PEOPLE, PG_EVENTS, LOOKUPS                      the PostgreSQL comparison (bench/pg/compare.sh)
#   KITHD_ARGS         extra kithd options (e.g. a durability mode)
#   KEEP=1             keep the temporary data dir and kithd log
set -euo pipefail

BUILD=${1:-build}
[ -x "$BUILD/kithd" ] || { echo "bench: $BUILD/kithd not found; run 'make build'" >&2; exit 1; }
[ -x "$BUILD/bench/loadgen" ] || { echo "bench: $BUILD/bench/loadgen not found" >&2; exit 1; }

if [ "${SMOKE:-0}" = 1 ]; then
  : "${CLIENTS:=2}" "${BATCH:=50}" "${DURATION:=3}" "${LOOKUP_CLIENTS:=1}" "${PEOPLE:=1000}"
  : "${ID_IDENTITIES:=2000}" "${ID_LINKS:=200}" "${ID_LOOKUPS:=2000}" "${PG:=0}"
  : "${SB_PEOPLE:=500}" "${SB_SEGMENTS:=10}" "${SB_EVENTS:=4}"
  : "${SG_PEOPLE:=500}" "${SG_EVENTS:=500}" "${SG_EVENTS_10K:=0}" "${SG_SEGMENTS:=0,10}" "${SS_SEGMENTS:=10}" "${SS_DURATION:=2}"
else
  : "${CLIENTS:=4}" "${BATCH:=100}" "${DURATION:=20}" "${LOOKUP_CLIENTS:=2}" "${PEOPLE:=10000}"
  : "${ID_IDENTITIES:=200000}" "${ID_LINKS:=20000}" "${ID_LOOKUPS:=200000}" "${PG:=1}"
  : "${SB_PEOPLE:=20000}" "${SB_SEGMENTS:=100}" "${SB_EVENTS:=4}"
  : "${SG_PEOPLE:=20000}" "${SG_EVENTS:=20000}" "${SG_EVENTS_10K:=2000}" "${SG_SEGMENTS:=0,100,1000}" "${SS_SEGMENTS:=100}" "${SS_DURATION:=10}"
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

MACHINE="$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)),\
 $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo),\
 $( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || uname -s), kernel $(uname -r)"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== kith bench$([ "${SMOKE:-0}" = 1 ] && echo ' (smoke)') =="
echo "machine: $MACHINE"
echo "load average at start: $LOAD0"
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

# ---- 1b. streaming segmentation over HTTP (same kithd, its own sandbox) ----
SS_CMD="python3 bench/segstream_http.py URL KEY $SS_SEGMENTS $SS_DURATION"
echo
echo "== streaming segmentation over HTTP: $SS_CMD"
python3 "$(dirname "$0")/segstream_http.py" "$URL" "$KEY" "$SS_SEGMENTS" "$SS_DURATION" |
  tee "$WORK/segstream_http.out" || { echo "bench: segstream_http.py failed" >&2; rc=1; }

# Stop kithd before the other steps, so they do not share the cores with it.
kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done

# ---- 2. identity operations (in process) ----
ID_CMD="$BUILD/bench/identity --identities $ID_IDENTITIES --links $ID_LINKS --lookups $ID_LOOKUPS"
if [ -x "$BUILD/bench/identity" ]; then
  echo
  echo "== identity: $ID_CMD"
  $ID_CMD --dir "$WORK/identity" | tee "$WORK/identity.out" || { echo "bench: bench/identity failed" >&2; rc=1; }
fi
idf() { sed -n "$1" "$WORK/identity.out" 2>/dev/null | head -1; }
ID_PRELOAD=$(idf 's/^preload .*: \([0-9]*\) records\/s.*/\1 records\/s/p')
ID_LINK=$(idf 's/^links .*s, \([0-9]*\) link operations\/s.*/\1 links\/s/p')
ID_LOOK=$(idf 's/^lookup *identity_lookup .*: \([0-9]*\/s\), \([0-9.]* us\) each.*/\1, \2 each/p')
ID_CACHE=$(idf 's/^lookup *writer cache .*: \([0-9]*\/s\), \([0-9.]* us\) each.*/\1, \2 each/p')

# ---- 3. segmentation ----
SEG_BATCH="n/a (bench/segbatch not built)"
SEG_STREAM="n/a (measured by the PostgreSQL comparison step only)"
SB_CMD=
if [ -x "$BUILD/bench/segbatch" ]; then
  SB_CMD="$BUILD/bench/segbatch --people $SB_PEOPLE --segments $SB_SEGMENTS --events $SB_EVENTS --seed $SEED"
  echo
  echo "== batch segmentation: $SB_CMD"
  $SB_CMD --dir "$WORK/segbatch" | tee "$WORK/segbatch.out" || { echo "bench: bench/segbatch failed" >&2; rc=1; }
  SBR=$(grep '^RESULT ' "$WORK/segbatch.out" | tail -1 || true)
  sbv() { printf '%s\n' "$SBR" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  if [ -n "$SBR" ]; then
    SEG_BATCH="$(awk -v ms="$(sbv again_ms)" 'BEGIN { printf "%.2f s", ms / 1000 }') for $(sbv people) people x $(sbv segments) segments \
(first evaluation $(awk -v ms="$(sbv first_ms)" 'BEGIN { printf "%.2f s", ms / 1000 }'); bench/segbatch)"
  else
    SEG_BATCH="failed (no RESULT line)"
  fi
fi

# ---- 3b. streaming segmentation in process ----
SG_CMD=
if [ -x "$BUILD/bench/segments" ]; then
  SG_CMD="$BUILD/bench/segments --people $SG_PEOPLE --events $SG_EVENTS --segments $SG_SEGMENTS --seed $SEED"
  echo
  echo "== streaming segmentation: $SG_CMD"
  $SG_CMD | tee "$WORK/segments.out" || { echo "bench: bench/segments failed" >&2; rc=1; }
  if [ "$SG_EVENTS_10K" -gt 0 ]; then
    echo "== streaming segmentation, 10,000 segments: $BUILD/bench/segments --people $SG_PEOPLE --events $SG_EVENTS_10K --segments 9999 (+1 latency segment)"
    "$BUILD/bench/segments" --people "$SG_PEOPLE" --events "$SG_EVENTS_10K" --segments 9999 \
      --seed "$SEED" | tee -a "$WORK/segments.out" || { echo "bench: bench/segments failed" >&2; rc=1; }
  fi
fi
sgv() { grep "^RESULT segments=$1 " "$WORK/segments.out" 2>/dev/null | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
sgrow() {
  if [ -n "$(sgv "$1" events_per_s)" ]; then
    echo "$(sgv "$1" events_per_s) events/s, $(sgv "$1" evals_per_event) evaluations and $(sgv "$1" eval_us_per_event) us of evaluation (wall) per event, writer CPU $(sgv "$1" writer_cpu_us_per_event) us/event (+$(sgv "$1" added_writer_cpu_us_per_event) over 0 segments); change p50 / p99 $(sgv "$1" p50_ms) / $(sgv "$1" p99_ms) ms"
  else
    echo "n/a"
  fi
}

# ---- 4. the PostgreSQL comparison ----
PGRES="$WORK/pg.results"
: >"$PGRES"
PG_NOTE=""
if [ "$PG" = 1 ]; then
  echo
  echo "== PostgreSQL comparison: bench/pg/compare.sh $BUILD"
  set +e
  bash "$(dirname "$0")/pg/compare.sh" "$BUILD" "$PGRES" | tee "$WORK/pg.out"
  pgrc=${PIPESTATUS[0]}
  set -e
  if [ "$pgrc" = 3 ]; then PG_NOTE="n/a (PostgreSQL 15 not installed)"
  elif [ "$pgrc" != 0 ]; then PG_NOTE="failed (status $pgrc)"; rc=1; fi
else
  PG_NOTE="n/a (skipped: $([ "${SMOKE:-0}" = 1 ] && echo SMOKE=1 || echo PG=0))"
fi
pgv() { sed -n "s/^$1=//p" "$PGRES" | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

RESULT=$(grep '^RESULT ' "$WORK/loadgen.out" | tail -1 || true)
get() { printf '%s\n' "$RESULT" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ms() { awk -v us="$(get "$1")" 'BEGIN { printf "%.2f", us / 1000 }'; }
if [ -n "$RESULT" ]; then
  echo
  echo "history row for docs/BENCHMARKS.md (with the PostgreSQL ratios in the summary below):"
  echo "| date | commit | clients x batch | events/s | req p50 / p99 (ms) | lookups/s | lookup p50 / p99 (ms) | errors |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '| %s | %s | %s x %s (+%s lookup) | %s | %s / %s | %s | %s / %s | %s |\n' \
    "$(date -u +%Y-%m-%d)" "$COMMIT" \
    "$CLIENTS" "$BATCH" "$LOOKUP_CLIENTS" "$(get events_per_s)" "$(ms ingest_p50_us)" \
    "$(ms ingest_p99_us)" "$(get lookups_per_s)" "$(ms lookup_p50_us)" "$(ms lookup_p99_us)" \
    "$(get errors)"
fi

row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "${3:-}" "${4:-}"; }
echo
echo "== summary =="
echo "machine: $MACHINE; load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "commit:  $COMMIT, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commands:"
echo "  $BUILD/bench/loadgen --url URL --key KEY --setup --clients $CLIENTS --batch $BATCH --duration $DURATION --lookup-clients $LOOKUP_CLIENTS --people $PEOPLE --seed $SEED"
echo "  $ID_CMD"
[ -n "$SB_CMD" ] && echo "  $SB_CMD"
[ -n "$SG_CMD" ] && echo "  $SG_CMD (and --segments 9999 --events $SG_EVENTS_10K)"
echo "  $SS_CMD"
[ "$PG" = 1 ] && echo "  PG_PEOPLE=${PG_PEOPLE:-20000} PG_EVENTS=${PG_EVENTS:-10} SEED=$SEED LOOKUPS=${LOOKUPS:-2000} bench/pg/compare.sh $BUILD"
echo
echo "| measure | kith | PostgreSQL 15 | kith / PG |"
echo "|---|---|---|---|"
if [ -n "$RESULT" ]; then
  row "ingest, events/s ($CLIENTS clients x $BATCH, HTTP, sync)" "$(get events_per_s)"
  row "ingest request latency p50 / p99" "$(ms ingest_p50_us) / $(ms ingest_p99_us) ms"
  row "lookups/s under ingest ($LOOKUP_CLIENTS clients)" "$(get lookups_per_s)"
  row "lookup latency p50 / p99 under ingest" "$(ms lookup_p50_us) / $(ms lookup_p99_us) ms"
  row "ingest errors" "$(get errors)"
else
  row "ingest / lookups under ingest" "failed (no RESULT line)"
fi
row "identity preload ($ID_IDENTITIES identities)" "${ID_PRELOAD:-n/a}"
row "identity link operations ($ID_LINKS links)" "${ID_LINK:-n/a}"
row "identity -> cluster, committed (RocksDB)" "${ID_LOOK:-n/a}"
row "identity -> cluster, writer cache" "${ID_CACHE:-n/a}"
if [ -n "$(pgv kith_ev2mem_p50_ms)" ]; then
  SEG_STREAM="p50 $(pgv kith_ev2mem_p50_ms) / max $(pgv kith_ev2mem_max_ms) ms ($(pgv kith_ev2mem_samples) events, segment 1, bench/pg/kith_segments.py)"
fi
row "event -> membership latency (streaming)" "$SEG_STREAM"
row "batch segmentation time" "$SEG_BATCH"
SSR=$(grep '^RESULT ' "$WORK/segstream_http.out" 2>/dev/null | tail -1 || true)
ssv() { printf '%s\n' "$SSR" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
if [ -n "$SSR" ]; then
  row "streaming, HTTP: event -> membership change on the stream ($SS_SEGMENTS segments)" "p50 $(ssv p50_ms) / p99 $(ssv p99_ms) ms under $(ssv http_events_per_s) events/s from Python clients ($(ssv samples) samples)"
fi
for m in ${SG_SEGMENTS//,/ }; do
  row "streaming, in process, $m segments (+ latency segment)" "$(sgrow "$m")"
done
[ "$SG_EVENTS_10K" -gt 0 ] && row "streaming, in process, 10,000 segments (9,999 + latency)" "$(sgrow 9999)"
if [ -s "$PGRES" ]; then
  row "comparison load, records+events/s (kith import vs COPY)" "$(pgv kith_load_rate)" "$(pgv pg_load_rate)" "$(ratio "$(pgv kith_load_rate)" "$(pgv pg_load_rate)") (> 1: kith faster)"
  row "comparison identity stitching, s" "online, in load" "$(pgv pg_stitch_s) ($(pgv pg_stitch_rounds) rounds)" "n/a"
  row "comparison union view build, s" "online, in load" "$(pgv pg_union_s)" "n/a"
  row "comparison until queryable (load+stitch+union), s" "$(pgv kith_load_s)" "$(pgv pg_total_s)" "$(ratio "$(pgv kith_load_s)" "$(pgv pg_total_s)") (< 1: kith faster)"
  row "comparison lookup by identity p50, ms" "$(pgv kith_lookup_p50_ms)" "$(pgv pg_lookup_p50_ms)" "$(ratio "$(pgv kith_lookup_p50_ms)" "$(pgv pg_lookup_p50_ms)") (< 1: kith faster)"
  row "comparison lookup by identity p99, ms" "$(pgv kith_lookup_p99_ms)" "$(pgv pg_lookup_p99_ms)" "$(ratio "$(pgv kith_lookup_p99_ms)" "$(pgv pg_lookup_p99_ms)") (< 1: kith faster)"
  row "comparison segment members: CRMIDs only in kith / only in PG" "segments 1-3: $(pgv seg1_kith_only) / $(pgv seg1_pg_only), $(pgv seg2_kith_only) / $(pgv seg2_pg_only), $(pgv seg3_kith_only) / $(pgv seg3_pg_only)" "" "0 / 0 = same members"
  for k in 1 2 3; do
    row "comparison segment $k, ms (members)" "one job for the 3: $(pgv kith_job_ms) ($(pgv kith_job_seg${k}_members); streaming $(pgv kith_seg${k}_members))" "$(pgv pg_seg${k}_ms) ($(pgv pg_seg${k}_members))" "n/a"
  done
  row "comparison segments 1-3 together, ms" "$(pgv kith_job_ms)" "$(awk -v a="$(pgv pg_seg1_ms)" -v b="$(pgv pg_seg2_ms)" -v c="$(pgv pg_seg3_ms)" 'BEGIN { if (a == "" || b == "" || c == "") print "n/a"; else printf "%.1f", a + b + c }')" "$(ratio "$(pgv kith_job_ms)" "$(awk -v a="$(pgv pg_seg1_ms)" -v b="$(pgv pg_seg2_ms)" -v c="$(pgv pg_seg3_ms)" 'BEGIN { if (a != "" && b != "" && c != "") printf "%.3f", a + b + c }')") (< 1: kith faster)"
else
  row "PostgreSQL comparison" "$PG_NOTE" "$PG_NOTE" "n/a"
fi

if [ "$rc" -ne 0 ]; then
  echo "bench: a step failed (status $rc); kithd log: $WORK/kithd.log" >&2
  KEEP=1
fi
exit "$rc"
