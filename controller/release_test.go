package controller

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/postgres"
	"github.com/ferryhq/ferry/ledger/sqlite"
	"github.com/ferryhq/ferry/source"
)

// relFixture is dev and prod with fake targets, a real SQLite ledger and a
// real git origin that the controller fetches from and pushes to.
type relFixture struct {
	t         *testing.T
	ledger    ledger.Store
	dev, prod *fakeTarget
	tags      *fakeTags
	verify    *fakeVerifier
	ctrl      *Controller
	origin    string // bare repository
	repo      *source.Repo
	work      string // a clone the test commits in
	clk       *testClock
	cancel    context.CancelFunc
	done      chan struct{}
	n         int
	soak      time.Duration
	// approval is prod's approval rule, nil for none.
	approval *ferry.Approval
	// windows and freezes are prod's; after is the controller's timer
	// (nil: time.After).
	windows []ferry.Window
	freezes []ferry.Freeze
	after   func(time.Duration) <-chan time.Time
	// autoProd sets auto: true and wait: 30m on prod.
	autoProd bool
	// driftTicks are the periodic drift check's ticks (driftCheck).
	driftTicks chan time.Time
	// canary is prod's canary strategy, prodCanary its runtime (a
	// splitter with figures) and clock the controller's clock, when set
	// (canary_test.go).
	canary     *ferry.Canary
	prodCanary *canaryTarget
	// prodURL and prodVerify are prod's URL and verify checks.
	prodURL    string
	prodVerify []ferry.Check
	// canarySaves counts the controller's writes of canary records.
	canarySaves atomic.Int64
	clock       *fakeClock
	// postgres puts the ledger on PostgreSQL instead of SQLite.
	postgres bool
}

func newRelFixture(t *testing.T, soak time.Duration) *relFixture {
	t.Helper()
	return newPolicyFixture(t, soak, nil)
}

// newPolicyFixture is newRelFixture with prod's approval rule.
func newPolicyFixture(t *testing.T, soak time.Duration, approval *ferry.Approval) *relFixture {
	t.Helper()
	return newFixtureWith(t, func(f *relFixture) { f.soak, f.approval = soak, approval })
}

// newFixtureWith is newRelFixture with what set changes of the fixture
// before the controller starts.
func newFixtureWith(t *testing.T, set func(f *relFixture)) *relFixture {
	t.Helper()
	f := &relFixture{t: t, dev: newFakeTarget(), prod: newFakeTarget(), tags: &fakeTags{tags: map[string]string{}}, verify: newFakeVerifier(),
		clk: &testClock{t: time.Date(2026, 11, 26, 23, 50, 0, 0, time.UTC)}, driftTicks: make(chan time.Time)}
	set(f)
	var l ledger.Store
	var err error
	if f.postgres {
		l, err = postgres.Open(context.Background(), pgtest.NewDatabase(t))
	} else {
		l, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f.ledger = l
	f.origin = filepath.Join(t.TempDir(), "app.git")
	f.git("", "init", "-q", "--bare", f.origin)
	f.work = filepath.Join(t.TempDir(), "work")
	f.git("", "clone", "-q", f.origin, f.work)
	f.git(f.work, "checkout", "-q", "-b", "master")
	f.repo = source.Open(f.origin, filepath.Join(t.TempDir(), "cache"), nil)
	f.start()
	t.Cleanup(func() { f.cancel(); <-f.done })
	return f
}

// start starts a controller on the fixture's ledger, repository and
// targets, as ferry does at every start.
func (f *relFixture) start() {
	f.t.Helper()
	var prod ferry.Runtime = f.prod
	if f.prodCanary != nil {
		prod = f.prodCanary
	}
	envs := []Env{
		{Environment: ferry.Environment{Name: "dev", Branch: "master", Replicas: 2, Tags: []string{"latest"}}, Runtime: f.dev},
		{Environment: ferry.Environment{Name: "prod", Branch: "release", From: "dev", Soak: f.soak, Replicas: 2, Tags: []string{"live"}, Approval: f.approval,
			URL: f.prodURL, Verify: f.prodVerify,
			Windows: f.windows, Freezes: f.freezes, Auto: f.autoProd, Wait: autoWait(f.autoProd), Canary: f.canary}, Runtime: prod},
	}
	now, after := func() time.Time { return f.clk.Now() }, f.after
	if f.clock != nil {
		now, after = f.clock.Now, f.clock.After
	}
	ctrl, err := New(Config{App: "app", Image: "registry.test/app", Envs: envs,
		Ledger: f.ledger, Locks: f.ledger, Canaries: countedRuns{f.ledger, &f.canarySaves}, Registry: f.tags, Git: f.repo, Verifier: f.verify, Now: now, After: after, DriftTicks: f.driftTicks})
	if err != nil {
		f.t.Fatal(err)
	}
	f.ctrl = ctrl
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	if err := f.ctrl.Start(ctx); err != nil {
		f.t.Fatal(err)
	}
	done := f.done
	go func() { defer close(done); ctrl.Wait() }()
}

// restart stops the controller and starts a new one, then hands it the
// release branch's head as the poller does after its first fetch.
func (f *relFixture) restart() {
	f.t.Helper()
	f.cancel()
	<-f.done
	f.start()
	if head := f.originRef("refs/heads/release"); head != "" {
		f.releaseHead(head)
	}
}

func autoWait(auto bool) time.Duration {
	if auto {
		return 30 * time.Minute
	}
	return 0
}

func (f *relFixture) git(dir string, args ...string) string {
	f.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit makes a commit on the current branch of the work clone, pushes it,
// fetches it into ferry's cache and records a succeeded build of it.
func (f *relFixture) commit(branch, subject string) *ferry.Build {
	f.t.Helper()
	f.n++
	f.git(f.work, "commit", "-q", "--allow-empty", "-m", subject)
	sha := f.git(f.work, "rev-parse", "HEAD")
	f.git(f.work, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	if err := f.repo.Fetch(context.Background()); err != nil { // as the poller does before a build
		f.t.Fatal(err)
	}
	b := &ferry.Build{App: "app", Commit: sha, Branch: branch, State: ferry.BuildSucceeded, Author: "Ada",
		Digest: fmt.Sprintf("sha256:%064x", f.n), CreatedAt: f.clk.Now()}
	if err := f.ledger.CreateBuild(context.Background(), b); err != nil {
		f.t.Fatal(err)
	}
	return b
}

// inDev rolls b out to dev and waits for the outcome.
func (f *relFixture) inDev(b *ferry.Build) *ferry.Deployment {
	f.t.Helper()
	ds, err := f.ctrl.BuildSucceeded(context.Background(), b)
	if err != nil || len(ds) != 1 {
		f.t.Fatalf("BuildSucceeded = %v, %v", ds, err)
	}
	return f.wait(ds[0].ID)
}

func (f *relFixture) wait(id int64) *ferry.Deployment {
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

func (f *relFixture) originRef(ref string) string {
	out := f.git("", "--git-dir="+f.origin, "for-each-ref", "--format=%(objectname)", ref)
	return out
}

func (f *relFixture) promote(ref string) (*ferry.Deployment, error) {
	d, err := f.ctrl.Promote(context.Background(), "prod", ref, "ada", "test")
	if err != nil {
		return nil, err
	}
	return f.wait(d.ID), nil
}

func TestPromoteReleasesTheDevDigest(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "feat: a")
	f.inDev(a)
	d, err := f.promote("")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != ferry.DeploymentSucceeded || d.Digest != a.Digest || d.Release != "RC20261126_2350" || d.Kind != ferry.DeployPromote {
		t.Fatalf("promotion = %+v, want succeeded promote of %s as RC20261126_2350", d, a.Digest)
	}
	if got := f.prod.runs().Digest; got != a.Digest {
		t.Errorf("prod runs %s, want %s", got, a.Digest)
	}
	if got := f.originRef("refs/heads/release"); got != a.Commit {
		t.Errorf("release = %q, want %s", got, a.Commit)
	}
	// Registry: the RC tag and live on the same digest (no rebuild).
	if f.tags.get("RC20261126_2350") != a.Digest {
		t.Errorf("registry RC tag = %q, want %s", f.tags.get("RC20261126_2350"), a.Digest)
	}
	waitUntil(t, func() bool { return f.tags.get("live") == a.Digest }, "live to follow prod")
	waitUntil(t, func() bool {
		return f.git("", "--git-dir="+f.origin, "tag", "-l", "RC20261126_2350") == "RC20261126_2350"
	}, "the annotated git tag")
	if typ := f.git("", "--git-dir="+f.origin, "cat-file", "-t", "RC20261126_2350"); typ != "tag" {
		t.Errorf("git tag RC20261126_2350 is a %s, want an annotated tag", typ)
	}
	if msg := f.git("", "--git-dir="+f.origin, "tag", "-l", "-n20", "RC20261126_2350"); !strings.Contains(msg, "feat: a") {
		t.Errorf("release notes %q do not list the commit", msg)
	}

	// A second release in the same minute gets _2.
	b := f.commit("master", "feat: b")
	f.inDev(b)
	d2, err := f.promote("")
	if err != nil {
		t.Fatal(err)
	}
	if d2.Release != "RC20261126_2350_2" {
		t.Errorf("second release tag = %s, want RC20261126_2350_2", d2.Release)
	}
}

func TestPromotionMistakesAreRefused(t *testing.T) {
	f := newRelFixture(t, 0)
	good := f.commit("master", "good")
	f.inDev(good)
	if _, err := f.promote(""); err != nil {
		t.Fatal(err)
	}
	released := f.prod.runs().Digest

	neverInDev := f.commit("master", "never deployed to dev")
	failedInDev := f.commit("master", "breaks dev")
	f.dev.mu.Lock()
	f.dev.fail[failedInDev.Digest] = fmt.Errorf("replica dev-3 crash-looping")
	f.dev.mu.Unlock()
	f.inDev(failedInDev)
	f.git(f.work, "checkout", "-q", "-b", "feature")
	offMaster := f.commit("feature", "on a feature branch")
	f.git(f.work, "checkout", "-q", "master")
	// Pretend it ran in dev (dev only deploys master, so write it directly).
	d := &ferry.Deployment{App: "app", Env: "dev", Kind: ferry.DeployDeploy, State: ferry.DeploymentSucceeded,
		Commit: offMaster.Commit, Digest: offMaster.Digest, Replicas: 2, Actor: "test", CreatedAt: f.clk.Now(), FinishedAt: f.clk.Now()}
	if err := f.ledger.CreateDeployment(context.Background(), d); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, env, ref string
		setup          func()
		wantCode       string
		wantMsg        string
	}{
		{"never ran in dev", "prod", neverInDev.Commit, nil, ferry.ECONFLICT, "never ran in dev"},
		{"failed in dev", "prod", failedInDev.Commit[:12], nil, ferry.ECONFLICT, "failed in dev"},
		{"not on master", "prod", offMaster.Commit, nil, ferry.ECONFLICT, "not on master's history"},
		{"misspelled environment", "prdo", "", nil, ferry.ENOTFOUND, `unknown environment "prdo"`},
		{"dev takes no promotions", "dev", "", nil, ferry.EINVALID, "takes no promotions"},
		{"unknown release", "prod", "RC19990101_0000", nil, ferry.ENOTFOUND, "no release RC19990101_0000"},
		{"locked", "prod", good.Commit, func() {
			if _, err := f.ctrl.Lock(context.Background(), "prod", "ada", "freeze for the audit"); err != nil {
				t.Fatal(err)
			}
		}, ferry.ECONFLICT, "prod is locked by ada"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			_, err := f.ctrl.Promote(context.Background(), tt.env, tt.ref, "ada", "")
			if ferry.ErrorCode(err) != tt.wantCode || !strings.Contains(ferry.ErrorMessage(err), tt.wantMsg) {
				t.Errorf("Promote(%s, %q) = %v, want %s containing %q", tt.env, tt.ref, err, tt.wantCode, tt.wantMsg)
			}
			if got := f.prod.runs().Digest; got != released {
				t.Errorf("prod runs %s after a refused promotion, want %s unchanged", got, released)
			}
		})
	}
	events, err := f.ledger.Events(context.Background(), ledger.EventFilter{App: "app", Kind: "promote.refused"})
	if err != nil || len(events) < 5 {
		t.Errorf("promote.refused events = %d (%v), want one per refusal with its reason", len(events), err)
	}
}

// TestPromoteDuringRolloutWaitsItsTurn: a promotion asked for during a
// rollout waits for it, then is decided on its result: prod already runs
// what dev runs, so there is nothing to promote.
func TestPromoteDuringRolloutWaitsItsTurn(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	f.prod.gate = make(chan struct{})
	first, err := f.ctrl.Promote(context.Background(), "prod", "", "ada", "")
	if err != nil {
		t.Fatal(err)
	}
	<-f.prod.entered
	second := make(chan error, 1)
	go func() { _, err := f.ctrl.Promote(context.Background(), "prod", "", "bob", ""); second <- err }()
	select {
	case err := <-second:
		t.Fatalf("second promotion during the rollout = %v, want it to wait its turn", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(f.prod.gate)
	if d := f.wait(first.ID); d.State != ferry.DeploymentSucceeded {
		t.Errorf("first promotion = %s", d.State)
	}
	if err := <-second; ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "already runs") {
		t.Errorf("second promotion after the first = %v, want refused: prod already runs it", err)
	}
}

func TestSoak(t *testing.T) {
	f := newRelFixture(t, 10*time.Minute)
	a := f.commit("master", "a")
	f.inDev(a)
	_, err := f.ctrl.Promote(context.Background(), "prod", "", "ada", "")
	if ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "needs 10m0s of soak") {
		t.Fatalf("Promote before the soak = %v, want refused", err)
	}
	f.clk.Advance(11 * time.Minute)
	if _, err := f.promote(""); err != nil {
		t.Fatalf("Promote after the soak = %v", err)
	}
}

func TestRollbackAndFailedRelease(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	ra, _ := f.promote("")
	f.clk.Advance(time.Minute)
	b := f.commit("master", "b")
	f.inDev(b)
	rb, _ := f.promote("")
	waitUntil(t, func() bool { return f.tags.get("live") == b.Digest }, "live on b")

	// A release whose prod rollout fails is reverted; live stays put.
	f.clk.Advance(time.Minute)
	c := f.commit("master", "c")
	f.inDev(c)
	f.prod.mu.Lock()
	f.prod.fail[c.Digest] = fmt.Errorf("replica prod-9 never ready")
	f.prod.mu.Unlock()
	rc, err := f.promote("")
	if err != nil {
		t.Fatal(err)
	}
	if rc.State != ferry.DeploymentRolledBack || f.prod.runs().Digest != b.Digest || f.tags.get("live") != b.Digest {
		t.Fatalf("failed release: %s, prod runs %s, live %s; want rolled-back, b, b", rc.State, f.prod.runs().Digest, f.tags.get("live"))
	}

	// Rollback goes to the previous release and resets release with a lease.
	d, err := f.ctrl.Rollback(context.Background(), "prod", "", "ada", "500s")
	if err != nil {
		t.Fatal(err)
	}
	d = f.wait(d.ID)
	if d.Kind != ferry.DeployRollback || d.State != ferry.DeploymentSucceeded || d.Release != ra.Release || f.prod.runs().Digest != a.Digest {
		t.Fatalf("rollback = %+v, prod runs %s; want a succeeded rollback to %s", d, f.prod.runs().Digest, ra.Release)
	}
	if got := f.originRef("refs/heads/release"); got != a.Commit {
		t.Errorf("release after rollback = %s, want %s", got, a.Commit)
	}
	waitUntil(t, func() bool { return f.tags.get("live") == a.Digest }, "live back on a")

	// Refusals: a release that never ran, and a quarantined one.
	if _, err := f.ctrl.Rollback(context.Background(), "prod", "RC20200101_0000", "ada", ""); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("rollback to a release that never ran = %v, want ENOTFOUND", err)
	}
	if _, err := f.ctrl.Quarantine(context.Background(), rb.Release, "ada", "corrupts carts"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctrl.Rollback(context.Background(), "prod", rb.Release, "ada", ""); ferry.ErrorCode(err) != ferry.ECONFLICT ||
		!strings.Contains(ferry.ErrorMessage(err), "quarantined") {
		t.Errorf("rollback to a quarantined release = %v, want refused", err)
	}
	if _, err := f.ctrl.Promote(context.Background(), "prod", b.Commit, "ada", ""); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("promote of a quarantined commit = %v, want refused", err)
	}
	if got := f.prod.runs().Digest; got != a.Digest {
		t.Errorf("prod runs %s after refusals, want %s", got, a.Digest)
	}
}

func TestReleasePushes(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	ra, _ := f.promote("")
	f.clk.Advance(time.Minute)
	b := f.commit("master", "b")
	f.inDev(b)

	// The seed's release: git merge <sha>; git push (a fast-forward).
	f.git(f.work, "push", "-q", "origin", b.Commit+":refs/heads/release")
	f.releaseHead(b.Commit)
	waitUntil(t, func() bool { return f.prod.runs().Digest == b.Digest }, "prod to run b after the push")
	// The runtime runs b before the promotion is recorded as succeeded
	// (a CI run under the race detector read the ledger in between).
	var cur *ferry.Deployment
	waitUntil(t, func() bool {
		cur, _ = f.ledger.Current(context.Background(), "app", "prod")
		return cur != nil && cur.Digest == b.Digest
	}, "the promotion of b to succeed")
	if cur.Kind != ferry.DeployPromote || cur.Actor != "git push" {
		t.Errorf("current = %s by %s, want a promote by git push", cur.Kind, cur.Actor)
	}

	// The seed's rollback: git branch -f release <old>; git push --force.
	f.git(f.work, "push", "-q", "--force", "origin", a.Commit+":refs/heads/release")
	f.releaseHead(a.Commit)
	waitUntil(t, func() bool { return f.prod.runs().Digest == a.Digest }, "prod back on a after the force push")
	// The runtime runs a before the rollback is recorded as succeeded.
	waitUntil(t, func() bool {
		cur, _ = f.ledger.Current(context.Background(), "app", "prod")
		return cur != nil && cur.Digest == a.Digest
	}, "the rollback to a to succeed")
	if cur.Kind != ferry.DeployRollback || cur.Release != ra.Release {
		t.Errorf("current = %s %s, want a rollback to %s", cur.Kind, cur.Release, ra.Release)
	}

	// An illegal head, written straight into the repository: not deployed,
	// recorded and shown.
	f.git(f.work, "checkout", "-q", "--orphan", "rogue")
	rogue := f.commit("rogue", "not from master")
	f.git(f.work, "push", "-q", "--force", "origin", rogue.Commit+":refs/heads/release")
	f.releaseHead(rogue.Commit)
	if got := f.prod.runs().Digest; got != a.Digest {
		t.Errorf("prod runs %s after an illegal push, want %s", got, a.Digest)
	}
	st, _ := f.ctrl.Status(context.Background())
	if !strings.Contains(st[1].Alert, "neither a fast-forward") {
		t.Errorf("prod alert = %q, want the illegal head shown", st[1].Alert)
	}
	events, _ := f.ledger.Events(context.Background(), ledger.EventFilter{App: "app", Kind: "release.illegal"})
	if len(events) != 1 {
		t.Errorf("release.illegal events = %d, want 1", len(events))
	}
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestStatusCheckFindsDrift(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	if _, err := f.promote(""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return f.tags.get("live") == a.Digest }, "live")
	waitUntil(t, func() bool { return f.originRef("refs/tags/env/prod") == a.Commit }, "env/prod")
	drifts, err := f.ctrl.Check(context.Background())
	if err != nil || len(drifts) != 0 {
		t.Fatalf("Check after a clean release = %+v, %v; want no drift", drifts, err)
	}
	// Someone moves release behind ferry's back.
	b := f.commit("master", "b")
	f.git(f.work, "push", "-q", "origin", b.Commit+":refs/heads/release")
	drifts, err = f.ctrl.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range drifts {
		if d.Env == "prod" && d.What == "git branch release" && d.Got == b.Commit && d.Want == a.Commit && d.Fix != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("Check = %+v, want the moved release branch with its fix", drifts)
	}

	// A forger's release tags: one in git for a release the ledger never
	// made, and the real release's name re-pointed in the registry.
	rel := f.ledgerRelease(a.Commit)
	f.git(f.work, "tag", "-a", "-m", "forged", "RC20990101_0003", b.Commit)
	f.git(f.work, "push", "-q", "origin", "RC20990101_0003")
	forgedDigest := "sha256:" + strings.Repeat("f", 64)
	if err := f.tags.Tag(context.Background(), forgedDigest, rel); err != nil {
		t.Fatal(err)
	}
	drifts, err = f.ctrl.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Drift{
		"git tag RC20990101_0003": {Env: "prod", Got: b.Commit, Want: "no such tag: the ledger has no release RC20990101_0003", Fix: "on the git server: git tag -d RC20990101_0003"},
		"registry tag " + rel:     {Env: "prod", Got: forgedDigest, Want: a.Digest, Fix: "delete the tag " + rel},
	}
	for _, d := range drifts {
		w, ok := want[d.What]
		if !ok {
			continue
		}
		delete(want, d.What)
		if d.Env != w.Env || d.Got != w.Got || d.Want != w.Want || !strings.HasPrefix(d.Fix, w.Fix) {
			t.Errorf("Check: %+v, want %+v", d, w)
		}
	}
	for what := range want {
		t.Errorf("Check = %+v, want the forged %s", drifts, what)
	}

	// The signature of what dev and prod run replaced after the rollout.
	f.verify.forge(a.Digest, "signed by another key")
	f.ctrl.verified = map[string]bool{} // as after a restart: nothing checked yet
	drifts, err = f.ctrl.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unsigned := map[string]bool{}
	for _, d := range drifts {
		if d.What == "digest it runs is not signed by ferry" && strings.Contains(d.Got, "signed by another key") {
			unsigned[d.Env] = true
		}
	}
	if !unsigned["dev"] || !unsigned["prod"] {
		t.Errorf("Check = %+v, want dev's and prod's digest reported unsigned", drifts)
	}
}

// ledgerRelease is the release name of prod's newest deployment of commit.
func (f *relFixture) ledgerRelease(commit string) string {
	f.t.Helper()
	ds, err := f.ledger.Deployments(context.Background(), ledger.DeploymentFilter{App: "app", Env: "prod", Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, d := range ds {
		if d.Commit == commit && d.Release != "" {
			return d.Release
		}
	}
	f.t.Fatalf("prod has no release of %.12s", commit)
	return ""
}

func TestTwoPromotionsAtOnce(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	f.prod.gate = make(chan struct{})
	errs := make(chan error, 2)
	for _, who := range []string{"ada", "bob"} {
		go func() {
			_, err := f.ctrl.Promote(context.Background(), "prod", "", who, "at once")
			errs <- err
		}()
	}
	<-f.prod.entered
	close(f.prod.gate)
	var won, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			won++
		case ferry.ErrorCode(err) == ferry.ECONFLICT && strings.Contains(ferry.ErrorMessage(err), "already runs"):
			refused++
		default:
			t.Errorf("Promote = %v", err)
		}
	}
	if won != 1 || refused != 1 {
		t.Fatalf("two promotions at once: %d accepted, %d refused; want exactly one of each", won, refused)
	}
	waitUntil(t, func() bool { return f.prod.runs().Digest == a.Digest }, "prod to run a")
	f.prod.mu.Lock()
	applied := len(f.prod.applied)
	f.prod.mu.Unlock()
	if applied != 1 {
		t.Errorf("prod applied %d rollouts, want 1", applied)
	}
}

// releaseHead does what the poller does on a new head of release: fetch,
// then hand the head to the controller.
func (f *relFixture) releaseHead(sha string) {
	f.t.Helper()
	if err := f.repo.Fetch(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.ctrl.ReleaseHead(context.Background(), "release", sha)
}

// TestReleasePushOffMainline: a fast-forward of what prod runs that is
// not on master's history breaks the same rule the hook applies; it is
// an illegal head, never a promotion.
func TestReleasePushOffMainline(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	if _, err := f.promote(""); err != nil {
		t.Fatal(err)
	}
	f.git(f.work, "checkout", "-q", "-b", "feature")
	off := f.commit("feature", "after a, off master")
	f.git(f.work, "push", "-q", "origin", off.Commit+":refs/heads/release")
	f.releaseHead(off.Commit)
	if got := f.prod.runs().Digest; got != a.Digest {
		t.Errorf("prod runs %s after a push off master, want %s", got, a.Digest)
	}
	st, _ := f.ctrl.Status(context.Background())
	if want := "is not on master's history (only commits of master are released)"; !strings.Contains(st[1].Alert, want) {
		t.Errorf("prod alert = %q, want it to contain %q", st[1].Alert, want)
	}
	events, _ := f.ledger.Events(context.Background(), ledger.EventFilter{App: "app", Kind: "release.illegal"})
	if len(events) != 1 || events[0].Commit != off.Commit {
		t.Errorf("release.illegal events = %+v, want one for %.12s", events, off.Commit)
	}
}

// TestKnownReleases: the releases prod ran, newest first, once each; an
// environment without releases is refused by name.
func TestKnownReleases(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	ra, _ := f.promote("")
	f.clk.Advance(time.Minute)
	b := f.commit("master", "b")
	f.inDev(b)
	rb, _ := f.promote("")
	d, err := f.ctrl.Rollback(context.Background(), "prod", "", "ada", "")
	if err != nil {
		t.Fatal(err)
	}
	f.wait(d.ID)
	got, err := f.ctrl.KnownReleases(context.Background(), "prod")
	if err != nil || len(got) != 2 || got[0].Release != ra.Release || got[0].Commit != a.Commit || got[0].DeploymentID != d.ID ||
		got[1].Release != rb.Release || got[1].Commit != b.Commit {
		t.Errorf("KnownReleases(prod) = %+v, %v; want %s (by the rollback %d), then %s", got, err, ra.Release, d.ID, rb.Release)
	}
	if _, err := f.ctrl.KnownReleases(context.Background(), "dev"); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("KnownReleases(dev) = %v, want EINVALID: dev has no releases", err)
	}
	if _, err := f.ctrl.KnownReleases(context.Background(), "prdo"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("KnownReleases(prdo) = %v, want ENOTFOUND", err)
	}
}

// testClock is the fixture's clock: a test moves it while the
// controller's goroutines read it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
