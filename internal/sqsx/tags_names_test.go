package sqsx

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

func TestTagDiff(t *testing.T) {
	cases := []struct {
		name          string
		desired, seen map[string]string
		wantSet       map[string]string
		wantRemove    []string
	}{
		{"matching tags need nothing", map[string]string{"a": "1"}, map[string]string{"a": "1"}, map[string]string{}, nil},
		{"a missing tag is set", map[string]string{"a": "1", "b": "2"}, map[string]string{"a": "1"}, map[string]string{"b": "2"}, nil},
		{"a changed value is set again", map[string]string{"a": "1"}, map[string]string{"a": "0"}, map[string]string{"a": "1"}, nil},
		{"foreign tags are removed, sorted", map[string]string{"a": "1"}, map[string]string{"a": "1", "z": "", "m": "x"}, map[string]string{}, []string{"m", "z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, remove := TagDiff(tc.desired, tc.seen)
			if !reflect.DeepEqual(set, tc.wantSet) || !reflect.DeepEqual(remove, tc.wantRemove) {
				t.Fatalf("got set=%v remove=%v", set, remove)
			}
		})
	}
}

func TestDesiredTagsAddTheOwnerWithoutTouchingTheSpec(t *testing.T) {
	spec := map[string]string{"team": "a"}
	got := DesiredTags(spec, OwnerValue("c", "ns", "q"), false)
	if got[OwnerTag] != "c/ns/q" || got["team"] != "a" || len(spec) != 1 || got[AdoptedTag] != "" {
		t.Fatalf("got %v (spec now %v)", got, spec)
	}
	if got := DesiredTags(nil, "o", true); got[OwnerTag] != "o" || got[AdoptedTag] != "true" {
		t.Fatalf("nil spec tags of an adopted queue: %v", got)
	}
}

func TestQueueName(t *testing.T) {
	long := strings.Repeat("n", 90)
	cases := []struct {
		name, ns, obj string
		spec          millracev1.QueueSpec
		want          string
	}{
		{"an explicit name is used as is", "ns", "q", millracev1.QueueSpec{QueueName: "explicit"}, "explicit"},
		{"the default joins namespace, name and a hash", "team-a", "orders", millracev1.QueueSpec{}, "team-a-orders-" + hash8("team-a/orders")},
		{"a fifo default ends in .fifo", "team-a", "orders", millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO}, "team-a-orders-" + hash8("team-a/orders") + ".fifo"},
		{"dots in resource names become dashes", "ns", "orders.v2", millracev1.QueueSpec{}, "ns-orders-v2-" + hash8("ns/orders.v2")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := QueueName(tc.ns, tc.obj, tc.spec); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("names that join to the same text in two namespaces do not collide", func(t *testing.T) {
		a := QueueName("ns-q", "orders", millracev1.QueueSpec{})
		b := QueueName("ns", "q-orders", millracev1.QueueSpec{})
		if a == b {
			t.Fatalf("both are %q", a)
		}
		if LegacyQueueName("ns-q", "orders", millracev1.QueueSpec{}) != LegacyQueueName("ns", "q-orders", millracev1.QueueSpec{}) {
			t.Fatal("the legacy names were expected to collide (the attack this guards against)")
		}
	})
	t.Run("a long default is shortened to 80 characters with a hash that keeps names apart", func(t *testing.T) {
		a := QueueName("ns", long+"a", millracev1.QueueSpec{})
		b := QueueName("ns", long+"b", millracev1.QueueSpec{})
		if len(a) != 80 || len(b) != 80 || a == b {
			t.Fatalf("a=%q (%d) b=%q (%d)", a, len(a), b, len(b))
		}
		f := QueueName("ns", long, millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO})
		if len(f) != 80 || !strings.HasSuffix(f, ".fifo") {
			t.Fatalf("fifo: %q (%d)", f, len(f))
		}
	})
}

func hash8(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:8]
}
