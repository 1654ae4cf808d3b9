package sqsx

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

const (
	maxQueueNameLength = 80
	fifoSuffix         = ".fifo"
)

// QueueName is the SQS name of a Queue: spec.queueName when set, else <namespace>-<name>-<hash>
// with characters SQS refuses replaced by '-', the hash being 8 hex digits of SHA-256 over
// "<namespace>/<name>" (so "ns-q"/"orders" and "ns"/"q-orders" never share a queue), shortened to
// 80 characters, and ending in .fifo for FIFO queues.
func QueueName(namespace, name string, spec millracev1.QueueSpec) string {
	if spec.QueueName != "" {
		return spec.QueueName
	}
	return generated(namespace, name, spec, true)
}

// LegacyQueueName is the generated name of releases before the hash was always added
// (<namespace>-<name>, hashed only when too long). A Queue whose status records this name keeps
// it: renaming would abandon its SQS queue and messages. It cannot be a new Queue's name.
func LegacyQueueName(namespace, name string, spec millracev1.QueueSpec) string {
	return generated(namespace, name, spec, false)
}

func generated(namespace, name string, spec millracev1.QueueSpec, alwaysHash bool) string {
	base := sanitize(namespace + "-" + name)
	limit := maxQueueNameLength
	if spec.Type == millracev1.QueueTypeFIFO {
		limit -= len(fifoSuffix)
	}
	const hashLen = 8
	if alwaysHash || len(base) > limit {
		sum := sha256.Sum256([]byte(namespace + "/" + name))
		hash := hex.EncodeToString(sum[:])[:hashLen]
		base = base[:min(len(base), limit-hashLen-1)] + "-" + hash
	}
	if spec.Type == millracev1.QueueTypeFIFO {
		base += fifoSuffix
	}
	return base
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		default:
			return '-'
		}
	}, s)
}

// IsFIFOARN reports whether a queue ARN (or name) names a FIFO queue.
func IsFIFOARN(arn string) bool { return strings.HasSuffix(arn, fifoSuffix) }
