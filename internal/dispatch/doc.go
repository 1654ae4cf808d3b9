// Package dispatch is Lambda's SQS event source mapping, run inside a consumer pod (or as a plain
// process): it long-polls a queue, assembles batches, delivers them to a handler as Lambda SQS
// events (over HTTP, or through a local AWS Lambda Runtime API), deletes what succeeded, honours
// batchItemFailures, keeps FIFO order per message group, extends visibility for slow handlers,
// drains on shutdown, and reports workflow task results to the manager's callback API.
package dispatch

// The dispatcher process's garbage collector settings (internal/gctune), applied by cmd/dispatcher
// unless GOGC or GOMEMLIMIT are set: at GOGC=100 the collector took about a fifth of the
// dispatcher's CPU under load; at 400 the heap in use grows from ~10 to 20–40 MiB at concurrency 4
// (docs/benchmarks.md). The soft limit is 3/4 of the container's (96 MiB of the sidecar's
// 128 MiB), MemoryLimit outside a container.
const (
	GCPercent   = 400
	MemoryLimit = 96 << 20
)
