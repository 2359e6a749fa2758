package ledgertest

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

func newAction(env string, kind ferry.ActionKind, i int) *ferry.Action {
	return &ferry.Action{App: "app", Env: env, Kind: kind, Actor: "ada", Reason: "reason", CreatedAt: at(time.Duration(i) * time.Second)}
}

func mustAction(t *testing.T, s ledger.Store, a *ferry.Action) *ferry.Action {
	t.Helper()
	if err := s.CreateAction(t.Context(), a); err != nil {
		t.Fatalf("CreateAction(%s %s) = %v", a.Env, a.Kind, err)
	}
	return a
}

func mustGetAction(t *testing.T, s ledger.Store, id int64) *ferry.Action {
	t.Helper()
	a, err := s.Action(t.Context(), id)
	if err != nil {
		t.Fatalf("Action(%d) = %v", id, err)
	}
	return a
}

func actionIDs(as []*ferry.Action) []int64 {
	ids := []int64{}
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

// testActions: an action round-trips every field, is refused when
// malformed, moves queued → running → final by compare-and-set (never
// back), and lists newest first by environment and state with paging.
func testActions(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()

	full := &ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionPromote, Ref: "RC20250314_1509",
		AllowDowngrade: true, Override: true, WhenOpen: true, Actor: "ada", Reason: "fixes #12", CreatedAt: t0}
	mustAction(t, s, full)
	if full.ID == 0 || full.State != ferry.ActionQueued {
		t.Fatalf("CreateAction set ID %d, state %q; want an ID and queued", full.ID, full.State)
	}
	want := *full
	want.CreatedAt = t0.UTC()
	if got := mustGetAction(t, s, full.ID); !reflect.DeepEqual(*got, want) {
		t.Errorf("Action(%d) =\n%+v\nwant\n%+v", full.ID, *got, want)
	}
	scale := mustAction(t, s, &ferry.Action{App: "app", Env: "dev", Kind: ferry.ActionScale, Replicas: 4, Actor: "bob", CreatedAt: at(time.Second)})
	if got := mustGetAction(t, s, scale.ID); got.Replicas != 4 || got.AllowDowngrade || got.Reason != "" {
		t.Errorf("Action(scale) = %+v, want replicas 4, no downgrade, no reason", got)
	}

	for _, tt := range []struct {
		name string
		a    ferry.Action
		msg  string
	}{
		{"no app", ferry.Action{Env: "prod", Kind: ferry.ActionLock, Actor: "ada", CreatedAt: t0}, "an action needs an app"},
		{"no env", ferry.Action{App: "app", Kind: ferry.ActionLock, Actor: "ada", CreatedAt: t0}, "an action of app needs an environment"},
		{"unknown kind", ferry.Action{App: "app", Env: "prod", Kind: "deploy", Actor: "ada", CreatedAt: t0}, `unknown action kind "deploy"`},
		{"not queued", ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionLock, Actor: "ada", State: ferry.ActionRunning, CreatedAt: t0}, "an action is recorded queued, not running"},
		{"no time", ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionLock, Actor: "ada"}, "an action needs its creation time"},
		{"no actor", ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionLock, CreatedAt: t0}, "an action of app to prod needs an actor"},
		{"negative replicas", ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionScale, Replicas: -1, Actor: "ada", CreatedAt: t0}, "action replicas -1 is negative"},
		{"with a deployment", ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionPromote, Actor: "ada", DeploymentID: 7, CreatedAt: t0}, "an action is recorded before its deployment"},
		{"NUL in ref", ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionPromote, Ref: "RC\x00x", Actor: "ada", CreatedAt: t0}, "action ref contains a NUL byte"},
		{"bad UTF-8 env", ferry.Action{App: "app", Env: "pr\xffod", Kind: ferry.ActionLock, Actor: "ada", CreatedAt: t0}, "environment is not valid UTF-8"},
	} {
		wantError(t, "CreateAction("+tt.name+")", s.CreateAction(ctx, &tt.a), ferry.EINVALID, tt.msg)
	}
	if as, err := s.Actions(ctx, ledger.ActionFilter{App: "app"}); err != nil || len(as) != 2 {
		t.Fatalf("Actions after refused creates = %v, %v; want the 2 valid ones", actionIDs(as), err)
	}

	// Free text is kept, cleaned and capped.
	odd := mustAction(t, s, &ferry.Action{App: "app", Env: "prod", Kind: ferry.ActionLock, Actor: "a\x00da",
		Reason: strings.Repeat("r", ledger.MaxText+10), CreatedAt: at(2 * time.Second)})
	if got := mustGetAction(t, s, odd.ID); got.Actor != "a\uFFFDda" || len(got.Reason) > ledger.MaxText || !strings.HasSuffix(got.Reason, ledger.TruncatedMark) {
		t.Errorf("Action(odd) actor %q, reason of %d bytes; want the NUL replaced and the reason capped", got.Actor, len(got.Reason))
	}

	// Transitions: compare-and-set, times, results, no way back.
	id := full.ID
	wantError(t, "TransitionAction(wrong from)", s.TransitionAction(ctx, id, ferry.ActionRunning, ferry.ActionSucceeded, "", at(time.Minute)),
		ferry.ECONFLICT, "action 1 is queued, not running")
	wantError(t, "TransitionAction(no time)", s.TransitionAction(ctx, id, ferry.ActionQueued, ferry.ActionRunning, "", time.Time{}),
		ferry.EINVALID, "moving action 1 to running needs a time")
	wantError(t, "TransitionAction(unknown)", s.TransitionAction(ctx, id, ferry.ActionQueued, "done", "", at(time.Minute)),
		ferry.EINVALID, `unknown action state "done"`)
	if err := s.TransitionAction(ctx, id, ferry.ActionQueued, ferry.ActionRunning, "", at(time.Minute)); err != nil {
		t.Fatalf("TransitionAction(queued → running) = %v", err)
	}
	wantError(t, "TransitionAction(running → queued)", s.TransitionAction(ctx, id, ferry.ActionRunning, ferry.ActionQueued, "", at(time.Minute)),
		ferry.EINVALID, "action 1 cannot go back to queued")
	if err := s.TransitionAction(ctx, id, ferry.ActionRunning, ferry.ActionRefused, "prod is locked by ada", at(2*time.Minute)); err != nil {
		t.Fatalf("TransitionAction(running → refused) = %v", err)
	}
	got := mustGetAction(t, s, id)
	if got.State != ferry.ActionRefused || got.Result != "prod is locked by ada" || !got.StartedAt.Equal(at(time.Minute)) ||
		!got.FinishedAt.Equal(at(2*time.Minute)) || got.StartedAt.Location() != time.UTC {
		t.Errorf("after refusal Action = %+v; want refused with the sentence, started and finished in UTC", got)
	}
	wantError(t, "TransitionAction(leave final)", s.TransitionAction(ctx, id, ferry.ActionRefused, ferry.ActionRunning, "", at(3*time.Minute)),
		ferry.EINVALID, "action 1 cannot leave the final state refused")
	wantError(t, "TransitionAction(missing)", s.TransitionAction(ctx, 999, ferry.ActionQueued, ferry.ActionRunning, "", at(time.Minute)),
		ferry.ENOTFOUND, "action 999 not found")
	_, err := s.Action(ctx, 999)
	wantError(t, "Action(999)", err, ferry.ENOTFOUND, "action 999 not found")

	// Lists: newest first, by env and by state, paged.
	for i := range 5 {
		mustAction(t, s, newAction("stage", ferry.ActionUnlock, 10+i))
	}
	all, err := s.Actions(ctx, ledger.ActionFilter{App: "app", Env: "stage"})
	if err != nil || len(all) != 5 || all[0].ID < all[4].ID {
		t.Fatalf("Actions(stage) = %v, %v; want 5 newest first", actionIDs(all), err)
	}
	page, err := s.Actions(ctx, ledger.ActionFilter{App: "app", Env: "stage", BeforeID: all[1].ID, Limit: 2})
	if wantIDs := actionIDs(all[2:4]); err != nil || !reflect.DeepEqual(actionIDs(page), wantIDs) {
		t.Errorf("Actions(stage, before %d, limit 2) = %v, %v; want %v", all[1].ID, actionIDs(page), err, wantIDs)
	}
	open2, err := s.Actions(ctx, ledger.ActionFilter{App: "app", States: []ferry.ActionState{ferry.ActionRefused}})
	if err != nil || !reflect.DeepEqual(actionIDs(open2), []int64{id}) {
		t.Errorf("Actions(refused) = %v, %v; want [%d]", actionIDs(open2), err, id)
	}
	_, err = s.Actions(ctx, ledger.ActionFilter{App: "app", Env: "pr\x00od"})
	wantError(t, "Actions(NUL env)", err, ferry.EINVALID, "environment contains a NUL byte")
}

// testActionDeployment: the deployment an action starts is recorded with
// its link in one step, only while the action runs and only once; racing
// starters through two stores get one deployment between them.
func testActionDeployment(t *testing.T, open OpenFunc) {
	stores := []ledger.Store{mustOpen(t, open), mustOpen(t, open)}
	s := stores[0]
	ctx := t.Context()

	a := mustAction(t, s, newAction("prod", ferry.ActionRollback, 1))
	d := newDeployment("app", "prod", 1)
	d.Kind = ferry.DeployRollback
	wantError(t, "CreateActionDeployment(queued)", s.CreateActionDeployment(ctx, a.ID, d), ferry.ECONFLICT,
		"action 1 is queued, not running: it starts no deployment")
	if d.ID != 0 {
		t.Errorf("a refused CreateActionDeployment set the deployment's ID to %d", d.ID)
	}
	if ds, err := s.Deployments(ctx, ledger.DeploymentFilter{App: "app"}); err != nil || len(ds) != 0 {
		t.Errorf("Deployments after a refused CreateActionDeployment = %v, %v; want none", deploymentIDs(ds), err)
	}
	if err := s.TransitionAction(ctx, a.ID, ferry.ActionQueued, ferry.ActionRunning, "", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	other := newDeployment("app", "dev", 2)
	wantError(t, "CreateActionDeployment(other env)", s.CreateActionDeployment(ctx, a.ID, other), ferry.EINVALID,
		"action 1 is of app in prod, not of app in dev")
	bad := newDeployment("app", "prod", 3)
	bad.Digest = "latest"
	wantError(t, "CreateActionDeployment(bad digest)", s.CreateActionDeployment(ctx, a.ID, bad), ferry.EINVALID,
		`deployment digest "latest" is not sha256:<64 hex>`)
	wantError(t, "CreateActionDeployment(missing action)", s.CreateActionDeployment(ctx, 999, newDeployment("app", "prod", 4)),
		ferry.ENOTFOUND, "action 999 not found")

	const racers = 6
	ds := make([]*ferry.Deployment, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		ds[i] = newDeployment("app", "prod", 10+i)
		wg.Go(func() { errs[i] = stores[i%2].CreateActionDeployment(ctx, a.ID, ds[i]) })
	}
	wg.Wait()
	var won *ferry.Deployment
	for i, err := range errs {
		switch {
		case err == nil && won == nil:
			won = ds[i]
		case err == nil:
			t.Errorf("CreateActionDeployment: racers %d and another both recorded a deployment of action %d", i, a.ID)
		case ferry.ErrorCode(err) != ferry.ECONFLICT:
			t.Errorf("CreateActionDeployment(racer %d) = %v, want ECONFLICT", i, err)
		}
	}
	if won == nil {
		t.Fatal("no racer recorded the action's deployment")
	}
	if got := mustGetAction(t, s, a.ID); got.DeploymentID != won.ID {
		t.Errorf("Action(%d).DeploymentID = %d, want %d", a.ID, got.DeploymentID, won.ID)
	}
	if got := mustGetDeployment(t, s, won.ID); got.Commit != won.Commit || got.Actor != won.Actor {
		t.Errorf("Deployment(%d) = %+v, want the winner's", won.ID, got)
	}
	if all, err := s.Deployments(ctx, ledger.DeploymentFilter{App: "app"}); err != nil || len(all) != 1 {
		t.Errorf("Deployments after the race = %v, %v; want only the winner's", deploymentIDs(all), err)
	}
	// The link survives the action's end.
	if err := s.TransitionAction(ctx, a.ID, ferry.ActionRunning, ferry.ActionSucceeded, "deployment succeeded", at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := mustGetAction(t, stores[1], a.ID); got.DeploymentID != won.ID || got.State != ferry.ActionSucceeded {
		t.Errorf("Action(%d) after success = %+v", a.ID, got)
	}
}
