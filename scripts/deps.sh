#!/usr/bin/env bash
# Installs the Debian packages kith needs to build, test and benchmark, when any is missing.
# Idempotent: does nothing (and needs no root) when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      librocksdb-dev libmicrohttpd-dev libjansson-dev zlib1g-dev libssl-dev
      libcurl4-openssl-dev libcmocka-dev curl python3 faketime ${KITH_EXTRA_PKGS:-})
# faketime: tests/blackbox/test_computed_attributes.py runs kithd on a faked clock (values ageing out).
# Node.js and npm run the real Segment/RudderStack SDKs (tests/blackbox/test_segment_sdks.py); a
# Node.js that already ships its own npm is kept.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
# Benchmark-only packages, installed by `make bench` (KITH_BENCH=1), never by `make test`:
# PostgreSQL 15 for the comparison in bench/pg/.
BENCH_PKGS=(postgresql-15)
[ "${KITH_BENCH:-0}" = 1 ] && pkgs+=("${BENCH_PKGS[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "deps: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
