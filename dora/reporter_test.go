package dora

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

func TestParseWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"", DefaultWindow, ""},
		{"30d", 30 * day, ""},
		{"2w", 14 * day, ""},
		{"36h", 36 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"1h", time.Hour, ""},
		{"366d", 366 * day, ""},
		{"1d12h", 0, "is not a duration"},
		{"30", 0, "is not a duration"},
		{"d", 0, "is not a duration"},
		{"-3d", 0, "is not a duration"},
		{"0d", 0, "is not a duration"},
		{"99999999999999d", 0, "out of range"},
		{"thirty days", 0, "is not a duration"},
		{"59m", 0, "out of range: it must be from 1h0m0s to 366d"},
		{"367d", 0, "out of range"},
		{"-5h", 0, "out of range"},
	} {
		got, err := ParseWindow(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseWindow(%q) = %v, %v; want EINVALID %q", tc.in, got, err, tc.err)
		}
	}
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{{30 * day, "30d"}, {day, "1d"}, {36 * time.Hour, "36h0m0s"}, {time.Hour, "1h0m0s"}} {
		if got := FormatWindow(tc.in); got != tc.want {
			t.Errorf("FormatWindow(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := ParseWindow(FormatWindow(tc.in)); tc.in >= MinWindow && (err != nil || back != tc.in) {
			t.Errorf("ParseWindow(FormatWindow(%v)) = %v, %v", tc.in, back, err)
		}
	}
}

// countingLedger counts the ledger queries a Reporter makes.
type countingLedger struct {
	store   ledger.Store
	queries atomic.Int64
}

func (c *countingLedger) Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error) {
	c.queries.Add(1)
	return c.store.Deployments(ctx, f)
}

func openLedger(t *testing.T) ledger.Store {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func digestOf(commit string) string { return "sha256:" + commit + commit[:24] }

// record stores a deployment that finished at finish.
func record(t *testing.T, store ledger.Store, env string, kind ferry.DeploymentKind, state ferry.DeploymentState, commit string, finish time.Time) *ferry.Deployment {
	t.Helper()
	d := &ferry.Deployment{App: "app", Env: env, Kind: kind, State: state, Commit: commit, Digest: digestOf(commit),
		Actor: "test", CreatedAt: finish.Add(-2 * time.Minute), StartedAt: finish.Add(-time.Minute), FinishedAt: finish}
	if err := store.CreateDeployment(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReporter reads a real SQLite ledger and a real git repository.
func TestReporter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	r := gittest.New(t)
	c1 := r.Commit("one", ago(50*day))
	c2 := r.Commit("two", ago(22*day))
	c3 := r.Commit("three", ago(12*day))
	c4 := r.Commit("four", ago(6*day))
	store := openLedger(t)
	for _, c := range []string{c1, c2, c3, c4} {
		record(t, store, "dev", deploy, ok, c, ago(5*day)) // not production: left out
	}
	record(t, store, "prod", promote, ok, c1, ago(40*day))             // base, before the window
	record(t, store, "prod", promote, ok, c2, ago(20*day))             // c2: 2d
	record(t, store, "prod", promote, reverted, c3, ago(10*day))       // failure, restored at once
	record(t, store, "prod", auto, ok, c2, ago(10*day+time.Second))    // …by its revert
	record(t, store, "prod", promote, ok, c4, ago(5*day))              // c3: 7d, c4: 1d
	record(t, store, "prod", scale, ok, c4, ago(4*day+time.Hour))      // no part
	record(t, store, "prod", rollback, ok, c2, ago(4*day))             // undoes c4's promote: restored in 1d
	record(t, store, "canary", promote, ok, c4, ago(1*day))            // the other production
	record(t, store, "staging", promote, ok, c4, now.Add(time.Second)) // after now: not yet

	counted := &countingLedger{store: store}
	rep := &Reporter{
		App:     "app",
		Envs:    []ferry.Environment{{Name: "dev"}, {Name: "staging", From: "dev"}, {Name: "prod", From: "staging"}, {Name: "canary", From: "dev"}},
		Ledger:  counted,
		Commits: NewGitCommits(r.Source()).WithContext,
		Now:     func() time.Time { return now },
	}
	got, err := rep.Reports(context.Background(), "", 30*day)
	if err != nil {
		t.Fatal(err)
	}
	from := now.Add(-30 * day)
	want := []Report{
		{Env: "prod", From: from, To: now, Deployments: 2, DeploymentsPerDay: 2.0 / 30,
			LeadTimeSeconds: (2 * day).Seconds(), LeadTimeSamples: 3, // 1d, 2d, 7d
			ChangeFailureRate: 2.0 / 3, Failures: 2, Changes: 3, TimeToRestoreSeconds: (day/2 + 29*time.Second + 500*time.Millisecond).Seconds(), Restores: 2}, // 59 s (the failed rollout's start to its revert) and 1d
		{Env: "canary", From: from, To: now, Deployments: 1, DeploymentsPerDay: 1.0 / 30,
			LeadTimeSeconds: (5 * day).Seconds(), LeadTimeSamples: 1, Changes: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("Reports(\"\", 30d) = %+v, want %+v", got, want)
	}
	for i := range want {
		if !reportsEqual(got[i], want[i]) {
			t.Errorf("Reports(\"\", 30d)[%d] =\n%+v\nwant\n%+v", i, got[i], want[i])
		}
	}
	if q := counted.queries.Load(); q != 2 {
		t.Errorf("Reports made %d ledger queries for two small environments, want 2", q)
	}

	// One named environment, and the window bounds what counts.
	got, err = rep.Reports(context.Background(), "dev", 7*day)
	if err != nil || len(got) != 1 || got[0].Env != "dev" || got[0].Deployments != 4 || got[0].From != now.Add(-7*day) {
		t.Errorf("Reports(dev, 7d) = %+v, %v; want dev's 4 deployments", got, err)
	}
	got, err = rep.Reports(context.Background(), "prod", 8*day)
	if err != nil || len(got) != 1 || got[0].Deployments != 1 || got[0].Failures != 1 || got[0].LeadTimeSamples != 2 {
		t.Errorf("Reports(prod, 8d) = %+v, %v; want c4's promote, undone", got, err)
	}
	got, err = rep.Reports(context.Background(), "staging", 30*day)
	if err != nil || len(got) != 1 || got[0] != (Report{Env: "staging", From: from, To: now}) {
		t.Errorf("Reports(staging, 30d) = %+v, %v; want all zero", got, err)
	}

	// Mistakes.
	if _, err := rep.Reports(context.Background(), "prdo", 30*day); ferry.ErrorCode(err) != ferry.ENOTFOUND ||
		!strings.Contains(err.Error(), `no environment "prdo" (have dev, staging, prod, canary)`) {
		t.Errorf("Reports(prdo) = %v, want ENOTFOUND listing the environments", err)
	}
	for _, w := range []time.Duration{0, time.Minute, 400 * day} {
		if _, err := rep.Reports(context.Background(), "", w); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("Reports(window %v) = %v, want EINVALID", w, err)
		}
	}
}

// TestReporterPages reads a history longer than one ledger page.
func TestReporterPages(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := gittest.New(t)
	c1 := r.Commit("one", now.Add(-3*day))
	c2 := r.Commit("two", now.Add(-2*day))
	store := openLedger(t)
	n := ledger.MaxLimit + 10
	record(t, store, "dev", deploy, ok, c1, now.Add(-2*day)) // the base, on the second page
	for i := range n {
		commit := c2
		if i%2 == 1 {
			commit = c1
		}
		record(t, store, "dev", deploy, ok, commit, now.Add(-day+time.Duration(i)*time.Second))
	}
	counted := &countingLedger{store: store}
	rep := &Reporter{App: "app", Envs: []ferry.Environment{{Name: "dev"}}, Ledger: counted,
		Commits: NewGitCommits(r.Source()).WithContext, Now: func() time.Time { return now }}
	got, err := rep.Reports(context.Background(), "dev", 36*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Every other deployment goes c1 → c2, bringing c2; the others go back.
	if got[0].Deployments != n || got[0].LeadTimeSamples != (n+1)/2 {
		t.Errorf("Reports(dev, 36h) = %d deployments, %d lead samples; want %d, %d", got[0].Deployments, got[0].LeadTimeSamples, n, (n+1)/2)
	}
	if q := counted.queries.Load(); q != 2 {
		t.Errorf("Reports made %d ledger queries for %d deployments, want 2 pages", q, n+1)
	}
}

// noGit fails every git read: a Reporter given it must answer from what
// is kept.
type noGit struct{}

func (noGit) Between(from, to string) ([]time.Time, error) {
	return nil, fmt.Errorf("git log %s..%s: no git here", from, to)
}
func (noGit) Time(commit string) (time.Time, error) {
	return time.Time{}, fmt.Errorf("git commit %s: no git here", commit)
}

// TestReporterKeeps: a Reporter that keeps the history and the commit
// times (in the ledger) answers as one that reads everything afresh, at
// every step of a history that grows, has unfinished deployments, rolls
// back and slides out of the window; after the first report it reads only
// what is new; and after a restart it answers without git.
func TestReporterKeeps(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := gittest.New(t)
	var c []string
	for i := range 8 {
		c = append(c, r.Commit(fmt.Sprint("commit ", i), now.Add(-time.Duration(50-i)*day)))
	}
	store := openLedger(t)
	envs := []ferry.Environment{{Name: "dev"}, {Name: "prod", From: "dev"}}
	counted := &countingLedger{store: store}
	kept := &Reporter{App: "app", Envs: envs, Ledger: counted, Stored: store, Commits: NewGitCommits(r.Source()).WithContext, Now: clock}
	ctx := context.Background()
	var pending, c6, soon *ferry.Deployment
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"empty", func() {}},
		{"base before the window, one change", func() {
			record(t, store, "prod", promote, ok, c[0], now.Add(-40*day))
			record(t, store, "prod", promote, ok, c[2], now.Add(-20*day))
		}},
		{"a change under way", func() {
			pending = &ferry.Deployment{App: "app", Env: "prod", Kind: promote, State: ferry.DeploymentPending, Commit: c[4],
				Digest: digestOf(c[4]), Actor: "test", CreatedAt: now}
			if err := store.CreateDeployment(ctx, pending); err != nil {
				t.Fatal(err)
			}
		}},
		{"it succeeds", func() {
			now = now.Add(time.Hour)
			if err := store.TransitionDeployment(ctx, pending.ID, ferry.DeploymentPending, ferry.DeploymentRolling, "", now.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := store.TransitionDeployment(ctx, pending.ID, ferry.DeploymentRolling, ferry.DeploymentSucceeded, "", now.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
		}},
		{"a reverted change", func() {
			now = now.Add(time.Hour)
			record(t, store, "prod", promote, reverted, c[5], now.Add(-2*time.Minute))
			record(t, store, "prod", auto, ok, c[4], now.Add(-time.Minute))
		}},
		{"a rollback undoes c4", func() {
			now = now.Add(time.Hour)
			record(t, store, "prod", rollback, ok, c[2], now.Add(-time.Minute))
			record(t, store, "dev", deploy, ok, c[7], now.Add(-time.Minute)) // not production
		}},
		{"c6 deployed", func() {
			now = now.Add(day)
			c6 = record(t, store, "prod", promote, ok, c[6], now.Add(-time.Minute))
		}},
		{"a change that finishes a second from now", func() {
			soon = record(t, store, "prod", promote, ok, c[7], now.Add(time.Second))
		}},
		{"it finishes exactly now: not yet counted", func() { now = soon.FinishedAt }},
		{"a nanosecond later: counted", func() { now = now.Add(time.Nanosecond) }},
		{"the 7d window starts exactly at c6's finish", func() { now = c6.FinishedAt.Add(7 * day) }},
		{"a nanosecond later c6 is out of it", func() { now = now.Add(time.Nanosecond) }},
		{"the first change slides out of the window", func() { now = now.Add(12 * day) }},
		{"everything but the last slides out", func() { now = now.Add(20 * day) }},
	} {
		step.do()
		fresh := &Reporter{App: "app", Envs: envs, Ledger: store, Commits: NewGitCommits(r.Source()).WithContext, Now: clock}
		for _, window := range []time.Duration{30 * day, 7 * day, 40 * day} {
			before := counted.queries.Load()
			got, err := kept.Reports(ctx, "prod", window)
			if err != nil {
				t.Fatalf("%s: Reports(prod, %s) = %v", step.name, FormatWindow(window), err)
			}
			want, err := fresh.Reports(ctx, "prod", window)
			if err != nil {
				t.Fatalf("%s: a fresh Reports(prod, %s) = %v", step.name, FormatWindow(window), err)
			}
			if !reportsEqual(got[0], want[0]) {
				t.Errorf("%s: Reports(prod, %s) =\n%+v\nwant (read afresh)\n%+v", step.name, FormatWindow(window), got[0], want[0])
			}
			if q := counted.queries.Load() - before; step.name != "empty" && window != 40*day && q != 1 {
				t.Errorf("%s: Reports(prod, %s) made %d ledger queries, want 1 (what is new)", step.name, FormatWindow(window), q)
			}
		}
	}

	// A restarted ferry reads the kept commit times from the ledger: no git.
	restarted := &Reporter{App: "app", Envs: envs, Ledger: store, Stored: store,
		Commits: func(context.Context) CommitTimes { return noGit{} }, Now: clock}
	want, _ := kept.Reports(ctx, "prod", 40*day)
	got, err := restarted.Reports(ctx, "prod", 40*day)
	if err != nil || !reportsEqual(got[0], want[0]) || got[0].LeadTimeSamples == 0 {
		t.Errorf("restarted Reports(prod, 40d) = %+v, %v; want %+v, without git", got, err, want)
	}
}
