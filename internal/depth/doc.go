// Package depth is the shared queue-depth monitor: one poller per SQS queue, whatever the number of
// resources that want its counts. Each poller makes one GetQueueAttributes call per interval and
// hands the sample to every subscriber (the Queue status writer, every Consumer of the queue) and to
// Prometheus gauges. The interval adapts: the fastest any subscriber asks for while the counts move
// or a subscriber needs speed, growing up to a ceiling while the queue is steady.
package depth
