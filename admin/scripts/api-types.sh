#!/usr/bin/env bash
# The admin UI's API types, generated from the gateway's OpenAPI document:
#   admin/openapi.json          python -m workermon_gateway.openapi_dump (no server needed)
#   admin/src/api/schema.gen.ts openapi-typescript (npm run gen:api)
# `api-types.sh` writes both; `api-types.sh --check` writes them to a temporary directory and fails when
# the committed files differ. UV names the uv to run (default: uv from PATH).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ADMIN="$ROOT/admin"
UV=${UV:-uv}
case "$UV" in /*) ;; */*) UV="$ROOT/$UV" ;; esac
GEN="$ADMIN/node_modules/.bin/openapi-typescript"

generate() { # <openapi.json> <schema.gen.ts>
  (cd "$ROOT" && "$UV" run --frozen python -m workermon_gateway.openapi_dump --output "$1")
  if [[ ! -x "$GEN" ]]; then
    echo "openapi-typescript is not installed: run \`npm ci --prefix admin\`" >&2
    exit 1
  fi
  "$GEN" "$1" --output "$2" >/dev/null
}

case "${1:-}" in
  "")
    generate "$ADMIN/openapi.json" "$ADMIN/src/api/schema.gen.ts"
    ;;
  --check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    generate "$tmp/openapi.json" "$tmp/schema.gen.ts"
    stale=0
    for pair in "openapi.json:admin/openapi.json" "schema.gen.ts:admin/src/api/schema.gen.ts"; do
      if ! diff -u "$ROOT/${pair#*:}" "$tmp/${pair%%:*}" >"$tmp/diff" 2>&1; then
        echo "${pair#*:} differs from what the protos give:" >&2
        head -n 40 "$tmp/diff" >&2
        stale=1
      fi
    done
    if [[ $stale -ne 0 ]]; then
      echo "admin API types are stale: run \`make api-types\`" >&2
      exit 1
    fi
    echo "admin API types are up to date"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
