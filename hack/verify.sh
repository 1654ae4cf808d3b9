#!/usr/bin/env bash
# Fails when `make generate manifests fmt` changes any file: generated code (deepcopy, CRDs, RBAC)
# and formatting must be committed as the generators produce them.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=()
for p in api config internal cmd charts; do [[ -e "$p" ]] && paths+=("$p"); done
sum() { find "${paths[@]}" -type f \( -name '*.go' -o -name '*.yaml' \) | sort | xargs sha256sum; }
before="$(sum)"
make --no-print-directory generate manifests fmt >/dev/null
after="$(sum)"
if [[ "$before" != "$after" ]]; then
  echo "verify: generated or formatted files drifted; run 'make generate manifests fmt' and commit:" >&2
  diff <(echo "$before") <(echo "$after") | grep '^>' | awk '{print "  " $3}' >&2
  exit 1
fi
echo "verify: generated files are up to date"
