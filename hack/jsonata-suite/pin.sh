#!/usr/bin/env bash
# Copies the official JSONata test suite (the test/test-suite folder of jsonata-js) at a pinned
# commit into internal/asl/testdata/jsonata-suite, with the project's licence and a README naming
# the commit. The harness in internal/jsonatasuite reads that copy at test time.
#
# Usage: hack/jsonata-suite/pin.sh <jsonata-js git dir or work tree> [commit]
# The default commit is the one tagged v2.0.6 (package.json "version": "2.0.6"), the JSONata
# version Step Functions documents.
set -euo pipefail
src="${1:?usage: $0 <jsonata-js git dir> [commit]}"
commit="${2:-6f1fc886aa1e3e6bdbfffcdd80e63ede1d7d6b6b}"
cd "$(dirname "$0")/../.."
dest=internal/asl/testdata/jsonata-suite

gitdir="$(cd "$src" && git rev-parse --absolute-git-dir)"
version="$(git --git-dir="$gitdir" show "$commit:package.json" | sed -n 's/^ *"version": *"\(.*\)",$/\1/p')"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git --git-dir="$gitdir" archive "$commit" test/test-suite LICENSE | tar -x -C "$tmp"

rm -rf "$dest"
mkdir -p "$dest"
cp -r "$tmp/test/test-suite/groups" "$tmp/test/test-suite/TESTSUITE.md" "$dest/"
cp "$tmp/LICENSE" "$dest/LICENSE"
# Only the datasets some case names.
mkdir -p "$dest/datasets"
grep -rhoE '"dataset": *"[^"]+"' "$dest/groups" | sed -E 's/.*"([^"]+)"$/\1/' | sort -u |
  while read -r name; do cp "$tmp/test/test-suite/datasets/$name.json" "$dest/datasets/"; done

cat >"$dest/README.md" <<README
# JSONata test suite (pinned copy)

The \`test/test-suite\` folder of the jsonata-js project (github.com/jsonata-js/jsonata) at commit
\`$commit\` (tag v$version, package.json version $version), copied as data by
\`hack/jsonata-suite/pin.sh\`. Only the datasets that some case references are kept.

Licence: MIT, see \`LICENSE\` (the jsonata-js project's licence, copied unchanged). The format of
the cases is described in \`TESTSUITE.md\` (also from jsonata-js).

Used by \`internal/jsonatasuite\` to measure JSONata implementations; see docs/design.md,
"JSONata: which implementation, by measurement".
README
echo "pinned $(find "$dest/groups" -type f | wc -l) files of cases and $(ls "$dest/datasets" | wc -l) datasets at $commit (v$version) into $dest"
