package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/millrace-io/millrace/internal/webhookcert"
)

// webhookOptions configure the admission webhook (off unless a port is given).
type webhookOptions struct {
	port                                    int
	certDir, secret, service, configuration string
	cert                                    webhookcert.Options
	// direct reads and writes the API server without the manager's cache (which would watch
	// every Secret).
	direct client.Client
}

// server prepares the certificate and returns the webhook server, or nil when the webhook is off
// (the manager then starts none).
func (w *webhookOptions) server(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (webhook.Server, error) {
	if w.port == 0 {
		return nil, nil
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		return nil, errors.New("--webhook-port needs $POD_NAMESPACE (the namespace of the certificate's Secret and Service)")
	}
	w.cert = webhookcert.Options{Namespace: ns, Secret: w.secret, Service: w.service, WebhookConfiguration: w.configuration, CertDir: w.certDir}
	var err error
	if w.direct, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	if err := webhookcert.Ensure(ctx, w.direct, w.cert); err != nil {
		return nil, fmt.Errorf("the webhook's certificate: %w", err)
	}
	return webhook.NewServer(webhook.Options{Port: w.port, CertDir: w.certDir}), nil
}

// register adds the keeper of the certificate to the manager (controllers.Setup registers the
// validators).
func (w *webhookOptions) register(mgr ctrl.Manager) error {
	if w.port == 0 {
		return nil
	}
	log := ctrl.Log.WithName("webhook-cert")
	return mgr.Add(&webhookcert.Keeper{Client: w.direct, Options: w.cert, Log: func(err error) { log.Error(err, "keeping the webhook certificate") }})
}
