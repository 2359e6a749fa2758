package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// finalAction waits until action id has ended and returns it.
func (f *relFixture) finalAction(id int64) *ferry.Action {
	f.t.Helper()
	var a *ferry.Action
	waitUntil(f.t, func() bool {
		var err error
		a, err = f.ctrl.Action(context.Background(), id)
		return err == nil && a.State.Final()
	}, "the end of the action")
	return a
}

// TestRollbackQueuedBehindPromote: the API's way (Queue answers at once);
// a rollback asked for while a promote rolls out waits, then rolls back
// from the promote's result; each action is recorded with its own result
// and deployment.
func TestRollbackQueuedBehindPromote(t *testing.T) {
	f := newRelFixture(t, 0)
	bs, _ := f.released(1)
	b := f.commit("master", "b")
	f.inDev(b)
	f.prod.gate = make(chan struct{})
	ctx := context.Background()
	promote, err := f.ctrl.Queue(ctx, ferry.Action{Env: "prod", Kind: ferry.ActionPromote, Actor: "ada", Reason: "release b"})
	if err != nil || promote.State != ferry.ActionQueued || promote.ID == 0 {
		t.Fatalf("Queue(promote) = %+v, %v; want it recorded queued", promote, err)
	}
	for digest := range f.prod.entered { // past the first release's
		if digest == b.Digest {
			break
		}
	}
	rollback, err := f.ctrl.Queue(ctx, ferry.Action{Env: "prod", Kind: ferry.ActionRollback, Actor: "bob", Reason: "5xx"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if a, _ := f.ctrl.Action(ctx, rollback.ID); a.State != ferry.ActionQueued {
		t.Errorf("rollback during the promote's rollout is %s, want queued behind it", a.State)
	}
	if a, _ := f.ctrl.Action(ctx, promote.ID); a.State != ferry.ActionRunning || a.DeploymentID == 0 {
		t.Errorf("promote during its rollout = %+v, want running with its deployment", a)
	}
	close(f.prod.gate)
	p, r := f.finalAction(promote.ID), f.finalAction(rollback.ID)
	if p.State != ferry.ActionSucceeded || p.DeploymentID == 0 || p.Actor != "ada" || p.Reason != "release b" {
		t.Errorf("promote action = %+v, want succeeded with its deployment, ada's", p)
	}
	if pd := f.wait(p.DeploymentID); pd.Commit != b.Commit || pd.State != ferry.DeploymentSucceeded {
		t.Errorf("promote's deployment = %+v, want b succeeded", pd)
	}
	if r.State != ferry.ActionSucceeded || r.DeploymentID == 0 || r.DeploymentID == p.DeploymentID || r.Actor != "bob" {
		t.Fatalf("rollback action = %+v, want succeeded with a deployment of its own", r)
	}
	if rd := f.wait(r.DeploymentID); rd.Commit != bs[0].Commit || rd.Kind != ferry.DeployRollback {
		t.Errorf("rollback's deployment = %s of %.7s, want a rollback from b to the first release %.7s", rd.Kind, rd.Commit, bs[0].Commit)
	}
	if !r.StartedAt.After(p.CreatedAt) && !r.StartedAt.Equal(p.CreatedAt) {
		t.Errorf("rollback started %s, before the promote was asked %s", r.StartedAt, p.CreatedAt)
	}
	as, err := f.ctrl.Actions(ctx, ledger.ActionFilter{Env: "prod"})
	if err != nil || len(as) < 3 || as[0].ID != rollback.ID || as[1].ID != promote.ID {
		t.Errorf("Actions(prod) = %v, %v; want the rollback, then the promote, newest first", actionIDs(as), err)
	}
}

func actionIDs(as []*ferry.Action) []int64 {
	var ids []int64
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

// TestActionRefusedAndInvalid: what needs no turn is refused at once and
// recorded nowhere; a gate that fails in the turn is the action's refused
// result with the gate's sentence, as the synchronous call's error.
func TestActionRefusedAndInvalid(t *testing.T) {
	f := newRelFixture(t, 0)
	f.released(1)
	ctx := context.Background()
	for _, tt := range []struct {
		a    ferry.Action
		code string
		msg  string
	}{
		{ferry.Action{Env: "prdo", Kind: ferry.ActionPromote, Actor: "ada"}, ferry.ENOTFOUND, `unknown environment "prdo"`},
		{ferry.Action{Env: "prod", Kind: ferry.ActionScale, Replicas: 0, Actor: "ada"}, ferry.EINVALID, "replicas must be between 1 and 64, not 0"},
		{ferry.Action{Env: "prod", Kind: ferry.ActionLock, Actor: "ada"}, ferry.EINVALID, "a lock needs a reason (--reason)"},
		{ferry.Action{Env: "prod", Kind: ferry.ActionPromote, Ref: "abc", Actor: "ada"}, ferry.EINVALID, "commit prefix abc is too short: give at least 7 hex digits"},
		{ferry.Action{Env: "prod", Kind: ferry.ActionPromote, AllowDowngrade: true, Actor: "ada"}, ferry.EINVALID, "a downgrade needs a reason (--reason)"},
		{ferry.Action{Env: "prod", Kind: "deploy", Actor: "ada"}, ferry.EINVALID, `unknown action kind "deploy"`},
	} {
		a, err := f.ctrl.Queue(ctx, tt.a)
		if ferry.ErrorCode(err) != tt.code || !strings.Contains(ferry.ErrorMessage(err), tt.msg) {
			t.Errorf("Queue(%s %s) = %+v, %v; want %s %q", tt.a.Kind, tt.a.Env, a, err, tt.code, tt.msg)
		}
	}
	if as, err := f.ctrl.Actions(ctx, ledger.ActionFilter{}); err != nil || len(as) != 1 { // the fixture's release
		t.Errorf("Actions after the invalid requests = %v, %v; want only the release's", actionIDs(as), err)
	}

	if _, err := f.ctrl.Lock(ctx, "prod", "ada", "freeze"); err != nil {
		t.Fatal(err)
	}
	b := f.commit("master", "b")
	f.inDev(b)
	queued, err := f.ctrl.Queue(ctx, ferry.Action{Env: "prod", Kind: ferry.ActionPromote, Actor: "bob"})
	if err != nil {
		t.Fatalf("Queue(promote while locked) = %v, want it queued (the lock is judged in its turn)", err)
	}
	got := f.finalAction(queued.ID)
	if got.State != ferry.ActionRefused || !strings.Contains(got.Result, "prod is locked by ada") || got.DeploymentID != 0 {
		t.Errorf("promote while locked = %+v, want refused with the lock's sentence and no deployment", got)
	}
	_, syncErr := f.ctrl.Promote(ctx, "prod", "", "bob", "")
	if ferry.ErrorMessage(syncErr) != got.Result {
		t.Errorf("Promote while locked = %v, want the recorded result %q", syncErr, got.Result)
	}
	if _, err := f.ctrl.Unlock(ctx, "prod", "ada", ""); err != nil {
		t.Fatal(err)
	}
	again, _ := f.ctrl.Queue(ctx, ferry.Action{Env: "prod", Kind: ferry.ActionUnlock, Actor: "ada"})
	if got := f.finalAction(again.ID); got.State != ferry.ActionRefused || got.Result != "environment prod is not locked" {
		t.Errorf("unlock of an unlocked prod = %+v, want refused: not locked", got)
	}
	locks, err := f.ctrl.Actions(ctx, ledger.ActionFilter{Env: "prod", States: []ferry.ActionState{ferry.ActionSucceeded}})
	if err != nil || len(locks) < 3 || locks[0].Kind != ferry.ActionUnlock || locks[1].Kind != ferry.ActionLock ||
		locks[0].Result != "prod unlocked (locked by ada: freeze)" || locks[1].Result != "prod locked by ada: freeze" {
		t.Errorf("succeeded actions = %+v, %v; want the unlock and the lock with their results", locks, err)
	}
}

// TestActionsRecoveredAtStart: the actions a crash left open are closed
// truthfully at the next start, each with an event: one that never got
// its turn, or had no effect, failed "ferry stopped before it ran"; one
// whose deployment the crash interrupted failed as that deployment; one
// whose deployment finished ended as it did; a lock whose row was written
// succeeded.
func TestActionsRecoveredAtStart(t *testing.T) {
	f := newRelFixture(t, 0)
	_, rs := f.released(1)
	ctx := context.Background()
	f.cancel()
	<-f.done
	at := f.clk.Now()
	open := func(kind ferry.ActionKind, running bool) *ferry.Action {
		a := &ferry.Action{App: "app", Env: "prod", Kind: kind, Actor: "ada", Reason: "before the crash", CreatedAt: at}
		if kind == ferry.ActionLock {
			a.Reason = "freeze"
		}
		if err := f.ledger.CreateAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		if running {
			if err := f.ledger.TransitionAction(ctx, a.ID, ferry.ActionQueued, ferry.ActionRunning, "", at); err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	queued := open(ferry.ActionRollback, false)
	noEffect := open(ferry.ActionPromote, true)
	interrupted := open(ferry.ActionScale, true)
	d := &ferry.Deployment{App: "app", Env: "prod", Kind: ferry.DeployScale, State: ferry.DeploymentRolling, BuildID: rs[0].BuildID,
		Commit: rs[0].Commit, Digest: rs[0].Digest, Release: rs[0].Release, Replicas: 3, Actor: "ada", CreatedAt: at}
	if err := f.ledger.CreateActionDeployment(ctx, interrupted.ID, d); err != nil {
		t.Fatal(err)
	}
	finished := open(ferry.ActionScale, true)
	done := &ferry.Deployment{App: "app", Env: "prod", Kind: ferry.DeployScale, State: ferry.DeploymentSucceeded, BuildID: rs[0].BuildID,
		Commit: rs[0].Commit, Digest: rs[0].Digest, Release: rs[0].Release, Replicas: 2, Actor: "ada", CreatedAt: at}
	if err := f.ledger.CreateActionDeployment(ctx, finished.ID, done); err != nil {
		t.Fatal(err)
	}
	locked := open(ferry.ActionLock, true)
	if err := f.ledger.Lock(ctx, &ferry.Lock{App: "app", Env: "prod", Actor: "ada", Reason: "freeze", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}

	f.start()
	for _, tt := range []struct {
		a      *ferry.Action
		state  ferry.ActionState
		result string
	}{
		{queued, ferry.ActionFailed, "ferry stopped before it ran"},
		{noEffect, ferry.ActionFailed, "ferry stopped before it ran"},
		{interrupted, ferry.ActionFailed, "failed: ferry stopped during the rollout"},
		{finished, ferry.ActionSucceeded, "succeeded"},
		{locked, ferry.ActionSucceeded, "prod locked by ada: freeze"},
	} {
		got, err := f.ctrl.Action(ctx, tt.a.ID)
		if err != nil || got.State != tt.state || !strings.Contains(got.Result, tt.result) || got.FinishedAt.IsZero() {
			t.Errorf("after the restart %s %d = %+v, %v; want %s with %q", tt.a.Kind, tt.a.ID, got, err, tt.state, tt.result)
		}
	}
	es, err := f.ledger.Events(ctx, ledger.EventFilter{App: "app", Kind: "action.interrupted"})
	if err != nil || len(es) != 5 {
		t.Errorf("action.interrupted events = %d, %v; want one per action closed", len(es), err)
	}
	// The queue works after the recovery.
	a, err := f.ctrl.Queue(ctx, ferry.Action{Env: "prod", Kind: ferry.ActionUnlock, Actor: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.finalAction(a.ID); got.State != ferry.ActionSucceeded {
		t.Errorf("unlock after the recovery = %+v", got)
	}
}
