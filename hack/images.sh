#!/usr/bin/env bash
# `make images`: Millrace's images without Docker or a registry. Each is one static binary
# (CGO_ENABLED=0) on an empty base with the machine's CA certificates, run as 65532:65532 with the
# binary as its entrypoint (/app, as in the Dockerfile), written by hack/images as a tarball that
# `ctr -n k8s.io images import` loads. Also the pause image the real node's sandboxes use.
#
# Usage: hack/images.sh [name...]   (default: all of manager dispatcher gateway handler pause;
#        `caller`, test/realnode's client pod, only when named)
# Env: IMAGES_OUT (default build/images), IMAGE_REPO (default ghcr.io/millrace-io), IMAGE_TAG
# (default dev), CA_CERTS (default /etc/ssl/certs/ca-certificates.crt), GOARCH.
# Prints the folder holding the tarballs on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${IMAGES_OUT:-build/images}"
REPO="${IMAGE_REPO:-ghcr.io/millrace-io}"
TAG="${IMAGE_TAG:-dev}"
CA="${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
ARCH="${GOARCH:-$(go env GOARCH)}"
[[ -s $CA ]] || { echo "images: no CA bundle at $CA (Debian's ca-certificates package)" >&2; exit 1; }
mkdir -p "$OUT/bin"
go build -o "$OUT/bin/images" ./hack/images

WANT=("$@")
image() { # name package tag
  ((${#WANT[@]} == 0)) || [[ " ${WANT[*]} " == *" $1 "* ]] || return 0
  local s=$SECONDS
  CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags "-s -w" -o "$OUT/bin/$1" "$2"
  "$OUT/bin/images" -o "$OUT/$1.tar" -t "$3" -binary "$OUT/bin/$1" -ca "$CA" -arch "$ARCH" \
    -entrypoint "${ENTRYPOINT:-/app}"
  echo "images: $3 -> $OUT/$1.tar ($((SECONDS - s))s)" >&2
}
image manager ./cmd/manager "$REPO/millrace-manager:$TAG"
image dispatcher ./cmd/dispatcher "$REPO/millrace-dispatcher:$TAG"
image gateway ./cmd/gateway "$REPO/millrace-gateway:$TAG"
image handler ./examples/handler "$REPO/millrace-handler:$TAG"
ENTRYPOINT=/pause image pause ./hack/pause "millrace.local/pause:$TAG"
# test/realnode's client pod, only when named (not one of Millrace's images)
if [[ " ${WANT[*]-} " == *" caller "* ]]; then image caller ./test/realnode/caller "millrace.local/caller:$TAG"; fi
cd "$OUT" && pwd
