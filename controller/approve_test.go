package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

var oneReleaser = &ferry.Approval{Required: 1, Role: ferry.RoleReleaser, Expires: 24 * time.Hour}

// request asks for a promotion of ref to prod as actor and returns the
// release request it became, checking that prod did not move.
func (f *relFixture) request(ref, actor string) *ferry.ReleaseRequest {
	f.t.Helper()
	before := f.prod.runs().Digest
	a, err := f.ctrl.Queue(context.Background(), ferry.Action{Env: "prod", Kind: ferry.ActionPromote, Ref: ref, Actor: actor, Reason: "ship it"})
	if err != nil {
		f.t.Fatal(err)
	}
	a = f.finalAction(a.ID)
	if a.State != ferry.ActionSucceeded || a.DeploymentID != 0 || !strings.Contains(a.Result, "pending approval: release request") {
		f.t.Fatalf("promote with an approval rule = %s %q (deployment %d), want succeeded as pending approval, no deployment", a.State, a.Result, a.DeploymentID)
	}
	rs, err := f.ctrl.ReleaseRequests(context.Background(), ledger.RequestFilter{Env: "prod", Limit: 1})
	if err != nil || len(rs) != 1 {
		f.t.Fatalf("ReleaseRequests = %v, %v", rs, err)
	}
	if got := f.prod.runs().Digest; got != before {
		f.t.Fatalf("prod moved to %s on a request", got)
	}
	return rs[0]
}

// TestApprovalReleasesThroughASecondPerson: a promotion to prod waits as a
// pending release; the requester, the commit's author and a viewer are
// refused with the rule quoted, and prod stays as it was; a second
// releaser's approval releases it, recording the requester as the
// deployment's actor and the approver beside; a second approval of the
// same request is refused.
func TestApprovalReleasesThroughASecondPerson(t *testing.T) {
	f := newPolicyFixture(t, 0, oneReleaser)
	ctx := context.Background()
	a := f.commit("master", "feat: a")
	f.inDev(a)
	req := f.request("", "alice")
	if req.State != ferry.RequestPending || req.Requester != "alice" || req.Commit != a.Commit || req.Author != "Ada" ||
		!req.ExpiresAt.Equal(f.clk.Now().Add(24*time.Hour)) || req.RequestActionID == 0 {
		t.Fatalf("request = %+v, want pending by alice of %s, author Ada, expiring in 24h", req, a.Commit)
	}
	for _, tt := range []struct {
		who      string
		role     ferry.Role
		wantCode string
		wantMsg  string
	}{
		{"alice", ferry.RoleReleaser, ferry.EFORBIDDEN, "self-approval is refused: alice asked for release request 1, and approval: { required: 1, role: releaser, selfApproval: false, expires: 24h0m0s } in prod needs someone else"},
		{"ada", ferry.RoleReleaser, ferry.EFORBIDDEN, "self-approval is refused: ada wrote"},
		{"vic", ferry.RoleViewer, ferry.EFORBIDDEN, "vic (role viewer) may not approve a release to prod"},
	} {
		if _, _, err := f.ctrl.Approve(ctx, req.ID, tt.who, tt.role, ""); ferry.ErrorCode(err) != tt.wantCode || !strings.Contains(ferry.ErrorMessage(err), tt.wantMsg) {
			t.Errorf("Approve(%s as %s) = %v, want %s containing %q", tt.who, tt.role, err, tt.wantCode, tt.wantMsg)
		}
	}
	if got := f.prod.runs().Digest; got != "" {
		t.Fatalf("prod runs %s after refused approvals, want nothing", got)
	}

	got, act, err := f.ctrl.Approve(ctx, req.ID, "bob", ferry.RoleReleaser, "reviewed")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ferry.RequestApproved || act == nil || strings.Join(got.Approvers(), ",") != "bob" {
		t.Fatalf("Approve(bob) = %+v, action %v; want approved by bob with an action", got, act)
	}
	act = f.finalAction(act.ID)
	if act.State != ferry.ActionSucceeded || act.DeploymentID == 0 {
		t.Fatalf("release action = %s %q, want succeeded with a deployment", act.State, act.Result)
	}
	d, err := f.ledger.Deployment(ctx, act.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Actor != "alice" || !strings.Contains(d.Reason, "requested by alice, approved by bob (release request 1)") || d.Digest != a.Digest || d.Release == "" {
		t.Errorf("deployment = actor %s, reason %q, digest %s, release %q; want alice's, approved by bob, of %s", d.Actor, d.Reason, d.Digest, d.Release, a.Digest)
	}
	if got := f.prod.runs().Digest; got != a.Digest {
		t.Errorf("prod runs %s, want %s", got, a.Digest)
	}
	if req, _ := f.ctrl.ReleaseRequest(ctx, req.ID); req.ActionID != act.ID {
		t.Errorf("request's action = %d, want %d", req.ActionID, act.ID)
	}
	if _, _, err := f.ctrl.Approve(ctx, req.ID, "carol", ferry.RoleReleaser, ""); ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "approved already (by bob)") {
		t.Errorf("second approval = %v, want ECONFLICT approved already", err)
	}
	evs, err := f.ledger.Events(ctx, ledger.EventFilter{App: "app", Kind: "release.", Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i := len(evs) - 1; i >= 0; i-- {
		if strings.HasPrefix(evs[i].Kind, "release.") && evs[i].Kind != "release.reset" {
			kinds = append(kinds, evs[i].Kind)
		}
	}
	want := "release.pending release.approval-refused release.approval-refused release.approval-refused release.approved release.approval-refused"
	if strings.Join(kinds, " ") != want {
		t.Errorf("events = %v, want %s", kinds, want)
	}
}

// TestApprovalRefusals: an expired request (by the fake clock) and a
// cancelled one are never approved; a commit quarantined after its request
// was approved is refused in the release's turn; two approvals are
// needed when the rule asks for two, by different people. Prod never
// moves.
func TestApprovalRefusals(t *testing.T) {
	two := &ferry.Approval{Required: 2, Role: ferry.RoleReleaser, Expires: time.Hour}
	f := newPolicyFixture(t, 0, two)
	ctx := context.Background()
	a := f.commit("master", "feat: a")
	f.inDev(a)

	expired := f.request("", "alice")
	f.clk.Advance(time.Hour)
	if _, _, err := f.ctrl.Approve(ctx, expired.ID, "bob", ferry.RoleReleaser, ""); ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "expired at 2026-11-27 00:50:00 UTC") {
		t.Errorf("Approve(expired) = %v, want ECONFLICT naming the expiry", err)
	}
	if got, _ := f.ctrl.ReleaseRequest(ctx, expired.ID); got.State != ferry.RequestExpired {
		t.Errorf("expired request is %s, want expired", got.State)
	}

	cancelled := f.request("", "alice")
	if _, err := f.ctrl.CancelRequest(ctx, cancelled.ID, "dan", ferry.RoleDeployer, ""); ferry.ErrorCode(err) != ferry.EFORBIDDEN {
		t.Errorf("CancelRequest(by a deployer not the requester) = %v, want EFORBIDDEN", err)
	}
	if _, err := f.ctrl.CancelRequest(ctx, cancelled.ID, "alice", ferry.RoleReleaser, "wrong commit"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.ctrl.Approve(ctx, cancelled.ID, "bob", ferry.RoleReleaser, ""); ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "was cancelled (cancelled by alice: wrong commit)") {
		t.Errorf("Approve(cancelled) = %v, want ECONFLICT", err)
	}

	req := f.request("", "alice")
	if got, act, err := f.ctrl.Approve(ctx, req.ID, "bob", ferry.RoleReleaser, ""); err != nil || act != nil || got.State != ferry.RequestPending {
		t.Fatalf("first of two approvals = %+v, %v, %v; want still pending, no action", got, act, err)
	}
	if _, _, err := f.ctrl.Approve(ctx, req.ID, "bob", ferry.RoleReleaser, ""); ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(ferry.ErrorMessage(err), "bob approved release request 3 already") {
		t.Errorf("bob twice = %v, want ECONFLICT", err)
	}
	if _, err := f.ctrl.Quarantine(ctx, a.Commit, "carol", "leaks tokens"); err != nil {
		t.Fatal(err)
	}
	_, act, err := f.ctrl.Approve(ctx, req.ID, "erin", ferry.RoleAdmin, "")
	if err != nil || act == nil {
		t.Fatalf("second approval = %v, %v", act, err)
	}
	if act = f.finalAction(act.ID); act.State != ferry.ActionRefused || !strings.Contains(act.Result, "quarantined by carol: leaks tokens") {
		t.Errorf("release of a commit quarantined since = %s %q, want refused naming the quarantine", act.State, act.Result)
	}
	if got := f.prod.runs().Digest; got != "" {
		t.Errorf("prod runs %s, want nothing", got)
	}
}

// TestApprovedReleaseSurvivesACrash: an approval recorded just before ferry
// stopped, without its release action, is released at the next start.
func TestApprovedReleaseSurvivesACrash(t *testing.T) {
	f := newPolicyFixture(t, 0, oneReleaser)
	ctx := context.Background()
	a := f.commit("master", "feat: a")
	f.inDev(a)
	req := f.request("", "alice")
	// What Approve writes first, as if ferry stopped right after.
	if err := f.ledger.AddApproval(ctx, req.ID, ferry.Approver{Actor: "bob", Role: ferry.RoleReleaser, At: f.clk.Now()}, 0, true); err != nil {
		t.Fatal(err)
	}
	f.restart()
	waitUntil(t, func() bool { return f.prod.runs().Digest == a.Digest }, "prod to run the approved release after the restart")
	got, err := f.ctrl.ReleaseRequest(ctx, req.ID)
	if err != nil || got.ActionID == 0 {
		t.Fatalf("request after restart = %+v, %v; want its release action linked", got, err)
	}
	if act := f.finalAction(got.ActionID); act.State != ferry.ActionSucceeded {
		t.Errorf("release action = %s %q", act.State, act.Result)
	}
}

// TestPushNeedsApproval: with an approval rule, a push to the release
// branch is not a way around it: refused and reset.
func TestPushNeedsApproval(t *testing.T) {
	f := newPolicyFixture(t, 0, oneReleaser)
	a := f.commit("master", "feat: a")
	f.inDev(a)
	f.git(f.work, "push", "-q", "origin", a.Commit+":refs/heads/release")
	f.releaseHead(a.Commit)
	waitUntil(t, func() bool {
		evs, _ := f.ledger.Events(context.Background(), ledger.EventFilter{App: "app", Kind: "promote.refused"})
		return len(evs) == 1 && strings.Contains(evs[0].Reason, "prod needs 1 approval(s) (approval: { required: 1, role: releaser, selfApproval: false, expires: 24h0m0s }): a push to release is not released")
	}, "the push to be refused for want of approval")
	if got := f.prod.runs().Digest; got != "" {
		t.Errorf("prod runs %s after a push, want nothing", got)
	}
}
