#!/usr/bin/env bash
# Builds Helm from the Go module proxy (go install helm.sh/helm/v3/cmd/helm@VERSION) into a cache
# outside the clone keyed by version; a no-op when it is already there. Prints the binary's path.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${MILLRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/millrace}"
DEST="$CACHE_ROOT/helm-${HELM_VERSION}-k8s1.37"
if [[ ! -x "$DEST/helm" ]]; then
  echo "helm: building helm ${HELM_VERSION} (once; cached in $DEST)" >&2
  mkdir -p "$DEST"
  tmp="$(mktemp -d "$DEST/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # The stamps Helm's Makefile sets: its version, and the Kubernetes version `helm template` and
  # `helm lint` assume (that of Helm v3.22's client-go, v0.37 -> 1.37).
  pkg=helm.sh/helm/v3
  GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w \
    -X $pkg/internal/version.version=${HELM_VERSION} \
    -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=37 \
    -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=37" \
    "$pkg/cmd/helm@${HELM_VERSION}" >&2
  mv "$tmp/helm" "$DEST/helm"
fi
echo "$DEST/helm"
