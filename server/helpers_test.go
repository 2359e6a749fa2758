package server

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
)

// gitRepo is a real git repository in a temp dir that tests commit to.
type gitRepo struct {
	t   testing.TB
	dir string
	n   int
}

func newGitRepo(t testing.TB, from string) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "app")}
	if err := copyTree(from, r.dir); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q", "-b", "master")
	r.commit("initial import")
	return r
}

// git runs git in the repository with a fixed identity and clock, so
// commits are reproducible.
func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	date := time.Date(2026, 1, 2, 3, 4, 5+r.n, 0, time.UTC).Format(time.RFC3339)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Ada Tester", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME=Ada Tester", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_COMMITTER_DATE="+date,
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// write sets a file's content (relative to the repository root).
func (r *gitRepo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// commit commits everything and returns the new head.
func (r *gitRepo) commit(subject string) string {
	r.t.Helper()
	r.n++
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", subject)
	return r.git("rev-parse", "HEAD")
}

// copyTree copies a directory, leaving out databases and binaries a
// developer may have left in it.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		switch filepath.Ext(p) {
		case ".db", ".db-wal", ".db-shm", ".test", ".out":
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// tinyConfig is a ferry.yaml building server/testdata/tiny from repo.
func tinyConfig(repo, dataDir, extra string) string {
	return `app: tiny
dataDir: ` + dataDir + `
server: { listen: 127.0.0.1:0 }
registry: { listen: 127.0.0.1:0 }
source: { repo: ` + repo + `, poll: 0 }
build:
  test: go test ./...
  go: { main: ., ldflags: "-X main.commit={{.Commit}}" }
` + extra + `
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:0 } }
`
}

// start parses yaml and starts a server on it, closed at the end of the test.
func start(t testing.TB, yaml string, opts Options) *Server {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "ferry.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tokenSeq keeps the names of tokens made by tokenFor distinct.
var tokenSeq atomic.Int64

// tokenFor makes a token with role in s's ledger, as `ferry token create`
// on the server's machine does, and returns its secret.
func tokenFor(t testing.TB, s *Server, role ferry.Role) string {
	t.Helper()
	return namedToken(t, s, fmt.Sprintf("test-%s-%d", role, tokenSeq.Add(1)), role)
}

// namedToken is tokenFor with the token's name.
func namedToken(t testing.TB, s *Server, name string, role ferry.Role) string {
	t.Helper()
	tokens := &auth.Tokens{Store: s.Ledger(), App: s.cfg.App}
	_, secret, err := tokens.Create(context.Background(), name, role, "test", "")
	if err != nil {
		t.Fatalf("create %s token: %v", role, err)
	}
	return secret
}

// waitBuild waits until commit's build reaches a final state.
func waitBuild(t testing.TB, s *Server, commit string, timeout time.Duration) *ferry.Build {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := s.Ledger().BuildByCommit(context.Background(), s.cfg.App, commit)
		if err == nil && b.State.Final() {
			full, err := s.Ledger().Build(context.Background(), b.ID)
			if err != nil {
				t.Fatal(err)
			}
			return full
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("build of %s did not end within %s", ferry.ShortSHA(commit), timeout)
	return nil
}

// waitState waits until commit's build is in state.
func waitState(t *testing.T, s *Server, commit string, state ferry.BuildState, timeout time.Duration) *ferry.Build {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := s.Ledger().BuildByCommit(context.Background(), s.cfg.App, commit)
		if err == nil && b.State == state {
			return b
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("build of %s did not reach %s within %s", ferry.ShortSHA(commit), state, timeout)
	return nil
}

// counter counts the requests that upload blobs to a registry.
type counter struct {
	rt      http.RoundTripper
	uploads atomic.Int64
	total   atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.total.Add(1)
	if strings.Contains(r.URL.Path, "/blobs/uploads") {
		c.uploads.Add(1)
	}
	return c.rt.RoundTrip(r)
}

func newCounter() *counter { return &counter{rt: http.DefaultTransport} }
