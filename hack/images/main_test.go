package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image a tarball holds is read back the way a runtime would read it: its config (user,
// entrypoint) and every file of its only layer. The binary is this test's own executable, so the
// test compiles nothing more than itself.
func TestImageTarball(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := spec{Tag: "millrace.local/test:dev", Binary: self, Entrypoint: "/app", User: "65532:65532", CACerts: ca, Arch: "amd64"}
	out := filepath.Join(t.TempDir(), "test.tar")
	if err := write(out, s); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(s.Tag)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532", cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/app"}) || len(cfg.Config.Cmd) != 0 {
		t.Errorf("entrypoint = %q, cmd = %q; want [/app] and no cmd", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform = %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (%v), want exactly one on an empty base", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
	}
	want := []string{"app", "etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt"}
	got := make([]string, 0, len(files))
	for n := range files {
		got = append(got, n)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("files = %q, want %q (no shell, nothing else)", got, want)
	}
	if h := files["app"]; h == nil || h.Mode != 0o755 || h.Uid != 0 {
		t.Errorf("the binary is not executable and owned by root (read-only to the user): %+v", h)
	}
	if h := files["etc/ssl/certs/ca-certificates.crt"]; h == nil || h.Mode != 0o644 {
		t.Errorf("CA bundle header = %+v", h)
	}

	// Same inputs, same digest: rebuilding an unchanged binary re-imports nothing new.
	again, err := build(s)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("digest changed between two builds of the same inputs: %s, %s", d1, d2)
	}
}

func TestRootUserIsRefused(t *testing.T) {
	for _, user := range []string{"0:0", "65532", "", ":65532"} {
		if _, err := build(spec{User: user, Entrypoint: "/app"}); err == nil {
			t.Errorf("user %q accepted, want an error", user)
		}
	}
}
