package ledgertest

import (
	"testing"
	"time"

	"github.com/ferryhq/ferry"
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
