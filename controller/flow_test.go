package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// released promotes n commits, one a minute, and returns their builds and
// releases, oldest first.
func (f *relFixture) released(n int) ([]*ferry.Build, []*ferry.Deployment) {
	f.t.Helper()
	var bs []*ferry.Build
	var rs []*ferry.Deployment
	for i := range n {
		b := f.commit("master", fmt.Sprintf("release %d", i+1))
		f.inDev(b)
		d, err := f.promote("")
		if err != nil || d.State != ferry.DeploymentSucceeded {
			f.t.Fatalf("promote %d = %+v, %v", i+1, d, err)
		}
		bs, rs = append(bs, b), append(rs, d)
		f.clk.Advance(time.Minute)
	}
	return bs, rs
}

func (f *relFixture) rollback(to string) (*ferry.Deployment, error) {
	d, err := f.ctrl.Rollback(context.Background(), "prod", to, "ada", "")
	if err != nil {
		return nil, err
	}
	return f.wait(d.ID), nil
}

// prodDeployments counts prod's deployments of commit.
func (f *relFixture) prodDeployments(commit string) int {
	f.t.Helper()
	ds, err := f.ledger.Deployments(context.Background(), ledger.DeploymentFilter{App: "app", Env: "prod", Commit: commit, Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(ds)
}

// TestRollbackWalksBack: three releases, three rollbacks. Each rollback
// goes one further back along the release history; the third has nowhere
// older to go and is refused, never going forward again. A release a
// rollback left is promoted again only when named.
func TestRollbackWalksBack(t *testing.T) {
	f := newRelFixture(t, 0)
	bs, rs := f.released(3)
	for i, want := range []int{1, 0} {
		d, err := f.rollback("")
		if err != nil || d.State != ferry.DeploymentSucceeded || d.Release != rs[want].Release || f.prod.runs().Digest != bs[want].Digest {
			t.Fatalf("rollback %d = %+v, %v; prod runs %s; want %s", i+1, d, err, f.prod.runs().Digest, rs[want].Release)
		}
		if got := f.originRef("refs/heads/release"); got != bs[want].Commit {
			t.Errorf("release after rollback %d = %.12s, want %.12s", i+1, got, bs[want].Commit)
		}
	}
	if _, err := f.rollback(""); ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "no earlier release than "+rs[0].Release) {
		t.Errorf("third rollback = %v, want refused: nothing older than %s", err, rs[0].Release)
	}
	if got := f.prod.runs().Digest; got != bs[0].Digest {
		t.Errorf("prod runs %s after three rollbacks, want the first release %s", got, bs[0].Digest)
	}
	// dev still runs the third release: promoting "what dev runs" would
	// silently return to what was rolled back from.
	if _, err := f.ctrl.Promote(context.Background(), "prod", "", "ada", ""); ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "which a rollback left") {
		t.Errorf("implicit promote of a release a rollback left = %v, want refused", err)
	}
	d, err := f.promote(bs[2].Commit)
	if err != nil || d.State != ferry.DeploymentSucceeded || d.Release == rs[2].Release {
		t.Fatalf("explicit promote of %.7s = %+v, %v; want a new release of it", bs[2].Commit, d, err)
	}
	// --to still names any release.
	if d, err := f.rollback(rs[1].Release); err != nil || d.Commit != bs[1].Commit {
		t.Errorf("rollback --to %s = %+v, %v", rs[1].Release, d, err)
	}
}

// TestFailedReleaseNotRetried: a release whose rollout fails leaves the
// release branch on what prod runs, and two restarts (each followed by the
// poller's hand-over of the branch head) never deploy it again.
func TestFailedReleaseNotRetried(t *testing.T) {
	f := newRelFixture(t, 0)
	bs, _ := f.released(1)
	bad := f.commit("master", "breaks prod")
	f.inDev(bad)
	f.prod.mu.Lock()
	f.prod.fail[bad.Digest] = fmt.Errorf("replica prod-1 never ready")
	f.prod.mu.Unlock()
	d, err := f.promote("")
	if err != nil || d.State != ferry.DeploymentRolledBack {
		t.Fatalf("failing promote = %+v, %v; want rolled back", d, err)
	}
	waitUntil(t, func() bool { return f.originRef("refs/heads/release") == bs[0].Commit }, "release reset to what prod runs")
	for i := range 2 {
		f.restart()
		time.Sleep(50 * time.Millisecond)
		waitUntil(t, func() bool { return f.ctrl.rolloutIdle("prod") }, "prod idle")
		if n := f.prodDeployments(bad.Commit); n != 1 {
			t.Fatalf("after restart %d: %d deployments of the failed release, want 1 (never retried)", i+1, n)
		}
	}
	if got := f.prod.runs().Digest; got != bs[0].Digest {
		t.Errorf("prod runs %s, want %s", got, bs[0].Digest)
	}
	if es, _ := f.ledger.Events(context.Background(), ledger.EventFilter{App: "app", Kind: "release.reset"}); len(es) == 0 {
		t.Errorf("no release.reset event: the repair is not recorded")
	}
}

// TestReconcileResetsFailedHead: a crash that left the release branch on a
// failed release (the branch moved, the reset never ran) is repaired at the
// next start, and live and env/prod are re-pointed at what prod runs.
func TestReconcileResetsFailedHead(t *testing.T) {
	f := newRelFixture(t, 0)
	bs, _ := f.released(1)
	waitUntil(t, func() bool { return f.originRef("refs/tags/env/prod") == bs[0].Commit }, "env/prod")
	bad := f.commit("master", "the crash left release here")
	d := &ferry.Deployment{App: "app", Env: "prod", Kind: ferry.DeployPromote, State: ferry.DeploymentPending, Commit: bad.Commit,
		Digest: bad.Digest, Release: "RC20261126_2359", Replicas: 2, Actor: "ada", Reason: "ship it", CreatedAt: f.clk.Now()}
	if err := f.ledger.CreateDeployment(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	f.git(f.work, "push", "-q", "origin", bad.Commit+":refs/heads/release")
	f.git(f.work, "push", "-q", "--force", "origin", bad.Commit+":refs/tags/env/prod")
	f.tags.Tag(context.Background(), bad.Digest, "live")
	f.restart()
	if got := f.originRef("refs/heads/release"); got != bs[0].Commit {
		t.Errorf("release after the restart = %.12s, want %.12s", got, bs[0].Commit)
	}
	if got := f.originRef("refs/tags/env/prod"); got != bs[0].Commit {
		t.Errorf("env/prod after the restart = %.12s, want %.12s", got, bs[0].Commit)
	}
	if got := f.tags.get("live"); got != bs[0].Digest {
		t.Errorf("live after the restart = %s, want %s", got, bs[0].Digest)
	}
	got, err := f.ledger.Deployment(context.Background(), d.ID)
	if err != nil || got.State != ferry.DeploymentFailed || got.Actor != "ada" || got.Reason != "ship it" {
		t.Errorf("the interrupted promote = %+v, %v; want failed, still ada's with her reason", got, err)
	}
	if n := f.prodDeployments(bad.Commit); n != 1 {
		t.Errorf("%d deployments of the interrupted release, want 1", n)
	}
}

// TestUnlockAfterRefusedPush: a push to release during a lock is not
// deployed, and neither after the unlock and a restart.
func TestUnlockAfterRefusedPush(t *testing.T) {
	f := newRelFixture(t, 0)
	bs, _ := f.released(1)
	b := f.commit("master", "pushed during the freeze")
	f.inDev(b)
	if _, err := f.ctrl.Lock(context.Background(), "prod", "ada", "freeze"); err != nil {
		t.Fatal(err)
	}
	f.git(f.work, "push", "-q", "origin", b.Commit+":refs/heads/release")
	f.releaseHead(b.Commit)
	if _, err := f.ctrl.Unlock(context.Background(), "prod", "ada", "thaw"); err != nil {
		t.Fatal(err)
	}
	f.restart()
	time.Sleep(50 * time.Millisecond)
	waitUntil(t, func() bool { return f.ctrl.rolloutIdle("prod") }, "prod idle")
	if got := f.prod.runs().Digest; got != bs[0].Digest {
		t.Errorf("prod runs %s after unlock and restart, want %s: the refused push went live", got, bs[0].Digest)
	}
	if n := f.prodDeployments(b.Commit); n != 0 {
		t.Errorf("%d deployments of the refused push, want 0", n)
	}
	if got := f.originRef("refs/heads/release"); got != bs[0].Commit {
		t.Errorf("release = %.12s, want it reset to %.12s", got, bs[0].Commit)
	}
}

// TestRollbackRacingPromote: a rollback asked for 30 ms after a promote
// waits for it and rolls back from its result: prod ends on the release it
// ran before the promote, not one further back.
func TestRollbackRacingPromote(t *testing.T) {
	f := newRelFixture(t, 0)
	bs, rs := f.released(2)
	c := f.commit("master", "the new one")
	f.inDev(c)
	f.prod.gate = make(chan struct{})
	p, err := f.ctrl.Promote(context.Background(), "prod", "", "ada", "ship c")
	if err != nil {
		t.Fatal(err)
	}
	rb := make(chan *ferry.Deployment, 1)
	go func() {
		time.Sleep(30 * time.Millisecond)
		d, err := f.ctrl.Rollback(context.Background(), "prod", "", "bob", "c is bad")
		if err != nil {
			t.Errorf("Rollback = %v", err)
		}
		rb <- d
	}()
	time.Sleep(60 * time.Millisecond)
	close(f.prod.gate)
	if d := f.wait(p.ID); d.State != ferry.DeploymentSucceeded {
		t.Fatalf("promote = %s", d.State)
	}
	d := <-rb
	if d == nil {
		t.FailNow()
	}
	d = f.wait(d.ID)
	if d.State != ferry.DeploymentSucceeded || d.Release != rs[1].Release || f.prod.runs().Digest != bs[1].Digest {
		t.Errorf("rollback racing the promote = %s to %s, prod runs %s; want %s (%s), the release before the promote", d.State, d.Release, f.prod.runs().Digest, rs[1].Release, bs[1].Digest)
	}
}

// TestDowngradeRefused: forward only is judged against what prod runs:
// with the release branch gone, promoting an older commit is still a
// downgrade, refused unless allowed with a reason.
func TestDowngradeRefused(t *testing.T) {
	f := newRelFixture(t, 0)
	bs, _ := f.released(2)
	f.git(f.work, "push", "-q", "origin", ":refs/heads/release")
	if _, err := f.ctrl.Promote(context.Background(), "prod", bs[0].Commit, "ada", ""); ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "is not ahead of") {
		t.Errorf("promote of an older commit = %v, want refused as a downgrade", err)
	}
	if got := f.prod.runs().Digest; got != bs[1].Digest {
		t.Fatalf("prod runs %s, want %s", got, bs[1].Digest)
	}
	if _, err := f.ctrl.PromoteDowngrade(context.Background(), "prod", bs[0].Commit, "ada", "", true); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("downgrade without a reason = %v, want EINVALID", err)
	}
	d, err := f.ctrl.PromoteDowngrade(context.Background(), "prod", bs[0].Commit, "ada", "b corrupts carts", true)
	if err != nil {
		t.Fatal(err)
	}
	if d = f.wait(d.ID); d.State != ferry.DeploymentSucceeded || d.Reason != "downgrade: b corrupts carts" || f.prod.runs().Digest != bs[0].Digest {
		t.Errorf("allowed downgrade = %s, reason %q, prod runs %s", d.State, d.Reason, f.prod.runs().Digest)
	}
}

// rolloutIdle says whether env has no deployment pending or rolling out.
func (c *Controller) rolloutIdle(env string) bool {
	r, ok := c.byName[env]
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending == nil && r.active == nil
}
