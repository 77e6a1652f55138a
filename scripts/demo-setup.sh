#!/usr/bin/env bash
# Creates the demo's schemas, datasets and streaming inlet through the kith API and prints their ids
# as shell `export` lines (eval them):
#
#   eval "$(scripts/demo-setup.sh http://127.0.0.1:8080 "$KITH_ADMIN_KEY")"
#
# Profile schema "Acme Customer Profile": person-details, personal-details, identitymap, loyalty field
# groups plus an inline _acme object (crm.*, loyalty.memberId). Event schema "Acme Web Events":
# experienceevent with identitymap, commerce, web, environment-details, advertising plus an inline
# _acme.campaignId. Both are enabled for Profile. Datasets "CRM", "Loyalty" and "Web events" carry
# the profile and identity tags. Schemas and datasets that already exist under these names are
# reused, so a rerun on the same data dir creates only a new inlet.
#
# Env: KITH_SANDBOX (x-sandbox-name, optional). Any non-2xx answer stops the script with exit 1.
set -euo pipefail
shopt -s inherit_errexit

if [ $# -ne 2 ]; then
  echo "usage: $0 URL KEY" >&2
  exit 2
fi
URL=${1%/}
KEY=$2
HDR=(-H "Authorization: Bearer $KEY" -H "Content-Type: application/json")
[ -n "${KITH_SANDBOX:-}" ] && HDR+=(-H "x-sandbox-name: $KITH_SANDBOX")
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT

# api METHOD PATH [BODY] — prints the response body; fails loudly on a transport error or non-2xx.
api() {
  local method=$1 path=$2 body=${3:-} code
  local args=(-sS -o "$TMP" -w '%{http_code}' -X "$method" "${HDR[@]}")
  [ -n "$body" ] && args+=(--data-binary "$body")
  if ! code=$(curl "${args[@]}" "$URL$path"); then
    echo "demo-setup: $method $path: cannot reach $URL" >&2
    exit 1
  fi
  if [ "${code:0:1}" != 2 ]; then
    echo "demo-setup: $method $path -> HTTP $code" >&2
    cat "$TMP" >&2
    echo >&2
    exit 1
  fi
  cat "$TMP"
}

# json EXPR — evaluates a Python expression on the JSON document read from stdin (bound to `d`).
json() {
  python3 -c 'import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print("" if v is None else v)' "$1"
}

FG=https://ns.adobe.com/xdm/context
PROFILE_SCHEMA=$(cat <<EOF
{"title": "Acme Customer Profile", "description": "CRM and loyalty records of Acme customers.",
 "type": "object", "meta:class": "https://ns.adobe.com/xdm/context/profile",
 "allOf": [{"\$ref": "$FG/profile-person-details"}, {"\$ref": "$FG/profile-personal-details"},
           {"\$ref": "$FG/identitymap"}, {"\$ref": "$FG/profile-loyalty-details"}],
 "properties": {"_acme": {"type": "object", "properties": {
   "crm": {"type": "object", "properties": {
     "customerSince": {"type": "string", "format": "date"},
     "segment": {"type": "string", "enum": ["new", "active", "lapsed", "vip"]},
     "lifetimeValue": {"type": "number", "minimum": 0},
     "marketingOptIn": {"type": "boolean"}}},
   "loyalty": {"type": "object", "properties": {
     "memberId": {"type": "string", "maxLength": 64}}}}}}}
EOF
)
EVENT_SCHEMA=$(cat <<EOF
{"title": "Acme Web Events", "description": "Page views, product views, purchases, ad impressions.",
 "type": "object", "meta:class": "https://ns.adobe.com/xdm/context/experienceevent",
 "allOf": [{"\$ref": "$FG/identitymap"}, {"\$ref": "$FG/experienceevent-commerce"},
           {"\$ref": "$FG/experienceevent-web"}, {"\$ref": "$FG/experienceevent-environment-details"},
           {"\$ref": "$FG/experienceevent-advertising"}],
 "properties": {"_acme": {"type": "object", "properties": {
   "campaignId": {"type": "string", "maxLength": 64}}}}}
EOF
)

# schema TITLE BODY — the $id of the schema titled TITLE, created and enabled for Profile if missing.
schema() {
  local title=$1 body=$2 list id alt
  list=$(api GET /data/foundation/schemaregistry/tenant/schemas)
  id=$(printf '%s' "$list" | json "next((s.get('\$id') for s in (d.get('results', []) if isinstance(d, dict) else d) if s.get('title') == '$title'), None)")
  if [ -z "$id" ]; then
    local created
    created=$(api POST /data/foundation/schemaregistry/tenant/schemas "$body")
    id=$(printf '%s' "$created" | json "d['\$id']")
    alt=$(printf '%s' "$created" | json "d['meta:altId']")
    api PATCH "/data/foundation/schemaregistry/tenant/schemas/$alt" \
      '[{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]' >/dev/null
    echo "demo-setup: created schema \"$title\" $id" >&2
  else
    echo "demo-setup: reusing schema \"$title\" $id" >&2
  fi
  printf '%s' "$id"
}

# dataset NAME SCHEMA_ID — the id of the dataset named NAME, created if missing.
dataset() {
  local name=$1 schema_id=$2 list id
  list=$(api GET /data/foundation/catalog/dataSets)
  id=$(printf '%s' "$list" | json "next((k for k, v in (d.items() if isinstance(d, dict) else []) if isinstance(v, dict) and v.get('name') == '$name'), None)")
  if [ -z "$id" ]; then
    id=$(api POST /data/foundation/catalog/dataSets "$(cat <<EOF
{"name": "$name", "schemaRef": {"id": "$schema_id",
  "contentType": "application/vnd.adobe.xed-full+json;version=1"},
 "tags": {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}}
EOF
)" | json "d[0].rsplit('/', 1)[-1]")
    echo "demo-setup: created dataset \"$name\" $id" >&2
  else
    echo "demo-setup: reusing dataset \"$name\" $id" >&2
  fi
  printf '%s' "$id"
}

SCHEMA_PROFILE=$(schema "Acme Customer Profile" "$PROFILE_SCHEMA")
SCHEMA_EVENT=$(schema "Acme Web Events" "$EVENT_SCHEMA")
DATASET_CRM=$(dataset "CRM" "$SCHEMA_PROFILE")
DATASET_LOYALTY=$(dataset "Loyalty" "$SCHEMA_PROFILE")
DATASET_WEB=$(dataset "Web events" "$SCHEMA_EVENT")
INLET=$(api POST /data/foundation/flowservice/connections \
  '{"name": "Acme web and CRM stream", "authenticationRequired": true}' | json "d['inletId']")
echo "demo-setup: created inlet $INLET" >&2

for v in SCHEMA_PROFILE SCHEMA_EVENT DATASET_CRM DATASET_LOYALTY DATASET_WEB INLET; do
  if [ -z "${!v}" ]; then
    echo "demo-setup: no value for $v" >&2
    exit 1
  fi
  printf 'export %s=%q\n' "$v" "${!v}"
done
