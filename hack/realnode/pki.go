package realnode

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki writes the node's certificates under dir: a CA, the API server's and the kubelet's serving
// certificates, a client certificate per component (its user and groups are what RBAC and the
// Node authorizer see), and the service-account signing key. All valid for a week: a node lives
// for one test run or one `make dev`.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  crypto.Signer
}

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "millrace-realnode-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: dir, caCert: ca, caKey: key}
	if err := p.writePEM("ca.crt", "CERTIFICATE", der); err != nil {
		return nil, err
	}
	// The service-account key: the API server signs tokens with it and checks them against it.
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err := p.writePEM("sa.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(sa)); err != nil {
		return nil, err
	}
	return p, p.writePEM("sa.pub", "PUBLIC KEY", pub)
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) writePEM(name, kind string, der []byte) error {
	return os.WriteFile(p.path(name), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

// issue writes name.crt and name.key. With hosts it is a serving certificate for those names and
// addresses, otherwise a client certificate for user cn in groups.
func (p *pki) issue(name, cn string, groups []string, hosts ...string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     p.caCert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := p.writePEM(name+".crt", "CERTIFICATE", der); err != nil {
		return err
	}
	return p.writePEM(name+".key", "EC PRIVATE KEY", keyDER)
}

// kubeconfig writes a kubeconfig for the client certificate name to file.
func (p *pki) kubeconfig(name, file string) error {
	return os.WriteFile(file, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: realnode, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: %s, user: {client-certificate: %q, client-key: %q}}]
contexts: [{name: realnode, context: {cluster: realnode, user: %s}}]
current-context: realnode
`, APIServerURL, p.path("ca.crt"), name, p.path(name+".crt"), p.path(name+".key"), name), 0o600)
}

// issueAll writes every certificate and kubeconfig the node's components use into run.
func (p *pki) issueAll(run string) error {
	serving := [][]string{
		{"apiserver", "kube-apiserver", NodeIP, "10.96.0.1", "127.0.0.1", "localhost", "kubernetes",
			"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		{"kubelet-serving", "system:node:" + NodeName, NodeIP, NodeName},
	}
	for _, s := range serving {
		if err := p.issue(s[0], s[1], nil, s[2:]...); err != nil {
			return err
		}
	}
	clients := []struct {
		name, user string
		groups     []string
	}{
		{"admin", "realnode-admin", []string{"system:masters"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
		{"kubelet", "system:node:" + NodeName, []string{"system:nodes"}},
		{"controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "system:kube-scheduler", nil},
		{"kube-proxy", "system:kube-proxy", nil},
	}
	for _, c := range clients {
		if err := p.issue(c.name, c.user, c.groups); err != nil {
			return err
		}
		if c.name == "apiserver-kubelet-client" {
			continue
		}
		if err := p.kubeconfig(c.name, filepath.Join(run, c.name+".kubeconfig")); err != nil {
			return err
		}
	}
	return nil
}
