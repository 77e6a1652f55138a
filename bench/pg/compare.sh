#!/usr/bin/env bash
# shellcheck disable=SC2154  # the R_* variables are assigned by res() through eval
# The PostgreSQL comparison: bench/pg/compare.sh BUILD_DIR [RESULTS_FILE]
#
# Generates one population with bench/gen (same seed, same bytes for both sides), then
#  - kith: starts BUILD_DIR/kithd (default durability: sync) on a temp data dir and a free loopback
#    port, creates the demo schemas/datasets (scripts/demo-setup.sh) and the seed's three segments,
#    loads the files with `kith import`, and times lookups by random identities (curl, keep-alive);
#  - PostgreSQL 15: initdb in a temp dir (as user postgres when run as root), a Unix socket in that
#    dir only (no TCP), fsync and synchronous_commit on; loads the same files (schema.sql,
#    load_*.sql), stitches identities (stitch.sql), builds the union view (union.sql), times the
#    same lookups with pgbench (lookup.pgbench) and the three segments (segments.sql).
# Prints a table with kith / PostgreSQL ratios; with RESULTS_FILE, appends key=value lines to it.
# Everything it starts is stopped and its temp dir deleted on exit.
#
# Env: PG_PEOPLE (20000), PG_EVENTS (mean events per person, 10), SEED (1), LOOKUPS (2000),
#      SEG_SHARES (per mille of CRM people bench/gen places in the three segments, 20,10,20),
#      PGBIN (/usr/lib/postgresql/15/bin), KEEP=1 keeps the temp dir.
#
# The seed's segments are relative to "now" (segment 2: today; segment 3: the last 30 minutes). The
# generator dates its events, and the people it places in the segments, relative to --now = the
# minute this script starts; kith evaluates at its wall clock (streaming, during the load; the
# segment job, after it); PostgreSQL's queries take the segment job's evaluation instant (kith:now)
# as their now. The placed impressions of segment 3 lie 2-8 minutes before --now, so kith's side must
# reach its segment job within about 22 minutes of the start (the script warns when it did not).
set -euo pipefail

BUILD=${1:-build}
RESULTS=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${PG_PEOPLE:=20000}" "${PG_EVENTS:=10}" "${SEED:=1}" "${LOOKUPS:=2000}" "${SEG_SHARES:=20,10,20}"
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
for f in "$BUILD/kithd" "$BUILD/kith" "$BUILD/bench/gen"; do
  [ -x "$f" ] || { echo "pg-compare: $f not found; run 'make build'" >&2; exit 1; }
done
[ -x "$PGBIN/postgres" ] || { echo "pg-compare: PostgreSQL 15 not found in $PGBIN (apt-get install postgresql-15)" >&2; exit 3; }
BUILD=$(cd "$BUILD" && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kith-pgcmp.XXXXXX")
chmod 755 "$WORK"
KPID=
PGUP=0
AS=()
if [ "$(id -u)" -eq 0 ]; then AS=(runuser -u postgres --); fi
cleanup() {
  if [ "$PGUP" = 1 ]; then "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1 || true; fi
  if [ -n "$KPID" ] && kill -0 "$KPID" 2>/dev/null; then
    kill -TERM "$KPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KPID" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "pg-compare: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
res() { [ -n "$RESULTS" ] && echo "$1=$2" >>"$RESULTS"; eval "R_$1=\$2"; }
# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE, one a line.
pct() { sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; printf "%.3f", v[i] }'; }

# ---- the data ------------------------------------------------------------------------------------
# --now: the current minute, so that the 30-minute segment has impressions in its window;
# --seed-segments: people placed in each of the three segments (bench/gen.c).
NOW_ARG=$(date -u +%Y-%m-%dT%H:%M:00Z)
NOW_S=$(date -u -d "$NOW_ARG" +%s)
GEN=("$BUILD/bench/gen" --people "$PG_PEOPLE" --seed "$SEED" --out-dir "$WORK/pop"
     --events-per-person "$PG_EVENTS" --days 30 --now "$NOW_ARG" --truth "$WORK/pop/truth.jsonl"
     --seed-segments "$SEG_SHARES")
"${GEN[@]}" 2>&1 | tee "$WORK/gen.out" >&2
PLACED=$(sed -n 's/^gen: placed \([0-9]*\) people in segment A.*, \([0-9]*\) in B.*, \([0-9]*\) in C.*/\2 \1 \3/p' "$WORK/gen.out")
chmod -R a+rX "$WORK/pop"
N_CRM=$(wc -l <"$WORK/pop/profiles-crm.jsonl")
N_LOY=$(wc -l <"$WORK/pop/profiles-loyalty.jsonl")
N_EV=$(wc -l <"$WORK/pop/events-web.jsonl")
N_ALL=$((N_CRM + N_LOY + N_EV))
# The lookup keys: LOOKUPS random linked identities of CRM customers (any namespace), same for both.
python3 - "$WORK/pop/truth.jsonl" "$LOOKUPS" "$SEED" >"$WORK/keys.tsv" <<'PY'
import json, random, sys
# kith's default blocked emails (src/identity/rules.c) are not identities on either side.
blocked = {"test@test.com", "test@example.com", "user@example.com", "email@email.com",
           "noemail@noemail.com", "no@email.com", "none@none.com", "not-specified", "user_null", "na@na.com"}
ids = []
for t in map(json.loads, open(sys.argv[1])):
    if t.get("hasCrm"):
        ids += [(i["namespace"], i["id"]) for i in t["identities"]
                if i.get("linked", True) and not (i["namespace"] == "Email" and i["id"].lower() in blocked)]
r = random.Random(int(sys.argv[3]))
for ns, i in (r.choice(ids) for _ in range(int(sys.argv[2]))):
    print(f"{ns}\t{i}")
PY
chmod a+r "$WORK/keys.tsv"

# ---- kith ----------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
KEY="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
echo "$KEY" >"$WORK/admin-key"  # for KEEP=1 post-mortems: restart kithd on $WORK/kith with it
KITH_ADMIN_KEY=$KEY "$BUILD/kithd" --data-dir "$WORK/kith" --listen "127.0.0.1:$PORT" >"$WORK/kithd.log" 2>&1 &
KPID=$!
for _ in $(seq 1 150); do
  curl -sf -o /dev/null --max-time 1 "$URL/readyz" && break
  kill -0 "$KPID" 2>/dev/null || { echo "pg-compare: kithd exited:" >&2; tail -20 "$WORK/kithd.log" >&2; exit 1; }
  sleep 0.2
done
eval "$(bash "$ROOT/scripts/demo-setup.sh" "$URL" "$KEY" 2>/dev/null)"
SEGS=(
  'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 10000'
  'xEvent[eventType = "commerce.purchases"].max(timestamp) occurs = 7 days before today'
  'xEvent[eventType = "advertising.impressions" and _acme.campaignId in ["c-101", "c-102", "c-103", "c-104", "c-105"] and timestamp occurs <= 30 minutes before now]._acme.campaignId.distinct().count() >= 3'
)
n=0
SEG_IDS=()
for s in "${SEGS[@]}"; do
  n=$((n + 1))
  body=$(python3 -c 'import json, sys; print(json.dumps({"name": "bench-seg-" + sys.argv[2], "schema": {"name": "_xdm.context.profile"}, "expression": {"type": "PQL", "format": "pql/text", "value": sys.argv[1]}}))' "$s" "$n")
  id=$(curl -sf -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary "$body" "$URL/data/core/ups/segment/definitions" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') ||
    { echo "pg-compare: kith: segment $n not created" >&2; id=none; }
  SEG_IDS+=("$id")
done
# A stuck import fails the run instead of hanging it (IMPORT_TIMEOUT seconds per file).
KITH=(timeout "${IMPORT_TIMEOUT:-900}" "$BUILD/kith" --url "$URL" --key "$KEY")
echo "pg-compare: kith: loading $N_ALL records and events" >&2
t0=$(now)
"${KITH[@]}" import --dataset "$DATASET_CRM" "$WORK/pop/profiles-crm.jsonl" >"$WORK/kimport.log"
"${KITH[@]}" import --dataset "$DATASET_LOYALTY" "$WORK/pop/profiles-loyalty.jsonl" >>"$WORK/kimport.log"
"${KITH[@]}" import --dataset "$DATASET_WEB" "$WORK/pop/events-web.jsonl" >>"$WORK/kimport.log"
res kith_load_s "$(since "$t0")"
res kith_load_rate "$(awk -v n=$N_ALL -v s="$R_kith_load_s" 'BEGIN { printf "%.0f", n / s }')"
# Lookups by identity, one keep-alive connection (curl reuses it across the URLs of one run).
python3 - "$WORK/keys.tsv" "$URL" >"$WORK/curl.cfg" <<'PY'
import sys, urllib.parse
for line in open(sys.argv[1]):
    ns, i = line.rstrip("\n").split("\t")
    q = urllib.parse.urlencode({"schema.name": "_xdm.context.profile", "entityId": i, "entityIdNS": ns})
    print(f'url = "{sys.argv[2]}/data/core/ups/access/entities?{q}"\noutput = "/dev/null"')
PY
curl -s -H "Authorization: Bearer $KEY" -K "$WORK/curl.cfg" -w '%{http_code} %{time_total}\n' >"$WORK/kith-lat.txt"
awk '{ print $2 * 1000 }' "$WORK/kith-lat.txt" >"$WORK/kith-ms.txt"
res kith_lookup_p50_ms "$(pct "$WORK/kith-ms.txt" 50)"
res kith_lookup_p99_ms "$(pct "$WORK/kith-ms.txt" 99)"
res kith_lookup_miss "$(awk '$1 != 200' "$WORK/kith-lat.txt" | wc -l)"
# Streaming segment members after the load, and event -> membership latency (kith_segments.py).
KITH_SEG_MEMBERS="$WORK/kith-members.tsv" python3 "$HERE/kith_segments.py" "$URL" "$KEY" "$INLET" "$SCHEMA_EVENT" "$DATASET_WEB" \
  "$WORK/pop/truth.jsonl" "${SEG_IDS[@]}" "${EV2MEM_SAMPLES:-20}" >"$WORK/kseg.out" ||
  echo "pg-compare: kith_segments.py failed" >&2
while IFS='=' read -r k v; do res "$k" "$v"; done <"$WORK/kseg.out"
kill -TERM "$KPID"; wait "$KPID" 2>/dev/null || true; KPID=
# PostgreSQL answers for the kith job's instant (or, without one, the generator's --now).
EVAL_NOW=${R_kith_job_now:-$NOW_ARG}
LATE=$(( $(date -u -d "$EVAL_NOW" +%s) - NOW_S ))
if [ "$LATE" -gt $((22 * 60)) ]; then
  echo "pg-compare: warning: kith's segment job ran $((LATE / 60)) minutes after --now: the placed impressions of segment 3 had left its 30-minute window" >&2
fi

# ---- PostgreSQL 15 -------------------------------------------------------------------------------
SOCK="$WORK/sock"
mkdir -p "$SOCK" "$WORK/pg"
chown -R postgres: "$SOCK" "$WORK/pg" 2>/dev/null || true
"${AS[@]}" "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$WORK/initdb.log"
cat "$HERE/postgresql.conf" >>"$WORK/pg/postgresql.conf"
echo "unix_socket_directories = '$SOCK'" >>"$WORK/pg/postgresql.conf"
"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/server.log" -w start >/dev/null
PGUP=1
PSQL=("$PGBIN/psql" -h "$SOCK" -U postgres -X -q -t -A -v ON_ERROR_STOP=1 postgres)
"${PSQL[@]}" -f "$HERE/schema.sql"
echo "pg-compare: PostgreSQL: loading $N_ALL records and events" >&2
t0=$(now)
"${PSQL[@]}" -v dataset=crm -f "$HERE/load_fragments.sql" <"$WORK/pop/profiles-crm.jsonl"
"${PSQL[@]}" -v dataset=loyalty -f "$HERE/load_fragments.sql" <"$WORK/pop/profiles-loyalty.jsonl"
"${PSQL[@]}" -f "$HERE/load_events.sql" <"$WORK/pop/events-web.jsonl"
res pg_load_s "$(since "$t0")"
res pg_load_rate "$(awk -v n=$N_ALL -v s="$R_pg_load_s" 'BEGIN { printf "%.0f", n / s }')"
t0=$(now)
"${PSQL[@]}" -c "ANALYZE fragments" -c "ANALYZE events" >/dev/null
"${PSQL[@]}" -f "$HERE/stitch.sql" >"$WORK/stitch.out" 2>&1
res pg_stitch_s "$(since "$t0")"
res pg_stitch_rounds "$(sed -n 's/.*label propagation: \([0-9]*\) rounds.*/\1/p' "$WORK/stitch.out")"
res pg_clusters "$(sed -n 's/.*clusters=\([0-9]*\).*/\1/p' "$WORK/stitch.out")"
t0=$(now)
"${PSQL[@]}" -f "$HERE/union.sql" >"$WORK/union.out"
res pg_union_s "$(since "$t0")"
"${PSQL[@]}" -c "\\copy lookup_keys (ns, id) FROM '$WORK/keys.tsv'" -c "ANALYZE"
(cd "$WORK" && "$PGBIN/pgbench" -h "$SOCK" -U postgres -n -M prepared -c 1 -t "$LOOKUPS" \
  -D nkeys="$LOOKUPS" -f "$HERE/lookup.pgbench" -l --log-prefix="$WORK/pgb" postgres >"$WORK/pgbench.out" 2>&1)
cat "$WORK"/pgb.* | awk '{ print $3 / 1000 }' >"$WORK/pg-ms.txt"
res pg_lookup_p50_ms "$(pct "$WORK/pg-ms.txt" 50)"
res pg_lookup_p99_ms "$(pct "$WORK/pg-ms.txt" 99)"
res pg_lookup_miss "$("${PSQL[@]}" -c "SELECT count(*) FROM lookup_keys k LEFT JOIN ident i ON i.ns = k.ns AND i.id = k.id LEFT JOIN profile_union u ON u.cluster = i.label WHERE u.cluster IS NULL")"
# Segments: best of 3 runs each.
for _ in 1 2 3; do
  "$PGBIN/psql" -h "$SOCK" -U postgres -X -t -A -v ON_ERROR_STOP=1 postgres \
    -v now="$EVAL_NOW" -c '\timing on' -f "$HERE/segments.sql" 2>&1
done >"$WORK/segments.out"
for k in 1 2 3; do
  res "pg_seg${k}_ms" "$(awk -v k=$k '$0 == "SEG " k { on = 1; next } on && /^Time:/ { print $2; on = 0 }' "$WORK/segments.out" | sort -g | head -1)"
  res "pg_seg${k}_members" "$(awk -v k=$k '$0 == "SEG " k { on = 1; next } on && /^[0-9]+$/ { print; exit }' "$WORK/segments.out")"
done
# Cross-check: CRMIDs in each segment on both sides (kith: profiles looked up by CRMID; PostgreSQL: the
# CRMIDs of the qualifying clusters).
"${PSQL[@]}" -v now="$EVAL_NOW" -f "$HERE/segment_members.sql" | sort >"$WORK/pg-members.tsv"
for k in 1 2 3; do
  res "seg${k}_kith_only" "$(comm -23 <(awk -v k=$k '$1 == k' "$WORK/kith-members.tsv" | sort) <(awk -v k=$k '$1 == k' "$WORK/pg-members.tsv") | wc -l)"
  res "seg${k}_pg_only" "$(comm -13 <(awk -v k=$k '$1 == k' "$WORK/kith-members.tsv" | sort) <(awk -v k=$k '$1 == k' "$WORK/pg-members.tsv") | wc -l)"
done
res pg_total_s "$(awk -v a="$R_pg_load_s" -v b="$R_pg_stitch_s" -v c="$R_pg_union_s" 'BEGIN { printf "%.3f", a + b + c }')"

# ---- the table -----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "") print "n/a"; else printf "%.2f", a / b }'; }
echo
echo "PostgreSQL comparison: $PG_PEOPLE people, seed $SEED: $N_CRM CRM + $N_LOY loyalty records, $N_EV events; $LOOKUPS lookups by identity"
echo "data:    ${GEN[*]}"
printf '%-46s | %14s | %14s | %s\n' "measure" "kith" "PostgreSQL 15" "kith / PG"
printf '%-46s | %14s | %14s | %s\n' "load, records+events/s (kith/PG > 1: kith faster)" "$R_kith_load_rate" "$R_pg_load_rate" "$(ratio "$R_kith_load_rate" "$R_pg_load_rate")"
printf '%-46s | %14s | %14s | %s\n' "identity stitching, s" "online (in load)" "$R_pg_stitch_s" "n/a"
printf '%-46s | %14s | %14s | %s\n' "union view build, s" "online (in load)" "$R_pg_union_s" "n/a"
printf '%-46s | %14s | %14s | %s\n' "until queryable, s (kith/PG < 1: kith faster)" "$R_kith_load_s" "$R_pg_total_s" "$(ratio "$R_kith_load_s" "$R_pg_total_s")"
printf '%-46s | %14s | %14s | %s\n' "lookup by identity p50, ms (< 1: kith faster)" "$R_kith_lookup_p50_ms" "$R_pg_lookup_p50_ms" "$(ratio "$R_kith_lookup_p50_ms" "$R_pg_lookup_p50_ms")"
printf '%-46s | %14s | %14s | %s\n' "lookup by identity p99, ms (< 1: kith faster)" "$R_kith_lookup_p99_ms" "$R_pg_lookup_p99_ms" "$(ratio "$R_kith_lookup_p99_ms" "$R_pg_lookup_p99_ms")"
printf '%-46s | %14s | %14s | %s\n' "lookups answered 404 / no union row" "$R_kith_lookup_miss" "$R_pg_lookup_miss" ""
for k in 1 2 3; do
  eval "ms=\$R_pg_seg${k}_ms; mem=\$R_pg_seg${k}_members; km=\${R_kith_job_seg${k}_members:-?}"
  printf '%-46s | %14s | %14s | %s\n' "segment $k batch query, ms (members)" "job ($km)" "$ms ($mem)" "n/a"
done
echo "kith: one segment job over the three segments took ${R_kith_job_ms:-n/a} ms (${R_kith_job_profiles:-?} profiles); PostgreSQL runs one query per segment"
echo "kith: streaming members after the load: ${R_kith_seg1_members:-?} / ${R_kith_seg2_members:-?} / ${R_kith_seg3_members:-?}, read by looking up all CRM customers (${R_kith_membership_scan_s:-?} s)"
echo "kith: event -> membership (segment 1) p50 ${R_kith_ev2mem_p50_ms:-n/a} ms, max ${R_kith_ev2mem_max_ms:-n/a} ms over ${R_kith_ev2mem_samples:-0} events"
read -r P1 P2 P3 <<<"${PLACED:-? ? ?}"
echo "segment members, placed by bench/gen / kith streaming / kith job / PostgreSQL (at $EVAL_NOW): segment 1 $P1 / ${R_kith_seg1_members:-?} / ${R_kith_job_seg1_members:-?} / $R_pg_seg1_members, segment 2 $P2 / ${R_kith_seg2_members:-?} / ${R_kith_job_seg2_members:-?} / $R_pg_seg2_members, segment 3 $P3 / ${R_kith_seg3_members:-?} / ${R_kith_job_seg3_members:-?} / $R_pg_seg3_members"
echo "kith job members without a CRMID (the streaming count reaches profiles through CRM customers only): ${R_kith_job_seg1_no_crmid:-?} / ${R_kith_job_seg2_no_crmid:-?} / ${R_kith_job_seg3_no_crmid:-?}"
echo "member CRMIDs only in kith / only in PostgreSQL: segment 1 $R_seg1_kith_only / $R_seg1_pg_only, segment 2 $R_seg2_kith_only / $R_seg2_pg_only, segment 3 $R_seg3_kith_only / $R_seg3_pg_only"
echo "PG stitching: $R_pg_stitch_rounds label-propagation rounds, $R_pg_clusters clusters"
