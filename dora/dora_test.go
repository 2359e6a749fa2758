package dora

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// t0 starts the window of the table tests; the window is ten days, so
// DeploymentsPerDay is Deployments / 10.
var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// linear is a linear git history, oldest first: Between(a, b) is the
// commits after a up to b, as git log a..b is on a single branch.
type linear []struct {
	sha string
	at  time.Time
}

func (l linear) index(sha string) (int, error) {
	for i, c := range l {
		if c.sha == sha {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown commit %s", sha)
}

func (l linear) Between(from, to string) ([]time.Time, error) {
	f, err := l.index(from)
	if err != nil {
		return nil, err
	}
	t, err := l.index(to)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for i := t; i > f; i-- {
		out = append(out, l[i].at)
	}
	return out, nil
}

func (l linear) Time(commit string) (time.Time, error) {
	i, err := l.index(commit)
	if err != nil {
		return time.Time{}, err
	}
	return l[i].at, nil
}

// history: c1 … c9 with these commit times.
var history = linear{
	{"c1", t0.Add(-5 * day)},
	{"c2", t0.Add(-1 * day)},
	{"c3", t0.Add(1 * day)},
	{"c4", t0.Add(2 * day)},
	{"c5", t0.Add(3 * day)},
	{"c6", t0.Add(4 * day)},
	{"c7", t0.Add(6 * day)},
	{"c8", t0.Add(8 * day)}, // committed after it was deployed (a skewed clock)
	{"c9", t0.Add(9 * day)},
}

// dep is a deployment of commit (digest "d"+commit) to prod that finished
// at finish (zero: not finished).
func dep(id int64, kind ferry.DeploymentKind, state ferry.DeploymentState, commit string, finish time.Duration) *ferry.Deployment {
	d := &ferry.Deployment{ID: id, App: "app", Env: "prod", Kind: kind, State: state, Commit: commit, Digest: "d" + commit}
	if state.Final() {
		d.FinishedAt = t0.Add(finish)
		d.StartedAt = d.FinishedAt.Add(-time.Minute)
	}
	d.CreatedAt = t0.Add(finish - 2*time.Minute)
	return d
}

const (
	promote  = ferry.DeployPromote
	deploy   = ferry.DeployDeploy
	rollback = ferry.DeployRollback
	auto     = ferry.DeployAutoRollback
	scale    = ferry.DeployScale
	ok       = ferry.DeploymentSucceeded
	failed   = ferry.DeploymentFailed
	reverted = ferry.DeploymentRolledBack
	rolling  = ferry.DeploymentRolling
	stale    = ferry.DeploymentSuperseded
)

func TestCompute(t *testing.T) {
	t.Parallel()
	to := t0.Add(10 * day)
	days := func(n float64) float64 { return n * 86400 }
	for _, tc := range []struct {
		name string
		deps []*ferry.Deployment
		want Report // Env, From and To are filled in
	}{
		{name: "no deployments", want: Report{}},
		{
			name: "the first deployment ever is measured by its own commit",
			deps: []*ferry.Deployment{dep(1, promote, ok, "c3", 2*day)},
			want: Report{Deployments: 1, DeploymentsPerDay: 0.1, LeadTimeSeconds: days(1), LeadTimeSamples: 1},
		},
		{
			name: "every commit newly deployed is a lead-time sample",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day), // before the window: the base
				dep(2, promote, ok, "c3", 2*day),  // c2 (3d), c3 (1d)
				dep(3, promote, ok, "c5", 5*day),  // c4 (3d), c5 (2d)
			},
			want: Report{Deployments: 2, DeploymentsPerDay: 0.2, LeadTimeSeconds: days(2.5), LeadTimeSamples: 4},
		},
		{
			name: "newest first as the ledger lists them, other environments ignored",
			deps: []*ferry.Deployment{
				{ID: 9, Env: "dev", Kind: deploy, State: ok, Commit: "c9", Digest: "dc9", FinishedAt: t0.Add(day)},
				dep(3, promote, ok, "c5", 5*day),
				dep(2, promote, ok, "c3", 2*day),
				dep(1, promote, ok, "c1", -4*day),
			},
			want: Report{Deployments: 2, DeploymentsPerDay: 0.2, LeadTimeSeconds: days(2.5), LeadTimeSamples: 4},
		},
		{
			name: "a rollout ferry reverted is a failure restored by its automatic rollback",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day),
				dep(2, promote, reverted, "c3", 2*day),
				dep(3, auto, ok, "c1", 2*day-time.Millisecond), // ends just before 2 is recorded
				dep(4, promote, ok, "c3", 3*day),               // base c1: c2 (4d), c3 (2d)
			},
			// Restored from 2's start (1 min before its end) to 3's end.
			want: Report{Deployments: 1, DeploymentsPerDay: 0.1, LeadTimeSeconds: days(3), LeadTimeSamples: 2,
				ChangeFailureRate: 0.5, Failures: 1, Changes: 2, TimeToRestoreSeconds: 59.999, Restores: 1},
		},
		{
			name: "a failure with nothing to revert to is restored by the next success",
			deps: []*ferry.Deployment{
				dep(1, deploy, failed, "c3", day+time.Hour),
				dep(2, deploy, ok, "c4", 2*day+time.Hour), // first success: c4 alone (1h)
			},
			want: Report{Deployments: 1, DeploymentsPerDay: 0.1, LeadTimeSeconds: 3600, LeadTimeSamples: 1,
				ChangeFailureRate: 0.5, Failures: 1, Changes: 2, TimeToRestoreSeconds: days(1) + 60, Restores: 1}, // from 1's start
		},
		{
			name: "a failure not yet restored counts without a restore",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day),
				dep(2, promote, failed, "c3", 2*day),
				dep(3, auto, failed, "c1", 2*day), // the revert failed too
				dep(4, promote, rolling, "c4", 0), // still running
			},
			want: Report{ChangeFailureRate: 1, Failures: 1, Changes: 1},
		},
		{
			name: "a rollback makes the change it undid a failure",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day),
				dep(2, promote, ok, "c3", 2*day),                 // c2, c3: 3d, 1d
				dep(3, promote, ok, "c5", 5*day),                 // c4, c5: 3d, 2d
				dep(4, rollback, ok, "c3", 5*day+30*time.Minute), // undoes 3
				dep(5, promote, ok, "c6", 7*day),                 // base c3: c4, c5, c6: 5d, 4d, 3d
			},
			want: Report{Deployments: 3, DeploymentsPerDay: 0.3, LeadTimeSeconds: days(3), LeadTimeSamples: 7,
				ChangeFailureRate: 1.0 / 3, Failures: 1, Changes: 3, TimeToRestoreSeconds: 1800, Restores: 1},
		},
		{
			name: "a rollback undoes every change since the environment last ran its digest",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day),
				dep(2, promote, ok, "c3", 2*day),
				dep(3, scale, ok, "c3", 3*day), // neither a change nor where the walk stops
				dep(4, promote, ok, "c5", 5*day),
				dep(5, rollback, ok, "c1", 6*day), // undoes 4 (1d) and 2 (4d)
			},
			want: Report{Deployments: 2, DeploymentsPerDay: 0.2, LeadTimeSeconds: days(2.5), LeadTimeSamples: 4,
				ChangeFailureRate: 1, Failures: 2, Changes: 2, TimeToRestoreSeconds: days(2.5), Restores: 2},
		},
		{
			name: "a change undone twice is one failure, restored by the first rollback",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day),
				dep(2, promote, ok, "c3", 1*day),
				dep(3, promote, ok, "c5", 2*day),
				dep(4, rollback, ok, "c3", 3*day), // undoes 3 (1d)
				dep(5, promote, ok, "c6", 4*day),
				dep(6, rollback, ok, "c1", 5*day), // undoes 5 (1d) and 2 (4d); 3 is undone already
			},
			// Lead: c2 2d, c3 0; c4 0, c5 0 (dated later); c4 2d, c5 1d, c6 0.
			want: Report{Deployments: 3, DeploymentsPerDay: 0.3, LeadTimeSeconds: 0, LeadTimeSamples: 7,
				ChangeFailureRate: 1, Failures: 3, Changes: 3, TimeToRestoreSeconds: days(1), Restores: 3},
		},
		{
			name: "only a rollback that succeeded undoes",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day),
				dep(2, promote, ok, "c3", 1*day),
				dep(3, rollback, failed, "c1", 2*day),
				dep(4, rollback, ok, "c1", 3*day), // undoes 2 (2d)
			},
			want: Report{Deployments: 1, DeploymentsPerDay: 0.1, LeadTimeSeconds: days(1), LeadTimeSamples: 2,
				ChangeFailureRate: 1, Failures: 1, Changes: 1, TimeToRestoreSeconds: days(2), Restores: 1},
		},
		{
			name: "what has not finished by the end of the window is in progress",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -4*day),
				dep(2, promote, ok, "c3", 2*day),
				dep(3, promote, rolling, "c5", 0),
				dep(4, promote, ok, "c7", 10*day),            // finished at To: outside [From, To)
				dep(5, rollback, ok, "c1", 10*day+time.Hour), // after To: 2 is not (yet) a failure
			},
			want: Report{Deployments: 1, DeploymentsPerDay: 0.1, LeadTimeSeconds: days(2), LeadTimeSamples: 2},
		},
		{
			name: "superseded deployments never ran; scales change no code",
			deps: []*ferry.Deployment{
				dep(1, deploy, ok, "c1", -4*day),
				dep(2, deploy, stale, "c2", day),
				dep(3, deploy, ok, "c3", 2*day), // base c1: c2, c3
				dep(4, scale, ok, "c3", 3*day),
				dep(5, scale, failed, "c3", 3*day+time.Hour),
			},
			want: Report{Deployments: 1, DeploymentsPerDay: 0.1, LeadTimeSeconds: days(2), LeadTimeSamples: 2},
		},
		{
			name: "a change finishing exactly at From is in the window, one before it is not",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c1", -time.Second),
				dep(2, promote, ok, "c2", 0), // c2: 1d
			},
			want: Report{Deployments: 1, DeploymentsPerDay: 0.1, LeadTimeSeconds: days(1), LeadTimeSamples: 1},
		},
		{
			name: "a commit dated after its deployment counts 0; a redeploy brings nothing new",
			deps: []*ferry.Deployment{
				dep(1, promote, ok, "c8", 7*day),
				dep(2, promote, ok, "c8", 9*day),
			},
			want: Report{Deployments: 2, DeploymentsPerDay: 0.2, LeadTimeSeconds: 0, LeadTimeSamples: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			orig := cloneDeps(tc.deps)
			got, err := Compute(tc.deps, history, "prod", t0, to)
			if err != nil {
				t.Fatalf("Compute = %v", err)
			}
			want := tc.want
			want.Env, want.From, want.To = "prod", t0, to
			if want.Failures == 0 && want.Changes == 0 {
				want.Changes = want.Deployments // without failures every change attempted succeeded
			}
			if !reportsEqual(got, want) {
				t.Errorf("Compute =\n%+v\nwant\n%+v", got, want)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("json.Marshal(Compute) = %v", err)
			}
			if !slices.EqualFunc(tc.deps, orig, func(a, b *ferry.Deployment) bool { return *a == *b }) {
				t.Errorf("Compute changed its input")
			}
		})
	}
}

func cloneDeps(ds []*ferry.Deployment) []*ferry.Deployment {
	out := make([]*ferry.Deployment, len(ds))
	for i, d := range ds {
		c := *d
		out[i] = &c
	}
	return out
}

// reportsEqual compares reports, floats to 1e-9 relative.
func reportsEqual(a, b Report) bool {
	near := func(x, y float64) bool {
		return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) && !math.IsNaN(x)
	}
	return a.Env == b.Env && a.From.Equal(b.From) && a.To.Equal(b.To) &&
		a.Deployments == b.Deployments && near(a.DeploymentsPerDay, b.DeploymentsPerDay) &&
		near(a.LeadTimeSeconds, b.LeadTimeSeconds) && a.LeadTimeSamples == b.LeadTimeSamples &&
		near(a.ChangeFailureRate, b.ChangeFailureRate) && a.Failures == b.Failures && a.Changes == b.Changes &&
		near(a.TimeToRestoreSeconds, b.TimeToRestoreSeconds) && a.Restores == b.Restores
}

func TestComputeErrors(t *testing.T) {
	t.Parallel()
	deps := []*ferry.Deployment{
		dep(1, promote, ok, "c1", -4*day),
		dep(2, promote, ok, "cX", 2*day), // git does not know cX
	}
	_, err := Compute(deps, history, "prod", t0, t0.Add(10*day))
	if err == nil || !strings.Contains(err.Error(), "lead time of deployment 2 (cX): unknown commit cX") {
		t.Errorf("Compute with an unknown commit = %v, want the deployment and git's error", err)
	}
	for _, to := range []time.Time{t0, t0.Add(-time.Hour)} {
		_, err := Compute(nil, history, "prod", t0, to)
		if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "is empty") {
			t.Errorf("Compute(from %s, to %s) = %v, want EINVALID: empty window", t0, to, err)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1}, 2},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(tc.in)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median(%v) reordered its input to %v", in, tc.in)
		}
	}
}
