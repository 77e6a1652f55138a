#!/usr/bin/env bash
# Runs kithd with demo data: `make run` calls `scripts/run-demo.sh BUILD_DIR PORT`.
#
# Starts BUILD_DIR/kithd on ./data/demo at 127.0.0.1:PORT with KITH_ADMIN_KEY (default
# kith-demo-admin-key). On a fresh data dir it creates the demo schemas, datasets and inlet
# (scripts/demo-setup.sh), generates 300 customers with BUILD_DIR/bench/gen and loads them with
# `kith import` (or, if the CLI fails, through /collection/batch/{inlet} with curl). Then it prints
# sample requests and keeps kithd in the foreground; Ctrl-C (or SIGTERM) stops it gracefully.
#
# Env: KITH_ADMIN_KEY, KITH_DEMO_DATA (default ./data/demo), KITH_DEMO_PEOPLE (default 300).
set -euo pipefail
shopt -s inherit_errexit

BUILD=${1:-build}
PORT=${2:-8080}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${KITH_DEMO_DATA:-./data/demo}
PEOPLE=${KITH_DEMO_PEOPLE:-300}
URL="http://127.0.0.1:$PORT"
ENVFILE="$DATA.env"   # ids of the demo objects, written once the data is loaded
GENDIR="$DATA-gen"    # the generated JSON lines

die() {
  echo "run-demo: $*" >&2
  exit 1
}

[ -x "$BUILD/kithd" ] || die "$BUILD/kithd not found; run 'make build' first"
if curl -s -o /dev/null --max-time 1 "$URL/livez"; then
  die "something already answers on $URL; stop it or run 'make run PORT=<another port>'"
fi

KEY_FROM_ENV=${KITH_ADMIN_KEY:-}
export KITH_ADMIN_KEY=${KITH_ADMIN_KEY:-kith-demo-admin-key}
KEY=$KITH_ADMIN_KEY
# An existing data dir keeps the admin key of its first start (a generated one lives in admin.key).
if [ -z "$KEY_FROM_ENV" ] && [ -f "$DATA/admin.key" ]; then
  KEY=$(tr -d '[:space:]' <"$DATA/admin.key")
fi
FRESH=0
[ -f "$ENVFILE" ] || FRESH=1
mkdir -p "$(dirname "$DATA")"

# kithd gets its own session so that Ctrl-C reaches it once, through the trap below.
setsid "$BUILD/kithd" --data-dir "$DATA" --listen "127.0.0.1:$PORT" &
PID=$!
abort() {
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  exit 130
}
trap abort INT TERM

ready=0
for _ in $(seq 1 150); do
  if curl -sf -o /dev/null --max-time 1 "$URL/readyz"; then
    ready=1
    break
  fi
  if ! kill -0 "$PID" 2>/dev/null; then
    wait "$PID" || true
    die "kithd exited during start-up (see its messages above)"
  fi
  sleep 0.2
done
[ $ready = 1 ] || { kill -TERM "$PID"; die "kithd did not become ready within 30 s"; }

# post_file INLET SCHEMA DATASET FILE — the fallback loader: envelopes in chunks of 200 through
# /collection/batch/{inlet}; fails on any answer but 207 and reports rejected messages.
post_file() {
  local inlet=$1 schema=$2 dataset=$3 file=$4 chunkdir rejected=0 sent=0 code n
  chunkdir=$(mktemp -d)
  awk -v s="$schema" -v d="$dataset" -v dir="$chunkdir" '
    function flush() { if (n) { printf "]}" > f; close(f) } n = 0 }
    NF {
      if (n == 0) { f = sprintf("%s/chunk-%06d.json", dir, c++); printf "{\"messages\":[" > f }
      ct = "\"contentType\":\"application/vnd.adobe.xed-full+json;version=1\""
      printf "%s{\"header\":{\"schemaRef\":{\"id\":\"%s\",%s},\"datasetId\":\"%s\"},\"body\":{\"xdmMeta\":{\"schemaRef\":{\"id\":\"%s\",%s}},\"xdmEntity\":%s}}", (n ? "," : ""), s, ct, d, s, ct, $0 > f
      if (++n == 200) flush()
    }
    END { flush() }' "$file"
  for chunk in "$chunkdir"/chunk-*.json; do
    [ -e "$chunk" ] || continue
    code=$(curl -sS -o "$chunkdir/resp" -w '%{http_code}' -X POST \
      -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
      --data-binary @"$chunk" "$URL/collection/batch/$inlet") || code=000
    if [ "$code" != 207 ]; then
      echo "run-demo: POST /collection/batch/$inlet ($file) -> HTTP $code" >&2
      cat "$chunkdir/resp" >&2 2>/dev/null || true
      rm -rf "$chunkdir"
      return 1
    fi
    n=$(grep -o '"statusCode"' "$chunkdir/resp" | wc -l)
    if [ "$n" -gt 0 ] && [ "$rejected" = 0 ]; then
      echo "run-demo: first rejection in $(basename "$file"): $(grep -o '"statusCode".\{0,400\}' "$chunkdir/resp" | head -1)" >&2
    fi
    rejected=$((rejected + n))
    sent=$((sent + $(grep -o '"xdmEntity"' "$chunk" | wc -l)))
  done
  rm -rf "$chunkdir"
  echo "run-demo: posted $sent messages from $(basename "$file"), $rejected rejected" >&2
}

# load DATASET SCHEMA FILE — kith import first, the streaming API if the CLI fails.
load() {
  local dataset=$1 schema=$2 file=$3
  if [ -x "$BUILD/kith" ] &&
    "$BUILD/kith" --url "$URL" --key "$KEY" import --dataset "$dataset" "$file"; then
    echo "run-demo: imported $(basename "$file") with kith import" >&2
    return 0
  fi
  echo "run-demo: kith import failed for $(basename "$file"); posting through the streaming API" >&2
  post_file "$INLET" "$schema" "$dataset" "$file"
}

if [ $FRESH = 1 ]; then
  echo "run-demo: fresh data dir $DATA: creating the demo schemas, datasets and inlet" >&2
  setup=$(bash "$ROOT/scripts/demo-setup.sh" "$URL" "$KEY") || { kill -TERM "$PID"; die "demo-setup failed"; }
  eval "$setup"
  [ -x "$BUILD/bench/gen" ] || { kill -TERM "$PID"; die "$BUILD/bench/gen not found"; }
  "$BUILD/bench/gen" --people "$PEOPLE" --seed 42 --events-per-person 12 --days 30 \
    --out-dir "$GENDIR" --truth "$GENDIR/truth.jsonl"
  ok=1
  load "$DATASET_CRM" "$SCHEMA_PROFILE" "$GENDIR/profiles-crm.jsonl" || ok=0
  load "$DATASET_LOYALTY" "$SCHEMA_PROFILE" "$GENDIR/profiles-loyalty.jsonl" || ok=0
  load "$DATASET_WEB" "$SCHEMA_EVENT" "$GENDIR/events-web.jsonl" || ok=0
  [ $ok = 1 ] || { kill -TERM "$PID"; die "loading the demo data failed"; }
  SAMPLE_CRMID=$(head -1 "$GENDIR/profiles-crm.jsonl" | sed -E 's/.*"CRMID":\[\{"id":"([^"]+)".*/\1/')
  SAMPLE_ECID=$(grep -m1 "\"CRMID\":\[{\"id\":\"$SAMPLE_CRMID\"" "$GENDIR/events-web.jsonl" |
    sed -E 's/.*"ECID":\[\{"id":"([0-9]+)".*/\1/' || true)
  {
    printf '%s\n' "$setup"
    printf 'export SAMPLE_CRMID=%q\nexport SAMPLE_ECID=%q\n' "$SAMPLE_CRMID" "${SAMPLE_ECID:-}"
  } >"$ENVFILE"
else
  # shellcheck disable=SC1090
  . "$ENVFILE"
  echo "run-demo: existing data dir $DATA (ids in $ENVFILE)" >&2
fi

P="$URL/data/core/ups/access/entities"
cat <<EOF

kith is running at $URL  (data: $DATA, admin key: $KEY)
  datasets: CRM $DATASET_CRM, Loyalty $DATASET_LOYALTY, Web events $DATASET_WEB; inlet $INLET

  a customer by CRMID:
    curl -s -H 'Authorization: Bearer $KEY' '$P?schema.name=_xdm.context.profile&entityId=$SAMPLE_CRMID&entityIdNS=CRMID'
EOF
if [ -n "${SAMPLE_ECID:-}" ]; then
  cat <<EOF
  the same customer by one of their browsers (ECID):
    curl -s -H 'Authorization: Bearer $KEY' '$P?schema.name=_xdm.context.profile&entityId=$SAMPLE_ECID&entityIdNS=ECID'
EOF
fi
cat <<EOF
  their events, newest first:
    curl -s -H 'Authorization: Bearer $KEY' '$P?schema.name=_xdm.context.experienceevent&relatedSchema.name=_xdm.context.profile&relatedEntityId=$SAMPLE_CRMID&relatedEntityIdNS=CRMID&orderby=-timestamp&limit=5'
  health: curl -s $URL/healthz    metrics: curl -s $URL/metrics

Ctrl-C stops kithd.
EOF

forward() {
  kill -TERM "$PID" 2>/dev/null || true
}
trap forward INT TERM
rc=0
while :; do
  wait "$PID" && rc=0 || rc=$?
  kill -0 "$PID" 2>/dev/null || break
done
echo "run-demo: kithd exited with status $rc" >&2
exit $rc
