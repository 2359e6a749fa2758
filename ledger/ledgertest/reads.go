package ledgertest

import (
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// testCommitTimes: a succeeded deployment's commit times are stored once
// and read back in UTC, equal; bad input is refused with its code and
// stores nothing.
func testCommitTimes(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	deploy := func(i int, state ferry.DeploymentState) int64 {
		d := newDeployment("birthday-app", "prod", i)
		d.State = state
		if state.Final() {
			d.StartedAt, d.FinishedAt = at(time.Duration(i)*time.Second), at(time.Duration(i+1)*time.Second)
		}
		return mustDeploy(t, s, d).ID
	}
	ok, none, failed, pending := deploy(1, ferry.DeploymentSucceeded), deploy(2, ferry.DeploymentSucceeded),
		deploy(3, ferry.DeploymentFailed), deploy(4, ferry.DeploymentPending)
	times := []time.Time{at(-time.Hour), at(-90 * time.Minute), at(-time.Hour)} // a duplicate time is two commits

	for _, tt := range []struct {
		name  string
		id    int64
		times []time.Time
		code  string
	}{
		{"succeeded", ok, times, ""},
		{"no new commit", none, []time.Time{}, ""},
		{"again, other times: the first stays", ok, []time.Time{at(0)}, ""},
		{"failed", failed, times, ferry.EINVALID},
		{"pending", pending, times, ferry.EINVALID},
		{"missing", 999999, times, ferry.ENOTFOUND},
		{"zero time", deploy(5, ferry.DeploymentSucceeded), []time.Time{at(0), {}}, ferry.EINVALID},
	} {
		err := s.SetCommitTimes(ctx, tt.id, tt.times)
		if tt.code == "" && err != nil {
			t.Errorf("SetCommitTimes(%s) = %v, want nil", tt.name, err)
		}
		if tt.code != "" {
			wantCode(t, "SetCommitTimes("+tt.name+")", err, tt.code)
		}
	}

	got, err := s.CommitTimes(ctx, []int64{ok, none, failed, pending, 999999, ok + 4})
	if err != nil {
		t.Fatalf("CommitTimes = %v", err)
	}
	want := map[int64][]time.Time{ok: {utc(times[0]), utc(times[1]), utc(times[2])}, none: {}}
	same(t, "CommitTimes", got, want)

	empty, err := s.CommitTimes(ctx, nil)
	if err != nil || len(empty) != 0 {
		t.Errorf("CommitTimes(nil) = %v, %v, want an empty map", empty, err)
	}

	// More ids than one query takes.
	many := make([]int64, 1200)
	for i := range many {
		many[i] = int64(i + 1)
	}
	got, err = s.CommitTimes(ctx, many)
	if err != nil {
		t.Fatalf("CommitTimes(1200 ids) = %v", err)
	}
	same(t, "CommitTimes(1200 ids)", got, want)
}

// testMergedPages: a kind prefix selecting several kinds, and several
// build states, are read one range per value and merged: pages come
// newest first, without gaps or repeats, with the other filters applied.
func testMergedPages(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	kinds := []string{"step.a", "step.b", "step.c", "stepx"}
	var wantEvents []int64 // step.* of app in dev, newest first
	for i := range 40 {
		e := &ferry.Event{App: "app", Env: []string{"dev", "prod"}[i%5/4], Kind: kinds[i%len(kinds)], Actor: "ferry", Time: at(time.Duration(i) * time.Second)}
		if i%7 == 6 {
			e.App = "other"
		}
		if err := s.AddEvent(ctx, e); err != nil {
			t.Fatalf("AddEvent = %v", err)
		}
		if e.App == "app" && e.Env == "dev" && e.Kind != "stepx" {
			wantEvents = append([]int64{e.ID}, wantEvents...)
		}
	}
	var gotEvents []int64
	for f := (ledger.EventFilter{App: "app", Env: "dev", Kind: "step.", Limit: 4}); ; {
		es, err := s.Events(ctx, f)
		if err != nil {
			t.Fatalf("Events(%+v) = %v", f, err)
		}
		for _, e := range es {
			gotEvents = append(gotEvents, e.ID)
		}
		if len(es) < f.Limit {
			break
		}
		f.BeforeID = es[len(es)-1].ID
	}
	same(t, "Events(step. in dev, pages of 4)", gotEvents, wantEvents)
	if es, err := s.Events(ctx, ledger.EventFilter{App: "app", Kind: "nothing."}); err != nil || len(es) != 0 {
		t.Errorf("Events(a kind never recorded) = %v, %v, want none", es, err)
	}

	states := []ferry.BuildState{ferry.BuildQueued, ferry.BuildRunning, ferry.BuildSucceeded}
	var wantBuilds []int64 // queued or running, on master, newest first
	for i := range 30 {
		b := newBuild("app", 100+i)
		b.State, b.Branch = states[i%3], []string{"master", "topic"}[i%4/3]
		mustCreate(t, s, b)
		if b.State != ferry.BuildSucceeded && b.Branch == "master" {
			wantBuilds = append([]int64{b.ID}, wantBuilds...)
		}
	}
	var gotBuilds []int64
	for f := (ledger.BuildFilter{App: "app", Branch: "master", States: states[:2], Limit: 3}); ; {
		bs, err := s.Builds(ctx, f)
		if err != nil {
			t.Fatalf("Builds(%+v) = %v", f, err)
		}
		gotBuilds = append(gotBuilds, buildIDs(bs)...)
		if len(bs) < f.Limit {
			break
		}
		f.BeforeID = bs[len(bs)-1].ID
	}
	same(t, "Builds(queued or running on master, pages of 3)", gotBuilds, wantBuilds)
}
