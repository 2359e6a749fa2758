package server

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/builder"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/oci"
)

const buildinfoPkg = "github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"

// TestBuildBirthdayApp is issue 3's end-to-end check: birthday-app copied
// into its own git repository, built by a real ferry server into the
// embedded registry; the image is found under both tags with its labels,
// it runs and reports its commit, and a second trigger uploads nothing.
func TestBuildBirthdayApp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds birthday-app")
	}
	repo := newRepo(t, "../examples/birthday-app")
	commit := repo.Head()
	data := t.TempDir()
	yaml := fmt.Sprintf(`app: birthday-app
dataDir: %s
server: { listen: 127.0.0.1:0 }
registry: { listen: 127.0.0.1:0 }
source: { repo: %s, poll: 0 }
build:
  test: go test ./birthday/...
  go:
    main: ./cmd/birthday-app
    ldflags: -X %s.Commit={{.Commit}} -X %s.BuildTime={{.Time.Format "2006-01-02T15:04:05Z"}}
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:0, readiness: /statusz } }
`, data, repo.Dir, buildinfoPkg, buildinfoPkg)
	count := newCounter()
	s := start(t, yaml, Options{Transport: count})

	b := waitBuild(t, s, commit, 5*time.Minute)
	if b.State != ferry.BuildSucceeded {
		t.Fatalf("build state = %s (%s), want succeeded", b.State, b.Reason)
	}
	for _, st := range b.Steps {
		if st.State != ferry.StepSucceeded && !(st.Name == builder.StepIntegration && st.State == ferry.StepSkipped) { // no build.integration here
			t.Errorf("step %s = %s, want succeeded", st.Name, st.State)
		}
	}
	if b.Subject != "initial import" || b.Author != "Ada Tester" {
		t.Errorf("build subject, author = %q, %q; want the commit's", b.Subject, b.Author)
	}

	// The registry has the image under both tags, with the labels.
	repoRef := s.ImageRepository()
	wantImage(t, s, repoRef, commit, b.Digest)
	ref, _ := name.ParseReference(repoRef+"@"+b.Digest, name.Insecure)
	img, err := remote.Image(ref, registryAuth(s))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	commitTime, err := time.Parse(time.RFC3339, repo.Git(time.Time{}, "show", "-s", "--format=%cI", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		oci.LabelRevision: commit,
		oci.LabelCreated:  commitTime.UTC().Format(time.RFC3339),
		oci.LabelVersion:  ferry.ShortSHA(commit),
		oci.LabelSource:   repo.Dir,
	}
	for k, want := range wantLabels {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	size := imageSize(t, img)
	t.Logf("image %s: %.1f MB compressed", b.Digest, float64(size)/1e6)

	// The image runs and says which commit it is.
	got := runImage(t, img, cf.Config.Entrypoint)
	if got.Commit != commit {
		t.Errorf("/version commit = %q, want %q", got.Commit, commit)
	}

	// A second trigger of the same commit builds nothing and uploads nothing.
	// dev's rollout of the build talks to the registry too (verification,
	// tags): it ends first, so that only the trigger is counted.
	c := newClient(t, s)
	waitDeployed(t, c, "dev", commit)
	before := count.total.Load()
	res, err := c.Trigger(context.Background(), "master", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued || res.Build.ID != b.ID {
		t.Errorf("second trigger: queued=%v build=%d, want the existing build %d", res.Queued, res.Build.ID, b.ID)
	}
	time.Sleep(200 * time.Millisecond)
	if n := count.total.Load() - before; n != 0 {
		t.Errorf("second trigger sent %d registry requests, want 0", n)
	}

	// With the ledger lost, the registry still knows the commit: the image is
	// adopted, not rebuilt, and no blob is uploaded.
	s.Close()
	count2 := newCounter()
	yaml2 := strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }",
		"registry: { listen: 127.0.0.1:0 }\nledger: sqlite://"+filepath.Join(t.TempDir(), "fresh.db"), 1)
	s2 := start(t, yaml2, Options{Transport: count2})
	b2 := waitBuild(t, s2, commit, time.Minute)
	if b2.State != ferry.BuildSucceeded || b2.Digest != b.Digest {
		t.Fatalf("after losing the ledger: build %s %s, want succeeded %s", b2.State, b2.Digest, b.Digest)
	}
	for _, st := range b2.Steps {
		if st.State != ferry.StepSkipped {
			t.Errorf("adopted build step %s = %s, want skipped", st.Name, st.State)
		}
	}
	if n := count2.uploads.Load(); n != 0 {
		t.Errorf("adopting the image uploaded %d blobs, want 0", n)
	}
}

// imageSize is the compressed size of img's layers and config.
func imageSize(t testing.TB, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size
}

type version struct {
	Commit    string `json:"commit"`
	BuildTime string `json:"buildTime"`
}

// runImage unpacks img and runs its entrypoint as a plain child process on
// a free loopback port with a SQLite database, returning what /version
// answers.
func runImage(t *testing.T, img v1.Image, entrypoint []string) version {
	t.Helper()
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := untar(rc, root); err != nil {
		t.Fatalf("unpack image: %v", err)
	}
	if len(entrypoint) == 0 {
		t.Fatal("image has no entrypoint")
	}
	addr := testport.Addr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(root, entrypoint[0]), "-listen", addr, "-db", "sqlite://"+filepath.Join(t.TempDir(), "app.db"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", entrypoint[0], err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/version")
		if err == nil {
			var v version
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("decode /version: %v", err)
			}
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the image's app did not answer on %s", addr)
	return version{}
}

// untar writes a flattened image filesystem (regular files, directories
// and symlinks) under root.
func untar(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		}
	}
}
