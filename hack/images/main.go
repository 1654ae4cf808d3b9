// Command images writes a container image without Docker or a registry: one layer holding a
// static binary, the machine's CA certificates and an /etc/passwd naming the non-root user, on an
// empty base (FROM scratch), saved as a docker-archive tarball that `ctr images import` and
// `docker load` accept. `make images` builds Millrace's images with it.
//
// Usage:
//
//	images -o out.tar -t repo/name:tag -binary path/to/static-binary [-entrypoint /app]
//	       [-user 65532:65532] [-ca /etc/ssl/certs/ca-certificates.crt] [-arch amd64]
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// spec is what one image holds.
type spec struct {
	Tag        string // repository and tag, e.g. ghcr.io/millrace-io/millrace-manager:dev
	Binary     string // the static binary on this machine
	Entrypoint string // where the binary lands in the image, and the image's entrypoint
	User       string // uid:gid the container runs as unless the pod says otherwise
	CACerts    string // the CA bundle to copy to /etc/ssl/certs/ca-certificates.crt
	Arch       string // GOARCH of the binary
}

// caPath is where Go's crypto/x509 (and most TLS stacks) look first on Linux.
const caPath = "etc/ssl/certs/ca-certificates.crt"

func main() {
	var s spec
	out := flag.String("o", "", "the tarball to write")
	flag.StringVar(&s.Tag, "t", "", "image repository:tag")
	flag.StringVar(&s.Binary, "binary", "", "static binary to put in the image")
	flag.StringVar(&s.Entrypoint, "entrypoint", "/app", "path of the binary in the image, and the entrypoint")
	flag.StringVar(&s.User, "user", "65532:65532", "uid:gid the image runs as")
	flag.StringVar(&s.CACerts, "ca", "/etc/ssl/certs/ca-certificates.crt", "CA certificate bundle to include")
	flag.StringVar(&s.Arch, "arch", runtime.GOARCH, "architecture of the binary")
	flag.Parse()
	if *out == "" || s.Tag == "" || s.Binary == "" {
		fmt.Fprintln(os.Stderr, "usage: images -o out.tar -t repo:tag -binary FILE [-entrypoint /app] [-user uid:gid] [-ca FILE]")
		os.Exit(2)
	}
	if err := write(*out, s); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

// write builds the image of s and saves it to out (through a temporary file, so that a failed
// run never leaves a truncated tarball behind for an import to trip on).
func write(out string, s spec) error {
	ref, err := name.NewTag(s.Tag)
	if err != nil {
		return err
	}
	img, err := build(s)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// build returns the image of s: one layer on an empty base, with a config fixed in time so that
// the same inputs give the same digest.
func build(s spec) (v1.Image, error) {
	uid, gid, ok := strings.Cut(s.User, ":")
	if !ok || uid == "" || gid == "" || uid == "0" {
		return nil, fmt.Errorf("user %q: want a non-root uid:gid", s.User)
	}
	layerTar, err := rootfs(s, uid, gid)
	if err != nil {
		return nil, err
	}
	// LayerFromOpener reads the bytes again whenever it needs them; LayerFromReader would spool
	// them to a temporary file that it never removes.
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", s.Arch
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config.Entrypoint = []string{s.Entrypoint}
	cfg.Config.User = s.User
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/", "SSL_CERT_FILE=/" + caPath}
	return mutate.ConfigFile(img, cfg)
}

// rootfs is the layer: the binary, the CA bundle, and /etc/passwd and /etc/group naming the user
// (for programs that look their user up). No shell, no package manager, nothing else.
func rootfs(s spec, uid, gid string) ([]byte, error) {
	binary, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(s.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{strings.TrimPrefix(s.Entrypoint, "/"), 0o755, binary},
		{caPath, 0o644, ca},
		{"etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n", uid, gid)},
		{"etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nnonroot:x:%s:\n", gid)},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range sortedDirs(dirs) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sortedDirs lists parents before children (a parent's path is a prefix, so it sorts first).
func sortedDirs(dirs map[string]bool) []string {
	list := make([]string, 0, len(dirs))
	for d := range dirs {
		list = append(list, d)
	}
	slices.Sort(list)
	return list
}
