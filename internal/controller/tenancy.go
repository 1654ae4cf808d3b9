package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/tenancy"
)

// +kubebuilder:rbac:groups=millrace.io,resources=tenantpolicies,verbs=get;list;watch

// grantsFor reads what the cluster's TenantPolicies grant namespace ns (from the cache).
func grantsFor(ctx context.Context, c client.Reader, ns string) (tenancy.Grants, error) {
	var list millracev1.TenantPolicyList
	if err := c.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return tenancy.Grants{Namespace: ns}, err
	}
	return tenancy.For(ns, list.Items), nil
}

// policyNamespaces maps a TenantPolicy to requests for the objects of list's kind in the
// namespaces it names (a grant given or taken back is acted on at once).
func policyNamespaces(ctx context.Context, c client.Reader, o client.Object, list client.ObjectList) []reconcile.Request {
	p, ok := o.(*millracev1.TenantPolicy)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, ns := range p.Spec.Namespaces {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			continue
		}
		reqs = append(reqs, requestsFor(l, nil)...)
	}
	return reqs
}
