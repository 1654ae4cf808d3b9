package sqsx

import (
	"maps"
	"slices"
)

// OwnerTag marks a queue as managed by one Queue resource; its value is OwnerValue(...). It lets the
// controller tell a queue it created (perhaps before a crash that lost the status write) from a
// pre-existing one that needs adoption.
const OwnerTag = "millrace.io/owner"

// OwnerValue is the value of OwnerTag for a Queue resource of a cluster.
func OwnerValue(cluster, namespace, name string) string {
	return cluster + "/" + namespace + "/" + name
}

// AdoptedTag marks a queue a Queue adopted (it existed before): a later Queue of the same name
// may take it again only as adoption, with what adoption needs (adoptionPolicy: Adopt and a
// TenantPolicy grant), and deleting it needs that grant still.
const AdoptedTag = "millrace.io/adopted"

// DesiredTags are the spec's tags plus the owner tag, and the adopted tag for an adopted queue.
func DesiredTags(specTags map[string]string, owner string, adopted bool) map[string]string {
	want := maps.Clone(specTags)
	if want == nil {
		want = map[string]string{}
	}
	want[OwnerTag] = owner
	if adopted {
		want[AdoptedTag] = "true"
	}
	return want
}

// TagDiff returns the tags to set (missing or with another value) and the keys to remove (present
// but not desired), the latter sorted.
func TagDiff(desired, observed map[string]string) (set map[string]string, remove []string) {
	set = map[string]string{}
	for k, v := range desired {
		if got, ok := observed[k]; !ok || got != v {
			set[k] = v
		}
	}
	for k := range observed {
		if _, ok := desired[k]; !ok {
			remove = append(remove, k)
		}
	}
	slices.Sort(remove)
	return set, remove
}
