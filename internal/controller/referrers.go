package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// referrers maps an object to the requests of the objects of its namespace whose field index
// `field` names it (a Queue's Consumers, a dead-letter Queue's sources, a Workflow's runs); keep,
// when set, filters them.
func referrers(ctx context.Context, c client.Reader, list client.ObjectList, field string, o client.Object, keep func(client.Object) bool) []reconcile.Request {
	if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{field: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing referrers", "index", field, "name", o.GetName())
		return nil
	}
	return requestsFor(list, keep)
}

// requestsFor maps the items of a list (those keep passes, when set) to requests.
func requestsFor(list client.ObjectList, keep func(client.Object) bool) []reconcile.Request {
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(items))
	for _, item := range items {
		obj, ok := item.(client.Object)
		if ok && (keep == nil || keep(obj)) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
	}
	return reqs
}
