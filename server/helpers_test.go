package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/internal/gittest"
)

// newRepo is a git repository holding a copy of the tree from, committed
// as "initial import" by Ada Tester (whom the birthday test expects).
func newRepo(t testing.TB, from string) *gittest.Repo {
	t.Helper()
	return gittest.NewFrom(t, from, gittest.Author("Ada Tester"))
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

// deployTimeout bounds waitFinished and waitDeployed: a first deployment
// waits for its build (go test, go build) on a loaded machine.
const deployTimeout = 3 * time.Minute

// waitFinished waits until deployment id ends and fails unless it succeeded.
// deploymentOf waits until the queued action a has started its deployment
// and returns the deployment's id; an action that ended without one
// fails the test with its result.
func deploymentOf(b testing.TB, c *client.Client, a *ferry.Action) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deployTimeout)
	defer cancel()
	got, err := c.Decided(ctx, a.ID, 20*time.Millisecond)
	if err != nil {
		b.Fatalf("action %d (%s of %s): %v", a.ID, a.Kind, a.Env, err)
	}
	if got.Action.DeploymentID == 0 {
		b.Fatalf("action %d (%s of %s) %s without a deployment: %s", a.ID, a.Kind, a.Env, got.Action.State, got.Action.Result)
	}
	return got.Action.DeploymentID
}

func waitFinished(b testing.TB, c *client.Client, id int64) *ferry.Deployment {
	b.Helper()
	d := waitEnded(b, c, id)
	if d.State != ferry.DeploymentSucceeded {
		b.Fatalf("deployment %d (%s of %s to %s) = %s: %s", d.ID, d.Kind, ferry.ShortSHA(d.Commit), d.Env, d.State, d.Error)
	}
	return d
}

// waitEnded waits until deployment id is in a final state, and returns it.
func waitEnded(b testing.TB, c *client.Client, id int64) *ferry.Deployment {
	b.Helper()
	deadline := time.Now().Add(deployTimeout)
	for time.Now().Before(deadline) {
		d, err := c.Deployment(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if d.State.Final() {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("deployment %d did not end within %s", id, deployTimeout)
	return nil
}

// waitDeployed waits until env's newest deployment is commit's and has
// succeeded (verified, tags moved): only then may it be promoted.
func waitDeployed(b testing.TB, c *client.Client, env, commit string) {
	b.Helper()
	deadline := time.Now().Add(deployTimeout)
	for time.Now().Before(deadline) {
		ds, err := c.Deployments(context.Background(), env, 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) == 1 && ds[0].Commit == commit && ds[0].State.Final() {
			waitFinished(b, c, ds[0].ID)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("%s's deployment of %s did not end within %s", env, ferry.ShortSHA(commit), deployTimeout)
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
