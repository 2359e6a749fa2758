package ferryimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/cosign"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/oci"
	"github.com/ferryhq/ferry/registry"
)

// TestBuild builds ferry's image twice from this module and gets one
// digest; the image runs as the non-root user, and inside it (a chroot of
// its flattened filesystem, as uid 65532) ferry, git and go answer, git
// commits and go builds a program that runs.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry and a toolchain layer")
	}
	ctx := context.Background()
	cfg := Config{
		ModuleDir: "../..", Commit: strings.Repeat("ab", 20), Created: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
		Source: "https://github.com/ferryhq/ferry", Version: "test",
	}
	var digests []v1.Hash
	var img v1.Image
	for range 2 {
		var err error
		var log bytes.Buffer
		if img, err = Build(ctx, cfg, &log); err != nil {
			t.Fatalf("build: %v\n%s", err, log.String())
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of one commit gave %s and %s", digests[0], digests[1])
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/app/ferryd" {
		t.Errorf("config: user %q, entrypoint %q; want 65532:65532 and /app/ferryd", cf.Config.User, cf.Config.Entrypoint)
	}
	if cf.Config.Labels["org.opencontainers.image.revision"] != cfg.Commit {
		t.Errorf("labels %v, want the commit", cf.Config.Labels)
	}
	if size := imageSize(t, img); size > 200<<20 {
		t.Errorf("image is %d MB compressed, want at most 200", size>>20)
	} else {
		t.Logf("image %s: %.1f MB compressed", digests[0], float64(size)/1e6)
	}

	// Pushed and signed like every image ferry builds.
	reg, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	pub, err := oci.NewPublisher(reg.Host()+"/ferry", oci.WithBasicAuth(reg.Credentials()))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cosign.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := Publish(ctx, img, cfg, pub, cosign.NewSigner(key, pub), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if digest != digests[0].String() {
		t.Errorf("pushed %s, built %s", digest, digests[0])
	}
	for _, tag := range []string{"sha-" + cfg.Commit, cfg.Version} {
		if got, err := pub.Resolve(ctx, tag); err != nil || got != digest {
			t.Errorf("tag %s = %s, %v; want %s", tag, got, err, digest)
		}
	}
	if err := key.NewVerifier(pub).Verify(ctx, digest, &ferry.Build{App: "ferry", Commit: cfg.Commit, Digest: digest}); err != nil {
		t.Errorf("ferry's image does not verify: %v", err)
	}

	if os.Getuid() != 0 {
		testenv.Unavailable(t, "root", "running the image's programs needs a chroot")
		return
	}
	root := t.TempDir()
	flatten(t, img, root)
	home := filepath.Join(root, "var/lib/ferry")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The devices a container runtime gives every container.
	for name, minor := range map[string]uint32{"null": 3, "zero": 5, "random": 8, "urandom": 9} {
		p := filepath.Join(root, "dev", name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, minor))); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o666)
	}
	run := func(script string) string {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = "/"
		cmd.Env = append(cf.Config.Env, "GOCACHE=/var/lib/ferry/cache", "GOPATH=/var/lib/ferry/go", "CGO_ENABLED=0")
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in the image, %s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	for _, tc := range []struct{ script, want string }{
		{"/app/ferryd version", "test"},
		{"git --version", "git version"},
		{"go version", "go version go1."},
		{`cd /var/lib/ferry && mkdir app && cd app && git init -q -b master && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m one && git log --format=%s`, "one"},
		{`cd /var/lib/ferry/app && printf 'module hello\n\ngo 1.24\n' > go.mod && printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from the image") }\n' > main.go && go build -o hello . && ./hello`, "hello from the image"},
	} {
		if got := run(tc.script); !strings.Contains(got, tc.want) {
			t.Errorf("in the image, %s printed %q, want %q", tc.script, got, tc.want)
		}
	}
}

func imageSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		n += s
	}
	return n
}

// flatten writes the image's filesystem under dir.
func flatten(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
			t.Fatalf("image path escapes: %q", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			mode := os.FileMode(h.Mode) & os.ModePerm
			if h.Mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			if err := os.MkdirAll(p, mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, mode)
			if h.Uid != 0 {
				os.Chown(p, h.Uid, h.Gid)
			}
		case tar.TypeSymlink:
			os.Remove(p)
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeLink:
			os.Remove(p)
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(h.Linkname)), p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(h.Mode)&os.ModePerm)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}
