// Package dispatch is Lambda's SQS event source mapping, run inside a consumer pod (or as a plain
// process): it long-polls a queue, assembles batches, delivers them to a handler as Lambda SQS
// events (over HTTP, or through a local AWS Lambda Runtime API), deletes what succeeded, honours
// batchItemFailures, keeps FIFO order per message group, extends visibility for slow handlers,
// drains on shutdown, and reports workflow task results to the manager's callback API.
package dispatch
