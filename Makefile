# Millrace — run `make help` for the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GO_TEST_FLAGS ?=

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: dev
dev: deps ## Run Millrace locally: control plane, SQS emulator, manager and the samples (Ctrl-C stops it).
	hack/dev.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC under config/, and the chart's copies of them.
	$(CONTROLLER_GEN) crd rbac:roleName=millrace-manager webhook paths=./api/... paths=./internal/controller/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook
	go run ./hack/crdtrim config/crd/bases/millrace.io_consumers.yaml spec.template
	go run ./hack/chartsync

.PHONY: fmt
fmt: ## Format the Go code.
	go fmt ./...

.PHONY: vet
vet: ## Vet the Go code.
	go vet ./...

.PHONY: verify
verify: $(CONTROLLER_GEN) ## Fail when generated code, CRDs or formatting differ from what the generators produce.
	hack/verify.sh

##@ Test

.PHONY: test
test: test-deps verify vet ## Run every test against a real API server and the SQS emulator, then the demo on a real node.
	KUBEBUILDER_ASSETS="$$(hack/k8s-bins.sh kube-apiserver etcd)" HELM="$$(hack/helm.sh)" go test $(GO_TEST_FLAGS) -count=1 -timeout 20m ./...
	@# On its own, after the others: the node takes both cores. Where a real node cannot run (not
	@# Linux, not root, no packages), it is skipped with the reason; test/e2e above covers the demo
	@# with replicas as local processes.
	MILLRACE_REALNODE=1 HELM="$$(hack/helm.sh)" go test $(GO_TEST_FLAGS) -count=1 -v -timeout 20m -run TestTheDemoOnARealNode ./test/realnode

.PHONY: test-unit
test-unit: ## Run the pure packages' tests (no control plane, no SQS emulator) with -short: seconds, not minutes.
	go test -short -count=1 $$(go list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | grep -v -E 'internal/testenv( |$$)' | cut -d' ' -f1)

.PHONY: test-e2e
test-e2e: test-deps ## Run only the end-to-end demo test (the manager binary, the samples, replicas as local processes).
	KUBEBUILDER_ASSETS="$$(hack/k8s-bins.sh kube-apiserver etcd)" go test -count=1 -v -timeout 10m ./test/e2e

.PHONY: bench
bench: test-deps bench-deps ## Run the benchmarks (each figure is printed against a baseline of the same run).
	KUBEBUILDER_ASSETS="$$(hack/k8s-bins.sh kube-apiserver etcd)" go test -run '^$$' -bench . -benchtime 2s ./...

##@ Images and the real node

.PHONY: images
images: ## Build the manager, dispatcher, gateway, example handler and pause images into build/images/*.tar (no Docker).
	hack/images.sh >/dev/null

.PHONY: realnode-up
realnode-up: images ## Run a real kubelet + containerd node with our images (Linux, root) until Ctrl-C; exit 3 where it cannot run.
	go build -o bin/realnode ./hack/realnode/cmd/realnode
	bin/realnode up

.PHONY: realnode-down
realnode-down: ## Remove what a killed `make realnode-up` left behind (processes, pods, mounts, rules, the bridge).
	go build -o bin/realnode ./hack/realnode/cmd/realnode
	bin/realnode down

.PHONY: test-realnode
test-realnode: images ## Start the real node, run a pod of the example handler under Pod Security "restricted", tear it down.
	MILLRACE_REALNODE=1 go test -count=1 -v -timeout 15m ./test/realnode

.PHONY: test-e2e-realnode
test-e2e-realnode: test-deps ## Run the end-to-end demo on a real node: images, the chart installed with Helm, real pods (Linux, root).
	MILLRACE_REALNODE=1 HELM="$$(hack/helm.sh)" go test -count=1 -v -timeout 20m -run TestTheDemoOnARealNode ./test/realnode

##@ Dependencies

.PHONY: deps
deps: k8s-bins fauxqs ## Install everything the tests and `make dev` need.
	go mod download

.PHONY: test-deps
test-deps: fauxqs ric ## Install what the tests need (the SQS emulator, the control plane and a node's binaries, Helm, AWS's Node.js Lambda runtime client).
	hack/k8s-bins.sh kube-apiserver etcd kube-controller-manager kube-scheduler kubelet kube-proxy kubectl >/dev/null
	hack/helm.sh >/dev/null
	go mod download

.PHONY: bench-deps
bench-deps: hack/bench/node_modules/.package-lock.json ## Install the benchmarks' baselines (aws-local-stepfunctions on Node 22).
hack/bench/node_modules/.package-lock.json: hack/bench/package-lock.json
	cd hack/bench && npm ci --no-audit --no-fund
	touch $@

.PHONY: helm
helm: ## Build Helm v3.22.0 (cached outside the clone) for the chart's tests.
	hack/helm.sh >/dev/null

.PHONY: k8s-bins
k8s-bins: ## Build kube-apiserver, kube-controller-manager, kubectl and etcd (cached outside the clone).
	hack/k8s-bins.sh >/dev/null

.PHONY: fauxqs
fauxqs: hack/fauxqs/node_modules/.package-lock.json ## Install the pinned SQS emulator (npm ci).
hack/fauxqs/node_modules/.package-lock.json: hack/fauxqs/package-lock.json
	cd hack/fauxqs && npm ci --no-audit --no-fund
	touch $@

.PHONY: ric
ric: hack/ric/node_modules/.installed ## Install AWS's Node.js Lambda runtime interface client (aws-lambda-ric, built from its sources) for the dispatcher's tests.
hack/ric/node_modules/.installed: hack/ric/package-lock.json hack/fauxqs/node_modules/.package-lock.json
	hack/ric/install.sh || [ $$? = 3 ] # 3: cannot be installed here (said why); its tests skip

$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(LOCALBIN)/controller-gen $@
