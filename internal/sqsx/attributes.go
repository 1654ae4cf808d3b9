package sqsx

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// SQS attribute names Millrace manages.
const (
	AttrVisibilityTimeout            = "VisibilityTimeout"
	AttrMessageRetentionPeriod       = "MessageRetentionPeriod"
	AttrDelaySeconds                 = "DelaySeconds"
	AttrReceiveMessageWaitTimeSecs   = "ReceiveMessageWaitTimeSeconds"
	AttrMaximumMessageSize           = "MaximumMessageSize"
	AttrFifoQueue                    = "FifoQueue"
	AttrContentBasedDeduplication    = "ContentBasedDeduplication"
	AttrDeduplicationScope           = "DeduplicationScope"
	AttrFifoThroughputLimit          = "FifoThroughputLimit"
	AttrRedrivePolicy                = "RedrivePolicy"
	AttrRedriveAllowPolicy           = "RedriveAllowPolicy"
	AttrSqsManagedSseEnabled         = "SqsManagedSseEnabled"
	AttrKmsMasterKeyID               = "KmsMasterKeyId"
	AttrKmsDataKeyReusePeriodSeconds = "KmsDataKeyReusePeriodSeconds"
	AttrQueueArn                     = "QueueArn"
)

// defaults are the values SQS reports for an attribute that was never set. An observed attribute
// that is absent compares equal to its default.
var defaults = map[string]string{
	AttrVisibilityTimeout:            "30",
	AttrMessageRetentionPeriod:       "345600",
	AttrDelaySeconds:                 "0",
	AttrReceiveMessageWaitTimeSecs:   "0",
	AttrMaximumMessageSize:           "1048576",
	AttrContentBasedDeduplication:    "false",
	AttrDeduplicationScope:           "queue",
	AttrFifoThroughputLimit:          "perQueue",
	AttrRedrivePolicy:                "",
	AttrKmsMasterKeyID:               "",
	AttrKmsDataKeyReusePeriodSeconds: "300",
	AttrSqsManagedSseEnabled:         "false",
}

// kinds says how each attribute is compared.
type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindRedrive
	kindRedriveAllow
)

var kinds = map[string]kind{
	AttrVisibilityTimeout:            kindInt,
	AttrMessageRetentionPeriod:       kindInt,
	AttrDelaySeconds:                 kindInt,
	AttrReceiveMessageWaitTimeSecs:   kindInt,
	AttrMaximumMessageSize:           kindInt,
	AttrKmsDataKeyReusePeriodSeconds: kindInt,
	AttrFifoQueue:                    kindBool,
	AttrContentBasedDeduplication:    kindBool,
	AttrSqsManagedSseEnabled:         kindBool,
	AttrRedrivePolicy:                kindRedrive,
	AttrRedriveAllowPolicy:           kindRedriveAllow,
}

// RedrivePolicy is the typed form of the SQS RedrivePolicy attribute.
type RedrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     int    `json:"maxReceiveCount"`
}

// ParseRedrivePolicy reads a RedrivePolicy attribute. SQS returns maxReceiveCount as a number, but
// older responses and hand-written policies carry it as a string; both are accepted.
func ParseRedrivePolicy(s string) (RedrivePolicy, error) {
	var raw struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return RedrivePolicy{}, fmt.Errorf("redrive policy %q: %w", s, err)
	}
	count := strings.Trim(string(raw.MaxReceiveCount), `" `)
	n, err := strconv.Atoi(count)
	if err != nil {
		return RedrivePolicy{}, fmt.Errorf("redrive policy %q: maxReceiveCount: %w", s, err)
	}
	return RedrivePolicy{DeadLetterTargetArn: raw.DeadLetterTargetArn, MaxReceiveCount: n}, nil
}

// String renders the policy the way SQS documents it.
func (p RedrivePolicy) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// MaxRedriveSources is how many source queues a byQueue redrive allow policy may name (SQS's limit).
const MaxRedriveSources = 10

// RedriveAllowPolicy is the typed form of the SQS RedriveAllowPolicy attribute: which source
// queues may use a queue as their dead-letter queue.
type RedriveAllowPolicy struct {
	RedrivePermission string   `json:"redrivePermission"`
	SourceQueueArns   []string `json:"sourceQueueArns,omitempty"`
}

// RedriveAllow is the policy that admits exactly the given source queue ARNs (byQueue, sorted), or
// none (denyAll) when there are none.
func RedriveAllow(sources []string) string {
	p := RedriveAllowPolicy{RedrivePermission: "denyAll"}
	if len(sources) > 0 {
		p = RedriveAllowPolicy{RedrivePermission: "byQueue", SourceQueueArns: slices.Sorted(slices.Values(sources))}
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// SiblingARN is the ARN of the queue called name in the same region and account as the queue arn.
func SiblingARN(arn, name string) string {
	i := strings.LastIndexByte(arn, ':')
	if i < 0 {
		return ""
	}
	return arn[:i+1] + name
}

// sameRedriveAllow compares two RedriveAllowPolicy values as sets of sources; an absent policy
// (SQS's default) is allowAll.
func sameRedriveAllow(a, b string) bool {
	parse := func(s string) (RedriveAllowPolicy, bool) {
		if strings.TrimSpace(s) == "" {
			return RedriveAllowPolicy{RedrivePermission: "allowAll"}, true
		}
		var p RedriveAllowPolicy
		if json.Unmarshal([]byte(s), &p) != nil {
			return p, false
		}
		slices.Sort(p.SourceQueueArns)
		return p, true
	}
	x, okX := parse(a)
	y, okY := parse(b)
	if !okX || !okY {
		return strings.TrimSpace(a) == strings.TrimSpace(b)
	}
	return x.RedrivePermission == y.RedrivePermission && slices.Equal(x.SourceQueueArns, y.SourceQueueArns)
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// DesiredAttributes maps a Queue spec to the SQS attributes Millrace enforces. deadLetterARN is the
// resolved ARN of the dead-letter queue ("" when the spec has none). Every managed attribute is
// present: a field left unset means the SQS default, so removing a field from the spec resets it.
// FifoQueue is not included: it can only be given at creation (see CreateAttributes).
func DesiredAttributes(spec millracev1.QueueSpec, deadLetterARN string) map[string]string {
	want := map[string]string{
		AttrVisibilityTimeout:          defaults[AttrVisibilityTimeout],
		AttrMessageRetentionPeriod:     defaults[AttrMessageRetentionPeriod],
		AttrDelaySeconds:               defaults[AttrDelaySeconds],
		AttrReceiveMessageWaitTimeSecs: defaults[AttrReceiveMessageWaitTimeSecs],
		AttrMaximumMessageSize:         defaults[AttrMaximumMessageSize],
		AttrRedrivePolicy:              "",
	}
	if spec.VisibilityTimeout != nil {
		want[AttrVisibilityTimeout] = seconds(spec.VisibilityTimeout.Duration())
	}
	if spec.MessageRetention != nil {
		want[AttrMessageRetentionPeriod] = seconds(spec.MessageRetention.Duration())
	}
	if spec.DeliveryDelay != nil {
		want[AttrDelaySeconds] = seconds(spec.DeliveryDelay.Duration())
	}
	if spec.ReceiveWaitTime != nil {
		want[AttrReceiveMessageWaitTimeSecs] = seconds(spec.ReceiveWaitTime.Duration())
	}
	if spec.MaximumMessageSize != nil {
		want[AttrMaximumMessageSize] = strconv.Itoa(int(*spec.MaximumMessageSize))
	}
	if spec.DeadLetter != nil && deadLetterARN != "" {
		want[AttrRedrivePolicy] = RedrivePolicy{
			DeadLetterTargetArn: deadLetterARN,
			MaxReceiveCount:     int(spec.DeadLetter.MaxReceiveCount),
		}.String()
	}
	if spec.Type == millracev1.QueueTypeFIFO {
		want[AttrContentBasedDeduplication] = strconv.FormatBool(spec.ContentBasedDeduplication != nil && *spec.ContentBasedDeduplication)
		if spec.HighThroughput != nil && *spec.HighThroughput {
			want[AttrDeduplicationScope] = "messageGroup"
			want[AttrFifoThroughputLimit] = "perMessageGroupId"
		} else {
			want[AttrDeduplicationScope] = "queue"
			want[AttrFifoThroughputLimit] = "perQueue"
		}
	}
	if enc := spec.Encryption; enc != nil {
		switch enc.Type {
		case millracev1.EncryptionNone:
			want[AttrSqsManagedSseEnabled] = "false"
			want[AttrKmsMasterKeyID] = ""
		case millracev1.EncryptionSQSManaged:
			want[AttrSqsManagedSseEnabled] = "true"
			want[AttrKmsMasterKeyID] = ""
		case millracev1.EncryptionKMS:
			want[AttrKmsMasterKeyID] = enc.KMSKeyID
			want[AttrKmsDataKeyReusePeriodSeconds] = defaults[AttrKmsDataKeyReusePeriodSeconds]
			if enc.DataKeyReusePeriod != nil {
				want[AttrKmsDataKeyReusePeriodSeconds] = seconds(enc.DataKeyReusePeriod.Duration())
			}
		}
	}
	return want
}

// CreateAttributes are the attributes of a CreateQueue call: the desired ones without empty values
// (SQS refuses an empty RedrivePolicy or KmsMasterKeyId on create), plus FifoQueue for FIFO.
func CreateAttributes(spec millracev1.QueueSpec, deadLetterARN string) map[string]string {
	attrs := DesiredAttributes(spec, deadLetterARN)
	maps.DeleteFunc(attrs, func(_, v string) bool { return v == "" })
	if spec.Type == millracev1.QueueTypeFIFO {
		attrs[AttrFifoQueue] = "true"
	}
	return attrs
}

// Equal reports whether two values of one attribute mean the same thing. An empty value stands for
// an absent attribute and compares equal to the attribute's SQS default.
func Equal(name, a, b string) bool {
	if a == "" {
		a = defaults[name]
	}
	if b == "" {
		b = defaults[name]
	}
	switch kinds[name] {
	case kindInt:
		x, errX := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		y, errY := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if errX == nil && errY == nil {
			return x == y
		}
	case kindBool:
		x, errX := strconv.ParseBool(strings.TrimSpace(strings.ToLower(a)))
		y, errY := strconv.ParseBool(strings.TrimSpace(strings.ToLower(b)))
		if errX == nil && errY == nil {
			return x == y
		}
	case kindRedriveAllow:
		return sameRedriveAllow(a, b)
	case kindRedrive:
		if strings.TrimSpace(a) == "" || strings.TrimSpace(b) == "" {
			return strings.TrimSpace(a) == strings.TrimSpace(b)
		}
		x, errX := ParseRedrivePolicy(a)
		y, errY := ParseRedrivePolicy(b)
		if errX == nil && errY == nil {
			return x == y
		}
	}
	return strings.TrimSpace(a) == strings.TrimSpace(b)
}

// AttributeDiff returns the attributes of desired whose observed value differs semantically, with
// their desired values: exactly what a SetQueueAttributes call must carry. Observed attributes that
// are not desired (counts, timestamps, the ARN) are ignored.
func AttributeDiff(desired, observed map[string]string) map[string]string {
	diff := map[string]string{}
	for name, want := range desired {
		if !Equal(name, want, observed[name]) {
			diff[name] = want
		}
	}
	return diff
}

// DriftedNames lists the names in a diff, sorted, for messages and events.
func DriftedNames(diff map[string]string) []string {
	return slices.Sorted(maps.Keys(diff))
}
