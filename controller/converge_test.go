package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

func TestConvergenceDecide(t *testing.T) {
	built := &ferry.Build{ID: 7, State: ferry.BuildSucceeded, Digest: "sha256:b"}
	runsA := &ferry.Deployment{ID: 1, State: ferry.DeploymentSucceeded, Digest: "sha256:a"}
	runsB := &ferry.Deployment{ID: 2, State: ferry.DeploymentSucceeded, Digest: "sha256:b"}
	for _, tc := range []struct {
		name string
		f    convergence
		want lag
	}{
		{"no build of the head", convergence{cur: runsA}, lagNone},
		{"head still building", convergence{build: &ferry.Build{State: ferry.BuildRunning}, cur: runsA}, lagNone},
		{"head failed to build", convergence{build: &ferry.Build{State: ferry.BuildFailed}, cur: runsA}, lagNone},
		{"runs the head", convergence{build: built, cur: runsB, last: runsB}, lagNone},
		{"never deployed", convergence{build: built, cur: runsA}, lagDeploy},
		{"nothing runs yet", convergence{build: built}, lagDeploy},
		{"ran before (a reset back to it)", convergence{build: built, cur: runsA, last: runsB}, lagDeploy},
		{"interrupted by a stop of ferry", convergence{build: built, cur: runsA,
			last: &ferry.Deployment{ID: 3, State: ferry.DeploymentFailed, Error: interrupted}}, lagDeploy},
		{"rolled back", convergence{build: built, cur: runsA,
			last: &ferry.Deployment{ID: 3, State: ferry.DeploymentRolledBack, Error: "rollout: never ready"}}, lagHeldBack},
		{"failed with nothing to revert to", convergence{build: built,
			last: &ferry.Deployment{ID: 3, State: ferry.DeploymentFailed, Error: "rollout: never ready; nothing ran before"}}, lagHeldBack},
	} {
		if got := tc.f.decide(); got != tc.want {
			t.Errorf("decide(%s) = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// applied is what dev's runtime was asked to run, in order.
func (f *relFixture) applied() []string {
	f.dev.mu.Lock()
	defer f.dev.mu.Unlock()
	return slices.Clone(f.dev.applied)
}

// settle waits until dev's runtime has been asked for n rollouts, then a
// little longer, so that a rollout too many would be seen.
func (f *relFixture) settle(n int) []string {
	f.t.Helper()
	waitUntil(f.t, func() bool { return len(f.applied()) >= n }, fmt.Sprintf("%d rollouts in dev", n))
	time.Sleep(300 * time.Millisecond)
	return f.applied()
}

func (f *relFixture) devDrift() []Drift {
	f.t.Helper()
	drifts, err := f.ctrl.Check(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return slices.DeleteFunc(drifts, func(d Drift) bool { return d.Env != "dev" })
}

// TestFailedRolloutNotRetriedByConvergence: a head whose rollout to dev
// failed is not deployed again by convergence — not when the branch is
// seen again, not after a restart — and status --check reports dev
// lagging with a fix that works; a new commit is deployed as usual.
func TestFailedRolloutNotRetriedByConvergence(t *testing.T) {
	f := newRelFixture(t, 0)
	ctx := context.Background()
	a := f.commit("master", "a")
	f.inDev(a)
	b := f.commit("master", "b: never ready")
	f.dev.mu.Lock()
	f.dev.fail[b.Digest] = fmt.Errorf("replica dev-1 never ready")
	f.dev.mu.Unlock()
	if d := f.inDev(b); d.State != ferry.DeploymentRolledBack {
		t.Fatalf("b in dev = %s, want rolled-back", d.State)
	}
	want := []string{a.Digest, b.Digest, a.Digest} // a, b, the revert to a
	if got := f.settle(3); !slices.Equal(got, want) {
		t.Fatalf("dev applied %v, want %v", got, want)
	}
	f.ctrl.BranchHead(ctx, "master", b.Commit)
	if got := f.settle(3); !slices.Equal(got, want) {
		t.Errorf("after the branch was seen again dev applied %v, want %v: a failed rollout is not retried", got, want)
	}
	f.restart()
	want = append(want, a.Digest) // the restore at start
	if got := f.settle(4); !slices.Equal(got, want) {
		t.Errorf("after a restart dev applied %v, want %v: a failed rollout is not retried", got, want)
	}

	drifts := f.devDrift()
	if len(drifts) != 1 || drifts[0].What != "branch master" || drifts[0].Fix != "ferry build master" ||
		!strings.Contains(drifts[0].Want, ferry.ShortSHA(b.Commit)) || !strings.Contains(drifts[0].Got, "rolled-back") {
		t.Fatalf("Check = %+v, want dev lagging master's head %s, held back by its rolled-back rollout, fixed by ferry build master", drifts, ferry.ShortSHA(b.Commit))
	}

	// Plain status says so too, with the same verdict and fix.
	sts, err := f.ctrl.Status(ctx)
	if err != nil || sts[0].Name != "dev" || !strings.Contains(sts[0].Lag, ferry.ShortSHA(b.Commit)) || !strings.Contains(sts[0].Lag, "fix: ferry build master") {
		t.Fatalf("Status = %+v, %v; want dev's lag behind %s with its fix", sts, err, ferry.ShortSHA(b.Commit))
	}

	// The operator asks: the fix deploys it.
	f.dev.mu.Lock()
	delete(f.dev.fail, b.Digest)
	f.dev.mu.Unlock()
	ds, err := f.ctrl.Deploy(ctx, b, "ada")
	if err != nil || len(ds) != 1 {
		t.Fatalf("Deploy(b) = %v, %v; want one deployment", ds, err)
	}
	if d := f.wait(ds[0].ID); d.State != ferry.DeploymentSucceeded || d.Actor != "ada" {
		t.Fatalf("asked deployment = %s by %s, want succeeded by ada", d.State, d.Actor)
	}
	waitUntil(t, func() bool { return len(f.devDrift()) == 0 }, "no drift in dev after the fix") // the tags move last
	if sts, err := f.ctrl.Status(ctx); err != nil || sts[0].Lag != "" {
		t.Errorf("Status after the fix = %+v, %v; want no lag", sts, err)
	}
	if ds, err := f.ctrl.Deploy(ctx, b, "ada"); err != nil || len(ds) != 0 {
		t.Errorf("Deploy of what runs = %v, %v; want nothing queued", ds, err)
	}

	// A new commit arrives: convergence deploys it.
	c := f.commit("master", "c")
	f.ctrl.BranchHead(ctx, "master", c.Commit)
	waitUntil(t, func() bool { return f.dev.runs().Digest == c.Digest }, "dev to run c")
}

// TestConvergeOnBranchReset: master reset to an older commit that was
// built puts that build back in dev, as soon as the branch is seen.
func TestConvergeOnBranchReset(t *testing.T) {
	f := newRelFixture(t, 0)
	a := f.commit("master", "a")
	f.inDev(a)
	b := f.commit("master", "b")
	f.inDev(b)
	// b's deployment is final in the ledger before its tags have moved,
	// and the check says a rollout is in progress until they have. Only
	// then is master reset: a reset seen while the controller still
	// finished b's rollout is converged on at once (correctly), and the
	// check below would find no lag to report.
	waitUntil(t, func() bool { return len(f.devDrift()) == 0 }, "dev settled on b")
	f.git(f.work, "push", "-q", "--force", "origin", a.Commit+":refs/heads/master")
	if err := f.repo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	drifts := f.devDrift()
	if len(drifts) != 1 || drifts[0].Fix != "ferry build master" {
		t.Errorf("Check before dev converged = %+v, want dev lagging master", drifts)
	}
	f.ctrl.BranchHead(context.Background(), "master", a.Commit)
	waitUntil(t, func() bool {
		cur, err := f.ledger.Current(context.Background(), "app", "dev")
		return err == nil && cur.Digest == a.Digest
	}, "dev to run a again")
	cur, err := f.ledger.Current(context.Background(), "app", "dev")
	if err != nil || cur.Kind != ferry.DeployDeploy || cur.Actor != "ferry" || !strings.Contains(cur.Reason, "follows master") {
		t.Errorf("current = %+v, %v; want a deploy by ferry that says dev follows master", cur, err)
	}
}

// TestOlderBuildNotDeployedOverHead: a build of an older commit (asked
// for by hand) that succeeds after the head's is not rolled out to dev,
// which convergence would only move back to the head.
func TestOlderBuildNotDeployedOverHead(t *testing.T) {
	f := newRelFixture(t, 0)
	f.git(f.work, "commit", "-q", "--allow-empty", "-m", "old, never built")
	old := f.git(f.work, "rev-parse", "HEAD")
	head := f.commit("master", "head")
	f.inDev(head)
	b := &ferry.Build{App: "app", Commit: old, Branch: "master", State: ferry.BuildSucceeded,
		Digest: fmt.Sprintf("sha256:%064x", 99), CreatedAt: f.clk.Now()}
	if err := f.ledger.CreateBuild(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	ds, err := f.ctrl.BuildSucceeded(context.Background(), b)
	if err != nil || len(ds) != 0 {
		t.Errorf("BuildSucceeded(older build) = %v, %v; want nothing queued while dev runs the head", ds, err)
	}
	if got := f.settle(1); !slices.Equal(got, []string{head.Digest}) {
		t.Errorf("dev applied %v, want only the head %s", got, head.Digest)
	}
}
