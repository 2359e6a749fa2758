package metrics

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
	"github.com/ferryhq/ferry/source"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// commitRepo makes a real git repository with one empty commit per time
// given and returns a fetched source.Repo of it and the commit ids.
func commitRepo(t *testing.T, times ...time.Time) (*source.Repo, []string) {
	t.Helper()
	r := gittest.New(t)
	var commits []string
	for i, at := range times {
		commits = append(commits, r.Commit(fmt.Sprintf("commit %d", i+1), at))
	}
	repo := r.Source()
	return repo, commits
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

// hexOf is a made-up 40-hex commit.
func hexOf(n int) string { return fmt.Sprintf("%040x", n) }

func digestOf(commit string) string { return "sha256:" + commit + commit[:24] }

// seed writes builds and deployments; a run of 0 means never started.
type seed struct {
	t     *testing.T
	store ledger.Store
	n     int
}

func (s *seed) build(branch string, state ferry.BuildState, run time.Duration) *ferry.Build {
	s.t.Helper()
	s.n++
	b := &ferry.Build{App: "app", Commit: hexOf(s.n), Branch: branch, State: state, CreatedAt: now.Add(-day)}
	if run > 0 {
		b.StartedAt = now.Add(-day)
		if state.Final() {
			b.FinishedAt = b.StartedAt.Add(run)
		}
	} else if state.Final() {
		b.FinishedAt = now.Add(-day)
	}
	if err := s.store.CreateBuild(context.Background(), b); err != nil {
		s.t.Fatal(err)
	}
	return b
}

func (s *seed) deploy(env string, kind ferry.DeploymentKind, state ferry.DeploymentState, commit string, finish time.Time, run time.Duration) *ferry.Deployment {
	s.t.Helper()
	d := &ferry.Deployment{App: "app", Env: env, Kind: kind, State: state, Commit: commit, Digest: digestOf(commit),
		Actor: "test", CreatedAt: finish.Add(-run - time.Second), StartedAt: finish.Add(-run)}
	if state.Final() {
		d.FinishedAt = finish
	}
	if err := s.store.CreateDeployment(context.Background(), d); err != nil {
		s.t.Fatal(err)
	}
	return d
}

// statuses is the controller's status as a test sets it.
type statuses []controller.EnvStatus

func (s statuses) Status(context.Context) ([]controller.EnvStatus, error) { return s, nil }

// counting counts the ledger queries of a Collector.
type counting struct {
	Ledger
	builds, deployments atomic.Int64
}

func (c *counting) Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error) {
	c.builds.Add(1)
	return c.Ledger.Builds(ctx, f)
}

func (c *counting) Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error) {
	c.deployments.Add(1)
	return c.Ledger.Deployments(ctx, f)
}

const buildSeries = `
# HELP ferry_builds_total Builds that reached a final state, by branch and result (succeeded, failed, superseded, canceled).
# TYPE ferry_builds_total counter
ferry_builds_total{branch="feature",result="succeeded"} 1
ferry_builds_total{branch="master",result="failed"} 1
ferry_builds_total{branch="master",result="succeeded"} 2
ferry_builds_total{branch="master",result="superseded"} 1
# HELP ferry_build_duration_seconds Time from a build's start to its end, for builds that ran and reached a final state.
# TYPE ferry_build_duration_seconds histogram
ferry_build_duration_seconds_bucket{branch="feature",le="5"} 0
ferry_build_duration_seconds_bucket{branch="feature",le="10"} 0
ferry_build_duration_seconds_bucket{branch="feature",le="30"} 0
ferry_build_duration_seconds_bucket{branch="feature",le="60"} 0
ferry_build_duration_seconds_bucket{branch="feature",le="120"} 0
ferry_build_duration_seconds_bucket{branch="feature",le="300"} 0
ferry_build_duration_seconds_bucket{branch="feature",le="600"} 1
ferry_build_duration_seconds_bucket{branch="feature",le="1200"} 1
ferry_build_duration_seconds_bucket{branch="feature",le="1800"} 1
ferry_build_duration_seconds_bucket{branch="feature",le="3600"} 1
ferry_build_duration_seconds_bucket{branch="feature",le="+Inf"} 1
ferry_build_duration_seconds_sum{branch="feature"} 400
ferry_build_duration_seconds_count{branch="feature"} 1
ferry_build_duration_seconds_bucket{branch="master",le="5"} 0
ferry_build_duration_seconds_bucket{branch="master",le="10"} 0
ferry_build_duration_seconds_bucket{branch="master",le="30"} 1
ferry_build_duration_seconds_bucket{branch="master",le="60"} 2
ferry_build_duration_seconds_bucket{branch="master",le="120"} 3
ferry_build_duration_seconds_bucket{branch="master",le="300"} 3
ferry_build_duration_seconds_bucket{branch="master",le="600"} 3
ferry_build_duration_seconds_bucket{branch="master",le="1200"} 3
ferry_build_duration_seconds_bucket{branch="master",le="1800"} 3
ferry_build_duration_seconds_bucket{branch="master",le="3600"} 3
ferry_build_duration_seconds_bucket{branch="master",le="+Inf"} 3
ferry_build_duration_seconds_sum{branch="master"} 155
ferry_build_duration_seconds_count{branch="master"} 3
`

const deploymentSeries = `
# HELP ferry_deployments_total Deployments that reached a final state, by environment, kind (deploy, promote, rollback, auto-rollback, scale) and result (succeeded, failed, rolled-back, superseded).
# TYPE ferry_deployments_total counter
ferry_deployments_total{env="dev",kind="auto-rollback",result="succeeded"} 1
ferry_deployments_total{env="dev",kind="deploy",result="rolled-back"} 1
ferry_deployments_total{env="dev",kind="deploy",result="succeeded"} 2
ferry_deployments_total{env="prod",kind="promote",result="succeeded"} 2
ferry_deployments_total{env="prod",kind="scale",result="succeeded"} 1
# HELP ferry_rollout_duration_seconds Time from a deployment's start to its end (rollout and verification, and the revert of a failed one), for deployments that reached a final state.
# TYPE ferry_rollout_duration_seconds histogram
ferry_rollout_duration_seconds_bucket{env="dev",le="1"} 0
ferry_rollout_duration_seconds_bucket{env="dev",le="2.5"} 0
ferry_rollout_duration_seconds_bucket{env="dev",le="5"} 1
ferry_rollout_duration_seconds_bucket{env="dev",le="10"} 1
ferry_rollout_duration_seconds_bucket{env="dev",le="30"} 3
ferry_rollout_duration_seconds_bucket{env="dev",le="60"} 4
ferry_rollout_duration_seconds_bucket{env="dev",le="120"} 4
ferry_rollout_duration_seconds_bucket{env="dev",le="300"} 4
ferry_rollout_duration_seconds_bucket{env="dev",le="600"} 4
ferry_rollout_duration_seconds_bucket{env="dev",le="1800"} 4
ferry_rollout_duration_seconds_bucket{env="dev",le="+Inf"} 4
ferry_rollout_duration_seconds_sum{env="dev"} 70
ferry_rollout_duration_seconds_count{env="dev"} 4
ferry_rollout_duration_seconds_bucket{env="prod",le="1"} 0
ferry_rollout_duration_seconds_bucket{env="prod",le="2.5"} 1
ferry_rollout_duration_seconds_bucket{env="prod",le="5"} 1
ferry_rollout_duration_seconds_bucket{env="prod",le="10"} 3
ferry_rollout_duration_seconds_bucket{env="prod",le="30"} 3
ferry_rollout_duration_seconds_bucket{env="prod",le="60"} 3
ferry_rollout_duration_seconds_bucket{env="prod",le="120"} 3
ferry_rollout_duration_seconds_bucket{env="prod",le="300"} 3
ferry_rollout_duration_seconds_bucket{env="prod",le="600"} 3
ferry_rollout_duration_seconds_bucket{env="prod",le="1800"} 3
ferry_rollout_duration_seconds_bucket{env="prod",le="+Inf"} 3
ferry_rollout_duration_seconds_sum{env="prod"} 19
ferry_rollout_duration_seconds_count{env="prod"} 3
`

// fixture is a seeded ledger, a git repository and a collector over both.
type fixture struct {
	store   ledger.Store
	seed    *seed
	count   *counting
	c       *Collector
	running *ferry.Build
	commits []string
	config  Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	repo, commits := commitRepo(t, now.Add(-10*day), now.Add(-3*day), now.Add(-2*day))
	c1, c2, c3 := commits[0], commits[1], commits[2]
	store := openLedger(t)
	s := &seed{t: t, store: store}
	f := &fixture{store: store, seed: s, commits: commits}

	s.build("master", ferry.BuildSucceeded, 90*time.Second)
	s.build("master", ferry.BuildFailed, 20*time.Second)
	s.build("master", ferry.BuildSuperseded, 0) // never ran: counted, not timed
	s.build("feature", ferry.BuildSucceeded, 400*time.Second)
	f.running = s.build("master", ferry.BuildRunning, time.Minute) // not counted until it ends
	s.build("master", ferry.BuildSucceeded, 45*time.Second)        // after the running one

	s.deploy("dev", ferry.DeployDeploy, ferry.DeploymentSucceeded, c1, now.Add(-9*day-time.Hour), 12*time.Second)
	s.deploy("dev", ferry.DeployDeploy, ferry.DeploymentRolledBack, c2, now.Add(-2*day), 40*time.Second)
	s.deploy("dev", ferry.DeployAutoRollback, ferry.DeploymentSucceeded, c1, now.Add(-2*day-time.Second), 3*time.Second)
	s.deploy("prod", ferry.DeployPromote, ferry.DeploymentSucceeded, c1, now.Add(-9*day), 8*time.Second)
	s.deploy("prod", ferry.DeployScale, ferry.DeploymentSucceeded, c1, now.Add(-8*day), 2*time.Second)
	s.deploy("dev", ferry.DeployDeploy, ferry.DeploymentPending, c3, now, 0) // not counted
	s.deploy("dev", ferry.DeployDeploy, ferry.DeploymentSucceeded, c2, now.Add(-36*time.Hour), 15*time.Second)
	s.deploy("prod", ferry.DeployPromote, ferry.DeploymentSucceeded, c2, now.Add(-day), 9*time.Second)

	f.count = &counting{Ledger: store}
	f.config = Config{
		App: "app", Ledger: f.count,
		Envs: statuses{
			{Name: "dev", Commit: c2, Digest: digestOf(c2), Replicas: controller.Replicas{Ready: 2, Desired: 2}, Pods: []ferry.Replica{
				{ID: "dev-7", State: ferry.ReplicaRunning, Isolation: ferry.IsolationRunc, Restarts: 2,
					LastExit:    &ferry.Exit{Reason: ferry.ExitOOM, Signal: "SIGKILL", Message: "OOM-killed"},
					MemoryBytes: 12 << 20, MemoryLimitBytes: 64 << 20, CPUSeconds: 1.5},
				{ID: "dev-8", State: ferry.ReplicaStarting, Isolation: ferry.IsolationProcess},
			}},
			{Name: "prod", Commit: c2, Digest: digestOf(c2), Release: "RC20260531_1200", Replicas: controller.Replicas{Ready: 1, Desired: 3}},
			{Name: "qa", State: "empty"},
		},
		Dora: &dora.Reporter{
			App: "app", Envs: []ferry.Environment{{Name: "dev"}, {Name: "prod", From: "dev"}, {Name: "qa", From: "dev"}},
			Ledger: store, Commits: dora.NewGitCommits(repo).WithContext, Now: func() time.Time { return now },
		},
	}
	f.c = New(f.config)
	return f
}

func TestCollector(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c2 := f.commits[1]
	want := buildSeries + deploymentSeries + `
# HELP ferry_environment_info What each environment runs now: its commit, release tag and image digest (always 1; absent while an environment runs nothing).
# TYPE ferry_environment_info gauge
ferry_environment_info{commit="` + c2 + `",digest="` + digestOf(c2) + `",env="dev",release=""} 1
ferry_environment_info{commit="` + c2 + `",digest="` + digestOf(c2) + `",env="prod",release="RC20260531_1200"} 1
# HELP ferry_environment_replicas An environment's replicas: ready (reported by its runtime) and desired.
# TYPE ferry_environment_replicas gauge
ferry_environment_replicas{env="dev",state="desired"} 2
ferry_environment_replicas{env="dev",state="ready"} 2
ferry_environment_replicas{env="prod",state="desired"} 3
ferry_environment_replicas{env="prod",state="ready"} 1
ferry_environment_replicas{env="qa",state="desired"} 0
ferry_environment_replicas{env="qa",state="ready"} 0
# HELP ferry_replica_info Each replica its runtime reports (always 1): its state, how it is contained (runc, process; empty when the runtime does not say) and how its last run ended (oom-killed, signal, exit-code, start-failed; empty before one has).
# TYPE ferry_replica_info gauge
ferry_replica_info{env="dev",isolation="process",last_exit="",replica="dev-8",state="starting"} 1
ferry_replica_info{env="dev",isolation="runc",last_exit="oom-killed",replica="dev-7",state="running"} 1
# HELP ferry_replica_restarts_total Times a replica was restarted after its process ended.
# TYPE ferry_replica_restarts_total counter
ferry_replica_restarts_total{env="dev",replica="dev-7"} 2
ferry_replica_restarts_total{env="dev",replica="dev-8"} 0
# HELP ferry_replica_memory_bytes A replica's memory use without reclaimable page cache, from its cgroup (local runtime under runc).
# TYPE ferry_replica_memory_bytes gauge
ferry_replica_memory_bytes{env="dev",replica="dev-7"} 1.2582912e+07
# HELP ferry_replica_memory_limit_bytes A replica's memory limit, from its cgroup (local runtime under runc).
# TYPE ferry_replica_memory_limit_bytes gauge
ferry_replica_memory_limit_bytes{env="dev",replica="dev-7"} 6.7108864e+07
# HELP ferry_replica_cpu_seconds_total CPU time used by a replica's current run, from its cgroup (local runtime under runc); starts again from 0 when it restarts.
# TYPE ferry_replica_cpu_seconds_total counter
ferry_replica_cpu_seconds_total{env="dev",replica="dev-7"} 1.5
# HELP ferry_dora_deployments_per_day DORA deployment frequency of a production environment: successful changes per day over the window.
# TYPE ferry_dora_deployments_per_day gauge
ferry_dora_deployments_per_day{env="prod"} 0.06666666666666667
ferry_dora_deployments_per_day{env="qa"} 0
# HELP ferry_dora_lead_time_seconds DORA lead time for changes: median time from commit to running in the environment, over the commits newly deployed in the window (0 without samples).
# TYPE ferry_dora_lead_time_seconds gauge
ferry_dora_lead_time_seconds{env="prod"} 129600
ferry_dora_lead_time_seconds{env="qa"} 0
# HELP ferry_dora_change_failure_rate DORA change failure rate: failed changes divided by changes attempted in the window, 0..1.
# TYPE ferry_dora_change_failure_rate gauge
ferry_dora_change_failure_rate{env="prod"} 0
ferry_dora_change_failure_rate{env="qa"} 0
# HELP ferry_dora_time_to_restore_seconds DORA time to restore: median time from a failed change to the deployment that restored the environment, over the window (0 without samples).
# TYPE ferry_dora_time_to_restore_seconds gauge
ferry_dora_time_to_restore_seconds{env="prod"} 0
ferry_dora_time_to_restore_seconds{env="qa"} 0
`
	// prod: c1 promoted 9d ago (its first: 1d from commit), c2 a day ago
	// (2d from commit): 2 in 30 days, median lead 1.5d.
	if err := testutil.CollectAndCompare(f.c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(f.c); err != nil || len(problems) > 0 {
		t.Errorf("CollectAndLint = %v, %v; want no problems", problems, err)
	}
}

// TestCollectorIncremental: scrapes read only what changed, and a new
// collector (ferry restarted) shows the same figures.
func TestCollectorIncremental(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	families := []string{"ferry_builds_total", "ferry_build_duration_seconds", "ferry_deployments_total", "ferry_rollout_duration_seconds"}
	if err := testutil.CollectAndCompare(f.c, strings.NewReader(buildSeries+deploymentSeries), families...); err != nil {
		t.Fatal(err)
	}
	// Nothing changed: one query of each (the newest page), however many
	// scrapes.
	b, d := f.count.builds.Load(), f.count.deployments.Load()
	for range 3 {
		testutil.CollectAndCount(f.c)
	}
	if nb, nd := f.count.builds.Load()-b, f.count.deployments.Load()-d; nb != 3 || nd != 3 {
		t.Errorf("3 scrapes made %d build and %d deployment queries, want 3 and 3", nb, nd)
	}

	// The running build ends, a new one fails, a deployment ends.
	ctx := context.Background()
	if err := f.store.TransitionBuild(ctx, f.running.ID, ferry.BuildRunning, ferry.BuildSucceeded, "", f.running.StartedAt.Add(100*time.Second)); err != nil {
		t.Fatal(err)
	}
	f.seed.build("master", ferry.BuildFailed, 10*time.Second)
	f.seed.deploy("prod", ferry.DeployRollback, ferry.DeploymentFailed, f.commits[0], now.Add(-time.Hour), 700*time.Second)

	got := collectText(t, f.c, families...)
	for _, line := range []string{
		`ferry_builds_total{branch="master",result="succeeded"} 3`,
		`ferry_builds_total{branch="master",result="failed"} 2`,
		`ferry_build_duration_seconds_sum{branch="master"} 265`,
		`ferry_build_duration_seconds_count{branch="master"} 5`,
		`ferry_build_duration_seconds_bucket{branch="master",le="10"} 1`,
		`ferry_deployments_total{env="prod",kind="rollback",result="failed"} 1`,
		`ferry_rollout_duration_seconds_bucket{env="prod",le="600"} 3`,
		`ferry_rollout_duration_seconds_bucket{env="prod",le="1800"} 4`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("after more builds and deployments the scrape lacks %s:\n%s", line, got)
		}
	}
	// Scraped again it says the same, and so does a new collector over
	// the same ledger.
	if again := collectText(t, f.c, families...); again != got {
		t.Errorf("a second scrape differs:\n%s\nwant\n%s", again, got)
	}
	if fresh := collectText(t, New(f.config), families...); fresh != got {
		t.Errorf("a new collector over the same ledger shows\n%s\nwant\n%s", fresh, got)
	}
}

func collectText(t *testing.T, c prometheus.Collector, names ...string) string {
	t.Helper()
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, names...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestCollectorErrors: a part that cannot be read fails its series and
// leaves the others.
func TestCollectorErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store.Close()
	reg := NewRegistry(New(f.config))
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "read builds") || !strings.Contains(err.Error(), "read deployments") || !strings.Contains(err.Error(), "dora figures") {
		t.Errorf("Gather over a closed ledger = %v, want the builds, deployments and DORA reads failed", err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"ferry_environment_info", "ferry_environment_replicas", "go_goroutines", "process_cpu_seconds_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("Gather over a closed ledger has %v, want %s still", names, want)
		}
	}
	for _, gone := range []string{"ferry_builds_total", "ferry_deployments_total", "ferry_dora_lead_time_seconds"} {
		if slices.Contains(names, gone) {
			t.Errorf("Gather over a closed ledger has %s", gone)
		}
	}
}

func TestNewer(t *testing.T) {
	t.Parallel()
	var ids []int64 // newest first, with gaps
	for id := int64(300); id > 0; id-- {
		if id%7 != 0 {
			ids = append(ids, id)
		}
	}
	above := func(mark int64) []int64 {
		var out []int64
		for _, id := range slices.Backward(ids) {
			if id > mark {
				out = append(out, id)
			}
		}
		return out
	}
	for _, tc := range []struct {
		mark   int64
		limits []int
	}{
		{0, []int{50, 1000}},
		{1, []int{50, 1000}},
		{ids[len(ids)-1], []int{50, 1000}},
		{ids[49], []int{50}},       // the last of the first page
		{ids[50], []int{50, 1000}}, // the first of the second
		{ids[10], []int{50}},       // a few new ones
		{ids[0], []int{50}},        // nothing new
		{ids[0] + 5, []int{50}},    // a mark above everything
	} {
		var limits []int
		got, err := newer(tc.mark, func(before int64, limit int) ([]record, error) {
			limits = append(limits, limit)
			var page []record
			for _, id := range ids {
				if (before == 0 || id < before) && len(page) < limit {
					page = append(page, record{id: id})
				}
			}
			return page, nil
		})
		var gotIDs []int64
		for _, r := range got {
			gotIDs = append(gotIDs, r.id)
		}
		if err != nil || !slices.Equal(gotIDs, above(tc.mark)) || !slices.Equal(limits, tc.limits) {
			t.Errorf("newer(mark %d) = %d records (err %v) in pages %v, want %d in %v", tc.mark, len(gotIDs), err, limits, len(above(tc.mark)), tc.limits)
		}
	}
}

// BenchmarkCollect times a scrape of a ledger with 2000 builds and 2000
// deployments: cold (a new collector, as after a restart, reads both
// tables) and warm (the steady state: only the newest page).
//
//	go test -run '^$' -bench Collect ./metrics
func BenchmarkCollect(b *testing.B) {
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	for i := range 2000 {
		start := now.Add(-time.Duration(i) * time.Minute)
		if err := store.CreateBuild(ctx, &ferry.Build{App: "app", Commit: hexOf(i + 1), Branch: "master", State: ferry.BuildSucceeded,
			CreatedAt: start, StartedAt: start, FinishedAt: start.Add(time.Duration(i%600) * time.Second)}); err != nil {
			b.Fatal(err)
		}
		if err := store.CreateDeployment(ctx, &ferry.Deployment{App: "app", Env: []string{"dev", "prod"}[i%2], Kind: ferry.DeployDeploy,
			State: ferry.DeploymentSucceeded, Commit: hexOf(i + 1), Digest: digestOf(hexOf(i + 1)), Actor: "bench",
			CreatedAt: start, StartedAt: start, FinishedAt: start.Add(time.Duration(i%60) * time.Second)}); err != nil {
			b.Fatal(err)
		}
	}
	cfg := Config{App: "app", Ledger: store}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			if n := testutil.CollectAndCount(New(cfg)); n != 6 {
				b.Fatalf("%d series, want 6", n)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		c := New(cfg)
		testutil.CollectAndCount(c)
		for b.Loop() {
			if n := testutil.CollectAndCount(c); n != 6 {
				b.Fatalf("%d series, want 6", n)
			}
		}
	})
}

// liveCanaries is a controller with one canary running on prod.
type liveCanaries map[string]controller.CanaryStatus

func (l liveCanaries) LiveCanaries() map[string]controller.CanaryStatus { return l }

// TestCollectorCanaries: a running canary's weight, step, this step's
// figures per version and the last verdict; nothing of a canary that
// does not run.
func TestCollectorCanaries(t *testing.T) {
	t.Parallel()
	var canary, baseline analysis.Figures
	for i := range 100 {
		canary.Requests++
		canary.Latency.Observe(time.Duration(10+i%5) * time.Millisecond)
		baseline.Requests++
		baseline.Latency.Observe(10 * time.Millisecond)
	}
	canary.Errors = 3
	running := controller.CanaryStatus{
		Run:    &ferry.CanaryRun{DeploymentID: 9, Env: "prod", Step: 1, Steps: 3, Weight: 25, State: ferry.CanaryRunning},
		Active: true, Tracks: map[string]analysis.Figures{ferry.TrackCanary: canary, ferry.TrackBaseline: baseline, ferry.TrackStable: {}},
		Verdict: &analysis.Verdict{Outcome: analysis.Pass},
	}
	f := newFixture(t)
	cfg := f.config
	cfg.Envs, cfg.Dora = nil, nil
	cfg.Canaries = liveCanaries{"prod": running}
	c := New(cfg)
	q := func(f analysis.Figures, p float64) string {
		return strconv.FormatFloat(f.Latency.Quantile(p).Seconds(), 'g', -1, 64)
	}
	want := `
# HELP ferry_canary_weight_percent Percent of the requests a running canary takes now, by environment (absent when none runs).
# TYPE ferry_canary_weight_percent gauge
ferry_canary_weight_percent{env="prod"} 25
# HELP ferry_canary_step The running canary's current step, from 1, with its state (running or paused).
# TYPE ferry_canary_step gauge
ferry_canary_step{env="prod",state="running"} 2
# HELP ferry_canary_step_requests Requests each version (track: stable, canary, baseline) answered over the canary's current step.
# TYPE ferry_canary_step_requests gauge
ferry_canary_step_requests{env="prod",track="baseline"} 100
ferry_canary_step_requests{env="prod",track="canary"} 100
ferry_canary_step_requests{env="prod",track="stable"} 0
# HELP ferry_canary_step_errors 5xx answers and failed forwards of each version over the canary's current step.
# TYPE ferry_canary_step_errors gauge
ferry_canary_step_errors{env="prod",track="baseline"} 0
ferry_canary_step_errors{env="prod",track="canary"} 3
ferry_canary_step_errors{env="prod",track="stable"} 0
# HELP ferry_canary_step_p50_seconds Median latency of each version over the canary's current step (absent before its first request).
# TYPE ferry_canary_step_p50_seconds gauge
ferry_canary_step_p50_seconds{env="prod",track="baseline"} ` + q(baseline, 0.5) + `
ferry_canary_step_p50_seconds{env="prod",track="canary"} ` + q(canary, 0.5) + `
# HELP ferry_canary_step_p99_seconds 99th percentile latency of each version over the canary's current step (absent before its first request).
# TYPE ferry_canary_step_p99_seconds gauge
ferry_canary_step_p99_seconds{env="prod",track="baseline"} ` + q(baseline, 0.99) + `
ferry_canary_step_p99_seconds{env="prod",track="canary"} ` + q(canary, 0.99) + `
# HELP ferry_canary_verdict The last judgement of the running canary: 1 for its outcome (pass, fail, inconclusive).
# TYPE ferry_canary_verdict gauge
ferry_canary_verdict{env="prod",outcome="pass"} 1
`
	names := []string{"ferry_canary_weight_percent", "ferry_canary_step", "ferry_canary_step_requests", "ferry_canary_step_errors", "ferry_canary_step_p50_seconds", "ferry_canary_step_p99_seconds", "ferry_canary_verdict"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c, names...); err != nil || len(problems) > 0 {
		t.Errorf("CollectAndLint = %v, %v; want no problems", problems, err)
	}
	cfg.Canaries = liveCanaries{}
	if n := testutil.CollectAndCount(New(cfg), names...); n != 0 {
		t.Errorf("%d canary series with no canary running, want 0", n)
	}
}
