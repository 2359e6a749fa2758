package controller

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
)

// TestStatusRuntimeError: a runtime whose status cannot be read shows in
// Status and Check with a sentence users may see — the runtime's own safe
// message, or a generic one for an internal error, whose words stay the
// hidden cause — and DeployedAt is when the running deployment finished.
func TestStatusRuntimeError(t *testing.T) {
	f := newFixture(t, nil, "")
	d := f.wait(f.deploy(f.build()).ID)
	ctx := context.Background()
	st, err := f.ctrl.Status(ctx)
	if err != nil || len(st) != 1 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if !st[0].DeployedAt.Equal(d.FinishedAt) || st[0].DeployedAt.IsZero() || st[0].Err != nil {
		t.Errorf("Status = %+v, want deployed at %v without an error", st[0], d.FinishedAt)
	}

	internal := errors.New("dial tcp 10.1.2.3:6443: connect: connection refused")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{internal, "the runtime did not report its status"},
		{ferry.Errorf(ferry.EUNAVAILABLE, "the cluster did not answer"), "the cluster did not answer"},
	} {
		f.target.mu.Lock()
		f.target.statusErr = tc.err
		f.target.mu.Unlock()
		st, err := f.ctrl.Status(ctx)
		if err != nil || len(st) != 1 {
			t.Fatalf("Status = %+v, %v", st, err)
		}
		if got := ferry.ErrorMessage(st[0].Err); got != tc.want || !errors.Is(st[0].Err, tc.err) {
			t.Errorf("Status with the runtime failing (%v): Err = %v (message %q), want message %q with the runtime's error as cause", tc.err, st[0].Err, got, tc.want)
		}
		drifts, err := f.ctrl.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, dr := range drifts {
			if dr.What == "runtime" {
				found = dr.Got == "unreadable: "+tc.want
				if strings.Contains(dr.Got, "10.1.2.3") {
					t.Errorf("drift %+v shows the runtime's internal error", dr)
				}
			}
		}
		if !found {
			t.Errorf("Check with the runtime failing (%v) = %+v, want a runtime drift got %q", tc.err, drifts, "unreadable: "+tc.want)
		}
	}
}
