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

// QueueName is the SQS name of a Queue: spec.queueName when set, else <namespace>-<name> with
// characters SQS refuses replaced by '-', shortened with a hash suffix when longer than 80
// characters, and ending in .fifo for FIFO queues.
func QueueName(namespace, name string, spec millracev1.QueueSpec) string {
	if spec.QueueName != "" {
		return spec.QueueName
	}
	base := sanitize(namespace + "-" + name)
	limit := maxQueueNameLength
	if spec.Type == millracev1.QueueTypeFIFO {
		limit -= len(fifoSuffix)
	}
	if len(base) > limit {
		sum := sha256.Sum256([]byte(namespace + "/" + name))
		hash := hex.EncodeToString(sum[:])[:8]
		base = base[:limit-len(hash)-1] + "-" + hash
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
