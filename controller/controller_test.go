package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// fakeTarget is an in-memory runtime: it "runs" the last spec it applied
// successfully. Apply of a digest listed in fail returns an error without
// changing what runs, as the real runtimes do. Apply may be held by gate.
type fakeTarget struct {
	mu      sync.Mutex
	running ferry.Spec
	applied []string // digests, in call order
	fail    map[string]error
	// statusErr, when set, is what Status returns.
	statusErr error
	gate      chan struct{}
	entered   chan string
}

func newFakeTarget() *fakeTarget {
	return &fakeTarget{fail: map[string]error{}, entered: make(chan string, 16)}
}

func (f *fakeTarget) Apply(ctx context.Context, spec ferry.Spec, progress func(ferry.Progress)) error {
	f.mu.Lock()
	f.applied = append(f.applied, spec.Digest)
	gate, err := f.gate, f.fail[spec.Digest]
	f.mu.Unlock()
	f.entered <- spec.Digest
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	progress(ferry.Progress{Message: "all replicas on " + spec.Digest, Ready: spec.Replicas, Updated: spec.Replicas, Desired: spec.Replicas})
	f.mu.Lock()
	f.running = spec
	f.mu.Unlock()
	return nil
}

// Scale is held by gate as Apply is: a scale is a rollout too.
func (f *fakeTarget) Scale(ctx context.Context, n int) error {
	f.mu.Lock()
	gate, digest := f.gate, f.running.Digest
	f.mu.Unlock()
	f.entered <- digest
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running.Replicas = n
	return nil
}

func (f *fakeTarget) Status(context.Context) (ferry.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusErr != nil {
		return ferry.Status{}, f.statusErr
	}
	return ferry.Status{Digest: f.running.Digest, Ready: f.running.Replicas, Desired: f.running.Replicas}, nil
}

func (f *fakeTarget) Logs(context.Context, io.Writer, int, bool) error { return nil }
func (f *fakeTarget) Close(context.Context) error                      { return nil }

func (f *fakeTarget) runs() ferry.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// fakeTags records registry tags and git refs.
type fakeTags struct {
	mu   sync.Mutex
	tags map[string]string
}

func (t *fakeTags) Tag(_ context.Context, digest, tag string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tags[tag] = digest
	return nil
}

func (t *fakeTags) SetRef(_ context.Context, ref, sha, _ string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tags[ref] = sha
	return nil
}

func (t *fakeTags) Resolve(_ context.Context, tag string) (string, error) {
	if d := t.get(tag); d != "" {
		return d, nil
	}
	return "", ferry.Errorf(ferry.ENOTFOUND, "no tag %s", tag)
}

// The rest of Git, for an environment that takes no releases: nothing is
// ever asked of a branch, and refs are what SetRef wrote.
func (t *fakeTags) Fetch(context.Context) error { return nil }
func (t *fakeTags) Head(_ context.Context, branch string) (string, error) {
	return "", ferry.Errorf(ferry.ENOTFOUND, "no branch %s", branch)
}
func (t *fakeTags) IsAncestor(context.Context, string, string) (bool, error)    { return false, nil }
func (t *fakeTags) Log(context.Context, string, string) ([]ferry.Commit, error) { return nil, nil }
func (t *fakeTags) CreateTag(_ context.Context, name, commit, _ string) error {
	return t.SetRef(context.Background(), "refs/tags/"+name, commit, "")
}
func (t *fakeTags) ResolveTag(_ context.Context, tag string) (string, error) {
	if sha := t.get("refs/tags/" + tag); sha != "" {
		return sha, nil
	}
	return "", ferry.Errorf(ferry.ENOTFOUND, "no tag %s", tag)
}

// ListTags lists the registry tags (the keys SetRef did not write).
func (t *fakeTags) ListTags(context.Context) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k := range t.tags {
		if !strings.HasPrefix(k, "refs/") {
			out = append(out, k)
		}
	}
	return out, nil
}

// Tags lists the git tags under refs/tags/ starting with prefix.
func (t *fakeTags) Tags(_ context.Context, prefix string) (map[string]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{}
	for k, v := range t.tags {
		if name, ok := strings.CutPrefix(k, "refs/tags/"); ok && strings.HasPrefix(name, prefix) {
			out[name] = v
		}
	}
	return out, nil
}

func (t *fakeTags) get(k string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tags[k]
}

// fakeVerifier stands for the registry's signatures: a digest verifies
// when the ledger's build of its commit made it, unless the test forged it
// (then its refusal is the reason given). Package cosign holds the real
// checks; server tests run them against the real registry.
type fakeVerifier struct {
	mu     sync.Mutex
	forged map[string]string
	asked  []string
}

func newFakeVerifier() *fakeVerifier { return &fakeVerifier{forged: map[string]string{}} }

func (v *fakeVerifier) Verify(_ context.Context, digest string, b *ferry.Build) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asked = append(v.asked, digest)
	switch reason, forged := v.forged[digest]; {
	case forged:
		return ferry.Errorf(ferry.EFORBIDDEN, "%s", reason)
	case b == nil:
		return ferry.Errorf(ferry.EFORBIDDEN, "no build in the ledger made %s", digest)
	case b.Digest != digest:
		return ferry.Errorf(ferry.EFORBIDDEN, "the ledger's build %d made %s, not %s", b.ID, b.Digest, digest)
	}
	return nil
}

func (v *fakeVerifier) forge(digest, reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.forged[digest] = reason
}

type fixture struct {
	t      *testing.T
	ledger ledger.Store
	target *fakeTarget
	verify *fakeVerifier
	tags   *fakeTags
	ctrl   *Controller
	cancel context.CancelFunc
	done   chan struct{}
	n      atomic.Int64
}

func newFixture(t *testing.T, verify []ferry.Check, url string) *fixture {
	t.Helper()
	l, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fixture{t: t, ledger: l, target: newFakeTarget(), verify: newFakeVerifier(), tags: &fakeTags{tags: map[string]string{}}}
	f.start(verify, url)
	return f
}

func (f *fixture) start(verify []ferry.Check, url string) {
	env := Env{Environment: ferry.Environment{Name: "dev", Branch: "master", Replicas: 2, Tags: []string{"latest"}, Verify: verify, URL: url}, Runtime: f.target}
	ctrl, err := New(Config{App: "app", Image: "registry.test/app", Envs: []Env{env},
		Ledger: f.ledger, Locks: f.ledger, Registry: f.tags, Git: f.tags, Verifier: f.verify, Now: time.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	f.ctrl = ctrl
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	if err := f.ctrl.Start(ctx); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		defer close(f.done)
		f.ctrl.Wait()
	}()
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	f.cancel()
	<-f.done
}

// build records a succeeded build with a unique commit and digest.
func (f *fixture) build() *ferry.Build {
	f.t.Helper()
	n := f.n.Add(1)
	b := &ferry.Build{
		App: "app", Commit: fmt.Sprintf("%040x", n), Branch: "master", State: ferry.BuildSucceeded,
		Digest: fmt.Sprintf("sha256:%064x", n), CreatedAt: time.Now(),
	}
	if err := f.ledger.CreateBuild(context.Background(), b); err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) deploy(b *ferry.Build) *ferry.Deployment {
	f.t.Helper()
	ds, err := f.ctrl.BuildSucceeded(context.Background(), b)
	if err != nil || len(ds) != 1 {
		f.t.Fatalf("BuildSucceeded = %v, %v; want one deployment", ds, err)
	}
	return ds[0]
}

// wait waits until deployment id is in a final state and returns it.
func (f *fixture) wait(id int64) *ferry.Deployment {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d, err := f.ledger.Deployment(context.Background(), id)
		if err != nil {
			f.t.Fatal(err)
		}
		if d.State.Final() {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.t.Fatalf("deployment %d did not finish", id)
	return nil
}

// waitTag waits up to a second for tag to be want and returns its value.
func (f *fixture) waitTag(tag, want string) string {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && f.tags.get(tag) != want {
		time.Sleep(5 * time.Millisecond)
	}
	return f.tags.get(tag)
}

func TestDeploySucceedsAndMovesTags(t *testing.T) {
	f := newFixture(t, nil, "")
	b := f.build()
	d := f.wait(f.deploy(b).ID)
	if d.State != ferry.DeploymentSucceeded || d.Replicas != 2 || d.StartedAt.IsZero() || d.FinishedAt.IsZero() {
		t.Fatalf("deployment = %+v, want succeeded with 2 replicas and both times", d)
	}
	if got := f.target.runs().Digest; got != b.Digest {
		t.Errorf("target runs %s, want %s", got, b.Digest)
	}
	// Tags move right after the deployment is recorded succeeded.
	if got := f.waitTag("latest", b.Digest); got != b.Digest {
		t.Errorf("tag latest = %q, want %s", got, b.Digest)
	}
	if got := f.waitTag("refs/tags/env/dev", b.Commit); got != b.Commit {
		t.Errorf("git env/dev = %q, want %s", got, b.Commit)
	}
	st, err := f.ctrl.Status(context.Background())
	if err != nil || len(st) != 1 {
		t.Fatalf("ferry.Status = %v, %v", st, err)
	}
	if st[0].State != "healthy" || st[0].Commit != b.Commit || st[0].Replicas != (Replicas{Ready: 2, Desired: 2}) {
		t.Errorf("ferry.Status = %+v, want healthy on %s with 2/2", st[0], b.Commit)
	}
}

func TestFailedRolloutRevertsToPrevious(t *testing.T) {
	f := newFixture(t, nil, "")
	good := f.build()
	f.wait(f.deploy(good).ID)
	bad := f.build()
	f.target.mu.Lock()
	f.target.fail[bad.Digest] = errors.New("replica 0 exited at start: exit status 1")
	f.target.mu.Unlock()

	d := f.wait(f.deploy(bad).ID)
	if d.State != ferry.DeploymentRolledBack || d.Error == "" {
		t.Fatalf("bad deployment = %s (%q), want rolled-back with the reason", d.State, d.Error)
	}
	if got := f.target.runs().Digest; got != good.Digest {
		t.Errorf("target runs %s, want the previous %s", got, good.Digest)
	}
	cur, err := f.ledger.Current(context.Background(), "app", "dev")
	if err != nil || cur.Kind != ferry.DeployAutoRollback || cur.Digest != good.Digest {
		t.Fatalf("current = %+v, %v; want an auto-rollback to %s", cur, err, good.Digest)
	}
	if got := f.tags.get("latest"); got != good.Digest {
		t.Errorf("latest = %s, want it left on %s", got, good.Digest)
	}
}

func TestFirstRolloutFailureHasNothingToRevert(t *testing.T) {
	f := newFixture(t, nil, "")
	bad := f.build()
	f.target.fail[bad.Digest] = errors.New("never ready")
	d := f.wait(f.deploy(bad).ID)
	if d.State != ferry.DeploymentFailed {
		t.Fatalf("state = %s, want failed", d.State)
	}
}

func TestFailedVerificationReverts(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	f := newFixture(t, []ferry.Check{{Method: "GET", Path: "/statusz", Expect: 200, Timeout: 300 * time.Millisecond}}, srv.URL)
	good := f.build()
	if d := f.wait(f.deploy(good).ID); d.State != ferry.DeploymentSucceeded {
		t.Fatalf("good deployment = %s: %s", d.State, d.Error)
	}
	healthy.Store(false)
	bad := f.build()
	d := f.wait(f.deploy(bad).ID)
	if d.State != ferry.DeploymentRolledBack {
		t.Fatalf("state = %s, want rolled-back after failed verification", d.State)
	}
	if got := f.target.runs().Digest; got != good.Digest {
		t.Errorf("target runs %s, want %s", got, good.Digest)
	}
}

func TestNewerRequestSupersedesPending(t *testing.T) {
	f := newFixture(t, nil, "")
	f.target.gate = make(chan struct{})
	first := f.deploy(f.build())
	<-f.target.entered // first is rolling, held at the gate
	second := f.deploy(f.build())
	third := f.deploy(f.build())
	close(f.target.gate)
	if d := f.wait(first.ID); d.State != ferry.DeploymentSucceeded {
		t.Errorf("first = %s, want succeeded", d.State)
	}
	if d := f.wait(second.ID); d.State != ferry.DeploymentSuperseded {
		t.Errorf("second = %s, want superseded", d.State)
	}
	if d := f.wait(third.ID); d.State != ferry.DeploymentSucceeded {
		t.Errorf("third = %s, want succeeded", d.State)
	}
	if want := []string{first.Digest, third.Digest}; !slices.Equal(f.target.applied, want) {
		t.Errorf("applied %v, want %v (one rollout at a time, the superseded one never)", f.target.applied, want)
	}
}

func TestRestartClosesInterruptedAndRestores(t *testing.T) {
	f := newFixture(t, nil, "")
	good := f.build()
	f.wait(f.deploy(good).ID)
	f.target.gate = make(chan struct{})
	<-f.target.entered // the restore at start applied good
	stuck := f.deploy(f.build())
	<-f.target.entered
	f.stop() // ferry "dies" mid-rollout

	d, err := f.ledger.Deployment(context.Background(), stuck.ID)
	if err != nil || d.State != ferry.DeploymentRolling {
		t.Fatalf("after the crash the deployment is %v (%v), want rolling", d.State, err)
	}
	f.target = newFakeTarget()
	f.start(nil, "")
	if got := <-f.target.entered; got != good.Digest {
		t.Errorf("restart applied %s first, want the last succeeded %s", got, good.Digest)
	}
	d = f.wait(stuck.ID)
	if d.State != ferry.DeploymentFailed || d.Error == "" {
		t.Errorf("interrupted deployment = %s (%q), want failed with a reason", d.State, d.Error)
	}
}

func TestScale(t *testing.T) {
	f := newFixture(t, nil, "")
	if _, err := f.ctrl.Scale(context.Background(), "dev", 3, "ada", ""); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("Scale before any deployment = %v, want ECONFLICT", err)
	}
	b := f.build()
	f.wait(f.deploy(b).ID)
	tests := []struct {
		env      string
		replicas int
		wantCode string
	}{
		{"dev", 4, ""},
		{"dve", 2, ferry.ENOTFOUND},
		{"dev", 0, ferry.EINVALID},
		{"dev", 65, ferry.EINVALID},
	}
	for _, tt := range tests {
		d, err := f.ctrl.Scale(context.Background(), tt.env, tt.replicas, "ada", "")
		if code := ferry.ErrorCode(err); code != tt.wantCode {
			t.Errorf("Scale(%s, %d) error = %v, want code %q", tt.env, tt.replicas, err, tt.wantCode)
			continue
		}
		if err == nil {
			if got := f.wait(d.ID); got.State != ferry.DeploymentSucceeded || got.Kind != ferry.DeployScale {
				t.Errorf("scale deployment = %s %s", got.Kind, got.State)
			}
		}
	}
	if got := f.target.runs().Replicas; got != 4 {
		t.Errorf("target replicas = %d, want 4", got)
	}
	// The next build keeps the scaled count.
	d := f.wait(f.deploy(f.build()).ID)
	if d.Replicas != 4 {
		t.Errorf("next deployment replicas = %d, want 4", d.Replicas)
	}
}

func TestNewNamesMissingDependencies(t *testing.T) {
	full := func() Config {
		tags := &fakeTags{tags: map[string]string{}}
		l, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return Config{App: "app", Image: "registry.test/app",
			Envs:   []Env{{Environment: ferry.Environment{Name: "dev", Branch: "master"}, Runtime: newFakeTarget()}},
			Ledger: l, Locks: l, Registry: tags, Git: tags, Verifier: newFakeVerifier(), Now: time.Now}
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"complete", func(*Config) {}, ""},
		{"no logger is fine", func(c *Config) { c.Logger = nil }, ""},
		{"no locks", func(c *Config) { c.Locks = nil }, "controller: missing Locks"},
		{"no git, no clock", func(c *Config) { c.Git, c.Now = nil, nil }, "controller: missing Git, Now"},
		{"no verifier", func(c *Config) { c.Verifier = nil }, "controller: missing Verifier"},
		{"no runtime", func(c *Config) { c.Envs[0].Runtime = nil }, "controller: missing Envs[dev].Runtime"},
		{"nothing", func(c *Config) { *c = Config{} }, "controller: missing App, Image, Envs, Ledger, Locks, Registry, Git, Verifier, Now"},
	} {
		cfg := full()
		tc.change(&cfg)
		_, err := New(cfg)
		if got := errText(err); got != tc.want {
			t.Errorf("New(%s) error = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
