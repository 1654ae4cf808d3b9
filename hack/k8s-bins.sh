#!/usr/bin/env bash
# Builds the Kubernetes control plane used by envtest and `make dev` from the Go module proxy:
# kube-apiserver, kube-controller-manager and kubectl (k8s.io/kubernetes) and etcd, version-stamped,
# cached outside the clone keyed by version. A no-op when the binaries are already there.
# Also the node binaries of the real node (hack/realnode): kubelet, kube-scheduler and kube-proxy,
# built only when asked for by name (cold: ~3.5 min for the kubelet, seconds more for the others).
# Prints the folder holding the binaries on stdout (everything else goes to stderr).
#
# Usage: hack/k8s-bins.sh [binary...]   (default: all of kube-apiserver kube-controller-manager
# kubectl etcd; the tests ask only for kube-apiserver and etcd, which saves minutes on a cold machine)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
CACHE_ROOT="${MILLRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/millrace}"
DEST="$CACHE_ROOT/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
ALL=(kube-apiserver kube-controller-manager kubectl etcd)
NODE=(kubelet kube-scheduler kube-proxy)
KNOWN=("${ALL[@]}" "${NODE[@]}")
if (($#)); then BINS=("$@"); else BINS=("${ALL[@]}"); fi
for b in "${BINS[@]}"; do
  [[ " ${KNOWN[*]} " == *" $b "* ]] || { echo "k8s-bins: unknown binary $b (one of: ${KNOWN[*]})" >&2; exit 2; }
done

have_all() {
  for b in "${BINS[@]}"; do [[ -x "$DEST/$b" ]] || return 1; done
}
missing() {
  local want=() b
  for b in "$@"; do
    [[ " ${BINS[*]} " == *" $b "* && ! -x "$DEST/$b" ]] && want+=("$b")
  done
  echo "${want[@]}"
}

if have_all; then
  echo "$DEST"
  exit 0
fi

log() { echo "k8s-bins: $*" >&2; }
mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

# --- kube-apiserver, kube-controller-manager, kubectl, and the node's binaries ------------------
# The kubelet first: the largest, and the others reuse most of its compiled packages.
read -r -a K8S_BINS <<<"$(missing kubelet kube-apiserver kube-controller-manager kubectl kube-scheduler kube-proxy)"
if ((${#K8S_BINS[@]})); then
log "building Kubernetes ${K8S_VERSION}: ${K8S_BINS[*]} (cold: several minutes)"
K8S="$WORK/k8s"
mkdir -p "$K8S/kube-apiserver" "$K8S/kube-controller-manager" "$K8S/kubectl" "$K8S/tools"
gomod_path="$(cd "$WORK" && go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#v1.}"
{
  echo "module millrace.local/k8sbins"
  echo
  echo "go 1.26.0"
  echo
  echo "require k8s.io/kubernetes ${K8S_VERSION}"
  echo
  # Every staging module that k8s.io/kubernetes requires at v0.0.0 is published as v0.<minor>.<patch>.
  awk '/^require \(/{inreq=1; next} inreq && /^\)/{inreq=0} inreq && $1 ~ /^k8s.io\// && $2 == "v0.0.0" {print $1}' "$gomod_path" |
    while read -r m; do echo "replace $m => $m ${staging_version}"; done
} > "$K8S/go.mod"
log "$(grep -c '^replace' "$K8S/go.mod") staging replaces"

cat > "$K8S/kube-apiserver/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
cat > "$K8S/kube-controller-manager/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
GO
cat > "$K8S/kubectl/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
	os.Exit(0)
}
GO

# The node's binaries are upstream's main packages, built as they are (their mains change between
# releases); this file only keeps their dependencies in go.mod when `go mod tidy` runs.
cat > "$K8S/tools/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO

build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  stamp+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  stamp+=" -X ${pkg}.gitCommit=0000000000000000000000000000000000000000"
  stamp+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
done
(
  cd "$K8S"
  go mod tidy >&2
  for b in "${K8S_BINS[@]}"; do
    log "go build $b"
    pkg="./$b"
    [[ " ${NODE[*]} " == *" $b "* ]] && pkg="k8s.io/kubernetes/cmd/$b"
    go build -trimpath -ldflags "-s -w ${stamp}" -o "$DEST/$b.tmp" "$pkg" >&2
    mv "$DEST/$b.tmp" "$DEST/$b"
  done
)

fi

# --- etcd -----------------------------------------------------------------------------------------
if [[ -n "$(missing etcd)" ]]; then
log "building etcd ${ETCD_VERSION}"
ETCD="$WORK/etcd"
mkdir -p "$ETCD"
cat > "$ETCD/go.mod" <<GOMOD
module millrace.local/etcdbin

go 1.26.0

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
GOMOD
cat > "$ETCD/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
(
  cd "$ETCD"
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$DEST/etcd.tmp" . >&2
  mv "$DEST/etcd.tmp" "$DEST/etcd"
)
fi

have_all
log "done: $DEST"
echo "$DEST"
