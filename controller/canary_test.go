package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/ledger"
)

// canaryTarget is fakeTarget with the canary contract: Split and EndSplit
// as the runtimes do them (idempotent, weights only changed on a second
// Split), and cumulative per-track figures since the split began, which
// the test feeds with serve.
type canaryTarget struct {
	*fakeTarget
	mu     sync.Mutex
	split  *ferry.Split
	splits []int // weights, in call order
	ends   int
	figs   map[string]analysis.Figures
	// readErr, when set, is what Figures fails with.
	readErr error
	// hold, when set, makes Split return only once its context ends,
	// split done: ferry stopped just as the split took effect.
	hold bool
}

func (c *canaryTarget) Split(ctx context.Context, s ferry.Split, progress func(ferry.Progress)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		defer func() {
			c.mu.Unlock()
			<-ctx.Done()
			c.mu.Lock()
		}()
	}
	if c.split == nil {
		c.figs = map[string]analysis.Figures{ferry.TrackStable: {}, ferry.TrackCanary: {}}
		if s.Baseline {
			c.figs[ferry.TrackBaseline] = analysis.Figures{}
		}
	}
	c.split = &s
	c.splits = append(c.splits, s.Weight)
	progress(ferry.Progress{Message: "split"})
	return nil
}

func (c *canaryTarget) EndSplit(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.split != nil {
		c.ends++
	}
	c.split, c.figs = nil, map[string]analysis.Figures{}
	return nil
}

func (c *canaryTarget) Figures(ctx context.Context) (map[string]analysis.Figures, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.readErr != nil {
		return nil, c.readErr
	}
	out := map[string]analysis.Figures{}
	for k, v := range c.figs {
		out[k] = v
	}
	return out, nil
}

// serve records n requests on track, errs of them failed, each taking lat.
func (c *canaryTarget) serve(track string, n, errs int, lat time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.figs[track]
	if !ok {
		return // the track does not run
	}
	f.Requests += int64(n)
	f.Errors += int64(errs)
	for range n {
		f.Latency.Observe(lat)
	}
	c.figs[track] = f
}

func (c *canaryTarget) state() (split *ferry.Split, splits []int, ends int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.split, append([]int(nil), c.splits...), c.ends
}

// fakeClock is the controller's clock in canary tests: After hands the
// test a timer, which tick fires after moving the time on by its
// duration, so that no test sleeps for a canary's minutes.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	timer chan clockTimer
}

type clockTimer struct {
	d  time.Duration
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, timer: make(chan clockTimer, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.timer <- clockTimer{d, ch}
	return ch
}

// next waits for the controller's next timer.
func (c *fakeClock) next(t *testing.T) clockTimer {
	t.Helper()
	select {
	case tm := <-c.timer:
		return tm
	case <-time.After(10 * time.Second):
		t.Fatal("the controller set no timer")
		return clockTimer{}
	}
}

func (c *fakeClock) fire(tm clockTimer) {
	c.mu.Lock()
	c.now = c.now.Add(tm.d)
	now := c.now
	c.mu.Unlock()
	tm.ch <- now
}

// traffic is one interval's requests: per track, how many, how many
// failed, and how long each took.
type traffic struct {
	canary, baseline, stable          int
	canaryErrs                        int
	canaryLatency, baseLatency, stLat time.Duration
}

// healthy is an interval of 100 requests to each of canary and baseline,
// all fast and fine.
var healthy = traffic{canary: 100, baseline: 100, stable: 800, canaryLatency: 20 * time.Millisecond, baseLatency: 20 * time.Millisecond, stLat: 20 * time.Millisecond}

// tick waits for the controller's next judgement timer, serves tr and
// fires it.
func (f *relFixture) tick(tr traffic) {
	f.t.Helper()
	tm := f.clock.next(f.t)
	f.prodCanary.serve(ferry.TrackCanary, tr.canary, tr.canaryErrs, tr.canaryLatency)
	f.prodCanary.serve(ferry.TrackBaseline, tr.baseline, 0, tr.baseLatency)
	f.prodCanary.serve(ferry.TrackStable, tr.stable, 0, tr.stLat)
	f.clock.fire(tm)
}

// canaryDo runs a rollout command once the loop waits for its next
// judgement; the timer it waited on is dropped (the loop takes a new one
// when it goes on).
func (f *relFixture) canaryDo(cmd func(ctx context.Context, env, actor, reason string) error, reason string) error {
	f.t.Helper()
	f.clock.next(f.t)
	return cmd(context.Background(), "prod", "ada", reason)
}

// testCanary is prod's canary in these tests: 10 % for 30 s, then 50 %
// for 30 s, judged every 5 s, paused after 1 m inconclusive.
func testCanary(baseline bool) *ferry.Canary {
	return &ferry.Canary{
		Steps:    []ferry.CanaryStep{{Weight: 10, For: 30 * time.Second}, {Weight: 50, For: 30 * time.Second}},
		Baseline: baseline,
		Analysis: ferry.CanaryAnalysis{Interval: 5 * time.Second, MinRequests: 50, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond, Inconclusive: time.Minute},
	}
}

// newCanaryFixture is a release fixture whose prod runs a canary, with a
// first release a (no canary: nothing ran before) and a second one b
// built and in dev, ready to promote.
func newCanaryFixture(t *testing.T, baseline bool) (f *relFixture, a, b *ferry.Build) {
	t.Helper()
	return newCanaryFixtureOn(t, "sqlite", baseline)
}

// newCanaryFixtureOn is newCanaryFixture with its ledger on engine
// (sqlite or postgres).
func newCanaryFixtureOn(t *testing.T, engine string, baseline bool) (f *relFixture, a, b *ferry.Build) {
	t.Helper()
	f = newFixtureWith(t, func(f *relFixture) {
		f.postgres = engine == "postgres"
		f.canary = testCanary(baseline)
		f.prodCanary = &canaryTarget{fakeTarget: f.prod, figs: map[string]analysis.Figures{}}
		f.clock = newFakeClock(f.clk.Now())
	})
	a = f.commit("master", "feat: a")
	f.inDev(a)
	d, err := f.ctrl.Promote(context.Background(), "prod", "", "ada", "first")
	if err != nil {
		t.Fatal(err)
	}
	if d := f.wait(d.ID); d.State != ferry.DeploymentSucceeded {
		t.Fatalf("first release = %s (%s), want succeeded without a canary", d.State, d.Error)
	}
	if _, splits, _ := f.prodCanary.state(); len(splits) != 0 {
		t.Fatalf("first release split %v, want no canary: nothing ran before", splits)
	}
	waitUntil(t, func() bool { return f.tags.get("live") == a.Digest }, "live to follow prod")
	b = f.commit("master", "feat: b")
	f.inDev(b)
	return f, a, b
}

func (f *relFixture) promoteCanary() *ferry.Deployment {
	f.t.Helper()
	d, err := f.ctrl.Promote(context.Background(), "prod", "", "ada", "second")
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *relFixture) canaryRun(id int64) *ferry.CanaryRun {
	f.t.Helper()
	runs, err := f.ledger.Canaries(context.Background(), "app", "prod", nil, 10)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range runs {
		if r.DeploymentID == id {
			return r
		}
	}
	f.t.Fatalf("no canary recorded for deployment %d", id)
	return nil
}

// TestCanaryOutcomes: a bad canary aborts at once and leaves prod, live and
// release where they were; a healthy one goes through every step.
func TestCanaryOutcomes(t *testing.T) {
	bad := healthy
	bad.canaryErrs = 5 // 5 % of the canary's requests fail
	slow := healthy
	slow.canaryLatency = healthy.canaryLatency + 200*time.Millisecond
	tests := []struct {
		name     string
		baseline bool
		tr       traffic
		// ticks is how many judgements the outcome takes at most.
		ticks     int
		want      ferry.DeploymentState
		wantState ferry.CanaryState
		wantError string
		splits    []int
		// postgres puts the ledger on PostgreSQL.
		postgres bool
	}{
		{"5 % errors", true, bad, 1, ferry.DeploymentFailed, ferry.CanaryAborted, "error rate 5.00%", []int{10}, false},
		{"+200 ms", true, slow, 1, ferry.DeploymentFailed, ferry.CanaryAborted, "slower than the baseline", []int{10}, false},
		{"5 % errors, no baseline", false, bad, 1, ferry.DeploymentFailed, ferry.CanaryAborted, "error rate 5.00%", []int{10}, false},
		{"healthy", true, healthy, 12, ferry.DeploymentSucceeded, ferry.CanaryPromoted, "", []int{10, 50}, false},
		{"healthy, no baseline", false, healthy, 12, ferry.DeploymentSucceeded, ferry.CanaryPromoted, "", []int{10, 50}, false},
		{"5 % errors on postgres", true, bad, 1, ferry.DeploymentFailed, ferry.CanaryAborted, "error rate 5.00%", []int{10}, true},
		{"healthy on postgres", true, healthy, 12, ferry.DeploymentSucceeded, ferry.CanaryPromoted, "", []int{10, 50}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engine := "sqlite"
			if tt.postgres {
				engine = "postgres"
			}
			f, a, b := newCanaryFixtureOn(t, engine, tt.baseline)
			release := f.originRef("refs/heads/release")
			d := f.promoteCanary()
			for range tt.ticks {
				f.tick(tt.tr)
			}
			got := f.wait(d.ID)
			if got.State != tt.want || !strings.Contains(got.Error, tt.wantError) {
				t.Fatalf("canary release = %s (%q), want %s with %q", got.State, got.Error, tt.want, tt.wantError)
			}
			split, splits, ends := f.prodCanary.state()
			if split != nil || ends != 1 || !equalInts(splits, tt.splits) {
				t.Errorf("split after = %v, weights %v, ended %d times; want none, %v, ended once", split, splits, ends, tt.splits)
			}
			run := f.canaryRun(d.ID)
			if run.State != tt.wantState || run.Weight != 0 {
				t.Errorf("canary recorded %s at %d%%, want %s at 0%%", run.State, run.Weight, tt.wantState)
			}
			if tt.want == ferry.DeploymentFailed {
				// The figures that failed it are in the deployment and the verdict.
				if !strings.Contains(got.Error, "canary 100 requests") {
					t.Errorf("deployment error %q does not give the canary's figures", got.Error)
				}
				var v analysis.Verdict
				if err := json.Unmarshal(run.Verdict, &v); err != nil || v.Outcome != analysis.Fail {
					t.Errorf("recorded verdict = %s (%v), want a failed one", run.Verdict, err)
				}
				if runs := f.prod.runs().Digest; runs != a.Digest {
					t.Errorf("prod runs %s after the abort, want %s still", runs, a.Digest)
				}
				f.prod.mu.Lock()
				applied := append([]string(nil), f.prod.applied...)
				f.prod.mu.Unlock()
				if len(applied) != 1 {
					t.Errorf("stable replicas applied %v, want only the first release", applied)
				}
				waitUntil(t, func() bool { return f.originRef("refs/heads/release") == release }, "release to stay on what prod runs")
				if live := f.tags.get("live"); live != a.Digest {
					t.Errorf("live = %s after the abort, want %s", live, a.Digest)
				}
				if f.eventCount("deployment.failed", b.Commit) != 1 || f.eventCount("canary.aborted", b.Commit) != 1 {
					t.Errorf("want one deployment.failed and one canary.aborted event for %s", b.Commit)
				}
				return
			}
			if runs := f.prod.runs().Digest; runs != b.Digest {
				t.Errorf("prod runs %s after the canary, want %s", runs, b.Digest)
			}
			waitUntil(t, func() bool { return f.tags.get("live") == b.Digest }, "live to follow the promoted canary")
		})
	}
}

func (f *relFixture) eventCount(kind, commit string) int {
	f.t.Helper()
	es, err := f.ledger.Events(context.Background(), ledger.EventFilter{Kind: kind, Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Kind == kind && (commit == "" || e.Commit == commit) {
			n++
		}
	}
	return n
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCanaryStepsTakeTheirTime: a step ends once it lasted For and its last
// judgement passed, never earlier.
func TestCanaryStepsTakeTheirTime(t *testing.T) {
	f, _, b := newCanaryFixture(t, true)
	d := f.promoteCanary()
	for i := 1; i <= 6; i++ { // 30 s at 5 s a judgement
		f.tick(healthy)
		if i == 6 {
			break
		}
		f.clock.timer <- f.clock.next(t) // the loop waits again: the judgement is done
		if _, splits, _ := f.prodCanary.state(); !equalInts(splits, []int{10}) {
			t.Fatalf("after %d judgements (%ds), weights %v, want still [10]", i, 5*i, splits)
		}
	}
	waitUntil(t, func() bool { _, s, _ := f.prodCanary.state(); return equalInts(s, []int{10, 50}) }, "the second step after 30 s")
	run := f.canaryRun(d.ID)
	if run.Step != 1 || run.Weight != 50 || run.State != ferry.CanaryRunning {
		t.Errorf("canary recorded step %d at %d%% %s, want step 1 at 50%% running", run.Step, run.Weight, run.State)
	}
	st, err := f.ctrl.Canary(context.Background(), "prod")
	if err != nil || !st.Active || st.Run.Weight != 50 {
		t.Errorf("Canary(prod) = %+v, %v; want active at 50%%", st, err)
	}
	for range 6 {
		f.tick(healthy)
	}
	if got := f.wait(d.ID); got.State != ferry.DeploymentSucceeded || f.prod.runs().Digest != b.Digest {
		t.Errorf("canary = %s, prod runs %s; want succeeded on %s", got.State, f.prod.runs().Digest, b.Digest)
	}
}

// TestCanaryInconclusivePauses: without traffic the canary waits, pauses
// after its timeout, and never promotes by itself; resume and promote are
// a person's.
func TestCanaryInconclusivePauses(t *testing.T) {
	f, a, b := newCanaryFixture(t, true)
	d := f.promoteCanary()
	quiet := traffic{canary: 1, baseline: 1, stable: 8, canaryLatency: time.Millisecond, baseLatency: time.Millisecond, stLat: time.Millisecond}
	for range 12 { // 1 m
		f.tick(quiet)
	}
	waitUntil(t, func() bool { return f.canaryRun(d.ID).State == ferry.CanaryPaused }, "the canary to pause")
	run := f.canaryRun(d.ID)
	if !strings.Contains(run.Reason, "too few requests") {
		t.Errorf("pause reason = %q, want the verdict's", run.Reason)
	}
	for range 40 { // paused: a long quiet time changes nothing
		f.tick(quiet)
	}
	if _, splits, _ := f.prodCanary.state(); !equalInts(splits, []int{10}) {
		t.Errorf("paused canary moved to %v, want it held at [10]", splits)
	}
	if f.eventCount("canary.paused", b.Commit) != 1 {
		t.Errorf("want one canary.paused event")
	}
	// Traffic comes back, but a paused canary passes no step by itself.
	for range 8 {
		f.tick(healthy)
	}
	if _, splits, _ := f.prodCanary.state(); !equalInts(splits, []int{10}) || f.prod.runs().Digest != a.Digest {
		t.Fatalf("paused canary went on (%v) by itself", splits)
	}
	if err := f.canaryDo(f.ctrl.CanaryPause, "again"); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("CanaryPause(paused) = %v, want ECONFLICT", err)
	}
	if err := f.canaryDo(f.ctrl.CanaryResume, "traffic is back"); err != nil {
		t.Fatal(err)
	}
	if got := f.canaryRun(d.ID).State; got != ferry.CanaryRunning {
		t.Errorf("after resume, canary %s, want running", got)
	}
	if err := f.canaryDo(f.ctrl.CanaryPause, "look at the logs"); err != nil {
		t.Fatal(err)
	}
	if err := f.ctrl.CanaryPromote(context.Background(), "prod", "ada", " "); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("CanaryPromote without a reason = %v, want EINVALID", err)
	}
	if err := f.canaryDo(f.ctrl.CanaryPromote, "checked by hand"); err != nil {
		t.Fatal(err)
	}
	got := f.wait(d.ID)
	if got.State != ferry.DeploymentSucceeded || f.prod.runs().Digest != b.Digest {
		t.Fatalf("promoted canary = %s, prod runs %s; want succeeded on %s", got.State, f.prod.runs().Digest, b.Digest)
	}
	if _, splits, _ := f.prodCanary.state(); !equalInts(splits, []int{10}) {
		t.Errorf("rollout promote went through %v, want the remaining steps skipped", splits)
	}
	if run := f.canaryRun(d.ID); run.State != ferry.CanaryPromoted || !strings.Contains(run.Reason, "checked by hand") {
		t.Errorf("canary recorded %s (%q), want promoted with the reason", run.State, run.Reason)
	}
	if err := f.ctrl.CanaryAbort(context.Background(), "prod", "ada", "late"); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("CanaryAbort with no canary = %v, want ECONFLICT", err)
	}
}

// TestCanaryAbortByHand: rollout abort ends the split at once.
func TestCanaryAbortByHand(t *testing.T) {
	f, a, _ := newCanaryFixture(t, true)
	d := f.promoteCanary()
	f.tick(healthy)
	if err := f.canaryDo(f.ctrl.CanaryAbort, "wrong build"); err != nil {
		t.Fatal(err)
	}
	got := f.wait(d.ID)
	if got.State != ferry.DeploymentFailed || !strings.Contains(got.Error, "aborted at 10% by ada: wrong build") {
		t.Errorf("aborted canary = %s (%q)", got.State, got.Error)
	}
	if split, _, ends := f.prodCanary.state(); split != nil || ends != 1 || f.prod.runs().Digest != a.Digest {
		t.Errorf("after abort: split %v, ended %d, prod runs %s; want no split, once, %s", split, ends, f.prod.runs().Digest, a.Digest)
	}
}

// countedRuns counts SaveCanary calls.
type countedRuns struct {
	CanaryRuns
	n *atomic.Int64
}

func (c countedRuns) SaveCanary(ctx context.Context, r *ferry.CanaryRun) error {
	c.n.Add(1)
	return c.CanaryRuns.SaveCanary(ctx, r)
}

// TestCanaryWritesOnChange: judgements that change nothing a person
// reads (state, step, outcome, reasons) are not written every interval.
func TestCanaryWritesOnChange(t *testing.T) {
	f, _, _ := newCanaryFixture(t, true)
	d := f.promoteCanary()
	f.tick(healthy)
	tm := f.clock.next(t) // the first verdict is judged and saved
	waitUntil(t, func() bool { return len(f.canaryRun(d.ID).Verdict) > 0 }, "the first verdict")
	before := f.canarySaves.Load()
	f.clock.fire(tm)
	for range 2 {
		f.tick(healthy)
	}
	f.clock.next(t) // the fourth is over
	if got := f.canarySaves.Load() - before; got != 0 {
		t.Errorf("%d canary writes over 4 passing judgements of one step, want 0", got)
	}
}

// TestCanaryFiguresLost: figures that cannot be read pause the canary
// after the inconclusive timeout, as too little traffic does; a runtime
// that no longer runs the split (a node restarted) aborts it. Neither
// ever promotes it.
func TestCanaryFiguresLost(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lose      func(c *canaryTarget)
		ticks     int // judgements after the loss
		state     ferry.CanaryState
		deployed  ferry.DeploymentState
		wantInRun string
		// fromStart loses the figures before the canary starts: its
		// step's first reading fails too.
		fromStart bool
	}{
		{"reads fail", func(c *canaryTarget) { c.readErr = errors.New("node: the node is unreachable") },
			12, ferry.CanaryPaused, ferry.DeploymentRolling, "reading the figures failed: node: the node is unreachable", false},
		{"split gone", func(c *canaryTarget) { c.figs = map[string]analysis.Figures{} },
			1, ferry.CanaryAborted, ferry.DeploymentFailed, "no longer runs the split", false},
		{"reads fail from the step's start", func(c *canaryTarget) { c.readErr = errors.New("prometheus: connection refused") },
			12, ferry.CanaryPaused, ferry.DeploymentRolling, "reading the figures failed: prometheus: connection refused", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, a, _ := newCanaryFixture(t, true)
			if tc.fromStart {
				f.prodCanary.mu.Lock()
				tc.lose(f.prodCanary)
				f.prodCanary.mu.Unlock()
			}
			d := f.promoteCanary()
			f.tick(healthy)
			tm := f.clock.next(t) // the first judgement is over
			f.prodCanary.mu.Lock()
			tc.lose(f.prodCanary)
			f.prodCanary.mu.Unlock()
			f.clock.fire(tm)
			for range tc.ticks - 1 { // 12 in all: the 1 m inconclusive timeout
				f.tick(healthy)
			}
			waitUntil(t, func() bool { return f.canaryRun(d.ID).State == tc.state }, "the canary to be "+string(tc.state))
			if run := f.canaryRun(d.ID); !strings.Contains(run.Reason, tc.wantInRun) {
				t.Errorf("canary recorded %s (%q), want %q in its reason", run.State, run.Reason, tc.wantInRun)
			}
			got, err := f.ledger.Deployment(context.Background(), d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tc.deployed.Final() {
				got = f.wait(d.ID)
			}
			if got.State != tc.deployed || f.prod.runs().Digest != a.Digest {
				t.Errorf("deployment %s, prod runs %s; want %s, still on %s", got.State, f.prod.runs().Digest, tc.deployed, a.Digest)
			}
		})
	}
}

// healthyUntilDone serves healthy intervals to the canary of deployment
// id until it has ended (or has left its steps: the loop sets no timer).
func (f *relFixture) healthyUntilDone(id int64) {
	f.t.Helper()
	for range 2 * 7 { // at most: each step's 30 s and one judgement more
		if d, err := f.ledger.Deployment(context.Background(), id); err != nil || d.State.Final() {
			return
		}
		select {
		case tm := <-f.clock.timer:
			f.prodCanary.serve(ferry.TrackCanary, healthy.canary, 0, healthy.canaryLatency)
			f.prodCanary.serve(ferry.TrackBaseline, healthy.baseline, 0, healthy.baseLatency)
			f.clock.fire(tm)
		case <-time.After(2 * time.Second): // promoting: no timer any more
		}
	}
}

// TestCanaryVerify: prod's verify checks run once the canary has every
// replica — the split ended, the new digest on the stable replicas — and
// not before its steps (they go to the environment's URL, which reaches
// the canary only by its weight); a check that fails then reverts prod to
// what it ran before, as after any rollout.
func TestCanaryVerify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int // what prod's check gets, once b's canary began
		want   ferry.DeploymentState
	}{
		{"passes", http.StatusOK, ferry.DeploymentSucceeded},
		{"fails", http.StatusServiceUnavailable, ferry.DeploymentRolledBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				status atomic.Int64
				mu     sync.Mutex
				seen   []string // at each check: whether a split ran, and what prod ran
				f      *relFixture
			)
			status.Store(http.StatusOK)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if f != nil && f.prodCanary != nil {
					split, _, _ := f.prodCanary.state()
					mu.Lock()
					seen = append(seen, fmt.Sprintf("split %v, runs %s", split != nil, f.prod.runs().Digest))
					mu.Unlock()
				}
				w.WriteHeader(int(status.Load()))
			}))
			defer srv.Close()
			f = newFixtureWith(t, func(g *relFixture) {
				g.canary = testCanary(true)
				g.prodCanary = &canaryTarget{fakeTarget: g.prod, figs: map[string]analysis.Figures{}}
				g.clock = newFakeClock(g.clk.Now())
				g.prodURL, g.prodVerify = srv.URL, []ferry.Check{{Method: "GET", Path: "/health", Expect: 200, Timeout: 300 * time.Millisecond}}
			})
			a := f.commit("master", "feat: a")
			f.inDev(a)
			if d, err := f.promote(""); err != nil || d.State != ferry.DeploymentSucceeded {
				t.Fatalf("first release = %+v, %v", d, err)
			}
			b := f.commit("master", "feat: b")
			f.inDev(b)
			mu.Lock()
			seen = nil
			mu.Unlock()
			status.Store(int64(tc.status))
			d := f.promoteCanary()
			f.healthyUntilDone(d.ID)
			got := f.wait(d.ID)
			if got.State != tc.want {
				t.Errorf("canary's deployment = %s (%q), want %s", got.State, got.Error, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 {
				t.Fatal("prod's check never ran")
			}
			for _, s := range seen {
				if want := "split false, runs " + b.Digest; s != want {
					t.Errorf("a check ran with %s, want only %s: after the canary took every replica", s, want)
				}
			}
			want := b.Digest
			if tc.want == ferry.DeploymentRolledBack {
				want = a.Digest
			}
			if runs := f.prod.runs().Digest; runs != want {
				t.Errorf("prod runs %s, want %s", runs, want)
			}
		})
	}
}

// TestCanaryFirstReadFails: a step whose first reading of the figures
// fails is not aborted: its span starts from the next reading that works,
// and a healthy canary then goes through its steps.
func TestCanaryFirstReadFails(t *testing.T) {
	f, _, b := newCanaryFixture(t, true)
	f.prodCanary.mu.Lock()
	f.prodCanary.readErr = errors.New("prometheus: connection refused")
	f.prodCanary.mu.Unlock()
	d := f.promoteCanary()
	tm := f.clock.next(t) // the step began without its first reading
	f.prodCanary.mu.Lock()
	f.prodCanary.readErr = nil
	f.prodCanary.mu.Unlock()
	f.clock.fire(tm)
	waitUntil(t, func() bool {
		v := f.canaryRun(d.ID).Verdict
		return strings.Contains(string(v), "start only now")
	}, "the verdict to say the span starts at the first reading that worked")
	f.healthyUntilDone(d.ID)
	if got := f.wait(d.ID); got.State != ferry.DeploymentSucceeded || f.prod.runs().Digest != b.Digest {
		t.Errorf("canary after a failed first reading = %s (%q), prod runs %s; want succeeded on %s", got.State, got.Error, f.prod.runs().Digest, b.Digest)
	}
}

// TestRollbackDuringCanary: a rollback aborts the running canary first
// and runs without any analysis.
func TestRollbackDuringCanary(t *testing.T) {
	f, a, b := newCanaryFixture(t, true)
	// b goes through its canary, so that a is a release to roll back to.
	d := f.promoteCanary()
	for range 12 {
		f.tick(healthy)
	}
	if got := f.wait(d.ID); got.State != ferry.DeploymentSucceeded {
		t.Fatalf("b's canary = %s (%q)", got.State, got.Error)
	}
	c := f.commit("master", "feat: c")
	f.inDev(c)
	d = f.promoteCanary()
	f.tick(healthy)
	f.clock.next(t) // the canary waits for its next judgement
	back, err := f.ctrl.Rollback(context.Background(), "prod", "", "ada", "pager")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.wait(d.ID); got.State != ferry.DeploymentFailed || !strings.Contains(got.Error, "rollback: pager") {
		t.Errorf("canary = %s (%q), want failed by the rollback", got.State, got.Error)
	}
	if got := f.wait(back.ID); got.State != ferry.DeploymentSucceeded || got.Digest != a.Digest {
		t.Errorf("rollback = %s to %s (%q), want succeeded to %s", got.State, got.Digest, got.Error, a.Digest)
	}
	if runs := f.prod.runs().Digest; runs != a.Digest {
		t.Errorf("prod runs %s after the rollback, want %s", runs, a.Digest)
	}
	if split, splits, _ := f.prodCanary.state(); split != nil || !equalInts(splits, []int{10, 50, 10}) {
		t.Errorf("split %v, weights %v: the rollback must end the canary and not split", split, splits)
	}
	if run := f.canaryRun(d.ID); run.State != ferry.CanaryAborted {
		t.Errorf("c's canary recorded %s, want aborted", run.State)
	}
	_ = b
}

// TestPushDuringCanary: a push that moves release away from the running
// canary's commit — back to a known release, or forward to a newer one —
// aborts the canary at once (split ended, recorded aborted with the push
// as its reason) instead of waiting behind its steps; what was pushed is
// then handled as any push is.
func TestPushDuringCanary(t *testing.T) {
	for _, tc := range []struct {
		name string
		// to is what the push moves release to: a, what prod ran before
		// the canary, or a newer commit c.
		to string
		// want is what prod runs afterwards.
		want string
	}{
		{name: "back to the running release", to: "a", want: "a"},
		{name: "forward past the canary", to: "c", want: "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, a, b := newCanaryFixture(t, true)
			builds := map[string]*ferry.Build{"a": a}
			if tc.to == "c" {
				// c is built and in dev before b's canary starts; prod's
				// promotion names b.
				builds["c"] = f.commit("master", "feat: c")
				f.inDev(builds["c"])
			}
			d, err := f.ctrl.Promote(context.Background(), "prod", b.Commit, "ada", "second")
			if err != nil {
				t.Fatal(err)
			}
			f.tick(healthy)
			f.clock.next(t) // the canary waits for its next judgement
			to := builds[tc.to]
			f.git(f.work, "push", "-q", "-f", "origin", to.Commit+":refs/heads/release")
			pushed := make(chan struct{})
			go func() { defer close(pushed); f.releaseHead(to.Commit) }()
			if got := f.wait(d.ID); got.State != ferry.DeploymentFailed || !strings.Contains(got.Error, "by a push") {
				t.Errorf("canary = %s (%q), want failed by the push", got.State, got.Error)
			}
			if run := f.canaryRun(d.ID); run.State != ferry.CanaryAborted || run.Weight != 0 || !strings.Contains(run.Reason, ferry.ShortSHA(to.Commit)) {
				t.Errorf("canary recorded %s at %d%% (%q), want aborted naming the pushed %s", run.State, run.Weight, run.Reason, ferry.ShortSHA(to.Commit))
			}
			if _, _, ends := f.prodCanary.state(); ends != 1 {
				t.Errorf("split ended %d times, want once", ends)
			}
			select {
			case <-pushed:
			case <-time.After(10 * time.Second):
				t.Fatal("the push was not handled")
			}
			if tc.to == "c" {
				// c goes through its own canary.
				for range 12 {
					f.tick(healthy)
				}
			}
			want := builds[tc.want].Digest
			waitUntil(t, func() bool { return f.prod.runs().Digest == want }, "prod to run what was pushed")
			if split, _, _ := f.prodCanary.state(); split != nil {
				t.Errorf("a split %v runs after the push", split)
			}
		})
	}
}

// TestRestartMidCanary: ferry stopped mid-canary aborts it cleanly at the
// next start: the split ended, the canary and the deployment recorded as
// such, prod back on what it ran.
func TestRestartMidCanary(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			f, a, _ := newCanaryFixtureOn(t, engine, true)
			d := f.promoteCanary()
			f.tick(healthy)
			f.clock.next(t) // the controller waits for its next judgement
			if split, _, _ := f.prodCanary.state(); split == nil {
				t.Fatal("no split before the restart")
			}
			f.restart()
			got := f.wait(d.ID)
			if got.State != ferry.DeploymentFailed {
				t.Errorf("interrupted canary's deployment = %s, want failed", got.State)
			}
			run := f.canaryRun(d.ID)
			if run.State != ferry.CanaryAborted || run.Weight != 0 || !strings.Contains(run.Reason, "ferry restarted mid-canary at step 1 of 2 (10%)") {
				t.Errorf("interrupted canary recorded %s at %d%% (%q)", run.State, run.Weight, run.Reason)
			}
			if split, _, ends := f.prodCanary.state(); split != nil || ends != 1 {
				t.Errorf("after the restart: split %v, ended %d times; want none, once", split, ends)
			}
			waitUntil(t, func() bool { return f.prod.runs().Digest == a.Digest }, "prod to run the last release")
			ds, err := f.ledger.Deployments(context.Background(), ledger.DeploymentFilter{App: "app", Env: "prod", Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 2 || ds[0].ID != d.ID || ds[1].State != ferry.DeploymentSucceeded || ds[1].Digest != a.Digest {
				t.Errorf("prod's deployments after the restart = %d, want the interrupted canary and a's release only", len(ds))
			}
			waitUntil(t, func() bool { return f.originRef("refs/heads/release") == a.Commit }, "release back on what prod runs")
			if f.eventCount("canary.aborted", "") != 1 {
				t.Errorf("want one canary.aborted event")
			}
		})
	}
}

// TestRestartAsTheSplitTakesEffect: ferry stopped as the canary's first
// split took effect, before any judgement, still finds the canary at the
// next start and ends its split: the canary is recorded before the split
// starts, so no crash leaves a split the ledger does not know of (on
// Kubernetes its Deployments would serve beside prod's for good).
func TestRestartAsTheSplitTakesEffect(t *testing.T) {
	f, a, _ := newCanaryFixture(t, true)
	f.prodCanary.mu.Lock()
	f.prodCanary.hold = true
	f.prodCanary.mu.Unlock()
	d := f.promoteCanary()
	waitUntil(t, func() bool { split, _, _ := f.prodCanary.state(); return split != nil }, "the canary's split")
	f.prodCanary.mu.Lock()
	f.prodCanary.hold = false
	f.prodCanary.mu.Unlock()
	f.restart()
	if got := f.wait(d.ID); got.State != ferry.DeploymentFailed {
		t.Errorf("interrupted canary's deployment = %s, want failed", got.State)
	}
	run := f.canaryRun(d.ID)
	if run.State != ferry.CanaryAborted || run.Weight != 0 || !strings.Contains(run.Reason, "ferry restarted mid-canary at step 1 of 2 (10%)") {
		t.Errorf("interrupted canary recorded %s at %d%% (%q)", run.State, run.Weight, run.Reason)
	}
	if split, _, ends := f.prodCanary.state(); split != nil || ends != 1 {
		t.Errorf("after the restart: split %v, ended %d times; want none, once", split, ends)
	}
	waitUntil(t, func() bool { return f.prod.runs().Digest == a.Digest }, "prod to run the last release")
}

// TestCanaryWithoutSplitter: a runtime that cannot split releases a
// canary environment as before, straight to every replica.
func TestCanaryWithoutSplitter(t *testing.T) {
	f := newFixtureWith(t, func(f *relFixture) { f.canary = testCanary(true) })
	for _, subject := range []string{"a", "b"} {
		b := f.commit("master", subject)
		f.inDev(b)
		d, err := f.promote("")
		if err != nil {
			t.Fatal(err)
		}
		if d.State != ferry.DeploymentSucceeded || f.prod.runs().Digest != b.Digest {
			t.Fatalf("release of %s = %s, prod runs %s; want succeeded", subject, d.State, f.prod.runs().Digest)
		}
	}
	if runs, err := f.ledger.Canaries(context.Background(), "app", "prod", nil, 10); err != nil || len(runs) != 0 {
		t.Errorf("canaries recorded = %v, %v; want none", runs, err)
	}
}

// TestCanaryJudgesEverythingItServed: a step is judged on all the canary
// served since its first step, not only on its own requests. At a low
// rate the first step passes on 2 errors in 60 requests (not enough to
// be sure of 1 %); two more in the second step's first 10 requests fail
// it at once, where a judgement of that step alone would have waited for
// 50 requests more.
func TestCanaryJudgesEverythingItServed(t *testing.T) {
	f, a, _ := newCanaryFixture(t, true)
	d := f.promoteCanary()
	slow := traffic{canary: 10, baseline: 10, stable: 80, canaryLatency: 20 * time.Millisecond, baseLatency: 20 * time.Millisecond, stLat: 20 * time.Millisecond}
	for i := 1; i <= 6; i++ { // the first step: 30 s, 60 requests each side
		tr := slow
		if i == 2 || i == 5 {
			tr.canaryErrs = 1
		}
		f.tick(tr)
	}
	waitUntil(t, func() bool { _, s, _ := f.prodCanary.state(); return equalInts(s, []int{10, 50}) }, "the second step after the first passed")
	bad := slow
	bad.canaryErrs = 2
	f.tick(bad)
	got := f.wait(d.ID)
	if got.State != ferry.DeploymentFailed || !strings.Contains(got.Error, "4 of 70") {
		t.Fatalf("canary = %s (%s), want failed on 4 errors of the 70 requests it served", got.State, got.Error)
	}
	if f.prod.runs().Digest != a.Digest {
		t.Errorf("prod runs %s after the abort, want %s", f.prod.runs().Digest, a.Digest)
	}
}
