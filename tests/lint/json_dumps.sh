#!/bin/sh
# kithd installs a tagged allocator into jansson (src/base/jalloc.c): a string from json_dumps() must
# not be released with free(). Code uses kith_json_dumps() instead; this check keeps it that way.
cd "$(dirname "$0")/../.." || exit 2
hits=$(grep -rn 'json_dumps(' src --include='*.c' | grep -v 'kith_json_dumps(' | grep -v '^src/cmd/kith.c:')
if [ -n "$hits" ]; then
  echo "use kith_json_dumps() instead of json_dumps() in kithd code:"
  echo "$hits"
  exit 1
fi
echo "1 passed, 0 failed"
