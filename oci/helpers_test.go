package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testport"
	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// commitN returns a distinct 40-hex commit id.
func commitN(n int) string { return fmt.Sprintf("%040x", 0xc0ffee00+n) }

// commitTime is a fixed commit time for builds under test.
var commitTime = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// helloModule copies testdata/hello, a tiny HTTP server, into a fresh
// directory, as a worktree would be.
func helloModule(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	err := os.CopyFS(dir, os.DirFS("testdata/hello"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func helloBuild(dir, commit string) GoBuild {
	return GoBuild{
		Dir:     dir,
		Main:    "./cmd/hello",
		Ldflags: "-X main.commit=" + commit,
		Env:     []string{"GOWORK=off"},
		Commit:  commit,
		Source:  "https://git.example.com/team/hello.git",
		Version: commit[:12],
		Created: commitTime,
	}
}

func buildHello(t testing.TB, dir, commit string) v1.Image {
	t.Helper()
	var out strings.Builder
	img, err := BuildGo(t.Context(), helloBuild(dir, commit), &out)
	if err != nil {
		t.Fatalf("BuildGo: %v\n%s", err, out.String())
	}
	return img
}

// memRegistry serves go-containerregistry's in-memory registry on loopback
// and returns its host:port.
func memRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// anonymous resolves every registry to no credentials, whatever the
// machine's docker configuration says.
var anonymous = authn.NewMultiKeychain()

// counter is an http.RoundTripper that records the requests it carries.
type counter struct {
	mu   sync.Mutex
	reqs []string // "METHOD path"
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.Path)
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counter) reset() {
	c.mu.Lock()
	c.reqs = nil
	c.mu.Unlock()
}

// count returns how many requests used one of methods on a path containing
// part.
func (c *counter) count(part string, methods ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		m, p, _ := strings.Cut(r, " ")
		if !strings.Contains(p, part) {
			continue
		}
		for _, want := range methods {
			if m == want {
				n++
			}
		}
	}
	return n
}

// blobWrites counts blob upload requests (start, chunk, commit).
func (c *counter) blobWrites() int { return c.count("/blobs/", "POST", "PUT", "PATCH") }

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.reqs, "\n")
}

// extract writes the image's flattened filesystem under dir.
func extract(t testing.TB, img v1.Image, dir string) {
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
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(target, filepath.Clean(dir)+string(filepath.Separator)) {
			t.Fatalf("image path escapes: %q", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, fs.FileMode(h.Mode).Perm()|0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(target), 0o755)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(h.Mode).Perm())
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

// runImage extracts img, starts its entrypoint from the extracted tree on a
// loopback port and returns what /version answers.
func runImage(t testing.TB, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	extract(t, img, dir)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.Entrypoint) == 0 {
		t.Fatal("image has no entrypoint")
	}
	addr := testport.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(dir, cf.Config.Entrypoint[0]))
	cmd.Dir = filepath.Join(dir, cf.Config.WorkingDir)
	cmd.Env = append(cf.Config.Env, "LISTEN="+addr)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", cf.Config.Entrypoint[0], err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/version")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.TrimSpace(string(body))
		}
		if time.Now().After(deadline) {
			t.Fatalf("image did not answer on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// imageSize is the bytes a registry stores for img: manifest, config and
// compressed layers.
func imageSize(t testing.TB, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}
