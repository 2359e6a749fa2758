package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/builder"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/registry"
)

// The failure paths of `ferry serve`: each test runs a real server on a
// real git repository and the real registry, breaks one thing, and checks
// that the failure is recorded with its reason and that nothing is pushed.

// TestFailingTestsFailTheBuild: a commit whose `go test` fails ends failed,
// keeps the failing test's output, runs no later step and pushes nothing.
func TestFailingTestsFailTheBuild(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	repo.Write("broken_test.go", `package main

import "testing"

func TestBroken(t *testing.T) { t.Fatal("ferry-marker: the answer is not 42") }
`)
	commit := repo.CommitAll("break the tests")
	s := start(t, tinyConfig(repo.Dir, t.TempDir(), ""), Options{})

	b := waitBuild(t, s, commit, 2*time.Minute)
	if b.State != ferry.BuildFailed {
		t.Fatalf("build state = %s (%s), want failed", b.State, b.Reason)
	}
	if !strings.Contains(b.Reason, "tests failed") || !strings.Contains(b.Reason, "exit status 1") {
		t.Errorf("build reason = %q, want it to say the tests failed with exit status 1", b.Reason)
	}
	wantSteps(t, b, map[string]ferry.StepState{
		builder.StepCheckout:    ferry.StepSucceeded,
		builder.StepTest:        ferry.StepFailed,
		builder.StepBuild:       ferry.StepPending,
		builder.StepPush:        ferry.StepPending,
		builder.StepSign:        ferry.StepPending,
		builder.StepIntegration: ferry.StepPending,
		builder.StepTag:         ferry.StepPending,
	})
	log := logLines(t, s, b.ID)
	if !hasLine(log, builder.StepTest, "ferry-marker: the answer is not 42") {
		t.Errorf("the test step's log does not hold the failing test's message; log:\n%s", dumpLog(log))
	}
	if !hasLine(log, builder.StepTest, "--- FAIL: TestBroken") {
		t.Errorf("the test step's log does not name the failing test; log:\n%s", dumpLog(log))
	}
	wantEvent(t, s, "build.failed", b.ID, "tests failed")
	wantNoImage(t, s, s.ImageRepository(), commit)
	if n := len(builds(t, s)); n != 1 {
		t.Errorf("%d builds recorded, want 1 (only the branch's head)", n)
	}
}

// TestCompileErrorFailsTheBuild: with no test step, a syntax error fails the
// build step with the compiler's message and pushes nothing.
func TestCompileErrorFailsTheBuild(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	main, err := os.ReadFile(filepath.Join(repo.Dir, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	repo.Write("main.go", string(main)+"\nfunc broken( {\n")
	commit := repo.CommitAll("break the build")
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), "")
	s := start(t, yaml, Options{})

	b := waitBuild(t, s, commit, 2*time.Minute)
	if b.State != ferry.BuildFailed {
		t.Fatalf("build state = %s (%s), want failed", b.State, b.Reason)
	}
	if !strings.Contains(b.Reason, "main.go:") || !strings.Contains(b.Reason, "syntax error") {
		t.Errorf("build reason = %q, want the compiler's message (main.go:…: syntax error …)", b.Reason)
	}
	wantSteps(t, b, map[string]ferry.StepState{
		builder.StepCheckout:    ferry.StepSucceeded,
		builder.StepTest:        ferry.StepSkipped,
		builder.StepBuild:       ferry.StepFailed,
		builder.StepPush:        ferry.StepPending,
		builder.StepSign:        ferry.StepPending,
		builder.StepIntegration: ferry.StepPending,
		builder.StepTag:         ferry.StepPending,
	})
	if log := logLines(t, s, b.ID); !hasLine(log, builder.StepBuild, "syntax error") {
		t.Errorf("the build step's log does not hold the compiler's output; log:\n%s", dumpLog(log))
	}
	wantNoImage(t, s, s.ImageRepository(), commit)
}

// TestFailingBuildCommand: a user's build command that exits 3 fails the
// build with that status, its output kept, and no image.
func TestFailingBuildCommand(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	commit := repo.Head()
	yaml := fmt.Sprintf(`app: tiny
dataDir: %s
server: { listen: 127.0.0.1:0 }
registry: { listen: 127.0.0.1:0 }
source: { repo: %s, poll: 0 }
build:
  command: "echo building-marker; exit 3"
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:0 } }
`, t.TempDir(), repo.Dir)
	s := start(t, yaml, Options{})

	b := waitBuild(t, s, commit, time.Minute)
	if b.State != ferry.BuildFailed {
		t.Fatalf("build state = %s (%s), want failed", b.State, b.Reason)
	}
	if !strings.Contains(b.Reason, "build command failed") || !strings.Contains(b.Reason, "exit status 3") {
		t.Errorf("build reason = %q, want it to say the build command failed with exit status 3", b.Reason)
	}
	wantSteps(t, b, map[string]ferry.StepState{
		builder.StepCheckout:    ferry.StepSucceeded,
		builder.StepTest:        ferry.StepSkipped,
		builder.StepBuild:       ferry.StepFailed,
		builder.StepPush:        ferry.StepPending,
		builder.StepSign:        ferry.StepPending,
		builder.StepIntegration: ferry.StepPending,
		builder.StepTag:         ferry.StepPending,
	})
	if log := logLines(t, s, b.ID); !hasLine(log, builder.StepBuild, "building-marker") {
		t.Errorf("the build step's log does not hold the command's output; log:\n%s", dumpLog(log))
	}
	wantNoImage(t, s, s.ImageRepository(), commit)
}

// TestUnreachableRepository: a repository that cannot be fetched is retried
// with backoff, each failure visible as a source.error event, while the
// server keeps answering; once the repository appears, its head is built.
func TestUnreachableRepository(t *testing.T) {
	t.Parallel()
	t.Run("https", func(t *testing.T) {
		t.Parallel()
		// A long poll interval lets the backoff grow: 1s, 2s, 4s.
		yaml := strings.Replace(tinyConfig("https://127.0.0.1:1/nothing.git", t.TempDir(), ""), "poll: 0", "poll: 1m", 1)
		s := start(t, yaml, Options{})
		errs := waitSourceErrors(t, s, 3, 15*time.Second)
		for i, e := range errs[:3] {
			want := fmt.Sprintf("retrying in %s", time.Second<<i)
			if !strings.Contains(e.Message, want) {
				t.Errorf("source.error %d message = %q, want the backoff %q", i+1, e.Message, want)
			}
			if !strings.Contains(e.Reason, "127.0.0.1:1") {
				t.Errorf("source.error %d reason = %q, want the git error naming the remote", i+1, e.Reason)
			}
		}
		wantServing(t, s)
	})
	t.Run("path", func(t *testing.T) {
		t.Parallel()
		repo := newRepo(t, "testdata/tiny") // moved to dir once ferry has failed to fetch it
		commit := repo.Head()
		dir := filepath.Join(t.TempDir(), "not-yet")
		yaml := strings.Replace(tinyConfig(dir, t.TempDir(), ""), "poll: 0", "poll: 1s", 1)
		s := start(t, yaml, Options{})
		errs := waitSourceErrors(t, s, 2, 15*time.Second)
		if !strings.Contains(errs[0].Reason, dir) {
			t.Errorf("source.error reason = %q, want the git error naming %s", errs[0].Reason, dir)
		}
		wantServing(t, s)

		// The repository appears: the next poll fetches it and builds its head.
		if err := os.Rename(repo.Dir, dir); err != nil {
			t.Fatal(err)
		}
		b := waitBuild(t, s, commit, time.Minute)
		if b.State != ferry.BuildSucceeded {
			t.Fatalf("build after the repository appeared: %s (%s), want succeeded", b.State, b.Reason)
		}
	})
}

// TestRegistryDown: a push to an external registry that is down is retried
// by the push step (attempts and "retrying" visible in the ledger); when
// the registry comes up, the build succeeds and the image is there.
func TestRegistryDown(t *testing.T) {
	// Not parallel: an external registry's credentials come from the docker
	// configuration, $DOCKER_CONFIG here.
	docker := t.TempDir()
	t.Setenv("DOCKER_CONFIG", docker)
	repo := newRepo(t, "testdata/tiny")
	commit := repo.Head()
	addr := testport.Addr(t)
	image := addr + "/tiny"
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), "")
	yaml = strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }", "registry: { image: "+image+" }", 1)
	s := start(t, yaml, Options{})
	if got := s.ImageRepository(); got != image {
		t.Fatalf("image repository = %q, want %q", got, image)
	}

	var push ferry.Step
	waitFor(t, 45*time.Second, "the push step's second attempt", func() bool {
		b, err := s.Ledger().BuildByCommit(context.Background(), "tiny", commit)
		if err != nil {
			return false
		}
		if b.State.Final() {
			t.Fatalf("build ended %s (%s) while the registry was down", b.State, b.Reason)
		}
		push = stepOf(b.Steps, builder.StepPush)
		return push.Attempts >= 2
	})
	if push.State != ferry.StepRunning {
		t.Errorf("push step state = %s while retrying, want running", push.State)
	}
	b, _ := s.Ledger().BuildByCommit(context.Background(), "tiny", commit)
	log := logLines(t, s, b.ID)
	if !hasLine(log, builder.StepPush, "retrying") {
		t.Errorf("the push step's log has no line saying it is retrying; log:\n%s", dumpLog(log))
	}

	reg, err := registry.New(registry.Config{Dir: t.TempDir(), Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	user, password := reg.Credentials()
	login := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, addr, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	if err := os.WriteFile(filepath.Join(docker, "config.json"), []byte(login), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })

	b = waitBuild(t, s, commit, time.Minute)
	if b.State != ferry.BuildSucceeded {
		t.Fatalf("build state after the registry came up = %s (%s), want succeeded", b.State, b.Reason)
	}
	wantImage(t, s, image, commit, b.Digest)
	if got := stepOf(b.Steps, builder.StepPush); got.State != ferry.StepSucceeded || got.Attempts < 2 || got.Error != "" {
		t.Errorf("push step = %s after %d attempts (error %q), want succeeded after ≥ 2 with the error cleared", got.State, got.Attempts, got.Error)
	}
}

// --- helpers shared by the failure, concurrency and webhook tests ---

// withTest replaces tinyConfig's test command; "" removes the test step.
func withTest(yaml, command string) string {
	repl := ""
	if command != "" {
		repl = "  test: '" + strings.ReplaceAll(command, "'", "''") + "'\n"
	}
	out := strings.Replace(yaml, "  test: go test ./...\n", repl, 1)
	if out == yaml {
		panic("withTest: tinyConfig has no test command to replace")
	}
	return out
}

// gate is a file a build's test command waits for, so that a test controls
// how long the build runs.
type gate struct{ path string }

func newGate(t testing.TB) *gate { return &gate{path: filepath.Join(t.TempDir(), "release")} }

// command prints "gate-waiting", waits for the gate, prints "gate-passed".
func (g *gate) command() string {
	return fmt.Sprintf(`echo gate-waiting; while [ ! -f %q ]; do sleep 0.05; done; echo gate-passed`, g.path)
}

func (g *gate) release(t testing.TB) {
	t.Helper()
	if err := os.WriteFile(g.path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantSteps checks every step's state; steps that must not have run also
// have no attempt and no start time.
func wantSteps(t *testing.T, b *ferry.Build, want map[string]ferry.StepState) {
	t.Helper()
	if len(b.Steps) != len(want) {
		t.Errorf("build %d has %d steps, want %d: %+v", b.ID, len(b.Steps), len(want), b.Steps)
	}
	for _, st := range b.Steps {
		w, ok := want[st.Name]
		if !ok {
			t.Errorf("unexpected step %q", st.Name)
			continue
		}
		if st.State != w {
			t.Errorf("step %s = %s (%s), want %s", st.Name, st.State, st.Error, w)
		}
		if w == ferry.StepPending && (st.Attempts != 0 || !st.StartedAt.IsZero()) {
			t.Errorf("step %s was started (attempts %d, started %s), want it never run", st.Name, st.Attempts, st.StartedAt)
		}
		if w == ferry.StepFailed && st.Error == "" {
			t.Errorf("failed step %s has no error", st.Name)
		}
	}
}

// stepOf returns the step called name, or a zero Step.
func stepOf(steps []ferry.Step, name string) ferry.Step {
	for _, st := range steps {
		if st.Name == name {
			return st
		}
	}
	return ferry.Step{}
}

func logLines(t testing.TB, s *Server, id int64) []ferry.LogLine {
	t.Helper()
	lines, err := s.Ledger().Logs(context.Background(), id, 0, ledger.MaxLogLimit)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func hasLine(lines []ferry.LogLine, step, substr string) bool {
	for _, l := range lines {
		if l.Step == step && strings.Contains(l.Text, substr) {
			return true
		}
	}
	return false
}

func dumpLog(lines []ferry.LogLine) string {
	var sb strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&sb, "  [%s] %s\n", l.Step, l.Text)
	}
	return sb.String()
}

func events(t testing.TB, s *Server, kind string) []ferry.Event {
	t.Helper()
	es, err := s.Ledger().Events(context.Background(), ledger.EventFilter{App: s.cfg.App, Kind: kind, Limit: ledger.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// wantEvent checks that an event of kind about build id exists with a
// reason containing reason.
func wantEvent(t *testing.T, s *Server, kind string, id int64, reason string) {
	t.Helper()
	for _, e := range events(t, s, kind) {
		if e.Kind == kind && e.BuildID == id && strings.Contains(e.Reason, reason) {
			return
		}
	}
	t.Errorf("no %s event for build %d with a reason containing %q; events: %+v", kind, id, reason, events(t, s, ""))
}

func builds(t testing.TB, s *Server) []*ferry.Build {
	t.Helper()
	bs, err := s.Ledger().Builds(context.Background(), ledger.BuildFilter{App: s.cfg.App})
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// wantImage checks that both tags of commit name digest.
func wantImage(t *testing.T, s *Server, repository, commit, digest string) {
	t.Helper()
	for _, tag := range []string{ferry.CommitTag(commit), ferry.ShortCommitTag(commit)} {
		ref, err := name.ParseReference(repository+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref, registryAuth(s))
		if err != nil {
			t.Fatalf("HEAD %s: %v", ref, err)
		}
		if desc.Digest.String() != digest {
			t.Errorf("%s digest = %s, want the build's %s", ref, desc.Digest, digest)
		}
	}
}

// registryAuth is how tests read s's registry: with the embedded
// registry's credentials, or the docker configuration's for another one.
func registryAuth(s *Server) remote.Option {
	if s.registry == nil {
		return remote.WithAuthFromKeychain(authn.DefaultKeychain)
	}
	user, password := s.registry.Credentials()
	return remote.WithAuth(&authn.Basic{Username: user, Password: password})
}

// wantNoImage checks that the registry has neither tag of commit.
func wantNoImage(t *testing.T, s *Server, repository, commit string) {
	t.Helper()
	for _, tag := range []string{ferry.CommitTag(commit), ferry.ShortCommitTag(commit)} {
		ref, err := name.ParseReference(repository+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref, registryAuth(s))
		terr, ok := errors.AsType[*transport.Error](err)
		if !ok || terr.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD %s = %v, %v; want 404: nothing may be pushed", ref, desc, err)
		}
	}
}

var attemptRE = regexp.MustCompile(`attempt (\d+)\)`)

// waitSourceErrors waits for n source.error events and returns them oldest
// first, checking that their attempt numbers count 1, 2, 3, …
func waitSourceErrors(t *testing.T, s *Server, n int, timeout time.Duration) []ferry.Event {
	t.Helper()
	var es []ferry.Event
	waitFor(t, timeout, fmt.Sprintf("%d source.error events", n), func() bool {
		es = events(t, s, "source.error")
		return len(es) >= n
	})
	for i := range len(es) / 2 { // oldest first
		es[i], es[len(es)-1-i] = es[len(es)-1-i], es[i]
	}
	for i, e := range es {
		m := attemptRE.FindStringSubmatch(e.Message)
		if m == nil {
			t.Fatalf("source.error message %q names no attempt", e.Message)
		}
		if got, _ := strconv.Atoi(m[1]); got != i+1 {
			t.Errorf("source.error %d is attempt %d, want %d (message %q)", i+1, got, i+1, e.Message)
		}
		if e.Reason == "" {
			t.Errorf("source.error %d has no reason", i+1)
		}
	}
	return es
}

// wantServing checks that the API still answers, with no builds.
func wantServing(t *testing.T, s *Server) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/builds", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, s, ferry.RoleViewer))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the server stopped answering: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	compact := strings.Join(strings.Fields(string(body)), "")
	if resp.StatusCode != http.StatusOK || compact != `{"builds":[]}` {
		t.Errorf("GET /api/v1/builds = %d %s, want 200 {\"builds\": []}", resp.StatusCode, body)
	}
}

// TestCommandsDoNotSeeFerrysEnvironment: the commands a build runs are a
// commit's code, so they get the build's facts and the toolchain's part
// of ferry's environment, never ferry's own variables (its secrets).
func TestCommandsDoNotSeeFerrysEnvironment(t *testing.T) {
	t.Setenv("FERRY_SECRET_MARKER", "s3cret-marker") // as ferry's webhook secret or ledger password would be
	repo := newRepo(t, "testdata/tiny")
	commit := repo.Head()
	yaml := fmt.Sprintf(`app: tiny
dataDir: %s
server: { listen: 127.0.0.1:0 }
registry: { listen: 127.0.0.1:0 }
source: { repo: %s, poll: 0 }
build:
  test: 'echo "env-marker commit=$FERRY_COMMIT secret=${FERRY_SECRET_MARKER:-none} path=${PATH:+set}"'
  command: "exit 3"
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:0 } }
`, t.TempDir(), repo.Dir)
	s := start(t, yaml, Options{})
	b := waitBuild(t, s, commit, time.Minute)
	log := logLines(t, s, b.ID)
	if !hasLine(log, builder.StepTest, "env-marker commit="+commit+" secret=none path=set") {
		t.Errorf("the test command's environment, want the commit, PATH and no FERRY_SECRET_MARKER; log:\n%s", dumpLog(log))
	}
}
