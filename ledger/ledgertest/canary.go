package ledgertest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// testCanaries: a canary's state round-trips, is replaced while it runs,
// never changes once it has ended, belongs to its deployment's app and
// environment, is listed newest first by environment and state, and a
// deposed leader's write of it is fenced.
func testCanaries(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()

	_, err := s.Canary(ctx, 99)
	wantError(t, "Canary(none)", err, ferry.ENOTFOUND, "deployment 99 has no canary")
	d1 := mustDeploy(t, s, newDeployment("app", "prod", 1))
	d2 := mustDeploy(t, s, newDeployment("app", "prod", 2))
	d3 := mustDeploy(t, s, newDeployment("app", "stage", 3))

	run := func(d *ferry.Deployment, state ferry.CanaryState) *ferry.CanaryRun {
		return &ferry.CanaryRun{DeploymentID: d.ID, App: d.App, Env: d.Env, Step: 0, Steps: 3, Weight: 5, State: state, StepStarted: at(time.Second), UpdatedAt: at(2 * time.Second)}
	}
	for _, tt := range []struct {
		name string
		r    ferry.CanaryRun
		code string
		msg  string
	}{
		{"no deployment", ferry.CanaryRun{App: "app", Env: "prod", Steps: 1, State: ferry.CanaryRunning, UpdatedAt: t0}, ferry.EINVALID, "a canary needs its deployment"},
		{"unknown state", ferry.CanaryRun{DeploymentID: d1.ID, App: "app", Env: "prod", Steps: 1, State: "dancing", UpdatedAt: t0}, ferry.EINVALID, `unknown canary state "dancing"`},
		{"step out of range", ferry.CanaryRun{DeploymentID: d1.ID, App: "app", Env: "prod", Step: 3, Steps: 3, State: ferry.CanaryRunning, UpdatedAt: t0}, ferry.EINVALID, "canary step 3 of 3 is out of range"},
		{"weight", ferry.CanaryRun{DeploymentID: d1.ID, App: "app", Env: "prod", Steps: 1, Weight: 101, State: ferry.CanaryRunning, UpdatedAt: t0}, ferry.EINVALID, "canary weight 101 is not a percentage"},
		{"verdict not JSON", ferry.CanaryRun{DeploymentID: d1.ID, App: "app", Env: "prod", Steps: 1, State: ferry.CanaryRunning, Verdict: json.RawMessage("{"), UpdatedAt: t0}, ferry.EINVALID, "a canary's verdict must be JSON"},
		{"no time", ferry.CanaryRun{DeploymentID: d1.ID, App: "app", Env: "prod", Steps: 1, State: ferry.CanaryRunning}, ferry.EINVALID, "a canary needs its time"},
		{"other environment", ferry.CanaryRun{DeploymentID: d1.ID, App: "app", Env: "stage", Steps: 1, State: ferry.CanaryRunning, UpdatedAt: t0}, ferry.EINVALID, fmt.Sprintf("deployment %d is of app in prod, not of app in stage", d1.ID)},
		{"missing deployment", ferry.CanaryRun{DeploymentID: 99, App: "app", Env: "prod", Steps: 1, State: ferry.CanaryRunning, UpdatedAt: t0}, ferry.ENOTFOUND, ferry.ErrorMessage(ledger.DeploymentNotFound(99))},
	} {
		err := s.SaveCanary(ctx, &tt.r)
		wantError(t, "SaveCanary("+tt.name+")", err, tt.code, tt.msg)
	}

	r := run(d1, ferry.CanaryRunning)
	if err := s.SaveCanary(ctx, r); err != nil {
		t.Fatalf("SaveCanary = %v", err)
	}
	r.Step, r.Weight, r.State, r.Reason = 1, 25, ferry.CanaryPaused, "inconclusive for 5m0s"
	r.Verdict = json.RawMessage(`{"outcome":"inconclusive"}`)
	r.UpdatedAt = at(time.Minute)
	if err := s.SaveCanary(ctx, r); err != nil {
		t.Fatalf("SaveCanary(paused) = %v", err)
	}
	got, err := s.Canary(ctx, d1.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.StepStarted, want.UpdatedAt = r.StepStarted.UTC(), r.UpdatedAt.UTC()
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("Canary = %+v, want %+v", got, &want)
	}
	r.State, r.Weight, r.Reason = ferry.CanaryAborted, 0, "error rate 5.00%"
	if err := s.SaveCanary(ctx, r); err != nil {
		t.Fatalf("SaveCanary(aborted) = %v", err)
	}
	again := *r
	again.State = ferry.CanaryRunning
	wantError(t, "SaveCanary(after abort)", s.SaveCanary(ctx, &again), ferry.EINVALID, fmt.Sprintf("the canary of deployment %d has ended (aborted)", d1.ID))
	if got, _ := s.Canary(ctx, d1.ID); got.State != ferry.CanaryAborted {
		t.Errorf("Canary after a refused change = %s, want aborted", got.State)
	}

	if err := s.SaveCanary(ctx, run(d2, ferry.CanaryRunning)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCanary(ctx, run(d3, ferry.CanaryPaused)); err != nil {
		t.Fatal(err)
	}
	ids := func(rs []*ferry.CanaryRun, err error) []int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out := []int64{}
		for _, r := range rs {
			out = append(out, r.DeploymentID)
		}
		return out
	}
	open2 := []ferry.CanaryState{ferry.CanaryRunning, ferry.CanaryPaused}
	for _, tt := range []struct {
		name   string
		env    string
		states []ferry.CanaryState
		limit  int
		want   []int64
	}{
		{"all", "", nil, 0, []int64{d3.ID, d2.ID, d1.ID}},
		{"prod", "prod", nil, 0, []int64{d2.ID, d1.ID}},
		{"open", "", open2, 0, []int64{d3.ID, d2.ID}},
		{"open in prod", "prod", open2, 0, []int64{d2.ID}},
		{"limit", "", nil, 1, []int64{d3.ID}},
	} {
		if got := ids(s.Canaries(ctx, "app", tt.env, tt.states, tt.limit)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Canaries(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}

	// A deposed leader's write of a canary is fenced.
	const ttl = time.Second
	if _, err := s.Campaign(ctx, "app", "a", "", ttl, at(0)); err != nil {
		t.Fatal(err)
	}
	fa := mustFence(t, s, "app", 1)
	if _, err := s.Campaign(ctx, "app", "b", "", ttl, at(ttl)); err != nil {
		t.Fatal(err)
	}
	stale := run(d2, ferry.CanaryAborted)
	if err := fa.SaveCanary(ctx, stale); !ledger.IsFenced(err) {
		t.Errorf("SaveCanary by the deposed leader = %v, want refused by the fence", err)
	}
	if got, _ := s.Canary(ctx, d2.ID); got.State != ferry.CanaryRunning {
		t.Errorf("Canary after the fenced write = %s, want running", got.State)
	}
}
